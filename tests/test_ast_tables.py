"""The AST chapter's presentation: rounded, captioned tables (ddlib.chapters.ast_tables) and figures (ddlib.chapters.ast_figures)."""
import matplotlib

matplotlib.use("Agg")  # figures are drawn, never shown

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import ddlib  # noqa: E402
from ddlib.chapters import ast_claims as cx  # noqa: E402
from ddlib.chapters import ast_experiments as astx  # noqa: E402
from ddlib.chapters import ast_figures as astf  # noqa: E402
from ddlib.chapters import ast_seeded as sx  # noqa: E402
from ddlib.chapters import ast_tables as at  # noqa: E402

SGD, MOMENTUM = astx.TABLE1_NAMES["SGD"], astx.TABLE1_NAMES["SGD+momentum"]


@pytest.fixture()
def recorder(tmp_path):
    return ddlib.Recorder(tmp_path, "AST", "mini", "mnist5k", "cpu", params={"seed": 0})


@pytest.fixture()
def published():
    return ddlib.paper_results().query("paper == 'AST'")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _evaluation(best, last):
    """An evaluation of one set (fractions per network), as EvalResult.to_dict() has it."""
    return {"best": best, "last": last, "statistic": "best"}


def test_mean_sd_text_rounds_by_style():
    assert ddlib.chapters.ast_reporting.mean_sd_text([10.0, 20.0], "percent") == f"15.0 ± {np.std([10, 20], ddof=1):.1f}"
    assert ddlib.chapters.ast_reporting.mean_sd_text([41.26], "percent") == "41.3"
    assert ddlib.chapters.ast_reporting.mean_sd_text([0.0727], "sig2") == "0.073"
    assert ddlib.chapters.ast_reporting.mean_sd_text([123.456], "sig2") == "120"  # positional, no exponent
    assert ddlib.chapters.ast_reporting.mean_sd_text([0.001889, 0.001889], "sig3") == "0.00189 ± 0"
    assert ddlib.chapters.ast_reporting.mean_sd_text([1.0, 3.0]) == "2 ± 1.4"  # the default keeps 4 significant digits
    assert ddlib.chapters.ast_reporting.mean_sd_text([], "percent") == ""
    with pytest.raises(ValueError, match="style='pct': expected one of"):
        ddlib.chapters.ast_reporting.mean_sd_text([1.0], "pct")


def test_expert_table_puts_the_paper_beside_ours_and_rounds(recorder):
    for name, acc, norms in ((SGD, (40.04, 44.0), (2.0, 4.0)), (MOMENTUM, (50.0, 51.0), (3.0, 3.0))):
        cx.record_experts(recorder, "Table 1", name, {"expert_acc": acc, "input_grad_norm_sample": norms},
                          config={"preset": "AST code"})
    table = at.results_table(recorder, "Table 1", ["expert_acc", "input_grad_norm_sample"], keys=("method", "preset"))
    data = table.data
    assert list(data.columns) == ["method", "experts trained with", "ours: expert acc., %",
                                  "paper CIFAR-100: expert acc., %", "ours: grad norm per sample", "n"]
    first = data.iloc[0]
    assert first["ours: expert acc., %"] == f"42.0 ± {np.std([40.04, 44.0], ddof=1):.1f}"  # one decimal
    assert first["paper CIFAR-100: expert acc., %"] == "48.6"  # the published SGD expert
    assert first["ours: grad norm per sample"] == f"3 ± {np.std([2, 4], ddof=1):.2g}"
    assert list(data["n"]) == [2, 2]  # experts are the units
    caption = table.caption
    assert caption.startswith("Table 1. Ours: mnist5k, mini scale, mean ± sd over the n experts.")
    assert "AST code's settings" in caption and "(–: not in the paper)" in caption
    assert "None" not in data.to_string() and "nan" not in data.to_string()


def test_set_table_marks_missing_paper_cells_and_names_the_statistic(recorder):
    for method, best in (("AST", [0.40, 0.42]), ("MTT", [0.30, 0.34])):
        for ipc in (1, 2):
            cx.record_outcomes(recorder, "Table 3", method, {0: _evaluation(best, [b - 0.1 for b in best]),
                                                              1: _evaluation(best, best)}, ipc=ipc)
    cx.record_outcomes(recorder, "Table 3", "Random", {0: _evaluation([0.1], [0.1])}, ipc=1)
    data = at.results_table(recorder, "Table 3", [cx.BEST, cx.LAST], keys=("method", "ipc")).data
    assert data[data["method"] == "Random"].iloc[0]["paper CIFAR-10: acc., %"] == "14.4 ± 2.0"  # as printed
    assert list(data.columns[:4]) == ["method", "IPC", "ours: best of tests, %", "paper CIFAR-10: acc., %"]
    assert list(data.columns[-2:]) == ["ours: last epoch, %", "n"]  # the last epoch has no paper column
    ast1 = data[(data["method"] == "AST") & (data["IPC"] == 1)].iloc[0]
    assert ast1["ours: best of tests, %"] == "41.0 ± 0.0" and ast1["ours: last epoch, %"] == f"36.0 ± {7.071:.1f}"
    assert ast1["paper CIFAR-10: acc., %"] == "48.8 ± 0.9"
    assert data[data["method"] == "MTT"].iloc[0]["paper CIFAR-100: acc., %"] == "24.3 ± 0.3"
    ast2 = data[(data["method"] == "AST") & (data["IPC"] == 2)].iloc[0]
    paper_columns = [c for c in data.columns if c.startswith("paper")]
    assert set(ast2[paper_columns]) == {at.NOT_IN_PAPER}  # the paper has no IPC 2
    assert not any(c.startswith("paper") and "test_acc" in c for c in data.columns)
    caption = at.results_table(recorder, "Table 3", [cx.BEST, cx.LAST], keys=("method", "ipc")).caption
    assert "n distillation seeds" in caption and "Best of tests: the highest" in caption
    assert "last epoch: the accuracy after the final epoch" in caption and "authors' code preset" in caption
    only = at.results_table(recorder, "Table 3", [cx.BEST], keys=("method", "ipc"), datasets=["CIFAR-100"]).data
    assert [c for c in only.columns if c.startswith("paper")] == ["paper CIFAR-100: acc., %"]


def test_published_cells_are_read_not_typed(published):
    assert at.published_value(published, "Table 1", SGD, "expert_acc") == 48.6
    assert at.published_value(published, "Table 3", "MTT", dataset="CIFAR-100", ipc=10) == 39.7
    with pytest.raises(ValueError, match="no published cell Table 3/MTT/test_acc"):
        at.published_value(published, "Table 3", "MTT", dataset="CIFAR-100", ipc=2)
    assert at.table3_cells(published, "mnist5k", "AST", "MTT", 1) == "CIFAR-10 IPC 1: AST 48.8 % vs MTT 46.2 %"
    assert at.table3_cells(published, "cifar100", "AST", "MTT", 1) == "CIFAR-100 IPC 1: AST 26.6 % vs MTT 24.3 %"
    assert at.table3_cells(published, "mnist5k", "AST", "MTT", 2) == "no CIFAR-10 cells for both at IPC 2"


def test_settings_table_spells_out_every_none():
    table = astx.settings_table(ddlib.scale_settings("mini"), {"ablation IPC": (1, 10)})
    assert "None" not in table.to_string()
    row = table.set_index("setting")
    assert row.loc["lr_img", "paper"] == "100, 100, 1000 (IPC 1, 10, 50)"  # MTT's table for CIFAR-10
    assert row.loc["lr_img", "this run"] == "100" and row.loc["lr_img", "changed"] == "yes"
    assert row.loc["zca", "paper"] == "yes, yes, no (IPC 1, 10, 50)" and row.loc["zca", "this run"] == "no"
    assert row.loc["batch_syn", "paper"] == "all" and row.loc["batch_syn", "changed"] == ""
    assert row.loc["ablation IPC", "changed"] == "yes"
    styled = at.scale_table(ddlib.scale_settings("mini"), {})
    assert styled.caption.startswith("Every setting of this run")
    html = styled.to_html()
    assert 'class="dataframe"' in html and "padding" in html and "<caption>" in html


def test_plan_table_spells_out_every_none():
    table = sx.plan_table(sx.ASTPlan.for_scale("mini")).set_index("plan")
    assert "None" not in table.to_string()
    assert table.loc["cross_archs", "this run"] == "ConvNet, VGG11, AlexNet"
    assert table.loc["cross_archs", "dropped here"] == "ResNet18"
    assert table.loc["ablation_num_eval", "paper"] == "the scale's num_eval"
    assert table.loc["cross_test_per_class", "paper"] == "all"


def test_table5_not_run_shows_the_published_cells(published):
    data = at.table5_not_run(published, "mini").data
    assert list(data.columns) == ["data set", "IPC", "method", "paper: acc., %", "ours"]
    assert len(data) == (published["table"] == "Table 5").sum() and set(data["ours"]) == {"not run at mini scale"}
    assert data.iloc[0]["paper: acc., %"] == "87.4 ± 1.0"  # ImageNette, full data set, one decimal as printed
    assert "nan" not in data.to_string()


def _series(method, metric, xs, ys, x_name="iteration", seed=0, ipc=1):
    return pd.DataFrame({"method": method, "metric": metric, x_name: xs, "value": ys, "distill_seed": seed,
                         "ipc": ipc})


def test_figures_of_the_distillation_runs():
    fig2 = pd.concat([_series("naive", "start_epoch", [0, 1, 2], [3, 0, 2]),
                      _series("naive", "inner_loss", [0, 1, 2], [9.0, 1.0, 4.0]),
                      _series("balanced", "inner_loss", [0, 1, 2], [3.0, 2.0, 2.5]),
                      _series("naive", "inner_loss", [0, 1, 2], [5.0, 5.0, 5.0], seed=1)])
    a, b = astf.figure2(fig2, 0).axes
    assert list(a.lines[0].get_ydata()) == [3, 0, 2]
    assert [list(line.get_ydata()) for line in b.lines] == [[9.0, 1.0, 4.0], [3.0, 2.0, 2.5]]  # seed 0 only
    fig7 = pd.concat([_series(m, "best_test_acc", [0, 5], [v, v + 1], seed=s, ipc=i)
                      for m in ("AST", "MTT") for s, v in ((0, 10.0), (1, 20.0)) for i in (1, 10)])
    axes = astf.figure7(fig7, [1, 10]).axes
    assert len(axes) == 2 and len(axes[0].lines) == 2 * 2 + 2  # per method: one thin line per seed, one mean
    assert list(axes[0].lines[2].get_ydata()) == [15.0, 16.0]  # AST's mean over the two seeds


def test_figures_of_the_expert_kinds():
    fig9 = pd.concat([_series(v, "syn_lr", [0, 1], [0.01, 0.02]) for v in ("SGD", "SGD+momentum")])
    assert [line.get_label() for line in astf.figure9(fig9, 0).axes[0].lines] == ["SGD", "SGD+momentum"]
    fig4 = pd.concat([_series(v, m, [1, 2], [1.0, 2.0], x_name="epoch") for v in ("SGD", "Adam")
                      for m in ("step_size_sq", "expert_test_acc")])
    left, right = astf.figure4(fig4).axes
    assert len(left.lines) == 2 and len(right.lines) == 2 and left.get_yscale() == "log"


def test_figure6_marks_the_picks_and_figure3_shows_every_set():
    features = torch.randn(12, 4, generator=ddlib.make_generator(0))
    picks = {c: {"features": features, "random": torch.tensor([0, 1]), "representative": torch.tensor([2, 3])}
             for c in range(5)}
    axes = astf.figure6(picks, [str(c) for c in range(10)]).axes
    assert len(axes) == 5 and [len(c.get_offsets()) for c in axes[0].collections] == [12, 2, 2]
    data = ddlib.chapters.scales.subset_per_class(ddlib.load_dataset("digits"), 2, 1)
    syn = ddlib.SyntheticSet(images_syn=data.images_train[:data.num_classes * 2].clone(),
                             labels_syn=torch.arange(data.num_classes).repeat_interleave(2), syn_lr=None,
                             config={}, provenance={}, dataset=data.name, ipc=2, zca=False)
    axes = astf.figure3({"MTT": syn, "AST": syn}, data, 2).axes
    assert [ax.get_title() for ax in axes] == ["MTT, IPC 2", "AST, IPC 2"]
