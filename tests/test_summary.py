import pytest

from ddlib.chapters.scales import Recorder, claim_anchor, claim_text, record_claim
from ddlib.results.records import read_records
from ddlib.results.summary import EXPECTED, SUMMARY_VERDICTS, reading_guide, reproduction_summary, summary_counts, summary_html
from ddlib.results.verdicts import paired_verdict


def ast_recorder(root, scale="smoke", dataset="mnist5k", **params):
    return Recorder(root / "ast", "AST", scale, dataset, "cpu", params=params)


def beats(a, b, claim="AST beats MTT"):
    return paired_verdict(claim, a, b, names=("AST", "MTT"), unit="points", level=0.95)


def test_missing_results_show_not_run(tmp_path):
    table = reproduction_summary(tmp_path / "nothing-here")
    expected_rows = sum(len(items) for items in EXPECTED.values())
    assert len(table) == expected_rows
    assert set(table["verdict"]) == {"not run"}
    assert (table["ours"] == "").all() and (table["dataset"] == "").all()


def test_verdict_claim_is_recorded_and_summarised(tmp_path):
    rec = ast_recorder(tmp_path, scale="mini")
    verdict = beats([60.0, 61.0, 62.0, 63.0], [59.0, 59.0, 59.0, 59.0])  # d = [1, 2, 3, 4]: CI [0.446, 4.55]
    text = record_claim(rec, "Table 7", verdict, ours="61.5% vs 59.0%", paper="48.8% vs 39.7%", ipc=10)
    anchor = claim_anchor("AST", "Table 7", "AST beats MTT")
    assert text.startswith(f'<a id="{anchor}"></a>**Table 7, claim: AST beats MTT.** Paper: 48.8% vs 39.7%.')
    assert "61.5% vs 59.0%; AST - MTT = +2.5 points, 95 % CI [0.446, 4.55], n = 4 paired runs: holds." in text
    rec.finish()
    row = read_records(rec.path).iloc[0]
    assert row["metric"] == "claim_verdict" and row["value"] == 2.5 and row["ipc"] == 10
    cfg = row["config"]
    assert (cfg["verdict"], cfg["n"], cfg["level"], cfg["method"]) == ("holds", 4, 0.95, "t")
    assert cfg["low"] == pytest.approx(0.4457463, abs=1e-5) and cfg["page"] == "ast"
    table = reproduction_summary(tmp_path)
    t7 = table[(table["paper"] == "AST") & (table["experiment"] == "Table 7")].iloc[0]
    assert (t7["verdict"], t7["effect"], t7["interval"], t7["n"]) == ("holds", "+2.5 points", "[0.446, 4.55] (95 % t)", 4)
    assert (t7["dataset"], t7["scale"], t7["paper value"], t7["link"]) == ("mnist5k", "mini", "48.8% vs 39.7%",
                                                                          f"ast.html#{anchor}")


def test_inconclusive_verdict_says_what_scale_would_be_needed(tmp_path):
    rec = ast_recorder(tmp_path)
    verdict = beats([61.0, 59.0, 62.0, 58.5], [60.0, 60.0, 60.0, 60.0])  # d = [1, -1, 2, -1.5]
    text = record_claim(rec, "Table 7", verdict, paper="48.8% vs 39.7%")
    assert verdict.verdict == "inconclusive at this scale"
    assert f"about {verdict.required_n()} paired runs would be needed" in text
    one = record_claim(rec, "Table 7", beats([60.0], [50.0], claim="one seed"), paper="p")
    assert "no interval from n = 1 paired run" in one and "would be needed" not in one
    rec.finish()
    rows = reproduction_summary(tmp_path).query("experiment == 'Table 7'")
    assert list(rows["verdict"]) == ["inconclusive at this scale"] * 2
    assert rows.iloc[1]["interval"] == "none (n < 2)" and rows.iloc[1]["effect"] == "+10 points"


def test_legacy_bool_claims_and_plain_records_are_reported(tmp_path):
    rec = ast_recorder(tmp_path)
    text = record_claim(rec, "Table 7", "AST beats MTT", True, ours="60.0% vs 50.0%", paper="48.8% vs 39.7%", ipc=10)
    record_claim(rec, "Table 7", "balanced loss helps", False, ours="49% vs 50%", paper="40.1% vs 39.7%")
    record_claim(rec, "Table 6", "not at this scale", None, ours="", paper="p")
    rec.add("Figure 3", "AST", "test_acc", 55.0, ipc=10)
    rec.finish()
    table = reproduction_summary(tmp_path)
    ast = table[table["paper"] == "AST"]
    t7 = ast[ast["experiment"] == "Table 7"]
    assert list(t7["verdict"]) == ["holds", "does not hold"]
    assert set(t7["interval"]) == {"none (bare comparison)"} and set(t7["effect"]) == {""}
    assert t7.iloc[0]["paper value"] == "48.8% vs 39.7%" and t7.iloc[0]["scale"] == "smoke"
    anchor = claim_anchor("AST", "Table 7", "AST beats MTT")
    assert t7.iloc[0]["link"] == f"ast.html#{anchor}"
    assert f'id="{anchor}"' in text and "Direction holds at this scale (a bare comparison of two means" in text
    assert ast[ast["experiment"] == "Table 6"]["verdict"].item() == "not run at this scale"
    figure3 = ast[ast["experiment"] == "Figure 3"].iloc[0]
    assert (figure3["verdict"], figure3["dataset"]) == ("shown, no directional claim", "mnist5k")
    assert ast[ast["experiment"] == "Table 1"]["verdict"].item() == "not run"
    html = summary_html(table)
    assert f'href="ast.html#{anchor}"' in html and html.count("<tr") == len(table) + 1
    assert "<th>interval</th>" in html and "<th>dataset</th>" in html


def test_summary_reads_only_the_newest_complete_run(tmp_path):
    first = ast_recorder(tmp_path)
    record_claim(first, "Table 7", beats([61.0, 61.5, 62.0], [60.0, 60.0, 60.0]), paper="p")  # CI [0.258, 2.74]
    first.finish()
    second = ast_recorder(tmp_path)
    record_claim(second, "Table 7", beats([59.0, 58.5, 58.0], [60.0, 60.0, 60.0]), paper="p")
    second.finish()
    assert first.path.exists() and second.path.exists()  # a rerun deletes nothing
    verdicts = lambda: list(reproduction_summary(tmp_path).query("experiment == 'Table 7'")["verdict"])  # noqa: E731
    assert verdicts() == ["does not hold"]  # the newest run only, never both
    failed = ast_recorder(tmp_path)  # a third run that fails midway
    record_claim(failed, "Table 7", beats([61.0, 61.5, 62.0], [60.0, 60.0, 60.0]), paper="p")
    assert verdicts() == ["does not hold"]  # the previous complete run stays


def test_summary_filters_by_scale(tmp_path):
    rec = ast_recorder(tmp_path, scale="mini")
    record_claim(rec, "Table 7", beats([61.0, 61.5, 62.0], [60.0, 60.0, 60.0]), paper="p")
    rec.finish()
    assert (reproduction_summary(tmp_path, scale="smoke")["verdict"] == "not run").all()
    assert "holds" in set(reproduction_summary(tmp_path, scale="mini")["verdict"])
    assert "holds" in set(reproduction_summary(tmp_path)["verdict"])


def test_counts_and_reading_guide():
    import pandas as pd

    table = pd.DataFrame({"verdict": ["holds", "holds", "does not hold", "inconclusive at this scale", "not run",
                                      "not run at this scale", "shown, no directional claim"],
                          "interval": ["[0.1, 2] (95 % t)", "none (bare comparison)", "none (bare comparison)",
                                       "[-1, 2] (95 % t)", "", "", ""]})
    counts = summary_counts(table)
    assert list(counts) == list(SUMMARY_VERDICTS)
    assert list(counts.values()) == [2, 1, 1, 2, 1]
    smoke, mini = reading_guide(table, "smoke"), reading_guide(table, "mini")
    assert mini.startswith("**2** holds, **1** does not hold, **1** inconclusive at this scale, **2** not run, "
                           "**1** shown, no directional claim. 2 of the holds / does not hold verdicts are bare")
    assert "contains zero" in mini and "meaningless" not in mini
    assert "smoke build" in smoke and "meaningless" in smoke
    with pytest.raises(ValueError, match="verdict 'maybe'"):
        summary_counts(pd.DataFrame({"verdict": ["maybe"]}))


def test_recorder_run_lifecycle(tmp_path):
    rec = ast_recorder(tmp_path)
    assert rec.path.name.endswith(".partial.jsonl") and rec.path.parent == tmp_path / "ast" / "runs"
    rec.add("Table 1", "SGD", "test_acc", 1.0)
    final = rec.finish()
    assert final == rec.path and final.name.endswith(".jsonl") and not final.name.endswith(".partial.jsonl")
    assert rec.finish() == final  # idempotent
    with pytest.raises(ValueError, match="is finished"):
        rec.add("Table 1", "SGD", "test_acc", 2.0)
    with ast_recorder(tmp_path) as ok:
        ok.add("Table 1", "SGD", "test_acc", 1.0)
    assert ok.finished
    with pytest.raises(RuntimeError), ast_recorder(tmp_path) as broken:
        raise RuntimeError("chapter failed")
    assert not broken.finished and broken.path.exists()
    with pytest.raises(ValueError, match="scale='big'"):
        Recorder(tmp_path, "AST", "big", "mnist5k", "cpu")
    with pytest.raises(ValueError, match="params disagree"):
        Recorder(tmp_path, "AST", "mini", "mnist5k", "cpu", params={"scale": "paper"})
    with pytest.raises(ValueError, match=r"params\['seed'\]='0'"):
        Recorder(tmp_path, "AST", "mini", "mnist5k", "cpu", params={"seed": "0"})


def test_record_claim_argument_errors_and_vocabulary(tmp_path):
    rec = ast_recorder(tmp_path)
    with pytest.raises(ValueError, match="given with a Verdict"):
        record_claim(rec, "Table 7", beats([1.0, 2.0], [0.0, 0.0]), True, paper="p")
    with pytest.raises(ValueError, match="expected a Verdict"):
        record_claim(rec, "Table 7", "a claim without holds", paper="p")
    assert claim_text("inconclusive at this scale") == "inconclusive at this scale"
    assert [claim_text(v) for v in (True, False, None)] == ["holds", "does not hold", "not run at this scale"]
    with pytest.raises(ValueError, match="verdict 'perhaps'"):
        claim_text("perhaps")
