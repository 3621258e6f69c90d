"""The AST chapter's figures, drawn from its records (matplotlib; the notebook sets the seaborn style).

Every function takes what the chapter recorded (:func:`~ddlib.chapters.ast_claims.table_records` frames:
one row per recorded point, the x value as a column) or objects it already holds, draws one
figure and returns it; none records or computes anything new, so moving a figure here changes
no number of the chapter.
"""
from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import numpy as np

from ddlib.chapters.ast_experiments import display_images, pca_2d
from ddlib.data.dataset import ImageDataset
from ddlib.data.zca import ZCA
from ddlib.results.plots import show_images
from ddlib.methods.synthetic import SyntheticSet

__all__ = ["figure2", "figure3", "figure4", "figure6", "figure7", "figure9"]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def figure2(records, distill_seed: int):
    """Fig. 2: (a) the start epoch drawn per distillation iteration, (b) the inner-loop loss, naive
    and balanced, for one distillation seed (records: metrics ``start_epoch`` and ``inner_loss`` of
    methods ``naive`` and ``balanced``, column ``iteration``)."""
    rows = records[records["distill_seed"] == distill_seed]
    fig, (ax_a, ax_b) = _plt().subplots(1, 2, figsize=(11, 3.5))
    start = rows[(rows["metric"] == "start_epoch") & (rows["method"] == "naive")]
    ax_a.plot(start["iteration"], start["value"], "o--", color="tab:blue", ms=3)
    ax_a.set(xlabel="distillation iteration", ylabel="start epoch", title="(a) random start epoch")
    for method, color in (("naive", "grey"), ("balanced", "tab:red")):
        series = rows[(rows["metric"] == "inner_loss") & (rows["method"] == method)]
        ax_b.plot(series["iteration"], series["value"], color=color, label=method)
    ax_b.set(xlabel="distillation iteration", ylabel="inner-loop loss", title="(b) inner-loop loss")
    ax_b.legend()
    fig.tight_layout()
    return fig


def figure3(sets: Mapping[str, SyntheticSet], data: ImageDataset, ipc: int, zca: ZCA | None = None):
    """Fig. 3: one panel per method (``sets``: method -> its synthetic set of ``ipc`` images per
    class, ``(num_classes * ipc, C, H, W)`` class by class), one column per class."""
    fig, axes = _plt().subplots(len(sets), 1, figsize=(8, 1.6 * ipc + 1), squeeze=False)
    for ax, (method, syn) in zip(axes[:, 0], sets.items()):
        # class-major order -> one row per image index, one column per class
        order = np.arange(len(syn)).reshape(data.num_classes, ipc).T.reshape(-1)
        show_images(display_images(syn, data, zca)[order], ncol=data.num_classes, ax=ax, title=f"{method}, IPC {ipc}")
    fig.tight_layout()
    return fig


def figure4(records):
    """Fig. 4: per expert kind (``method``), the squared parameter change per epoch (``step_size_sq``,
    dashed, log scale) and the test accuracy (``expert_test_acc``, solid, right axis) against ``epoch``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    twin = ax.twinx()
    groups = list(records.groupby("method", sort=False))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]  # the style's palette (seaborn's, in the book)
    for (variant, group), color in zip(groups, itertools.cycle(cycle)):
        steps, acc = group[group["metric"] == "step_size_sq"], group[group["metric"] == "expert_test_acc"]
        ax.plot(steps["epoch"], steps["value"], "--", color=color, label=f"{variant}")
        twin.plot(acc["epoch"], acc["value"], "-", color=color)
    ax.set(yscale="log", xlabel="expert epoch", ylabel=r"$\|\theta_t - \theta_{t+1}\|^2$ (dashed)")
    twin.set(ylabel="test accuracy, % (solid)")
    twin.grid(False)
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    return fig


def figure6(picks: Mapping[int, Mapping[str, object]], class_names: Sequence[str], classes: int = 5):
    """Fig. 6: per class, the 2-D PCA of its features (dots), the random (crosses) and representative
    (stars) initial images (``picks``: :func:`~ddlib.chapters.ast_experiments.init_picks` of the first seed)."""
    fig, axes = _plt().subplots(1, classes, figsize=(3 * classes, 3), squeeze=False)
    for ax, c in zip(axes[0], range(classes)):
        points = pca_2d(picks[c]["features"])
        ax.scatter(points[:, 0], points[:, 1], s=4, color="lightgrey")
        ax.scatter(*points[picks[c]["random"]].T, marker="x", color="tab:blue", s=50, label="random")
        ax.scatter(*points[picks[c]["representative"]].T, marker="*", color="tab:red", s=120,
                   label="representative")
        ax.set_title(f"class {class_names[c]}")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def figure7(records, ipcs: Sequence[int]):
    """Fig. 7: best test accuracy so far against the distillation iteration, AST and MTT, one panel
    per IPC; thin lines are seeds (``distill_seed``), thick lines their mean."""
    fig, axes = _plt().subplots(1, len(ipcs), figsize=(5 * len(ipcs), 3.5), squeeze=False)
    for ax, ipc in zip(axes[0], ipcs):
        for method, color in (("AST", "tab:red"), ("MTT", "tab:blue")):
            series = records[(records["method"] == method) & (records["ipc"] == ipc)]
            for _, one in series.groupby("distill_seed"):
                ax.plot(one["iteration"], one["value"], "-", color=color, alpha=0.3, lw=1)
            mean = series.groupby("iteration")["value"].mean()
            ax.plot(mean.index, mean.values, "o-", color=color, label=method)
        ax.set(title=f"IPC {ipc}", xlabel="distillation iteration", ylabel="best test accuracy, %")
        ax.legend()
    fig.tight_layout()
    return fig


def figure9(records, distill_seed: int):
    """Fig. 9: the learned step size ``syn_lr`` per distillation iteration, one line per expert kind
    (``method``), for one distillation seed."""
    rows = records[(records["metric"] == "syn_lr") & (records["distill_seed"] == distill_seed)]
    fig, ax = _plt().subplots(figsize=(8, 3.5))
    for variant, group in rows.groupby("method", sort=False):
        ax.plot(group["iteration"], group["value"], label=variant)
    ax.set(xlabel="distillation iteration", ylabel="syn_lr")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
