"""The AST chapter's seeded runs (ddlib.chapters.ast_seeded) and its records and verdicts (ddlib.chapters.ast_claims)."""
import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest

import ddlib
from ddlib.chapters import ast_claims as cx
from ddlib.chapters import ast_experiments as astx
from ddlib.chapters import ast_seeded as sx


@pytest.fixture()
def recorder(tmp_path):
    return ddlib.Recorder(tmp_path, "AST", "smoke", "digits", "cpu", params={"seed": 0})


def _result(last, best):
    """An evaluation of one set (fractions per network), as EvalResult.to_dict() has it."""
    return {"last": last, "best": best, "statistic": "best"}


def test_plans_of_the_scales():
    paper = sx.ASTPlan.for_scale("paper")
    assert paper.dropped() == {} and paper.memory == "recompute"
    assert paper.expert_variants == astx.EXPERT_VARIANTS and paper.table7_rows[0] == "MTT"
    assert sx.ASTPlan.for_scale("smoke").dropped() == {}  # smoke runs every row, so every path is exercised
    mini = sx.ASTPlan.for_scale("mini")
    assert mini.dropped() == {
        "expert_variants": ("Adam", "momentum+GP"),
        "table2_rows": ("init=representative; start epoch=random",),
        "table7_rows": ("+ representative init", "+ balanced inner-loop loss", "+ intermediate matching loss"),
        "cross_archs": ("ResNet18",)}
    assert mini.memory == "graph" and mini.ablation_num_eval == 2 and mini.fig7_num_eval == 1
    assert set(sx.plan_table(mini)["plan"]) == set(mini.to_dict())


@pytest.mark.parametrize("changes, message", [
    ({"expert_variants": ("SGD", "momentum+GP+clip", "Lion")}, "expert_variants=.*starting with 'SGD'"),
    ({"table2_rows": ("init=random; start epoch=balanced",)}, "table2_rows=.*starting with"),
    ({"table2_rows": ("init=random; start epoch=random",)}, "Figure 2 needs"),
    ({"table7_rows": ("base (smooth experts)",)}, "starting with 'MTT'"),
    ({"expert_variants": ("SGD", "SGD+momentum")}, "needed by the main rows"),
    ({"ablation_num_eval": 0}, "ablation_num_eval=0"),
    ({"cross_archs": ("VGG11",)}, "cross_archs="),
])
def test_plan_rejects_bad_rows(changes, message):
    with pytest.raises(ValueError, match=message):
        sx.ASTPlan(**changes)
    with pytest.raises(ValueError, match="scale='huge'"):
        sx.ASTPlan.for_scale("huge")


def test_beside_paper_averages_each_seed_first(recorder):
    for seed, values in ((0, (10.0, 20.0)), (1, (30.0, 50.0))):  # seed means 15 and 40
        for index, value in enumerate(values):
            recorder.add("Table 1", "expert optimizer: SGD", "test_acc", value, distill_seed=seed, eval_index=index)
    for k, value in enumerate((40.0, 44.0)):
        recorder.add("Table 1", "expert optimizer: SGD", "expert_acc", value, config={"expert": k})
    table = astx.beside_paper(cx.table_records(recorder, "Table 1"), "Table 1", ["test_acc", "expert_acc"],
                              labels={"test_acc": "acc"}, published_metrics={"expert_acc": None})
    sd = float(np.std([15.0, 40.0], ddof=1))
    assert table.loc[0, "acc"] == f"27.5 ± {sd:.2g}"
    assert table.loc[0, "ours: expert_acc"] == f"42 ± {np.std([40, 44], ddof=1):.2g}"
    assert table.loc[0, "n"] == "2 seeds, 2 experts"
    assert table.loc[0, "paper CIFAR-100: test_acc"] == "39.7" and "paper CIFAR-100: expert_acc" not in table
    assert list(astx.unit_values(cx.table_records(recorder, "Table 1").query("metric == 'test_acc'"))) == [15, 40]


def test_paired_claim_is_decided_per_seed(recorder):
    a = {0: _result([0.60, 0.62], [0.70, 0.72]), 1: _result([0.50, 0.54], [0.66, 0.70]),
         2: _result([0.58, 0.58], [0.71, 0.69])}
    b = {s: _result([x - 0.1 for x in r["last"]], [x - d for x in r["best"]])
         for (s, r), d in zip(a.items(), (0.05, 0.02, 0.04))}
    assert cx.record_outcomes(recorder, "Table 3", "AST", a, ipc=1) == pytest.approx(100 * np.mean(
        [np.mean(r["best"]) for r in a.values()]))  # the protocol's own statistic: best
    cx.record_outcomes(recorder, "Table 3", "MTT", b, ipc=1)
    sentence = cx.paired_claim(recorder, "Table 3", "AST beats MTT at IPC 1", "AST", "MTT", ipc=1, paper="p")
    assert sentence.startswith('<a id="claim-ast-table-3-ast-beats-mtt-at-ipc-1"></a>') and "holds" in sentence
    claim = ddlib.read_records(recorder.path).query("metric == 'claim_verdict'").iloc[-1]
    differences = [5.0, 2.0, 4.0]  # best of tests, points, per seed
    half = 2.919986 * np.std(differences, ddof=1) / math.sqrt(3)  # t_{0.95, 2}
    assert claim["value"] == pytest.approx(np.mean(differences))
    assert (claim["config"]["low"], claim["config"]["high"]) == pytest.approx(
        (np.mean(differences) - half, np.mean(differences) + half), rel=1e-5)
    assert claim["config"]["n"] == 3 and claim["config"]["verdict"] == "holds" and claim["ipc"] == 1
    assert "best of tests" in claim["config"]["ours"]
    last = cx.paired_claim(recorder, "Table 3", "MTT beats AST on the last epoch", "MTT", "AST", metric=cx.LAST,
                           ipc=1, paper="p")
    assert "does not hold" in last  # every seed: 10 points lower
    assert cx.strongest(recorder, "Table 3", ["MTT", "AST"], ipc=1) == "AST"
    assert cx.seed_values(recorder, "Table 3", "AST", cx.LAST, ipc=1) == pytest.approx({0: 61.0, 1: 52.0, 2: 58.0})
    verdicts = cx.verdict_table(recorder)
    assert list(verdicts["verdict"]) == ["holds", "does not hold"] and list(verdicts["n"]) == [3, 3]


def test_expert_claims_pair_experts_by_index(recorder):
    cx.record_experts(recorder, "Table 6", "momentum", {"avg_var": [4.0, 8.0, 2.0], "expert_acc": [50, 52, 51]})
    cx.record_experts(recorder, "Table 6", "SGD", {"avg_var": [1.0, 2.0, 1.0], "expert_acc": [49, 50, 50]})
    assert list(cx.expert_values(recorder, "Table 6", "momentum", "avg_var")) == [4.0, 8.0, 2.0]
    sentence = cx.expert_claim(recorder, "Table 6", "momentum more than 2x", "momentum", "SGD", "avg_var", ratio=2.0,
                               paper="x46")
    claim = ddlib.read_records(recorder.path).query("metric == 'claim_verdict'").iloc[-1]
    assert claim["value"] == pytest.approx(np.mean(np.log([4, 4, 2])) - math.log(2))  # log ratios vs log 2
    assert claim["config"]["kind"] == "threshold" and claim["config"]["n_unit"] == "experts"
    assert "(3 experts)" in sentence
    cx.expert_claim(recorder, "Figure 4", "momentum more accurate", "momentum", "SGD", "expert_acc", paper="p",
                    source="Table 6")
    claim = ddlib.read_records(recorder.path).query("metric == 'claim_verdict'").iloc[-1]
    assert claim["experiment"] == "Figure 4" and claim["value"] == pytest.approx(np.mean([1, 2, 1]))
    cx.record_experts(recorder, "Table 6", "Adam", {"avg_var": [1.0, 2.0]})
    with pytest.raises(ValueError, match="'Adam' has 2 experts, 'SGD' 3"):
        cx.expert_claim(recorder, "Table 6", "x", "Adam", "SGD", "avg_var", paper="p")


def test_ratio_claim_and_series_helpers(recorder):
    cx.record_per_seed(recorder, "Table 8", "AST", "sec_per_iteration", {0: 1.2, 1: 1.1, 2: 1.3}, ipc=1)
    cx.record_per_seed(recorder, "Table 8", "MTT", "sec_per_iteration", {0: 1.0, 1: 1.0, 2: 1.0}, ipc=1)
    cx.ratio_claim(recorder, "Table 8", "less than 1.5x", "AST", "MTT", "sec_per_iteration", 1.5, ipc=1, paper="p")
    claim = ddlib.read_records(recorder.path).query("metric == 'claim_verdict'").iloc[-1]
    assert claim["value"] == pytest.approx(np.mean(np.log([1.2, 1.1, 1.3])) - math.log(1.5))
    assert claim["config"]["verdict"] == "holds" and claim["config"]["n_unit"] == "seeds"
    history = [{"iteration": i, "syn_lr": 0.01 * (1 + i % 2), "inner_loss": float(i + 1)} for i in range(6)]
    outcomes = {s: SimpleNamespace(result=SimpleNamespace(history=history)) for s in (0, 1)}
    cx.record_history(recorder, "Figure 9", "SGD", outcomes, ["syn_lr"], ipc=1, points=3)
    series = cx.table_records(recorder, "Figure 9", ["iteration"])
    assert list(series.query("distill_seed == 0")["iteration"]) == [0, 2, 4]  # every second point of six
    assert cx.values_at(recorder, "Figure 9", "SGD", "syn_lr", x_name="iteration", x=2) == {0: 0.01, 1: 0.01}
    with pytest.raises(ValueError, match="no point iteration=3"):
        cx.values_at(recorder, "Figure 9", "SGD", "syn_lr", x_name="iteration", x=3)
    assert cx.history_statistic(outcomes, "inner_loss", max) == {0: 6.0, 1: 6.0}
    assert cx.summary_text([1.0, 3.0]) == "2.0 % ± 1.4 (2 seeds)" and cx.summary_text([2.0], "", "experts") == (
        "2 (1 expert)")


def test_runs_pair_seeds_and_share_the_main_runs(tmp_path):
    data = ddlib.chapters.scales.subset_per_class(ddlib.load_dataset("digits"), 8, 4)
    settings = ddlib.scale_settings("smoke", width=4, expert_epochs_total=2, expert_batch=32, ablation_iterations=1,
                                    eval_epochs=2, dm_iterations=1)
    plan = sx.ASTPlan.for_scale("mini").replace(expert_variants=("SGD", "momentum+GP+clip"))
    runs = sx.ASTRuns(data, settings, plan, seed=0, eval_config=settings.eval_config("ast"), artifacts_dir=tmp_path,
                      run_dir=tmp_path / "runs")
    mtt = runs.main("MTT", 1, 0)
    assert runs.distill("SGD", 1, 0) is mtt  # the same run, made once
    assert [(e["iteration"], len(e["best"])) for e in mtt.result.evaluations] == [(0, 1), (1, 1), (2, 1)]
    ast = runs.main("AST", 1, 0)
    assert ast.config == runs.mtt_config(1, variant="momentum+GP+clip", **astx.ast_changes(1)) and ast.config.init == "representative"
    rows = runs.table7(1)
    assert list(rows) == list(plan.table7_rows) and set(rows["MTT"]) == set(runs.seeds)
    short = rows["MTT"][1]
    assert short.config.iterations == 1 and short.result.evaluations == []  # ablation: final evaluation only
    assert len(short.final["best"]) == plan.ablation_num_eval
    assert rows["+ weight perturbation"][0].config == runs.mtt_config(1, ablation=True, variant="momentum+GP+clip",
                                                                  **astx.ast_changes(1))
    assert not np.array_equal(runs.main("MTT", 1, 1).result.synthetic.images_syn, mtt.result.synthetic.images_syn)
    recorder = ddlib.Recorder(tmp_path / "out", "AST", "smoke", data.name, "cpu")
    sx.record_table3(recorder, runs, 1)
    records = ddlib.read_records(recorder.path)
    assert sorted(records["method"].unique()) == ["AST", "DM", "Forgetting", "Herding", "MTT", "Random"]
    assert (records.groupby(["method", "metric"]).size() == len(runs.seeds) * settings.num_eval).all()
    assert cx.paired_claim(recorder, "Table 3", "AST beats MTT at IPC 1", "AST", "MTT", ipc=1, paper="p")
    assert sx.experts_table(runs)["experts"].tolist() == ["SGD", "momentum+GP+clip"]


def test_student_lr_from_the_experts_or_the_scale():
    """plan.student_lr="experts": every run starts its student at the lr its experts trained with (MTT's
    definition of lr_teacher); "scale" keeps the scale's lr_teacher whatever the experts (the AST code)."""
    from ddlib.chapters.ast_experts import expert_variant
    from ddlib.chapters.scales import scale_settings

    settings = scale_settings("mini")
    data = None  # mtt_config needs neither data nor experts
    smooth_lr = expert_variant(settings, "momentum+GP+clip", preset="code")[0].optimizer.lr
    assert smooth_lr == 0.003 and settings.mtt_config(1).lr_teacher == 0.01
    for student_lr, expected in (("experts", smooth_lr), ("scale", 0.01)):
        plan = sx.ASTPlan.for_scale("mini").replace(student_lr=student_lr)
        runs = sx.ASTRuns(data, settings, plan, seed=0, eval_config=settings.eval_config("ast"), artifacts_dir=".",
                          run_dir=".")
        configs = runs.main_configs(1)
        assert configs["AST"].lr_teacher == expected and configs["MTT"].lr_teacher == 0.01
        assert runs.mtt_config(1, variant="momentum+GP+clip", lr_teacher=0.5).lr_teacher == 0.5  # explicit wins
    with pytest.raises((TypeError, ValueError), match="student_lr"):
        sx.ASTPlan(student_lr="fast")


# ddlib.chapters.ast_chapter: the chapter's set-up, groups of claims and Table 5, moved out of the notebook.

def _seeded(base, shifts):
    """Three seeds' evaluations (two networks each), ``base`` accuracy plus each seed's shift."""
    return {s: _result([base + d - 0.05] * 2, [base + d] * 2) for s, d in enumerate(shifts)}


def _chapter_run(tmp_path, scale, ipcs="1"):
    from ddlib.chapters import scales
    from ddlib.chapters.session import ChapterRun

    params = ddlib.chapter_params(scale, ipcs=ipcs, seed=3, device="cpu", out_dir=tmp_path / "out",
                                  artifacts_dir=tmp_path / "art")
    data = scales.subset_per_class(ddlib.load_dataset("digits"), 4, 2)
    recorder = ddlib.Recorder(params.out_dir, "AST", scale, data.name, "cpu")
    return ChapterRun(params=params, settings=params.settings(), data=data, recorder=recorder)


def test_start_ast_builds_the_chapters_runs(tmp_path):
    from ddlib.chapters import ast_chapter as ac

    run = _chapter_run(tmp_path, "smoke", "2")
    setup = ac.start_ast(run)
    assert setup.plan == sx.ASTPlan.for_scale("smoke") and setup.runs.plan is setup.plan
    assert (setup.ablation_ipc, setup.cross_ipc) == (2, 2)  # below paper scale: the run's first IPC
    assert setup.eval_config == run.settings.eval_config("ast") and setup.runs.eval_config == setup.eval_config
    assert setup.runs.seed == 3 and setup.runs.preset == "code" and setup.runs.seeds == run.seeds
    assert setup.runs.run_dir == tmp_path / "art" / "ast-runs" and setup.runs.artifacts_dir == tmp_path / "art"
    assert setup.zca is None and setup.runs.zca is None  # smoke's MTT settings never whiten
    paper = ac.start_ast(_chapter_run(tmp_path, "paper", "1,10,50"))
    assert (paper.ablation_ipc, paper.cross_ipc) == (10, 50)  # the paper's CIFAR-100 IPC 10 and Table 4's IPC 50
    restricted = ac.start_ast(_chapter_run(tmp_path, "paper", "1"))
    assert (restricted.ablation_ipc, restricted.cross_ipc) == (1, 1)  # a run without IPC 10/50 keeps its own
    assert isinstance(paper.zca, ddlib.ZCA) and paper.runs.zca is paper.zca  # CIFAR-10 IPC 1 and 10 whiten
    with pytest.raises(dataclasses.FrozenInstanceError):
        setup.cross_ipc = 5


def test_table3_claims_in_order_against_the_strongest_baseline(recorder):
    from ddlib.chapters import ast_chapter as ac

    published = ddlib.paper_results().query("paper == 'AST'")
    for method, base in (("AST", 0.8), ("MTT", 0.7), ("DM", 0.6), ("Random", 0.4), ("Herding", 0.65),
                         ("Forgetting", 0.5)):
        cx.record_outcomes(recorder, "Table 3", method, _seeded(base, (0.0, 0.02, -0.01)), ipc=1)
    sentences = ac.table3_claims(recorder, published, "mnist5k", 1)
    claims = ddlib.read_records(recorder.path).query("metric == 'claim_verdict'")
    assert len(sentences) == 6 and list(claims["config"].map(lambda c: c["claim"])) == [
        "AST beats MTT at IPC 1", "MTT beats random real images at IPC 1", "AST beats random real images at IPC 1",
        "DM beats random real images at IPC 1", "AST beats the coresets and DM at IPC 1", "MTT beats DM at IPC 1"]
    assert "(Herding, by mean)" in claims.iloc[4]["config"]["paper"]  # the strongest of the four at this scale
    assert claims.iloc[0]["config"]["paper"] == _table3_cells(published, "AST", "MTT")
    assert all(c["verdict"] == "holds" for c in claims["config"])  # every seed: 10 points apart or more


def _table3_cells(published, a, b):
    from ddlib.chapters.ast_tables import table3_cells

    return table3_cells(published, "mnist5k", a, b, 1)


def test_table6_claims_follow_the_planned_kinds(recorder):
    from ddlib.chapters import ast_chapter as ac

    published = ddlib.paper_results().query("paper == 'AST'")
    names = {v: astx.TABLE6_NAMES[v] for v in ("SGD", "SGD+momentum", "momentum+GP+clip")}
    for variant, (avg_var, acc) in {"SGD": ([1.0, 1.0], [50, 51]), "SGD+momentum": ([4.0, 3.0], [55, 54]),
                                    "momentum+GP+clip": ([0.5, 0.6], [53, 52])}.items():
        cx.record_experts(recorder, "Table 6", names[variant], {"avg_var": avg_var, "expert_acc": acc}, ipc=1)
        cx.record_outcomes(recorder, "Table 6", names[variant], _seeded(acc[0] / 100, (0.0, 0.01, 0.02)), ipc=1)
    sentences = ac.table6_claims(recorder, published, names, 1)
    claims = ddlib.read_records(recorder.path).query("metric == 'claim_verdict'")
    assert len(sentences) == 4 and [c["claim"] for c in claims["config"]] == [
        "momentum alone multiplies Avg Var more than 2x over SGD",
        "momentum+GP+clip experts are smoother than SGD+momentum experts",  # no momentum+GP row planned
        "smooth experts are more accurate than SGD experts", "smooth experts distil better than SGD experts"]
    assert claims.iloc[0]["value"] == pytest.approx(np.mean(np.log([4.0, 3.0])) - math.log(2))
    sgd, mom = (_table6_avg_var(published, names[v]) for v in ("SGD", "SGD+momentum"))
    assert claims.iloc[0]["config"]["paper"] == f"x{mom / sgd:.0f} (CIFAR-100)"
    with pytest.raises(ValueError, match=r"expected Table 6 rows of \['SGD\+momentum'\]"):
        ac.table6_claims(recorder, published, {v: names[v] for v in ("SGD", "momentum+GP+clip")}, 1)


def _table6_avg_var(published, row):
    from ddlib.chapters.ast_tables import published_value

    return published_value(published, "Table 6", row, "avg_var", dataset="CIFAR-100")


def test_figure7_claim_reads_the_two_points_of_the_curves(recorder):
    from ddlib.chapters import ast_chapter as ac

    cx.record_curves(recorder, "Figure 7", "AST", "best_test_acc", {0: ([0, 5, 10], [40, 60, 70]),
                     1: ([0, 5, 10], [42, 61, 72])}, x_name="iteration", ipc=1)
    cx.record_curves(recorder, "Figure 7", "MTT", "best_test_acc", {0: ([0, 5, 10], [20, 50, 58]),
                     1: ([0, 5, 10], [21, 52, 57])}, x_name="iteration", ipc=1)
    sentence = ac.figure7_claim(recorder, 1, 5, 10)
    assert "AST reaches MTT's final accuracy within 5 of 10 iterations (IPC 1)" in sentence
    assert cx.seed_values(recorder, "Figure 7", "AST after 5 iterations", "best_so_far", ipc=1) == {0: 60, 1: 61}
    assert cx.seed_values(recorder, "Figure 7", "MTT after 10 iterations", "best_so_far", ipc=1) == {0: 58, 1: 57}
    claim = ddlib.read_records(recorder.path).query("metric == 'claim_verdict'").iloc[-1]
    assert claim["value"] == pytest.approx(np.mean([2.0, 4.0]))
    with pytest.raises(ValueError, match="no point iteration=7"):
        ac.figure7_claim(recorder, 1, 7, 10)


def test_table5_runs_only_at_paper_scale(tmp_path, monkeypatch):
    from ddlib.chapters import ast_chapter as ac

    published = ddlib.paper_results().query("paper == 'AST'")
    params = ddlib.chapter_params("mini", device="cpu", out_dir=tmp_path / "mini", artifacts_dir=tmp_path / "art")
    shown = ac.table5(params, runs=None, published=published)  # nothing run below paper scale
    assert shown.data["ours"].unique().tolist() == ["not run at mini scale"]
    calls = []

    def fake_subset(data, settings, ipc, seed, **kwargs):
        calls.append((data.name, ipc, seed, kwargs["folder"]))
        return {"MTT": _result([0.3], [0.4]), "AST": _result([0.5], [0.6 + ipc / 100])}

    monkeypatch.setattr(ac, "load_dataset", lambda name, data_root=None: SimpleNamespace(
        name=name, to=lambda device: SimpleNamespace(name=name)))
    monkeypatch.setattr(ac, "run_subset", fake_subset)
    params = ddlib.chapter_params("paper", device="cpu", seed=4, out_dir=tmp_path / "paper",
                                  artifacts_dir=tmp_path / "art")
    runs = SimpleNamespace(device="cpu", settings=None, artifacts_dir=tmp_path / "art", eval_config=None,
                           run_dir=tmp_path / "runs")
    table = ac.table5(params, runs, published)
    assert calls == [(s, ipc, 4, tmp_path / "runs") for s in astx.IMAGENET_SUBSETS for ipc in (1, 10)]
    assert all(any((tmp_path / "paper" / s).iterdir()) for s in astx.IMAGENET_SUBSETS)  # one recorder each
    assert len(table) == len(astx.IMAGENET_SUBSETS) * 2 * 2  # data set x method x IPC
    ast10 = table[(table["method"] == "AST") & (table["ipc"].astype(str) == "10")].iloc[0]
    assert ast10["ours"].startswith("70")  # best of tests (60 % + 10) beside the paper's accuracy
