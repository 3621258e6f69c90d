"""The TGDD chapter's runs per seed and its verdicts, on hand-made records and tiny runs."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import small_digits

import ddlib
from ddlib.chapters import tgdd_analysis as tga
from ddlib.chapters import tgdd_experiments as tge
from ddlib.chapters import tgdd_reporting as tgr
from ddlib.chapters import tgdd_setup as tgs
from ddlib.results.recorder import Recorder
from ddlib.results.records import read_records


def recorder(tmp_path) -> Recorder:
    return Recorder(tmp_path, "TGDD", "smoke", "digits", "cpu")


def add(rec, experiment, method, metric, per_seed_networks, **kw):
    """Record ``per_seed_networks[s][i]`` as network ``i`` of distillation seed ``s``."""
    for seed, values in enumerate(per_seed_networks):
        for index, value in enumerate(values):
            rec.add(experiment, method, metric, value, distill_seed=seed, eval_index=index, **kw)


def chapter(tmp_path, **knobs) -> tge.TGDDChapter:
    data = small_digits(60, 40)
    settings = ddlib.scale_settings("smoke", width=4, dm_iterations=1, eval_epochs=2, num_eval=2, seeds=(0, 1))
    pretrain = {"DM": tga.RunCost(0.0, 0.0, "none"), "TGDD": tga.RunCost(10.0, 1.0, "probe"),
                "MTT": tga.RunCost(4.0, 1.0, "probe")}
    return tge.TGDDChapter(data, settings, tge.CHAPTER_KNOBS["smoke"].replace(dm_batch_real=4, **knobs), {},
                           pretrain, recorder(tmp_path), tmp_path / "runs")


def test_knobs_validate_and_cover_every_scale():
    assert set(tge.CHAPTER_KNOBS) == {"smoke", "mini", "paper"}
    paper = tge.CHAPTER_KNOBS["paper"]
    assert (paper.tgdd_batch_real, paper.dm_batch_real, paper.mtt_accuracy) == (128, 256, True)
    with pytest.raises(ValueError, match="cross_epochs=0"):
        paper.replace(cross_epochs=0)
    with pytest.raises(ValueError, match="cross_archs"):
        paper.replace(cross_archs=())


def test_ratio_verdict_on_per_seed_ratios(tmp_path):
    rec = recorder(tmp_path)
    add(rec, "Figure 1", "TGDD", "time_s", [[1.0], [2.0], [4.0]], ipc=1)
    add(rec, "Figure 1", "MTT", "time_s", [[2.0], [4.0], [8.0]], ipc=1)
    add(rec, "Figure 1", "DM", "time_s", [[1.0], [1.0]], ipc=1)
    verdict = tgr.ratio_verdict(rec, "Figure 1", "TGDD is faster", "time_s", "TGDD", "MTT", what="time", ipc=1)
    sentence = tgr.judge_ratio(rec, "Figure 1", "TGDD is faster", "time_s", "TGDD", "MTT", what="time",
                               paper="p", unit="s", also=["DM"], ipc=1)
    assert "TGDD 2.3 s ± 1.5 (3 seeds) vs MTT 4.7 s ± 3.1 (3 seeds) vs DM 1.0 s ± 0.0 (2 seeds)" in sentence
    assert sentence.endswith("against 1, n = 3 runs: holds.")
    # Every ratio is 0.5: effect log(0.5), no spread, so the interval is the point below log 1 = 0.
    assert verdict.verdict == "holds" and verdict.kind == "threshold" and verdict.n == 3
    assert verdict.effect == pytest.approx(math.log(0.5))
    assert "TGDD / MTT time = 0.5 (geometric mean)" in verdict.sentence()
    swapped = tgr.ratio_verdict(rec, "Figure 1", "MTT is faster", "time_s", "MTT", "TGDD", what="time")
    assert swapped.verdict == "does not hold"
    with pytest.raises(ValueError, match="same seeds"):
        tgr.ratio_verdict(rec, "Figure 1", "x", "time_s", "DM", "MTT", what="time")


def test_ablation_claims_pair_consecutive_rows(tmp_path):
    rec = recorder(tmp_path)
    add(rec, "ablation", "none", "test_acc_best", [[49, 51], [51, 51], [52, 52]], ipc=1)  # seed means 50, 51, 52
    add(rec, "ablation", "+a", "test_acc_best", [[52, 52], [51, 53], [55, 55]], ipc=1)    # 52, 52, 55: +2, +1, +3
    add(rec, "ablation", "+b", "test_acc_best", [[51, 51], [51, 51], [54, 54]], ipc=1)    # 51, 51, 54: -1 each
    add(rec, "ablation", "+b", "test_acc_best", [[0, 0], [0, 0], [0, 0]], ipc=2)        # another IPC: ignored
    sentences = tgr.ablation_claims(rec, "ablation", ["none", "+a", "+b"], paper="p", metric="test_acc_best", ipc=1)
    assert len(sentences) == 3 and "+a 53.0 % ± 1.7 (3 seeds) vs none 51.0 % ± 1.0 (3 seeds)" in sentences[0]
    rows = read_records(rec.path)
    claims = {r.config["claim"]: r.config for r in rows[rows["metric"] == "claim_verdict"].itertuples()}
    first = claims["+a raises the accuracy over none"]
    # +2, +1, +3: mean 2, sd 1, 90 % t-interval 2 -+ 2.920 / sqrt 3 = [0.314, 3.686].
    assert first["verdict"] == "holds" and first["n"] == 3
    assert (first["effect"], first["low"], first["high"]) == pytest.approx((2.0, 0.3141, 3.6859), abs=1e-3)
    second = claims["+b raises the accuracy over +a"]
    assert second["verdict"] == "does not hold" and second["effect"] == pytest.approx(-1.0)
    full = claims["full TGDD beats the baseline without any component"]  # +1, 0, +2
    assert full["effect"] == pytest.approx(1.0) and full["verdict"] == "inconclusive at this scale"


def test_accuracy_table_puts_best_and_last_beside_the_paper(tmp_path):
    rec = recorder(tmp_path)
    add(rec, "main table", "TGDD", "test_acc_best", [[80, 82], [84, 84]], ipc=10)  # seed means 81, 84
    add(rec, "main table", "TGDD", "test_acc", [[70, 70], [72, 72]], ipc=10)
    add(rec, "main table", "DM", "test_acc_best", [[60, 60], [62, 62]], ipc=1)
    add(rec, "main table", "DM", "test_acc", [[50, 50], [52, 52]], ipc=1)
    published = pd.DataFrame([{"table": "main table", "dataset": "CIFAR-10", "ipc": "10", "method": "TGDD",
                               "value": 71.9, "unverified": True},
                              {"table": "main table", "dataset": "CIFAR-100", "ipc": "10", "method": "DM",
                               "value": 29.7, "unverified": False}])
    table = tgr.accuracy_table(read_records(rec.path), published, "main table", statistic_label="best")
    tgdd = table[table["method"] == "TGDD"].iloc[0]
    assert tgdd["ours (best)"] == "82.5 % ± 2.1 (2 seeds)"  # sd of (81, 84) = 2.12
    assert tgdd["ours (last epoch)"] == "71.0 % ± 1.4 (2 seeds)"
    assert (tgdd["seeds"], tgdd["networks per set"]) == (2, 2)
    assert tgdd["paper: CIFAR-10 (best)"] == "71.9 (UNVERIFIED)" and tgdd["paper: CIFAR-100 (best)"] == ""
    dm = table[table["method"] == "DM"].iloc[0]  # IPC 1: the paper has no cell
    assert dm["paper: CIFAR-10 (best)"] == "" and dm["paper: CIFAR-100 (best)"] == ""


def test_record_cost_adds_this_runs_and_the_papers_pretraining(tmp_path):
    run = chapter(tmp_path)  # smoke: 1 expert per method; TGDD's pre-training 10 s
    run.record_cost("TGDD", 1, 0, tga.RunCost(2.0, 3.0, "m"))
    rows = read_records(run.recorder.path).set_index("metric")["value"]
    assert rows["distill_time_s"] == 2.0 and rows["peak_memory_mb"] == 3.0
    assert rows["time_s"] == 12.0  # 2 + 10
    assert rows["time_paper_experts_s"] == 52.0  # 2 + 10 s per expert x the paper's 5 TGDD experts


def test_mtt_cost_probe_scales_the_probe_to_the_full_run(tmp_path, monkeypatch):
    run = chapter(tmp_path, cost_probe_iterations=1)  # smoke: 2 iterations, so x 2
    calls = []

    def fake_distill(self, name, ipc, seed, *, iterations=None, **switches):
        calls.append((name, ipc, seed, iterations))
        return None, tga.RunCost(1.5, 7.0, "m")

    monkeypatch.setattr(tge.TGDDChapter, "distill", fake_distill)
    run.mtt_cost_probe(1)
    assert calls == [("MTT", 1, 0, 1), ("MTT", 1, 1, 1)]
    rows = read_records(run.recorder.path)
    time = rows[rows["metric"] == "distill_time_s"].set_index("distill_seed")["value"]
    assert list(time) == [3.0, 3.0]
    assert set(rows.loc[rows["metric"] == "time_s", "value"]) == {7.0}  # 3 + MTT's 4 s of pre-training
    assert set(rows.loc[rows["metric"] == "peak_memory_mb", "value"]) == {7.0}


def test_ablation_rows_share_length_and_real_batch(tmp_path, monkeypatch):
    run = chapter(tmp_path, tgdd_batch_real=5, ablation_num_eval=1)
    seen = []
    monkeypatch.setattr(tge.TGDDChapter, "distill", lambda self, name, ipc, seed, **kw: (
        seen.append((name, seed, kw)) or (ddlib.random_coreset(self.data, ipc, seed), None)))
    monkeypatch.setattr(tge.TGDDChapter, "evaluate", lambda self, *a, **kw: seen.append(kw["eval_config"].num_eval))
    run.ablation({"none": ("DM", {"dsa": False}), "full": ("TGDD", {})}, ipc=1)
    length = run.settings.ablation_length
    assert seen == [("DM", 0, {"iterations": length, "batch_real": 5, "dsa": False}), 1,
                    ("TGDD", 0, {"iterations": length, "batch_real": 5}), 1,
                    ("DM", 1, {"iterations": length, "batch_real": 5, "dsa": False}), 1,
                    ("TGDD", 1, {"iterations": length, "batch_real": 5}), 1]


def test_cross_config_shortens_the_tgdd_protocol(tmp_path):
    run = chapter(tmp_path, cross_epochs=40, cross_tests=2, cross_num_eval=1)
    config = run.cross_config("ResNet10")
    assert (config.arch, config.epochs, config.test_every, config.num_eval) == ("ResNet10", 40, 20, 1)
    assert (config.protocol, config.statistic, config.batch_size) == ("tgdd", "best", 64)
    assert run.eval_config().num_eval == 2  # main_num_eval None: the scale's num_eval


def test_main_table_records_every_seed_and_network(tmp_path):
    run = chapter(tmp_path)
    sets = run.main_table(1, methods=("Random", "DM"))
    assert set(sets) == {("Random", 0), ("Random", 1), ("DM", 0), ("DM", 1)}
    torch.testing.assert_close(sets["Random", 1].images_syn, ddlib.random_coreset(run.data, 1, 1).images_syn)
    rows = read_records(run.recorder.path)
    main = rows[rows["experiment"] == "main table"]
    for method in ("Random", "DM"):
        mine = main[main["method"] == method]
        assert sorted(set(zip(mine["metric"], mine["distill_seed"], mine["eval_index"]))) == [
            (m, s, i) for m in ("test_acc", "test_acc_best") for s in (0, 1) for i in (0, 1)]
    costs = rows[rows["experiment"] == "Figure 1"]
    assert set(costs["method"]) == {"DM"} and sorted(set(costs["distill_seed"])) == [0, 1]
    # A second call resumes both DM sets from their checkpoints (keyed by seed): same images.
    again = run.distill("DM", 1, 1)[0]
    torch.testing.assert_close(again.images_syn, sets["DM", 1].images_syn)
    assert len(list((tmp_path / "runs").glob("dm-ipc1-seed*.pt"))) == 2


def test_distiller_applies_switches_and_iterations(tmp_path):
    run = chapter(tmp_path)
    dm = run.distiller("DM", 2, 0, iterations=3, dsa=False)
    assert (dm.config.ipc, dm.config.iterations, dm.config.dsa, dm.config.batch_real) == (2, 3, False, 4)
    with pytest.raises(ValueError, match="'DC'"):
        run.distiller("DC", 1, 0)


class _Trajectory:
    def __init__(self, snapshots):
        self.snapshots = snapshots

    def snapshot(self, epoch):
        return self.snapshots[epoch].clone()


def test_analysis_metrics_match_the_single_measurements():
    net = ddlib.build_model("ConvNet", 1, 2, (4, 4), width=2, depth=1, seed=0)
    gen = torch.Generator().manual_seed(0)
    flat = ddlib.flatten_params(net)
    trajectory = _Trajectory([flat, flat + 0.1 * torch.randn(flat.shape, generator=gen)])
    real = SimpleNamespace(images_train=torch.randn(8, 1, 4, 4, generator=gen), labels_train=torch.arange(8) % 2)
    syn = SimpleNamespace(images_syn=torch.randn(4, 1, 4, 4, generator=gen), labels_syn=torch.tensor([0, 0, 1, 1]))
    rows = pd.DataFrame(tge.analysis_metrics(net, trajectory, [0, 1], {"A": syn}, real))
    assert len(rows) == 2 * 5 + 1  # five metrics per stage, the coverage distance at the last one only
    assert list(rows.loc[rows["metric"] == "coverage_distance", "epoch"]) == [1]
    value = rows.set_index(["metric", "epoch"])["value"]
    accs = tga.snapshot_accuracies(net, trajectory, [0, 1], syn.images_syn, syn.labels_syn)
    assert [value["snapshot_acc", e] for e in (0, 1)] == pytest.approx([100 * a for a in accs])
    feats = tga.snapshot_features(net, trajectory.snapshot(1), syn.images_syn)
    real_feats = tga.snapshot_features(net, trajectory.snapshot(1), real.images_train)
    assert value["correlation_similarity", 1] == pytest.approx(tga.feature_correlation_similarity(real_feats, feats))
    assert value["coverage_distance", 1] == pytest.approx(
        tga.coverage_distance(real_feats, real.labels_train, feats, syn.labels_syn))
    assert np.isfinite(value["silhouette", 1])


def test_paper_texts_name_the_published_numbers():
    published = pd.DataFrame([
        {"table": "main table", "dataset": "CIFAR-10", "ipc": "10", "method": "DM", "value": 48.9, "unverified": True},
        {"table": "main table", "dataset": "CIFAR-10", "ipc": "10", "method": "TGDD", "value": 71.9,
         "unverified": True},
        {"table": "main table", "dataset": "CIFAR-10", "ipc": "50", "method": "TGDD", "value": 76.5,
         "unverified": True},
        {"table": "ablation", "dataset": "CIFAR-10", "ipc": "10", "method": "none", "value": 55.2,
         "unverified": False},
        {"table": "ablation", "dataset": "CIFAR-10", "ipc": "10", "method": "+aug", "value": 63.2,
         "unverified": False}])
    assert tgr.paper_pairs(published, "main table", "TGDD", "DM") == (
        "CIFAR-10: ipc 10: TGDD 71.9 vs DM 48.9 (UNVERIFIED)")  # IPC 50 has no DM value
    assert "no published pair" in tgr.paper_pairs(published, "main table", "TGDD", "MTT")
    assert tgr.paper_chain(published, "ablation") == "CIFAR-10 IPC 10: none 55.2 → +aug 63.2"


def test_analysis_sets_distil_dm_and_tgdd_beside_random_real(tmp_path, monkeypatch):
    run = chapter(tmp_path, analysis_iterations=7)
    calls = []
    monkeypatch.setattr(tge.TGDDChapter, "distill", lambda self, name, ipc, seed, **kw: (
        calls.append((name, ipc, seed, kw)) or (f"{name} set", None)))
    sets = run.analysis_sets(2, 1)
    assert calls == [("DM", 2, 1, {"iterations": 7}), ("TGDD", 2, 1, {"iterations": 7})]
    assert list(sets) == ["DM", "TGDD", "random real"] and sets["DM"] == "DM set"
    torch.testing.assert_close(sets["random real"].images_syn, ddlib.random_coreset(run.data, 2, 1).images_syn)


def test_main_table_claims_check_sanity_then_each_rival_per_ipc(tmp_path):
    rec = recorder(tmp_path)
    best = "test_acc_best"
    for ipc in (1, 10):
        add(rec, "main table", "Random", best, [[10.0], [11.0], [12.0]], ipc=ipc)
        add(rec, "main table", "DM", best, [[20.0], [22.0], [21.0]], ipc=ipc)
        add(rec, "main table", "TGDD", best, [[30.0], [33.0], [31.0]], ipc=ipc)
        add(rec, "main table", "MTT", best, [[40.0], [41.0], [45.0]], ipc=ipc)
    published = pd.DataFrame([{"table": "main table", "dataset": "CIFAR-10", "ipc": "10", "method": m, "value": v,
                               "unverified": False} for m, v in (("DM", 48.9), ("TGDD", 71.9))])
    sentences = tgr.main_table_claims(rec, published, (1, 10), metric=best, rivals=("DM", "MTT"))
    assert len(sentences) == 2 + 2 * 2
    claims = read_records(rec.path).query("metric == 'claim_verdict'")["config"]
    assert [c["claim"] for c in claims] == [
        "DM beats random real images at IPC 1", "TGDD beats random real images at IPC 1",
        "TGDD beats DM at IPC 1", "TGDD beats DM at IPC 10", "TGDD beats MTT at IPC 1", "TGDD beats MTT at IPC 10"]
    assert [c["verdict"] for c in claims][:4] == ["holds"] * 4
    assert claims.iloc[-1]["verdict"] == "does not hold"  # TGDD 8-11 points below MTT on every seed
    assert tgr.SANITY_CHECK in sentences[0] and "TGDD 71.9 vs DM 48.9" in sentences[2]


def test_chapter_setup_writes_the_config_and_picks_the_scales_knobs(tmp_path):
    settings = ddlib.scale_settings("smoke")
    params = SimpleNamespace(scale="mini", out_dir=tmp_path / "out", artifacts_dir=tmp_path / "art")
    setup = tgs.chapter_setup(SimpleNamespace(params=params, settings=settings))
    assert setup.knobs == tge.CHAPTER_KNOBS["mini"] and setup.run_dir == tmp_path / "art" / "tgdd-runs"
    assert set(setup.published["paper"]) == {"TGDD"} and "main table" in set(setup.published["table"])
    written = json.loads((tmp_path / "out" / "config.json").read_text())
    expected = {"settings": settings.to_dict(), "knobs": tge.CHAPTER_KNOBS["mini"].to_dict()}
    assert written == json.loads(json.dumps(expected)) and written["knobs"]["analysis_ipc"] == 10
    with pytest.raises(ValueError, match="scale='huge'.*\\['mini', 'paper', 'smoke'\\]"):
        tgs.chapter_setup(SimpleNamespace(params=SimpleNamespace(scale="huge"), settings=settings))


def test_chapter_experts_records_accuracies_and_pretraining(tmp_path, monkeypatch):
    data = small_digits(60, 40)
    settings = ddlib.scale_settings("smoke", width=4, num_experts=2)
    asked = []

    def fake_cached(root, data, config, num, seed, **kw):
        asked.append((config.optimizer.momentum, num, seed))
        return SimpleNamespace(experts=[{"seed": 7 + k, "test_accuracy": [0.1, 0.5 + k / 10]} for k in range(num)])

    monkeypatch.setattr(tgs, "cached_experts", fake_cached)
    monkeypatch.setattr(tgs, "pretraining_costs", lambda data, configs, num, seed, device: {
        "DM": tga.RunCost(0.0, 0.0, "none"), **{n: tga.RunCost(3.0, 4.0, "m") for n in configs}})
    rec = recorder(tmp_path)
    experts = tgs.chapter_experts(data, settings, tge.CHAPTER_KNOBS["smoke"], rec, tmp_path, 5)
    assert asked == [(0.9, 2, 5), (0.0, 1, 5)]  # TGDD: the code's momentum, 2 experts; MTT timed only: 1
    assert set(experts.configs) == {"TGDD", "MTT"} and experts.pretrain["TGDD"].wall_time_s == 3.0
    rows = read_records(rec.path)
    accs = rows[rows["metric"] == "expert_acc"]
    assert list(accs["method"]) == ["TGDD expert", "TGDD expert", "MTT expert"]
    assert list(accs["value"]) == pytest.approx([50.0, 60.0, 50.0])
    assert [c["expert_seed"] for c in accs["config"]] == [7, 8, 7]
    pre = rows[rows["metric"] == "pretrain_time_s"].set_index("method")["value"]
    assert pre.to_dict() == {"DM": 0.0, "TGDD": 3.0, "MTT": 3.0}


def test_record_analysis_files_each_measure_under_its_figure(tmp_path):
    rec = recorder(tmp_path)
    rows = [{"method": "DM", "epoch": 0, "metric": "silhouette", "value": 0.1},
            {"method": "DM", "epoch": 0, "metric": "snapshot_acc", "value": 50.0},
            {"method": "TGDD", "epoch": 3, "metric": "coverage_distance", "value": 2.0}]
    tgs.record_analysis(rec, rows, ipc=2, seed=1)
    records = read_records(rec.path)
    assert list(records["experiment"]) == ["Figure 2", "Figure 4", "Figure 5"]
    assert list(records["distill_seed"]) == [1, 1, 1] and list(records["ipc"]) == [2, 2, 2]
    assert [c["epoch"] for c in records["config"]] == [0, 0, 3]


def test_imagenet_subsets_run_each_published_subset_into_its_own_records(tmp_path, monkeypatch):
    run = chapter(tmp_path)
    published = pd.DataFrame([{"table": "ImageNet subsets", "dataset": d, "method": "TGDD"}
                              for d in ("Digits", "Digits")] + [{"table": "main table", "dataset": "X",
                                                                 "method": "TGDD"}])
    loaded, stores, distilled = [], [], []
    monkeypatch.setattr(tgs, "cached_experts", lambda root, data, config, num, seed, **kw: (
        stores.append((config.epochs, num, seed)) or "store"))
    monkeypatch.setattr(tge.TGDDChapter, "distill", lambda self, name, ipc, seed, **kw: (
        distilled.append((name, ipc, seed, kw, self.stores)) or (ddlib.random_coreset(self.data, ipc, seed), None)))
    records = tgs.imagenet_subsets(run, published, scale="smoke", seed=3, out_dir=tmp_path / "out",
                                   artifacts_dir=tmp_path, ipc=1, expert_epochs=6,
                                   load=lambda label, data_root: loaded.append((label, data_root)) or run.data)
    assert loaded == [("Digits", None)]  # each published subset once
    assert stores == [(6, 1, 3)] and distilled == [("TGDD", 1, 3, {"lr_img_per_ipc": 0.1}, {"TGDD": "store"})]
    assert set(records["experiment"]) == {"ImageNet subsets"} and set(records["metric"]) >= {"test_acc_best"}
    assert (tmp_path / "out" / "imagenet" / run.data.name / "runs").is_dir()
    with pytest.raises(ValueError, match="no published rows of 'ImageNet subsets'"):
        tgs.imagenet_subsets(run, published.iloc[2:], scale="smoke", seed=3, out_dir=tmp_path, artifacts_dir=tmp_path)
