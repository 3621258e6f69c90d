"""Figures and sentences of the "Protocol and baselines" chapter (presentation only).

The measurements live in :mod:`ddlib.chapters.baseline_experiments`; this module draws them (the
experts' learning curves, coreset accuracy against images per class) and states what AST's
Table 3 reports, from the published results file, so the chapter types no number.
"""
from __future__ import annotations

from typing import Any, Sequence

from ddlib.chapters.baseline_experiments import CORESET_METHODS, EXPERIMENT, FULL, expert_curves, seed_means
from ddlib.results.records import paper_results

__all__ = ["expert_figure", "coreset_figure", "paper_table3_text"]


def expert_figure(accuracies: Sequence[Sequence[float]], title: str, ax: Any = None) -> Any:
    """Test accuracy of each expert after every epoch of its training, one line per expert.

    Parameters
    ----------
    accuracies : sequence of sequences, shape (experts, epochs)
        Test accuracy (fraction) of each expert after each epoch, as
        :func:`~ddlib.chapters.baseline_experiments.expert_curves` takes it.
    title : str
        Axis title (name the data set and the scale).
    ax : matplotlib.axes.Axes, optional
        Where to draw; ``None``: the current axes.

    Returns
    -------
    matplotlib.axes.Axes
        Percent on the y axis, epochs from 1 on the x axis.
    """
    import seaborn as sns

    curves = expert_curves(accuracies)
    ax = sns.lineplot(curves, x="epoch", y="test accuracy (%)", hue="expert", marker="o", ax=ax)
    ax.set_title(title)
    return ax


def coreset_figure(records: Any, title: str, ax: Any = None, *, metric: str = "test_acc") -> Any:
    """Coreset accuracy against images per class, with the full data set as a dashed line.

    Each point is the mean over seeds of each seed's network mean
    (:func:`~ddlib.chapters.baseline_experiments.seed_means`); the band is their standard deviation
    over seeds. The x axis is logarithmic, as the IPCs are (1, 10, 50).

    Parameters
    ----------
    records : pandas.DataFrame
        The run's records (:func:`~ddlib.results.records.read_records`) with Table 3 coreset and
        full-data-set evaluations.
    title : str
        Axis title.
    ax : matplotlib.axes.Axes, optional
        Where to draw; ``None``: the current axes.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import seaborn as sns

    means = seed_means(records, metric)
    coresets = means[means["method"] != FULL].astype({"ipc": int})
    ax = sns.lineplot(coresets, x="ipc", y="value", hue="method", marker="o", errorbar="sd", ax=ax)
    full_mean = means[means["method"] == FULL]["value"].mean()
    ax.axhline(full_mean, ls="--", color="grey", label=FULL)
    ax.set(xscale="log", xlabel="images per class", ylabel="test accuracy (%)", title=title)
    ax.legend()
    return ax


def _listing(items: Sequence[str]) -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1]


def paper_table3_text(dataset: str = "CIFAR-10") -> str:
    """What AST's Table 3 reports for the coresets on ``dataset``, as one sentence.

    The random coreset at every published IPC, then the table's best coreset against the
    full data set, both read from :func:`~ddlib.results.records.paper_results`; the words
    ("below"/"above") follow the numbers.

    Returns
    -------
    str
        E.g. ``"On CIFAR-10, AST's Table 3 reports a random coreset at 14.4 %, 26.0 % and
        43.4 % with 1, 10 and 50 images per class; ..."``.
    """
    published = paper_results()
    published = published[(published["paper"] == "AST") & (published["table"] == EXPERIMENT)
                          & (published["dataset"] == dataset) & (published["metric"] == "test_acc")]
    if published.empty:
        raise ValueError(f"dataset={dataset!r}: AST's Table 3 has no rows for it; expected one of "
                         "'CIFAR-10', 'CIFAR-100', 'TinyImageNet'")
    random = published[published["method"] == "Random"]
    values = _listing([f"{v:.1f} %" for v in random["value"]])
    ipcs = _listing([str(i) for i in random["ipc"]])
    growth = f"{values} with {ipcs} image{'' if ipcs == '1' else 's'} per class"
    cores = published[published["method"].isin(CORESET_METHODS)]
    top = cores.loc[cores["value"].idxmax()]
    full = published[published["method"] == FULL]["value"].max()
    gap = full - top["value"]
    where = "level with" if gap == 0 else f"{abs(gap):.1f} points {'below' if gap > 0 else 'above'}"
    return (f"On {dataset}, AST's Table 3 reports a random coreset at {growth}; its best coreset "
            f"({top['method']}, IPC {top['ipc']}: {top['value']:.1f} %) stays {where} "
            f"the full data set ({full:.1f} %).")
