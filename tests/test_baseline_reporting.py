"""The chapters' presentation helpers: baselines figures and sentence, settings and data-set tables,
class samples (hand-computed values on tiny inputs)."""
import matplotlib.pyplot as plt
import pytest
import torch

import ddlib
from ddlib.chapters import baseline_reporting as report
from ddlib.results import plots
from ddlib.chapters import reporting
from ddlib.chapters.baseline_experiments import FULL
from ddlib.data.dataset import ImageDataset
from ddlib.evaluation.protocols import EvalResult
from ddlib.results.recorder import Recorder
from ddlib.results.records import read_records
from ddlib.results.seeded import record_evaluation


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def result(accs):
    n = len(accs)
    return EvalResult(last=tuple(accs), best=tuple(accs), best_epoch=(1,) * n, seeds=tuple(range(n)),
                      arch="ConvNet", lr=0.01, epochs=2)


def test_paper_table3_text_reads_the_results_file():
    # AST Table 3, CIFAR-10: Random 14.4 / 26.0 / 43.4; best coreset Random IPC 50; full 84.8 (gap 41.4)
    assert report.paper_table3_text() == (
        "On CIFAR-10, AST's Table 3 reports a random coreset at 14.4 %, 26.0 % and 43.4 % with 1, 10 and 50 "
        "images per class; its best coreset (Random, IPC 50: 43.4 %) stays 41.4 points below the full data "
        "set (84.8 %).")
    # Tiny ImageNet has no IPC 50 coreset; its best coreset is Herding IPC 10 (6.3 vs full 39.5)
    tiny = report.paper_table3_text("TinyImageNet")
    assert "1.4 % and 5.0 % with 1 and 10 images" in tiny and "(Herding, IPC 10: 6.3 %) stays 33.2" in tiny
    with pytest.raises(ValueError, match="dataset='MNIST': AST's Table 3 has no rows"):
        report.paper_table3_text("MNIST")


def test_coreset_figure_plots_seed_means_and_the_full_data_set(tmp_path):
    rec = Recorder(tmp_path, "Baselines", "smoke", "noise", "cpu")
    for s, (r1, r10, full) in {0: ((0.2, 0.4), (0.6,), (0.9,)), 1: ((0.4,), (0.8,), (0.7,))}.items():
        record_evaluation(rec, "Table 3", "Random", result(r1), distill_seed=s, ipc=1)
        record_evaluation(rec, "Table 3", "Random", result(r10), distill_seed=s, ipc=10)
        record_evaluation(rec, "Table 3", FULL, result(full), distill_seed=s)
    ax = report.coreset_figure(read_records(rec.path), "title")
    # seed means: IPC 1: 30, 40 -> 35; IPC 10: 60, 80 -> 70; full: 90, 70 -> 80
    random, full = ax.lines[0], ax.lines[-1]
    assert list(random.get_xdata()) == [1, 10] and list(random.get_ydata()) == pytest.approx([35.0, 70.0])
    assert list(full.get_ydata()) == pytest.approx([80.0, 80.0]) and full.get_label() == FULL
    assert ax.get_xscale() == "log" and ax.get_title() == "title"
    assert FULL in [t.get_text() for t in ax.get_legend().get_texts()]


def test_expert_figure_draws_one_curve_per_expert_in_percent():
    ax = report.expert_figure([[0.1, 0.3], [0.2, 0.5]], "experts")
    curves = [list(line.get_ydata()) for line in ax.lines if len(line.get_xdata()) == 2]
    assert curves == [pytest.approx([10.0, 30.0]), pytest.approx([20.0, 50.0])]
    assert ax.get_ylabel() == "test accuracy (%)" and ax.get_title() == "experts"


def test_settings_table_spells_out_what_none_means():
    table = reporting.settings_table(ddlib.scale_settings("mini"), "mini")
    assert list(table.columns) == ["what it sets", "paper", "this run (mini)"]
    paper, run = table["paper"], table["this run (mini)"]
    assert not table.isin(["None", "nan", ""]).any().any()
    # MTT's table for CIFAR-10 at IPC 1, 10, 50: syn_steps 50/30/30, lr_lr 1e-7/1e-5/1e-5, batch_syn all
    assert paper["syn_steps"] == "50, 30, 30 (IPC 1, 10, 50)"
    assert paper["lr_lr"] == "1e-07, 1e-05, 1e-05 (IPC 1, 10, 50)"
    assert paper["batch_syn"] == "all" and paper["expert_epochs"] == "2"
    assert paper["train_per_class"] == "all" and paper["eval_max_tests"] == "no limit"
    assert paper["ablation_iterations"] == "5000 (as iterations)" and paper["ipcs"] == "1, 10, 50"
    assert run["width"] == "16" and run["syn_steps"] == "20" and run["lr_img"] == "100"
    smoke = reporting.settings_table(ddlib.scale_settings("smoke"), "smoke")["this run (smoke)"]
    assert smoke["train_per_class"] == "20" and smoke["seeds"] == "0, 1"


def tiny_dataset(name="tiny"):
    """Two classes of two 1x2x2 images; image k is filled with k / 10."""
    images = torch.arange(4, dtype=torch.float32).div(10).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    labels = torch.tensor([0, 0, 1, 1])
    return ImageDataset(name, images, labels, images[:2], labels[:2], ("a", "b"), (0.0,), (1.0,), source="hand")


def test_dataset_table_counts_and_shapes():
    table = reporting.dataset_table([tiny_dataset()])
    row = table.loc["tiny"]
    assert (row["train"], row["test"], row["classes"], row["shape"]) == (4, 2, 2, "1x2x2")
    assert (row["mean"], row["std"], row["source"]) == (0.0, 1.0, "hand")


def test_class_samples_put_the_rth_pick_of_every_class_in_row_r():
    data = tiny_dataset()
    (ax,) = plots.class_samples([data], 2, torch.Generator().manual_seed(0))
    # replay the draws: class 0 then class 1, from the same seed
    gen = torch.Generator().manual_seed(0)
    picks = [data.sample_class(c, 2, gen)[:, 0, 0, 0].tolist() for c in range(2)]
    grid = torch.as_tensor(ax.images[0].get_array())  # (2 rows x (2 + 1) - 1, 2 cols x (2 + 1) - 1)
    assert grid.shape == (5, 5)
    shown = [grid[r * 3, k * 3].item() for r in range(2) for k in range(2)]
    # row 0: the first pick of class 0 and of class 1; row 1: the second picks
    assert shown == pytest.approx([picks[0][0], picks[1][0], picks[0][1], picks[1][1]])
    assert ax.get_title() == "tiny"
