"""The Performance page's comparison with the reference code: side-by-side files only, their choice and targets."""
import json
import math

import pytest

from ddlib.chapters import performance_side_by_side as sbs

# A small side-by-side file in benchmarks/side_by_side.py's shape (per case ratio spreads over repeats).
FAKE = {"schema": 1, "kind": "side_by_side", "date": "2026-02-01T10:00:00+00:00", "repeats": 3, "size": "full",
        "machine": {"cpu_model": "Test CPU", "logical_cpus": 8, "threads": 2, "torch_version": "2.5",
                    "huge_pages": "on"},
        "settings": {"threads": 2, "huge_pages": "on"},
        "cases": {"mtt_ipc10_s10": {"time_ratio": {"median": 0.5, "min": 0.45, "max": 0.7, "n": 3},
                                    "memory_ratio": {"median": 0.4, "min": 0.38, "max": 0.41, "n": 3},
                                    "reference_s_per_iter": {"median": 12.0, "min": 11.0, "max": 13.0, "n": 3},
                                    "ddlib_s_per_iter": {"median": 6.0, "min": 5.5, "max": 7.0, "n": 3}},
                  "dm_ipc10": {"time_ratio": None, "memory_ratio": None, "reference_s_per_iter": None,
                               "ddlib_s_per_iter": None}}}
REFERENCE = {"targets": [
    {"id": "mtt_time", "text": "MTT <= 0.6x", "kind": "time_ratio", "op": "<=", "threshold": 0.6,
     "cases": ["mtt_ipc10_s10", "mtt_ipc1_s50"]},
    {"id": "mtt_memory", "text": "MTT mem <= 0.35x", "kind": "memory_ratio", "op": "<=", "threshold": 0.35,
     "cases": ["mtt_ipc10_s10"]},
    {"id": "flat", "text": "flat", "kind": "own_memory_growth", "op": "<=", "threshold": 1.2, "cases": ["a", "b"]}]}
BENCH = {"targets": [
    {"id": "flat", "text": "flat", "cases": "a / b", "value": 1.1, "op": "<=", "threshold": 1.2, "met": True},
    # written by an older run.py from figures measured elsewhere: must not reach the page
    {"id": "mtt_time", "text": "MTT <= 0.6x", "cases": "mtt_ipc10_s10", "value": 0.1, "op": "<=", "threshold": 0.6,
     "met": True}]}


def _write(root, relative, data):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_this_builds_file_wins_over_the_committed_one_and_none_without_either(tmp_path):
    assert sbs.load_side_by_side(tmp_path) is None
    committed = _write(tmp_path, "benchmarks/measured/side_by_side.json", {**FAKE, "date": "2025-12-01"})
    loaded = sbs.load_side_by_side(tmp_path)
    assert loaded.path == committed and loaded.origin == "the committed measurement"
    built = _write(tmp_path, "benchmarks/results/side_by_side.json", FAKE)
    loaded = sbs.load_side_by_side(tmp_path)
    assert loaded.path == built and loaded.origin == "this build's measurement"
    assert loaded.ratio("mtt_ipc10_s10", "time_ratio")["median"] == 0.5
    assert loaded.ratio("dm_ipc10", "time_ratio") is None and loaded.ratio("absent", "memory_ratio") is None
    with pytest.raises(ValueError, match="kind='speedup'"):
        loaded.ratio("dm_ipc10", "speedup")


def test_a_file_without_cases_is_refused_naming_it(tmp_path):
    _write(tmp_path, "benchmarks/results/side_by_side.json", {"size": "full", "machine": {}})
    with pytest.raises(ValueError, match=r"side_by_side.json: expected a side-by-side measurement"):
        sbs.load_side_by_side(tmp_path)


def test_text_names_origin_date_machine_or_how_to_measure(tmp_path):
    shown = sbs.side_by_side_text(sbs.SideBySide(tmp_path / "benchmarks/measured/side_by_side.json",
                                                 "the committed measurement", FAKE))
    assert shown.startswith("Ratios from the committed measurement (`benchmarks/measured/side_by_side.json`, "
                            "2026-02-01T10:00:00+00:00): Test CPU, 2 threads on 8 logical CPUs")
    assert "3 repeats of (reference, ddlib)" in shown and "huge pages on for both sides" in shown
    missing = sbs.side_by_side_text(None)
    assert missing.startswith("**No side-by-side measurement was made**")
    assert "make bench REF_MTT=<checkout of GeorgeCazenavette/mtt-distillation> " \
           "REF_DM=<checkout of VICO-UoE/DatasetCondensation>" in missing


def test_table_shows_median_min_max_and_n():
    table = sbs.side_by_side_table(sbs.SideBySide(None, "x", FAKE))
    row = table.loc["mtt_ipc10_s10"]
    assert row["time ddlib / ref"] == "0.50 [0.45-0.70]" and row["memory ddlib / ref"] == "0.40 [0.38-0.41]"
    assert row["n"] == 3 and row["ref s/iter"] == 12.0 and row["ddlib s/iter"] == 6.0
    assert table.loc["dm_ipc10", "time ddlib / ref"] == "-" and table.loc["dm_ipc10", "n"] == 0
    assert math.isnan(table.loc["dm_ipc10", "ref s/iter"])
    assert sbs.ratio_text(None) == "-"


def test_ratio_targets_judged_from_side_by_side_medians_only():
    frame = sbs.targets_frame(BENCH, REFERENCE, sbs.SideBySide(None, "x", FAKE))
    rows = {(r["text"], r["cases"]): r for r in frame.to_dict("records")}
    assert len(frame) == 4  # flat, then MTT time x 2 cases, MTT memory x 1; the stale mtt_time row is gone
    assert rows[("flat", "a / b")]["verdict"] == "met"
    mtt = rows[("MTT <= 0.6x", "mtt_ipc10_s10")]
    assert (mtt["value"], mtt["range"], mtt["verdict"]) == (0.5, "[0.45-0.70]", "met")
    assert rows[("MTT mem <= 0.35x", "mtt_ipc10_s10")]["verdict"] == "not met"  # 0.4 > 0.35
    assert rows[("MTT <= 0.6x", "mtt_ipc1_s50")]["verdict"] == "not measured"


def test_without_a_measurement_every_ratio_target_is_not_measured():
    frame = sbs.targets_frame({"targets": []}, REFERENCE, None)
    assert list(frame["verdict"]) == ["not measured"] * 3 and frame["value"].isna().all()
