"""The TGDD chapter page's tables and captions, on hand-made records and published rows."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from ddlib.chapters import tgdd_page as tgp
from ddlib.chapters import tgdd_reporting as tgr
from ddlib.evaluation.protocols import EvalConfig
from ddlib.results.recorder import Recorder
from ddlib.results.records import read_records


def recorder(tmp_path) -> Recorder:
    return Recorder(tmp_path, "TGDD", "smoke", "digits", "cpu")


def add(rec, experiment, method, metric, per_seed_networks, **kw):
    """Record ``per_seed_networks[s][i]`` as network ``i`` of distillation seed ``s``."""
    for seed, values in enumerate(per_seed_networks):
        for index, value in enumerate(values):
            rec.add(experiment, method, metric, value, distill_seed=seed, eval_index=index, **kw)


def published_rows(*rows):
    keys = ("table", "dataset", "ipc", "method", "arch", "value", "unverified")
    return pd.DataFrame([dict(zip(keys, row)) for row in rows])


PUBLISHED = published_rows(
    ("main table", "CIFAR-10", "10", "DM", "ConvNet", 48.9, True),
    ("main table", "CIFAR-10", "10", "TGDD", "ConvNet", 71.9, True),
    ("main table", "CIFAR-100", "50", "TGDD", "ConvNet", 54.6, True),
    ("cross-architecture", "CIFAR-10", "50", "DM", "ResNet-10", 58.6, False),
    ("cross-architecture", "CIFAR-10", "50", "TGDD", "ResNet-10", 74.9, False),
    ("cross-architecture", "CIFAR-10", "50", "TGDD", "ConvNet-3", 76.5, False))


@pytest.mark.parametrize("value, text", [(36.4, "36"), (0.288, "0.29"), (5, "5.0"), (1234, "1,200"),
                                         (99.96, "100"), (-0.01234, "-0.012"), (0, "0"),
                                         (math.nan, "–"), (None, "–")])
def test_sig_text_rounds_to_two_significant_digits(value, text):
    assert tgp.sig_text(value) == text


def test_compact_accuracy_table_and_its_captioned_view(tmp_path):
    rec = recorder(tmp_path)
    add(rec, "main table", "TGDD", "test_acc_best", [[80, 82], [84, 84]], ipc=10)  # seed means 81, 84
    add(rec, "main table", "TGDD", "test_acc", [[70, 70], [72, 72]], ipc=10)
    add(rec, "main table", "Random", "test_acc_best", [[60, 60], [62, 62]], ipc=10)
    add(rec, "main table", "Random", "test_acc", [[50, 50], [52, 52]], ipc=10)
    records = read_records(rec.path)
    table = tgr.accuracy_table(records, PUBLISHED, "main table", compact=True)
    tgdd = table[table["method"] == "TGDD"].iloc[0]
    assert tgdd["ours (best of tests, as the TGDD code)"] == "82.5 ± 2.1"  # sd of (81, 84) = 2.12
    assert tgdd["ours (last epoch)"] == "71.0 ± 1.4"
    assert (tgdd["paper: CIFAR-10 (best)"], tgdd["paper: CIFAR-100 (best)"]) == ("71.9", tgr.NOT_IN_PAPER)
    assert (table[table["method"] == "Random"].iloc[0]["paper: CIFAR-10 (best)"]) == tgr.NOT_IN_PAPER

    view = tgp.accuracy_view(records, PUBLISHED, "main table", what="Main table")
    shown = view.data
    assert "seeds" not in shown and "networks per set" not in shown  # constant: in the caption
    assert list(shown.columns[-2:]) == ["paper: CIFAR-10 (best)", "paper: CIFAR-100 (best)"]
    caption = view.caption
    assert caption.startswith("Main table. Test accuracy (%)")
    assert "over 2 distillation seeds, each seed the mean of its 2 evaluation networks" in caption
    assert "UNVERIFIED" in caption
    html = view.to_html()
    assert "<caption>" in html and ">0<" not in html  # no row numbers


def test_view_collapses_paper_columns_without_a_number(tmp_path):
    rec = recorder(tmp_path)
    add(rec, "main table", "DM", "test_acc_best", [[60], [62], [64]], ipc=1)
    add(rec, "main table", "DM", "test_acc", [[50], [52], [54]], ipc=1)
    view = tgp.accuracy_view(read_records(rec.path), PUBLISHED, "main table", what="Main table")
    assert [c for c in view.data if c.startswith("paper")] == ["paper (best)"]
    assert view.data["paper (best)"].tolist() == [tgr.NOT_IN_PAPER]
    assert view.data["ours (best of tests, as the TGDD code)"].tolist() == ["62.0 ± 2.0"]
    assert "its main table is at IPC 10 and 50" in view.caption
    assert list(view.data.columns[:2]) == ["method", "IPC"]
    assert "3 distillation seeds, each seed the mean of its 1 evaluation network;" in view.caption


def test_cross_architecture_view_names_both_ipcs_and_keeps_uneven_counts(tmp_path):
    rec = recorder(tmp_path)
    for method in ("DM", "TGDD"):
        add(rec, "cross-architecture", method, "test_acc_best", [[30], [32]], ipc=1, arch="ResNet-10")
        add(rec, "cross-architecture", method, "test_acc", [[30], [32]], ipc=1, arch="ResNet-10")
    add(rec, "cross-architecture", "TGDD", "test_acc_best", [[40]], ipc=1, arch="ConvNet-3")  # one seed
    add(rec, "cross-architecture", "TGDD", "test_acc", [[40]], ipc=1, arch="ConvNet-3")
    view = tgp.accuracy_view(read_records(rec.path), PUBLISHED, "cross-architecture",
                             keys=("method", "arch"), what="Cross")
    shown = view.data.set_index(["method", "architecture"])
    assert shown.loc[("DM", "ResNet-10"), "paper: CIFAR-10 (best)"] == "58.6"
    assert shown.loc[("TGDD", "ConvNet-3"), "seeds"] == 1  # counts differ: kept as a column
    assert shown.loc[("TGDD", "ConvNet-3"), "ours (best of tests, as the TGDD code)"] == "40.0"
    assert "the published cross-architecture table (TGDD's code" in view.caption
    assert "ours at IPC 1, the paper's at IPC 50" in view.caption
    assert "UNVERIFIED" not in view.caption


def test_paper_table_lays_out_the_published_rows():
    table = tgp.paper_table(PUBLISHED, "main table")
    assert list(table.columns) == ["method", "CIFAR-10, IPC 10", "CIFAR-100, IPC 50"]
    assert table["method"].tolist() == ["DM", "TGDD"]  # in the order published
    assert table.iloc[0].tolist() == ["DM", "48.9", tgr.NOT_IN_PAPER]
    by_arch = tgp.paper_table(PUBLISHED, "cross-architecture", columns="arch", prefix="paper: ")
    assert list(by_arch.columns) == ["method", "paper: ResNet-10", "paper: ConvNet-3"]
    assert by_arch.iloc[0].tolist() == ["DM", "58.6", tgr.NOT_IN_PAPER]
    view = tgp.paper_view(PUBLISHED, "main table", "Main.")
    assert view.caption == ("Main. Not in the paper: no published number. The numbers come from a secondary "
                            "summary of the paper, not yet checked against the paper (UNVERIFIED).")
    with pytest.raises(ValueError, match="'ablation'.*expected one of \\['cross-architecture', 'main table'\\]"):
        tgp.paper_table(PUBLISHED, "ablation")


def test_settings_table_marks_what_the_scale_changes():
    paper = {"ipcs": (1, 10, 50), "num_eval": 5, "main_num_eval": None, "mtt_accuracy": True}
    run = {"ipcs": [1], "num_eval": 5, "main_num_eval": 2, "mtt_accuracy": False}
    table = tgp.settings_table(paper, run, "this run (mini)").set_index("setting")
    assert list(table.columns) == ["paper scale", "this run (mini)", "changed"]
    assert table.loc["ipcs"].tolist() == ["1, 10, 50", "1", "yes"]
    assert table.loc["num_eval"].tolist() == ["5", "5", ""]
    assert table.loc["main_num_eval"].tolist() == ["–", "2", "yes"]
    assert table.loc["mtt_accuracy"].tolist() == ["yes", "no", "yes"]


def test_switches_table_names_each_rows_changes():
    rows = {"none": ("DM", {"dsa": False}), "+augmentation": ("DM", {}), "+L_MMD": ("TGDD", {"use_sdc": False})}
    table = tgp.switches_table(rows)
    assert table.values.tolist() == [["none", "DM", "dsa=False"], ["+augmentation", "DM", "defaults"],
                                     ["+L_MMD", "TGDD", "use_sdc=False"]]


def test_cost_table_joins_accuracy_cost_and_pretraining(tmp_path):
    rec = recorder(tmp_path)
    for method, (pre_time, pre_mem) in {"DM": (0.0, 0.0), "TGDD": (12.34, 18.3), "MTT": (0.43, 18.8)}.items():
        rec.add("Figure 1", method, "pretrain_time_s", pre_time)
        rec.add("Figure 1", method, "pretrain_peak_memory_mb", pre_mem)
    add(rec, "main table", "Random", "test_acc_best", [[9.0, 11.0], [10.0, 10.0]], ipc=1)
    add(rec, "main table", "TGDD", "test_acc_best", [[20.0, 22.0], [24.0, 24.0]], ipc=1)
    add(rec, "Figure 1", "TGDD", "distill_time_s", [[0.2], [0.3]], ipc=1)       # mean 0.25
    add(rec, "Figure 1", "TGDD", "time_paper_experts_s", [[1234.0], [1236.0]], ipc=1)
    add(rec, "Figure 1", "TGDD", "peak_memory_mb", [[5.04], [5.06]], ipc=1)
    add(rec, "Figure 1", "MTT", "distill_time_s", [[36.4], [36.4]], ipc=1)       # timed only: no accuracy
    table = tgp.cost_table(read_records(rec.path)).set_index("method")
    assert table.index.tolist() == ["Random", "TGDD", "MTT"]  # order of first appearance
    assert table.loc["TGDD", "accuracy, best of tests (%)"] == "22.5"
    assert table.loc["TGDD", "distillation (s)"] == "0.25"
    assert table.loc["TGDD", "+ the paper's expert count (s)"] == "1,200"
    assert table.loc["TGDD", "peak memory (MB)"] == "5.0"
    assert (table.loc["TGDD", "pre-training (s)"], table.loc["TGDD", "pre-training peak (MB)"]) == ("12", "18")
    assert table.loc["TGDD", "+ this run's experts (s)"] == "–"  # not recorded here
    assert table.loc["MTT", "accuracy, best of tests (%)"] == "–"
    assert table.loc["Random", "distillation (s)"] == "–" and table.loc["Random", "pre-training (s)"] == "–"
    assert int(table.loc["MTT", "IPC"]) == 1


def test_stage_table_rounds_each_measure_and_names_it():
    analysis = pd.DataFrame([
        {"experiment": "Figure 4", "method": "DM", "metric": "snapshot_acc", "epoch": e, "value": v}
        for e, v in ((0, 10.04), (3, 55.55))] + [
        {"experiment": "Figure 4", "method": "DM", "metric": "correlation_similarity", "epoch": e, "value": v}
        for e, v in ((0, 0.6549), (3, 0.7))] + [
        {"experiment": "Figure 2", "method": m, "metric": "silhouette", "epoch": 3, "value": v}
        for m, v in (("DM", 0.0161), ("TGDD", -0.2))])
    fig4 = tgp.stage_table(analysis, "Figure 4")
    assert list(fig4.columns) == ["measure", "set", "epoch 0", "epoch 3"]
    assert fig4.values.tolist() == [["(a) correlation similarity", "DM", "0.65", "0.70"],
                                    ["(b) snapshot accuracy (%)", "DM", "10.0", "55.5"]]
    fig2 = tgp.stage_table(analysis, "Figure 2")
    assert fig2.values.tolist() == [["DM", "0.02"], ["TGDD", "-0.20"]]  # one measure: no measure column
    with pytest.raises(ValueError, match="'Figure 5'.*\\['Figure 2', 'Figure 4'\\]"):
        tgp.stage_table(analysis, "Figure 5")


def test_claims_table_shows_effects_with_their_intervals(tmp_path):
    rec = recorder(tmp_path)
    with pytest.raises(ValueError, match="no claim_verdict records"):
        tgp.claims_table(read_records(rec.path))
    add(rec, "ablation", "none", "test_acc_best", [[50], [51], [52]], ipc=1)
    add(rec, "ablation", "+a", "test_acc_best", [[52], [52], [55]], ipc=1)  # +2, +1, +3
    tgr.judge(rec, "ablation", "+a beats none", "+a", "none", paper="p", metric="test_acc_best", ipc=1)
    add(rec, "Figure 1", "TGDD", "time_s", [[1.0], [2.0], [4.0]], ipc=1)
    add(rec, "Figure 1", "MTT", "time_s", [[2.0], [4.0], [8.0]], ipc=1)  # every ratio 0.5
    tgr.judge_ratio(rec, "Figure 1", "TGDD is faster", "time_s", "TGDD", "MTT", what="time", paper="p",
                    unit="s", ipc=1)
    table = tgp.claims_table(read_records(rec.path))
    assert list(table.columns) == ["section", "claim", "verdict", "effect [90 % interval]", "seeds"]
    paired, ratio = table.to_dict("records")
    # mean 2, sd 1: 90 % t-interval 2 -+ 2.920 / sqrt 3 = [0.31, 3.69]
    assert paired["effect [90 % interval]"] == "+a - none = +2.0 points [0.3, 3.7]"
    assert (paired["verdict"], paired["seeds"], paired["section"]) == ("holds", 3, "ablation")
    assert ratio["effect [90 % interval]"] == "TGDD / MTT time = 0.50 (geometric mean) [0.50, 0.50]"


def test_protocol_text_reads_every_number_from_the_config():
    text = tgp.protocol_text(EvalConfig.preset("tgdd", epochs=12, num_eval=1))
    assert text.startswith("At this scale every set is evaluated by 1 network (ConvNet)")
    assert "for 12 epochs with SGD (learning rate 0.01, momentum 0.9, weight decay 0.0005, batch 64" in text
    assert "x0.2 after epochs 8 and 10" in text and "CutMix" in text
    assert "tested every 2 epochs; the set's score is the best of those tests" in text
    assert "tested every epoch;" in tgp.protocol_text(EvalConfig.preset("tgdd", epochs=6))
    mtt = tgp.protocol_text(EvalConfig.preset("mtt", epochs=12))
    assert "learning rate the set's distilled one" in mtt and "x0.1 after epoch 6)" in mtt
    assert mtt.endswith("tested after the last epoch; the set's score is the last epoch's accuracy.")


def test_analysis_records_take_the_epoch_from_the_config(tmp_path):
    rec = recorder(tmp_path)
    rec.add("Figure 2", "DM", "silhouette", 0.1, config={"epoch": 3})
    rec.add("Figure 5", "TGDD", "coverage_distance", 2.0, config={"epoch": 6})
    rec.add("main table", "DM", "test_acc_best", 50.0, config={"epoch": 9})  # not an analysis: dropped
    analysis = tgp.analysis_records(read_records(rec.path))
    assert analysis[["experiment", "epoch"]].values.tolist() == [["Figure 2", 3], ["Figure 5", 6]]
    assert tgp.stage_table(analysis, "Figure 5").values.tolist() == [["TGDD", "2.00"]]


def test_cost_figure_plots_each_panel_against_the_ipcs(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec = recorder(tmp_path)
    for ipc, acc in ((1, 20.0), (10, 40.0)):
        add(rec, "main table", "TGDD", "test_acc_best", [[acc - 1, acc + 1]], ipc=ipc)  # mean acc
        add(rec, "Figure 1", "TGDD", "time_paper_experts_s", [[2.0 * ipc]], ipc=ipc)
        add(rec, "Figure 1", "DM", "time_paper_experts_s", [[1.0 * ipc]], ipc=ipc)
        add(rec, "Figure 1", "TGDD", "peak_memory_mb", [[5.0]], ipc=ipc)
    fig = tgp.cost_figure(read_records(rec.path), (1, 10), title="digits, smoke scale")
    try:
        acc, time, memory = fig.axes[:3]
        assert fig._suptitle.get_text() == "digits, smoke scale"
        assert [ax.get_ylabel() for ax in (acc, time, memory)] == [
            "test accuracy, best of tests (%)", "time incl. pre-training (s)", "peak memory of the distillation (MB)"]
        assert acc.get_xscale() == "log" and list(acc.get_xticks()) == [1, 10]
        assert [list(line.get_ydata()) for line in acc.lines if len(line.get_xdata())] == [[20.0, 40.0]]
        assert len([line for line in time.lines if len(line.get_xdata())]) == 2  # TGDD and DM
    finally:
        plt.close(fig)


def test_imagenet_view_puts_our_run_beside_the_papers_numbers(tmp_path):
    published = published_rows(("ImageNet subsets", "ImageNette", "10", "DM", "ConvNet", 50.0, False),
                               ("ImageNet subsets", "ImageNette", "10", "TGDD", "ConvNet", 70.0, False),
                               ("ImageNet subsets", "ImageWoof", "10", "TGDD", "ConvNet", 40.0, True))
    records = pd.DataFrame([{"dataset": "imagenette", "metric": "test_acc_best", "value": v} for v in (60.0, 61.0)]
                           + [{"dataset": "imagenette", "metric": "test_acc", "value": 1.0}])
    view = tgp.imagenet_view(published, records)
    assert list(view.data.columns) == ["dataset", "ours: TGDD (best of tests)", "paper: DM", "paper: TGDD"]
    assert view.data.values.tolist() == [["ImageNette", "60.5", "50.0", "70.0"],
                                         ["ImageWoof", "–", tgr.NOT_IN_PAPER, "40.0"]]
    assert "beside the paper's numbers (UNVERIFIED)" in view.caption
