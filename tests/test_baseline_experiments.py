"""The baselines chapter's plan, per-seed coreset evaluation, table and verdicts (hand-computed values)."""
import math

import pytest
import torch

import ddlib
from ddlib.chapters.baseline_experiments import (FULL, NOT_IN_PAPER, CoresetPlan, below_full_verdict, coreset_ipcs,
                                        coreset_table, cost_table, evaluate_coresets, expert_curves,
                                        expert_trend_verdict, ipc_growth_verdict, make_coreset, paper_full_text,
                                        paper_growth_text, seed_means)
from ddlib.data.dataset import ImageDataset
from ddlib.evaluation.protocols import EvalConfig, EvalResult
from ddlib.results.recorder import Recorder
from ddlib.results.records import read_records
from ddlib.results.seeded import record_evaluation

T90_2DOF = 2.919986  # 90 % two-sided t quantile, 2 degrees of freedom


def result(accs):
    n = len(accs)
    return EvalResult(last=tuple(accs), best=tuple(accs), best_epoch=(1,) * n, seeds=tuple(range(n)), arch="ConvNet",
                      lr=0.01, epochs=2)


def test_plan_cells_per_scale_and_validation():
    assert CoresetPlan.for_scale("paper", [10, 1]).cells() == [
        ("Random", 1), ("Random", 10), ("Herding", 1), ("Herding", 10), ("K-Center", 1), ("K-Center", 10),
        ("Forgetting", 1), ("Forgetting", 10)]
    mini = CoresetPlan.for_scale("mini", [1, 10])
    assert mini.cells() == [("Random", 1), ("Random", 10), ("Herding", 1), ("K-Center", 1), ("Forgetting", 1)]
    assert mini.full_num_eval == 1 and CoresetPlan.for_scale("paper", [1]).full_num_eval is None
    with pytest.raises(ValueError, match="methods=.*'Gradient'"):
        CoresetPlan(methods=("Random", "Gradient"))
    with pytest.raises(ValueError, match=r"ipcs=\(1, 1\)"):
        CoresetPlan(ipcs=(1, 1))
    with pytest.raises(ValueError, match="scale='huge'"):
        CoresetPlan.for_scale("huge", [1])
    with pytest.raises(ValueError, match="full_num_eval=0"):
        CoresetPlan(full_num_eval=0)


def test_coreset_ipcs_add_table3_columns_unless_named(tmp_path):
    folders = {"out_dir": tmp_path / "out", "artifacts_dir": tmp_path / "art", "device": "cpu"}
    assert ddlib.scale_settings("smoke").ipcs == (1, 2)
    assert coreset_ipcs(ddlib.chapter_params("smoke", **folders)) == [1, 2, 10]
    # one named IPC: IPC 1 and 10 join it (the growth claim compares two IPCs)
    assert coreset_ipcs(ddlib.chapter_params("smoke", ipcs=[2], **folders)) == [1, 2, 10]
    assert coreset_ipcs(ddlib.chapter_params("paper", ipcs="50,10", **folders)) == [10, 50]
    paper_ipcs = {*ddlib.scale_settings("paper").ipcs, 1, 10}
    assert coreset_ipcs(ddlib.chapter_params("paper", **folders)) == sorted(paper_ipcs)
    # a dry run keeps 20 real images per class of CIFAR-10 but 2 of CIFAR-100: a coreset picks at most those
    dry = {**folders, "dry_run": True, "ipcs": 1}
    assert coreset_ipcs(ddlib.chapter_params("paper", **dry)) == [1, 10]
    assert coreset_ipcs(ddlib.chapter_params("paper", dataset="cifar100", **dry)) == [1, 2]


def test_make_coreset_names_bad_method_and_missing_epochs():
    images, labels = torch.zeros(4, 1, 2, 2), torch.tensor([0, 0, 1, 1])
    data = ImageDataset("four", images, labels, images, labels, ("a", "b"), (0.0,), (1.0,))
    with pytest.raises(ValueError, match="method='DC'"):
        make_coreset("DC", data, 1, 0, net=torch.nn.Identity())
    with pytest.raises(ValueError, match="forgetting_epochs"):
        make_coreset("Forgetting", data, 1, 0, net=torch.nn.Identity())


def hand_run(tmp_path):
    """Random at IPC 1 and 10, Herding at IPC 1, the full data set: three seeds, two networks each."""
    rec = Recorder(tmp_path, "Baselines", "mini", "mnist5k", "cpu")
    per_seed = {  # seed: (Random 1, Random 10, Herding 1, full), each the two networks' accuracies
        0: ((0.60, 0.62), (0.90, 0.90), (0.70, 0.72), (0.97,)),
        1: ((0.64, 0.64), (0.91, 0.93), (0.66, 0.66), (0.96,)),
        2: ((0.59, 0.61), (0.85, 0.87), (0.68, 0.70), (0.98,)),
    }
    for s, (r1, r10, h1, full) in per_seed.items():
        record_evaluation(rec, "Table 3", "Random", result(r1), distill_seed=s, ipc=1)
        record_evaluation(rec, "Table 3", "Random", result(r10), distill_seed=s, ipc=10)
        record_evaluation(rec, "Table 3", "Herding", result(h1), distill_seed=s, ipc=1)
        record_evaluation(rec, "Table 3", FULL, result(full), distill_seed=s)
    return read_records(rec.path)


def test_ipc_growth_verdict_pairs_seeds(tmp_path):
    records = hand_run(tmp_path)
    verdict, ours = ipc_growth_verdict(records)
    # per seed: IPC 10 - IPC 1 = 90 - 61, 92 - 64, 86 - 60 = 29, 28, 26 points: mean 27.667,
    # sd sqrt((1.333^2 + 0.333^2 + 1.667^2) / 2) = 1.5275, half-width 2.919986 * 1.5275 / sqrt(3) = 2.5752
    assert verdict.n == 3 and verdict.effect == pytest.approx(83 / 3)
    assert verdict.low == pytest.approx(83 / 3 - 2.5752, abs=1e-3) and verdict.verdict == "holds"
    assert ours == "Random IPC 1: 61.7 % ± 2.1 (3 seeds); IPC 10: 89.3 % ± 3.1 (3 seeds)"
    with pytest.raises(ValueError, match="found for only one"):
        ipc_growth_verdict(records, method="Herding")
    with pytest.raises(ValueError, match="low=10, high=10: the growth claim compares two IPCs"):
        ipc_growth_verdict(records, low=10, high=10)


def test_below_full_verdict_takes_each_seeds_best_coreset(tmp_path):
    records = hand_run(tmp_path)
    verdict, ours = below_full_verdict(records)
    # best coreset per seed: Random IPC 10 (90, 92, 86); full 97, 96, 98: d = -7, -4, -12,
    # mean -23/3, sd sqrt((2/3)^2 + (11/3)^2 + (13/3)^2) / sqrt(2) = 4.0415, half 2.919986 * 4.0415 / sqrt(3)
    half = T90_2DOF * math.sqrt(((2 / 3) ** 2 + (11 / 3) ** 2 + (13 / 3) ** 2) / 2) / math.sqrt(3)
    assert verdict.effect == pytest.approx(-23 / 3) and verdict.direction == "less"
    assert verdict.high == pytest.approx(-23 / 3 + half, abs=1e-4) and verdict.verdict == "holds"
    assert ours.startswith("best coreset per seed (Random IPC 10): 89.3 %")
    no_full = records[records["method"] != FULL]
    with pytest.raises(ValueError, match="needs 'Full dataset'"):
        below_full_verdict(no_full)


def test_seed_means_and_table(tmp_path):
    records = hand_run(tmp_path)
    means = seed_means(records)
    herding = means[means["method"] == "Herding"]
    assert herding["value"].tolist() == pytest.approx([71.0, 66.0, 69.0]) and set(herding["networks"]) == {2}
    assert set(means[means["method"] == FULL]["ipc"]) == {"all"}
    table = coreset_table(records, label="ours (last)")
    assert list(zip(table["method"], table["ipc"])) == [("Random", 1), ("Random", 10), ("Herding", 1), (FULL, "all")]
    herding_row = table[table["method"] == "Herding"].iloc[0]
    # seed means 71, 66, 69: mean 68.67, sd sqrt((2.33^2 + 2.67^2 + 0.33^2) / 2) = 2.5166
    assert herding_row["ours (last)"] == "68.7 % ± 2.5 (3 seeds)" and herding_row["networks per seed"] == 2
    assert herding_row["paper: CIFAR-10"] == "21.5 ± 1.2"  # AST Table 3
    assert table[table["method"] == FULL].iloc[0]["paper: CIFAR-10"] == "84.8 ± 0.1"
    with pytest.raises(ValueError, match="no Table 3 records of metric 'accuracy'"):
        seed_means(records, "accuracy")


def test_paper_texts_come_from_the_results_file():
    assert paper_growth_text() == "CIFAR-10, IPC 1: 14.4 %, IPC 10: 26.0 %, IPC 50: 43.4 %"
    assert paper_full_text() == "CIFAR-10, full data set 84.8 % vs best coreset 43.4 % (Random, IPC 50)"


def test_expert_trend_verdict_one_slope_per_expert():
    curves = [[0.1, 0.2, 0.3], [0.2, 0.2, 0.5], [0.3, 0.35, 0.4]]
    # slopes (points per epoch): 10; (-1 * -10 + 1 * 20) / 2 = 15; 5: mean 10, sd 5
    verdict, ours = expert_trend_verdict(curves)
    assert verdict.kind == "trend" and verdict.n == 3 and verdict.effect == pytest.approx(10.0)
    assert "n = 3 experts" in verdict.sentence()
    assert verdict.low == pytest.approx(10 - T90_2DOF * 5 / math.sqrt(3), abs=1e-4) and verdict.verdict == "holds"
    assert ours == "3 experts: after epoch 1 20.0 %, after epoch 3 40.0 % (mean over experts)"
    falling, _ = expert_trend_verdict([[0.5, 0.4], [0.6, 0.45], [0.55, 0.5]])
    assert falling.verdict == "does not hold"
    assert expert_trend_verdict([[0.1, 0.2]])[0].verdict == "inconclusive at this scale"  # one expert
    table = expert_curves(curves)
    assert table.shape == (9, 3) and table["epoch"].tolist()[:3] == [1, 2, 3]
    assert table["test accuracy (%)"].tolist()[3:6] == pytest.approx([20.0, 20.0, 50.0])


def test_evaluate_coresets_records_every_cell_per_seed(tmp_path):
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn(9, 1, 8, 8, generator=generator), torch.arange(3).repeat(3)  # 3 classes x 3
    data = ImageDataset("noise9", images, labels, images[:6], labels[:6], ("a", "b", "c"), (0.0,), (1.0,))
    net = ddlib.build_model("ConvNet", 1, 3, (8, 8), width=4, seed=0).eval()
    config = EvalConfig(epochs=1, num_eval=2, width=4, dsa=False)
    plan = CoresetPlan(ipcs=(1, 2), every_method_up_to=1, full_num_eval=1)
    rec = Recorder(tmp_path, "Baselines", "smoke", data.name, "cpu")
    timings = evaluate_coresets(rec, data, plan, config, config, seeds=(0, 1), net=net, forgetting_epochs=1)
    records = read_records(rec.path)
    # 5 cells x 2 seeds x 2 networks + full 2 seeds x 1 network, each with last and best
    assert len(records) == 2 * (5 * 2 * 2 + 2) and set(records["distill_seed"]) == {0, 1}
    assert timings["ipc"].isna().sum() == 2 * 2 and set(timings["ipc"].dropna()) == {1, 2}
    assert len(timings) == 2 * (1 + 5 + 1) and set(timings["step"]) == {
        "Forgetting (training run)", "Random", "Herding", "K-Center", "Forgetting", FULL}
    last = records[records["metric"] == "test_acc"]
    # per seed: Random at IPC 1 and 2 (2 networks each), the others at IPC 1, one full-data network
    assert sorted(last.groupby(["method", "distill_seed"]).size().to_dict().items()) == [
        (("Forgetting", 0), 2), (("Forgetting", 1), 2), ((FULL, 0), 1), ((FULL, 1), 1), (("Herding", 0), 2),
        (("Herding", 1), 2), (("K-Center", 0), 2), (("K-Center", 1), 2), (("Random", 0), 4), (("Random", 1), 4)]
    costs = cost_table(timings)
    assert costs.loc[("Random", 2), "seconds (all seeds)"] == pytest.approx(
        round(timings[(timings["step"] == "Random") & (timings["ipc"] == 2)]["seconds"].sum(), 1))
    assert len(costs) == 7  # training run, 5 cells, full data set
    # the steps on the whole training split show "all", not a missing value
    assert costs.loc[(FULL, "all"), "seconds (all seeds)"] >= 0
    assert "all" in costs.loc["Forgetting (training run)"].index
    table = coreset_table(records)  # K-Center and IPC 2 have no published cell
    assert table[table["method"] == "K-Center"].iloc[0]["paper: CIFAR-10"] == NOT_IN_PAPER
    assert table[(table["method"] == "Random") & (table["ipc"] == 2)].iloc[0]["paper: CIFAR-100"] == NOT_IN_PAPER
    # seed s made Random's pick and K-Center's start, and the records say which coreset each is
    random_config = last[(last["method"] == "Random") & (last["ipc"] == 2)].iloc[0]["config"]
    assert random_config["coreset"]["method"] == "random" and random_config["eval"]["epochs"] == 1
    assert ipc_growth_verdict(records, high=2)[0].n == 2
    assert below_full_verdict(records)[0].n == 2
