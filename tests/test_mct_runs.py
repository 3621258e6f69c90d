"""The MCT chapter's seeded runs (ddlib.chapters.mct_runs): configs, early checkpoints, initial sets,
records of the runs and the tables and verdicts built from them."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ddlib
from ddlib.chapters import mct_experiments as mcx
from ddlib.chapters import mct_runs as mcr
from ddlib.methods.distill_loop import DistillResult
from ddlib.evaluation.runner import EvalConfig
from ddlib.chapters.scales import ScaleSettings
from ddlib.methods.mtt_config import MTTConfig
from ddlib.results.recorder import Recorder
from ddlib.methods.synthetic import SyntheticSet
from helpers import small_digits, tiny_store

TINY = MTTConfig(ipc=1, iterations=4, syn_steps=2, expert_epochs=1, max_start_epoch=2, lr_img=10.0,
                 lr_teacher=0.01, lr_lr=1e-7, dsa=False)
TINY_EVAL = EvalConfig(epochs=2, num_eval=2, width=8, dsa=False)


@pytest.fixture(scope="module")
def data():
    return small_digits()


@pytest.fixture(scope="module")
def store(data, tmp_path_factory):
    return tiny_store(tmp_path_factory.mktemp("experts"), data, 2)


@pytest.fixture(scope="module")
def convex(store, tmp_path_factory):
    return mcx.convexified_variants(store, tmp_path_factory.mktemp("conv"), {"path-2": {}})["path-2"]


# ---------------------------------------------------------------------- settings
def test_chapter_config_mtt_and_mct_rows():
    mini = ddlib.scale_settings("mini")
    mtt, mct = (mcr.chapter_config(mini, 1, mct=m, scale="mini") for m in (False, True))
    assert (mtt.sampling, mtt.gradient, mtt.memory, mtt.iterations) == ("integer", "exact", "graph", mini.iterations)
    assert (mct.sampling, mct.gradient, mct.memory) == ("continuous", "tesla", "graph")
    assert (mct.syn_steps, mct.lr_teacher) == (mtt.syn_steps, mtt.lr_teacher)  # like for like below paper
    assert mcr.chapter_config(mini, 1, mct=True, scale="mini", iterations=60).iterations == 60
    paper = ddlib.scale_settings("paper")
    published = mcr.chapter_config(paper, 10, mct=True, scale="paper")
    assert published.memory == "recompute"  # the graph of ConvNet-128 at CIFAR scale does not fit
    assert (published.syn_steps, published.expert_epochs, published.lr_teacher) == (30, 15, 0.01)
    assert mcr.chapter_config(paper, 10, mct=False, scale="paper").lr_teacher == 0.001  # MTT's table


def test_early_iteration_is_the_ablation_length_when_shorter():
    assert mcr.early_iteration(ddlib.scale_settings("mini")) == 60  # ablation_iterations of mini
    assert mcr.early_iteration(ddlib.scale_settings("paper")) == 500  # ablations run full length: eval_every
    assert mcr.early_iteration(ddlib.scale_settings("smoke")) == 1
    assert mcr.early_iteration(ScaleSettings(iterations=30, eval_every=500)) == 30  # never past the end


# ---------------------------------------------------------------------- runs and checkpoints
def test_eval_at_evaluates_there_and_matches_a_shorter_run(data, store, tmp_path):
    run = mcx.distill_and_evaluate(data, store, TINY, 0, eval_config=TINY_EVAL, eval_at=[3, 2, 2])
    assert [e["iteration"] for e in run.evaluations] == [2, 3, 4]
    assert all(len(e["last"]) == 2 for e in run.evaluations)
    short = mcx.distill_and_evaluate(data, store, TINY.replace(iterations=2), 0, eval_config=TINY_EVAL)
    # the first 2 iterations of a longer run are a 2-iteration run: same set, same networks
    assert run.evaluations[0]["last"] == short.evaluations[-1]["last"]
    periodic = mcx.distill_and_evaluate(data, store, TINY, 0, eval_config=TINY_EVAL, eval_every=2, eval_at=[3])
    assert [e["iteration"] for e in periodic.evaluations] == [0, 2, 3, 4]
    with pytest.raises(ValueError, match=r"eval_at=\[5\]: expected iterations in \[0, 4\]"):
        mcx.distill_and_evaluate(data, store, TINY, 0, eval_config=TINY_EVAL, eval_at=[5])


def test_distill_seeds_pairs_methods_per_seed_and_resumes(data, store, convex, tmp_path):
    methods = {"MTT": (store, TINY.replace(iterations=2)),
               "MCT": (convex, mcx.mct_config(TINY.replace(iterations=2)))}
    runs = mcr.distill_seeds(data, methods, [0, 1], eval_config=TINY_EVAL, folder=tmp_path, eval_at=[1])
    assert list(runs) == [("MTT", 0), ("MCT", 0), ("MTT", 1), ("MCT", 1)]
    assert all([e["iteration"] for e in r.evaluations] == [1, 2] for r in runs.values())
    files = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert len(files) == 4 and all("eval-at-1" in f for f in files)  # the evaluation points name the file
    again = mcr.distill_seeds(data, methods, [1], eval_config=TINY_EVAL, folder=tmp_path, eval_at=[1])
    assert again["MCT", 1].evaluations == runs["MCT", 1].evaluations
    assert torch.equal(again["MCT", 1].synthetic.images_syn, runs["MCT", 1].synthetic.images_syn)
    assert not torch.equal(runs["MTT", 0].synthetic.images_syn, runs["MTT", 1].synthetic.images_syn)


def test_initial_set_is_where_both_methods_start(data, store, convex):
    first = mcr.initial_set(data, store, TINY, 5)
    method = ddlib.TrajectoryMatching(data, convex, ddlib.build_expert_model(data, convex.config),
                                      mcx.mct_config(TINY), 5)
    assert torch.equal(first.images_syn, method.images.detach())  # MCT's run of seed 5 starts here too
    assert first.syn_lr is None and first.labels_syn.tolist() == list(range(data.num_classes))
    picks = [int(torch.nonzero((data.images_train == image).flatten(1).all(1))[0]) for image in first.images_syn]
    assert [int(data.labels_train[i]) for i in picks] == list(range(data.num_classes))  # real images
    assert not torch.equal(first.images_syn, mcr.initial_set(data, store, TINY, 6).images_syn)
    with pytest.raises(ValueError, match="init='noise'"):
        mcr.initial_set(data, store, TINY.replace(init="noise"), 5)


# ---------------------------------------------------------------------- records and tables
def fake_run(evaluations, stopped="completed", done=4):
    syn = SyntheticSet(images_syn=torch.zeros(2, 1, 2, 2), labels_syn=torch.tensor([0, 1]), syn_lr=0.01,
                       config={}, provenance={}, dataset="toy", ipc=1)
    entries = [{"iteration": i, "last": list(last), "best": list(best), "statistic": "last"}
               for i, last, best in evaluations]
    return DistillResult(syn, [], entries, done, stopped, wall_time_s=1.5)


def test_evaluation_at_picks_the_iteration_or_the_last_good_set():
    run = fake_run([(2, [0.1], [0.1]), (4, [0.3], [0.3])])
    assert mcr.evaluation_at(run)["iteration"] == 4 and mcr.evaluation_at(run, 2)["last"] == [0.1]
    with pytest.raises(ValueError, match=r"no evaluation at iteration 3; evaluated at \[2, 4\]"):
        mcr.evaluation_at(run, 3)
    stopped = fake_run([(1, [0.2], [0.2])], stopped="stopped at iteration 1: nan", done=1)
    assert mcr.evaluation_at(stopped, 3)["iteration"] == 1  # the kept set stands for later iterations
    with pytest.raises(ValueError, match="no evaluation"):
        mcr.evaluation_at(fake_run([]))


def test_records_tables_and_paired_verdicts(tmp_path):
    rec = Recorder(tmp_path, "MCT", "mini", "mnist5k", "cpu")
    # per seed, networks (last): MCT 0.5/0.7 and 0.6/0.6 -> 60, 60; MTT 0.4/0.4 and 0.5/0.3 -> 40, 40
    runs = {("MCT", 0): fake_run([(2, [0.2, 0.2], [0.3, 0.3]), (4, [0.5, 0.7], [0.6, 0.7])]),
            ("MTT", 0): fake_run([(2, [0.1, 0.1], [0.1, 0.1]), (4, [0.4, 0.4], [0.4, 0.5])]),
            ("MCT", 1): fake_run([(2, [0.3, 0.3], [0.3, 0.3]), (4, [0.6, 0.6], [0.6, 0.6])]),
            ("MTT", 1): fake_run([(2, [0.2, 0.2], [0.2, 0.2]), (4, [0.5, 0.3], [0.5, 0.3])])}
    mcr.record_runs(rec, "Table (d)", runs, ipc=1)
    for iteration in (2, 4):
        mcr.record_runs(rec, "Figure (c)", runs, ipc=1, iteration=iteration, at_label=True)
    records = ddlib.read_records(rec.path)
    assert set(records[records["experiment"] == "Figure (c)"]["method"]) == {
        "MCT, 2 iterations", "MTT, 2 iterations", "MCT, 4 iterations", "MTT, 4 iterations"}
    table = mcr.accuracy_table(records, "Table (d)", published={("MTT", 1): "46.2 ± 0.8"})
    assert table.loc[("MCT", 1), "ours: last epoch"] == "60.0 ± 0.0"
    assert table.loc[("MCT", 1), "ours: best test point"] == "62.5 ± 3.5"  # seeds 65 and 60
    assert table.loc[("MTT", 1), "paper"] == "46.2 ± 0.8"
    assert table.loc[("MCT", 1), "paper"] == "not in the paper"  # no published number: said so
    unpublished = mcr.accuracy_table(records, "Table (d)", published={}, missing="–")
    assert set(unpublished["paper"]) == {"–"}
    assert table.loc[("MTT", 1), ["seeds", "networks per seed"]].tolist() == [2, 2]
    verdict = ddlib.compare_methods(rec, "Table (d)", "MCT beats MTT", "MCT", "MTT", ipc=1)
    assert (verdict.effect, verdict.n, verdict.verdict) == (pytest.approx(20.0), 2, "holds")  # sd 0
    early = ddlib.compare_methods(rec, "Figure (c)", "c", "MCT, 2 iterations", "MTT, 4 iterations", ipc=1)
    assert early.effect == pytest.approx((25 - 40) / 1)  # MCT at 2: 20, 30 -> -20, -10; mean -15
    assert mcr.describe_methods(rec, "Table (d)", ["MCT", "MTT"], ipc=1) == (
        "MCT 60.0 % ± 0.0 (2 seeds), MTT 40.0 % ± 0.0 (2 seeds)")
    frame = mcr.convergence_frame(records, "Figure (c)")
    assert frame[(frame["method"] == "MCT") & (frame["distill_seed"] == 1)][["iteration", "value"]].values.tolist() \
        == [[2, pytest.approx(30.0)], [4, pytest.approx(60.0)]]


def test_convergence_frame_starts_every_curve_at_the_shared_initial_set(tmp_path):
    rec = Recorder(tmp_path, "MCT", "mini", "mnist5k", "cpu")
    runs = {("MCT", 0): fake_run([(4, [0.5, 0.7], [0.5, 0.7])]), ("MTT", 0): fake_run([(4, [0.4, 0.4], [0.4, 0.4])])}
    mcr.record_runs(rec, "Figure (c)", runs, ipc=1, at_label=True)
    ddlib.record_evaluation(rec, "Figure (c)", "Random", {"last": [0.1, 0.3], "best": [0.1, 0.3]}, distill_seed=0,
                            ipc=1, config={"method": "Random", "iteration": 0})
    frame = mcr.convergence_frame(ddlib.read_records(rec.path), "Figure (c)", start="Random")
    assert frame[["method", "iteration", "value"]].values.tolist() == [
        ["MCT", 0, pytest.approx(20.0)], ["MCT", 4, pytest.approx(60.0)],
        ["MTT", 0, pytest.approx(20.0)], ["MTT", 4, pytest.approx(40.0)]]
    with pytest.raises(ValueError, match="start='Coreset'"):
        mcr.convergence_frame(ddlib.read_records(rec.path), "Figure (c)", start="Coreset")


# ---------------------------------------------------------------------- Figure (a) and Table (b)
def test_record_paths_writes_curves_and_oscillation(data, store, convex, tmp_path):
    rec = Recorder(tmp_path, "MCT", "mini", "mnist5k", "cpu")
    net = ddlib.build_expert_model(data, store.config)
    epochs = list(range(store.num_epochs + 1))
    mcr.record_paths(rec, "Figure (a)", {"SGD": store, "convex": convex}, net, data, epochs)
    rows = ddlib.read_records(rec.path)
    curve = rows[(rows["method"] == "SGD") & (rows["metric"] == "test_acc")]
    assert len(curve) == len(store) * len(epochs)
    expert_1 = curve[curve["config"].str["expert"] == 1].sort_values("value", key=lambda v: v.index)
    stats = mcx.oscillation(expert_1["value"].tolist())
    recorded = rows[(rows["method"] == "SGD") & (rows["config"].str["expert"] == 1)].set_index("metric")["value"]
    assert recorded["total_drop"] == pytest.approx(stats["total_drop"])
    assert recorded["net_gain"] == pytest.approx(stats["net_gain"])
    assert set(rows["config"].str["expert_seed"].dropna()) == {e["seed"] for e in store.experts}


def test_smoothness_verdicts_hand_values():
    got = mcr.smoothness_verdicts([4.0, 3.0, 5.0], [0.0, 0.0, 0.0], 0.1)
    # paired: d = -4, -3, -5: mean -4, sd 1, 90 % t(2) = 2.919986: half 1.6859 -> [-5.69, -2.31]
    assert got["smoother"].effect == pytest.approx(-4.0) and got["smoother"].high == pytest.approx(-2.3141, abs=1e-3)
    assert got["smoother"].verdict == "holds" and got["monotone"].verdict == "holds"  # no drop at all
    jumpy = mcr.smoothness_verdicts([4.0, 3.0, 5.0], [0.0, 0.0, 0.1], 0.1)["monotone"]
    # effects -0.1, -0.1, 0: mean -1/15, sd 0.057735, half 2.919986 * 0.057735 / sqrt(3) = 0.097333
    assert jumpy.high == pytest.approx(-1 / 15 + 0.097333, abs=1e-5) and jumpy.verdict == "inconclusive at this scale"
    # d = 2, 3, 2.5: mean 2.5, sd 0.5, half 0.8429: [1.66, 3.34] lies above zero
    assert mcr.smoothness_verdicts([0.0, 0.0, 0.0], [2.0, 3.0, 2.5], 0.1)["smoother"].verdict == "does not hold"
    with pytest.raises(ValueError, match="resolution=0"):
        mcr.smoothness_verdicts([1.0], [0.0], 0)


def test_storage_verdict_against_the_ideal_ratio():
    full, two = [51e6, 51e6, 51.1e6], [2e6, 2e6, 2e6]  # K = 50: ideal (K+1)/2 = 25.5
    verdict = mcr.storage_verdict(full, two, 50)
    assert verdict.verdict == "holds" and verdict.reference == pytest.approx(0.9 * 25.5)
    assert math.exp(verdict.effect) * verdict.reference == pytest.approx(np.exp(np.mean(np.log([25.5, 25.5, 25.55]))))
    assert mcr.storage_verdict([10.0, 11.0], [1.0, 1.0], 50).verdict == "does not hold"
    with pytest.raises(ValueError, match="one full and one convexified size per expert"):
        mcr.storage_verdict([1.0, 2.0], [1.0], 50)
    with pytest.raises(ValueError, match="share=0"):
        mcr.storage_verdict([1.0], [1.0], 50, share=0)


# ---------------------------------------------------------------------- the chapter's set-up and steps
from ddlib.chapters import mct_chapter as mch  # noqa: E402
from ddlib.chapters import mct_claims as mcc  # noqa: E402


def test_chapter_plan_holds_the_runs_shared_settings(tmp_path):
    smoke = ddlib.scale_settings("smoke")
    plan = mch.chapter_plan(smoke, "smoke", tmp_path)
    assert (plan.ipcs, plan.ipc, plan.seeds, plan.early) == ((1, 2), 1, (0, 1), 1)
    assert plan.checkpoints == tmp_path / "mct-checkpoints" and plan.eval_config == smoke.eval_config()
    assert plan.eval_at(1) == [1] and plan.eval_at(2) == []  # the early checkpoint only at the first IPC
    assert plan.config(2, mct=True) == mcr.chapter_config(smoke, 2, mct=True, scale="smoke")
    assert plan.config(1, mct=False, iterations=7).iterations == 7
    assert mch.chapter_plan(ddlib.scale_settings("mini"), "mini", tmp_path).eval_at(1) == [60]
    at_end = mch.chapter_plan(ScaleSettings(iterations=30, eval_every=500, ipcs=(10,)), "paper", tmp_path)
    assert at_end.early == 30 and at_end.eval_at(10) == []  # the end is evaluated anyway
    with pytest.raises(ValueError, match="scale='huge'"):
        mch.chapter_plan(smoke, "huge", tmp_path)


def test_record_storage_measures_computes_and_adds_the_papers_buffers(store, convex, tmp_path):
    four = mcx.convexified_variants(store, tmp_path / "conv", {"path-4": {"waypoints": 4}})["path-4"]
    rec = Recorder(tmp_path, "MCT", "smoke", "digits", "cpu")
    buffers = {"full": (store, "full"), "two": (convex, "convexified"), "four": (four, "waypoints")}
    kinds = mch.record_storage(rec, "Table (b)", buffers, store, len(store))
    assert kinds == {"full": "full", "convexified": "two", "waypoints": "four"}
    rows = ddlib.read_records(rec.path)
    measured = rows[rows["metric"] == "measured_mb"].set_index("method")
    assert measured.loc["two", "value"] == pytest.approx(sum(e["nbytes"] for e in convex.experts) / 2**20)
    assert measured.loc["full", "config"]["stored_epochs"] == list(range(store.num_epochs + 1))
    assert measured.loc["four", "config"]["stored_epochs"] == list(four.waypoint_epochs)
    computed = rows[rows["metric"] == "computed_mb"].set_index("method")["value"]
    assert computed["full"] * 2**20 == len(store) * (store.num_epochs + 1) * store.num_params * 4
    paper = rows[rows["metric"] == "buffer_storage_mb"]
    assert len(paper) == 12  # 3 data sets x 3 buffers, and Tiny ImageNet's depth-3 ConvNet
    assert set(paper["config"].str["for_dataset"]) == {"CIFAR-10", "CIFAR-100", "TinyImageNet",
                                                       "TinyImageNet (depth 3)"}
    with pytest.raises(ValueError, match="expected one each of"):
        mch.record_storage(rec, "Table (b)", {"a": (store, "full"), "b": (store, "full")}, store, 2)


def test_distill_main_records_both_methods_and_the_initial_images(data, store, convex, tmp_path):
    settings = ddlib.scale_settings("smoke", ipcs=(1,), seeds=(0,))
    plan = mch.chapter_plan(settings, "smoke", tmp_path)
    rec = Recorder(tmp_path, "MCT", "smoke", "digits", "cpu")
    runs = mch.distill_main(rec, data, store, convex, plan)
    assert list(runs) == [1] and list(runs[1]) == [("MTT", 0), ("MCT", 0)]
    assert runs[1]["MCT", 0].evaluations[0]["iteration"] == 1  # the early checkpoint
    rows = ddlib.read_records(rec.path)
    table_d, fig_c = (rows[rows["experiment"] == e] for e in (mch.TAB_D, mch.FIG_C))
    assert list(dict.fromkeys(table_d["method"])) == ["MTT", "MCT", "Random"]
    assert list(dict.fromkeys(fig_c["method"])) == ["Random", "MTT, 1 iterations", "MCT, 1 iterations",
                                                    "MTT, 2 iterations", "MCT, 2 iterations"]
    assert mch.stopped_runs(runs) == {}
    stopped = fake_run([(1, [0.2], [0.2])], stopped="stopped at iteration 1: nan", done=1)
    assert mch.stopped_runs({1: {("MCT", 3): stopped}}) == {("MCT", 3): "stopped at iteration 1: nan"}


def test_ablation_methods_change_one_thing_each(tmp_path):
    plan = mch.chapter_plan(ddlib.scale_settings("mini"), "mini", tmp_path)
    convex = {"path-2": "P2", "uniform-2": "U2", "path-4": "P4"}
    methods, skipped = mch.ablation_methods(convex, plan)
    assert list(methods) == list(mch.ABLATIONS) and skipped == []
    assert [source for source, _ in methods.values()] == ["P2", "U2", "P4"]
    main = plan.config(1, mct=True, iterations=60)  # mini: 60 ablation iterations
    assert methods["MCT w/o continuous sampling"][1] == main.replace(sampling="integer")
    assert methods["MCT, uniform lambda"][1] == main
    one, skipped = mch.ablation_methods(convex, plan, ("MCT, uniform lambda",))
    assert list(one) == ["MCT, uniform lambda"]
    assert skipped == ["MCT w/o continuous sampling", "MCT, authors' waypoints"]
    with pytest.raises(ValueError, match=r"ablation rows \['MCT, other'\]"):
        mch.ablation_methods(convex, plan, ("MCT, other",))


def test_record_agreement_records_every_measure_per_start_and_iteration(monkeypatch, tmp_path):
    calls = []

    def fake_agreement(data, source, config, seed, *, iterations, start_from, device):
        calls.append((source, seed, iterations, start_from))
        return [{"iteration": i, "start_epoch": 0.5 * i, **{m: float(i) for m in mch.AGREEMENT_METRICS}}
                for i in range(1, iterations + 1)]

    monkeypatch.setattr(mch, "gradient_agreement", fake_agreement)
    rec = Recorder(tmp_path, "MCT", "smoke", "digits", "cpu")
    mch.record_agreement(rec, "Table (f)", None, "src", TINY, 4, {"initial": None, "distilled": "S"}, ipc=1,
                         iterations=2)
    assert calls == [("src", 4, 2, None), ("src", 4, 2, "S")]
    rows = ddlib.read_records(rec.path)
    assert len(rows) == 2 * 2 * len(mch.AGREEMENT_METRICS)
    assert rows["provenance"].str["images"].tolist()[:len(mch.AGREEMENT_METRICS)] == ["initial"] * 6
    assert set(rows["distill_seed"]) == {4} and list(rows["metric"][:6]) == list(mch.AGREEMENT_METRICS)


# ---------------------------------------------------------------------- the chapter's claims
def test_path_claims_describe_both_paths_and_where_the_convex_one_falls(tmp_path):
    from ddlib.chapters import mct_tables as mctt

    rec = Recorder(tmp_path, "MCT", "smoke", "digits", "cpu")
    for method, accs in (("SGD", [[10.0, 30.0, 20.0], [10.0, 20.0, 30.0]]),
                         ("convex", [[10.0, 20.0, 30.0], [10.0, 25.0, 24.0]])):
        for k, curve in enumerate(accs):
            for epoch, acc in enumerate(curve):
                rec.add("Figure (a)", method, "test_acc", acc, config={"epoch": epoch, "expert": k})
            for metric, value in mcx.oscillation(curve).items():
                rec.add("Figure (a)", method, metric, value, config={"expert": k})
    curves, per_expert, stats = mctt.path_statistics(ddlib.read_records(rec.path), "Figure (a)")
    (smoother, ours_s), (monotone, ours_m) = mcc.path_claims(stats, per_expert, curves, 2.5, sgd="SGD",
                                                             convex="convex", epochs=2)
    assert smoother.claim.startswith("the convexified trajectory oscillates less")
    assert monotone.claim.startswith("accuracy rises monotonically")
    assert ours_s == ("convexified: 1 drop(s) totalling 1.0 points over 2 experts x 2 epochs; "
                      "SGD: 1 drop(s) totalling 10.0 points over 2 experts x 2 epochs")
    assert ours_m == ("convexified: 1 drop(s) totalling 1.0 points over 2 experts x 2 epochs, "
                      "falling into epoch(s) [2]; one test image is 2.5 points")


def _storage_records(tmp_path):
    import pandas as pd

    rec = Recorder(tmp_path, "MCT", "smoke", "digits", "cpu")
    for method, mb in (("full", 2.0), ("two", 0.5), ("four", 1.0)):
        rec.add("Table (b)", method, "measured_mb", mb)
    for name, sizes in (("CIFAR-10", (100.0, 4.0, 8.0)), ("TinyImageNet", (900.0, 30.0, 60.0)),
                        ("TinyImageNet (depth 3)", (600.0, 20.0, 40.0))):
        for method, mb in zip(("full", "two", "four"), sizes):
            rec.add("Table (b)", method, "buffer_storage_mb", mb, config={"for_dataset": name})
    published = pd.DataFrame({"method": ["MTT", "MCT", "MTT"], "dataset": ["CIFAR-10", "CIFAR-10", "TinyImageNet"],
                              "value": [110.0, 11.0, 610.0]})
    return ddlib.read_records(rec.path), published


def test_storage_note_and_claim_texts_from_the_records(tmp_path):
    records, published = _storage_records(tmp_path)
    note = mcc.storage_note(records, "Table (b)", published, "full")
    assert "exceeds the raw tensors by 102 KB per expert" in note  # (110 - 100) / 100 experts * 1024
    assert "(610 MB) matches a depth-3 ConvNet on 64x64 images (600 MB computed)" in note
    assert "Tiny ImageNet (900 MB): the table shows both." in note
    kinds = {"full": "full", "convexified": "two", "waypoints": "four"}
    ours, paper = mcc.storage_claim_texts(records, "Table (b)", published, kinds, num_experts=3, epochs=9)
    assert ours == ("on disk, 3 experts x 9 epochs: 2.00 MB vs 0.50 MB (ideal ratio (K+1)/2 = 5.0); "
                    "computed for CIFAR-10 at 50 epochs: 25.0x with 2 models, 12.5x with 4 waypoints")
    assert paper.endswith("on CIFAR-10: 110 MB vs 11 MB, 10.0x")


def test_comparisons_name_the_claims_and_record_paired_verdicts(tmp_path):
    rec = Recorder(tmp_path, "MCT", "mini", "mnist5k", "cpu")
    runs = {("MCT", 0): fake_run([(4, [0.6, 0.6], [0.6, 0.6])]), ("MTT", 0): fake_run([(4, [0.4, 0.4], [0.4, 0.4])]),
            ("Random", 0): fake_run([(4, [0.1, 0.1], [0.1, 0.1])]),
            ("MCT", 1): fake_run([(4, [0.7, 0.7], [0.7, 0.7])]), ("MTT", 1): fake_run([(4, [0.4, 0.6], [0.4, 0.6])]),
            ("Random", 1): fake_run([(4, [0.2, 0.2], [0.2, 0.2])])}
    mcr.record_runs(rec, "Table (d)", runs, ipc=1)
    comparisons = mcc.accuracy_comparisons([1], {("MTT", 1): 46.2, ("Random", 1): 26.0})
    assert [(c.claim, c.a, c.b) for c in comparisons] == [
        ("MCT beats MTT at IPC 1", "MCT", "MTT"), ("MCT beats random real images at IPC 1", "MCT", "Random"),
        ("MTT beats random real images at IPC 1", "MTT", "Random")]
    assert comparisons[1].paper.endswith("MTT 46.2 %, random 26.0 %)") and comparisons[0].paper == mcc.PAPER_MTT
    texts = mcc.record_comparisons(rec, "Table (d)", comparisons)
    assert len(texts) == 3 and "IPC 1, last-epoch accuracy: MCT 65.0 % ± 7.1 (2 seeds), MTT 45.0 %" in texts[0]
    claims = ddlib.read_records(rec.path).query("metric == 'claim_verdict'")
    assert claims["method"].tolist() == [f"claim: {c.claim}" for c in comparisons]
    assert claims["value"].tolist() == pytest.approx([20.0, 50.0, 30.0])  # mean paired differences
    early = mcc.convergence_comparisons(1, 60, 150)
    assert [(c.a, c.b, c.ipc) for c in early] == [("MCT, 60 iterations", "MTT, 60 iterations", 1),
                                                  ("MCT, 60 iterations", "MTT, 150 iterations", 1)]


def test_ablation_claims_waypoint_threshold_and_skipped_rows(tmp_path):
    rows = ["MCT, authors' waypoints", "MCT, uniform lambda", "MCT w/o continuous sampling"]
    assert [c.b for c in mcc.ablation_comparisons(rows, 1)] == ["MCT w/o continuous sampling", "MCT, uniform lambda"]
    assert [c.b for c in mcc.ablation_comparisons(["MCT, uniform lambda"], 2)] == ["MCT, uniform lambda"]
    rec = Recorder(tmp_path, "MCT", "mini", "mnist5k", "cpu")
    runs = {("MCT", 0): fake_run([(4, [0.60], [0.60])]), ("MCT, authors' waypoints", 0): fake_run([(4, [0.61], [0.61])]),
            ("MCT", 1): fake_run([(4, [0.50], [0.50])]), ("MCT, authors' waypoints", 1): fake_run([(4, [0.50], [0.50])])}
    mcr.record_runs(rec, "Table (e)", runs, ipc=1)
    text = mcc.record_waypoint_claim(rec, "Table (e)", ipc=1)
    assert "claim: the authors' waypoints gain less than 1 point over 2 stored models" in text
    verdict = ddlib.read_records(rec.path).query("metric == 'claim_verdict'").iloc[0]
    assert verdict["value"] == pytest.approx(0.5 - 1.0)  # gains 1 and 0 points: mean 0.5, against margin 1
    assert mcc.skipped_text([]) == ""
    assert mcc.skipped_text(["a", "b"]) == ("Not run at this scale, to fit its time budget: a, b; their claims "
                                            "are checked at `paper` scale.")


def test_agreement_text_gives_each_starts_range():
    import pandas as pd

    index = pd.MultiIndex.from_tuples([("initial images", 1), ("initial images", 2), ("distilled set", 1)],
                                      names=["images", "iteration"])
    table = pd.DataFrame({"cosine": [0.9, 0.95, 0.5], "relative_difference": [0.3, 0.1, 0.8]}, index=index)
    assert mcc.agreement_text(table, 20, 1) == (
        "With 20 inner steps at IPC 1, the TESLA image gradient has cosine 0.900 to 0.950 with the exact one "
        "and differs from it by 10% to 30% of its norm from the initial images; cosine 0.500 to 0.500 with "
        "the exact one and differs from it by 80% to 80% of its norm from the distilled set.")
