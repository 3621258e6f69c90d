"""The MCT chapter's tables as a reader sees them: settings, storage and convergence.

Presentation only: every function here reads settings or records that the chapter already
made and returns a :class:`pandas.DataFrame` of display text (numbers rounded to what the run
supports, ``None`` written out in words, one header row), so the notebook shows a table with
one line of code. Nothing here distils, evaluates or records.

* :func:`scale_table`: the scale presets the chapter runs at (the paper's and this run's);
* :func:`distiller_table`: MTT's and MCT's distiller settings per IPC, published and this run's;
* :func:`storage_tables`: Table (b), this run's buffers and the paper's data sets, ours beside
  the authors' figures;
* :func:`convergence_table`: Figure (c) as numbers, one column per method;
* :func:`path_statistics`, :func:`path_table`: Figure (a)'s curves and its drops per path;
* :func:`agreement_table`: Table (f), the TESLA against the exact gradient per start and iteration.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from ddlib.chapters.scales import ScaleSettings
from ddlib.chapters.mct_experiments import MCT_CIFAR10, mct_config
from ddlib.chapters.mct_runs import chapter_config
from ddlib.methods.mtt_config import MTTConfig

__all__ = ["SCALE_FIELDS", "DISTILLER_FIELDS", "MISSING", "display_value", "scale_table", "distiller_table",
           "storage_tables", "convergence_table", "PathStatistics", "path_statistics", "path_table",
           "agreement_table"]

#: The scale preset's fields this chapter reads (the DM and TGDD budgets belong to other chapters).
SCALE_FIELDS = ("dataset", "train_per_class", "test_per_class", "width", "num_experts", "expert_epochs_total",
                "expert_batch", "ipcs", "iterations", "ablation_iterations", "eval_every", "syn_steps",
                "expert_epochs", "max_start_epoch", "batch_syn", "lr_img", "lr_lr", "lr_teacher", "eval_epochs",
                "num_eval", "seeds")
#: The distiller settings shown per (method, IPC).
DISTILLER_FIELDS = ("iterations", "syn_steps", "expert_epochs", "max_start_epoch", "lr_img", "lr_lr",
                    "lr_teacher", "batch_syn", "zca", "sampling", "gradient", "memory")
#: The cell of a value the paper (or this run) does not give.
MISSING = "–"

# What a preset's None means, field by field (ScaleSettings' comments): the distiller fields
# fall back to MTT's values per IPC, which the distiller table then shows.
_SCALE_NONE = {"train_per_class": "all", "test_per_class": "all", "ablation_iterations": "as iterations",
               "batch_syn": "all images"}
_PER_IPC = "per IPC (next table)"


def display_value(value: Any, none: str = MISSING) -> str:
    """One table cell as text: ``none`` for ``None``, lists joined, floats in ``%g``, bools yes/no.

    >>> [display_value(v) for v in (None, [1, 10], 1e-07, 100.0, True, "tesla")]
    ['–', '1, 10', '1e-07', '100', 'yes', 'tesla']
    """
    if value is None:
        return none
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(display_value(v, none) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def scale_table(paper: ScaleSettings, run: ScaleSettings, scale: str,
                fields: Sequence[str] = SCALE_FIELDS):
    """The two scale presets side by side, one row per field of ``fields``.

    Parameters
    ----------
    paper, run : ScaleSettings
        The ``paper`` preset (with the chapter's overrides) and this run's settings.
    scale : str
        This run's scale, named in the second column's header.

    Returns
    -------
    pandas.DataFrame
        Index ``setting`` (``fields``); columns ``paper scale`` and ``this run (<scale>)``,
        text. ``None`` is written as what it means (``"all"``, ``"as iterations"``, or the
        distiller's per-IPC value, :func:`distiller_table`).
    """
    import pandas as pd

    unknown = sorted(set(fields) - set(paper.to_dict()))
    if unknown:
        raise ValueError(f"fields {unknown} are not ScaleSettings fields; "
                         f"expected a subset of {sorted(paper.to_dict())}")
    columns = {}
    for name, settings in (("paper scale", paper), (f"this run ({scale})", run)):
        values = settings.to_dict()
        columns[name] = [display_value(values[f], _SCALE_NONE.get(f, _PER_IPC)) for f in fields]
    return pd.DataFrame(columns, index=pd.Index(list(fields), name="setting"))


def distiller_table(settings: ScaleSettings, ipcs: Iterable[int], *, scale: str,
                    fields: Sequence[str] = DISTILLER_FIELDS):
    """MTT's and MCT's distiller settings: published on CIFAR-10, and this run's.

    The published rows are MTT's table (:meth:`~ddlib.methods.mtt_config.MTTConfig.for_dataset`) and MCT's
    run file with its code's choices (:func:`~ddlib.chapters.mct_experiments.mct_config`, at the IPCs
    of ``MCT_CIFAR10``); this run's rows are :func:`~ddlib.chapters.mct_runs.chapter_config` at each
    of ``ipcs``.

    Returns
    -------
    pandas.DataFrame
        Index (``method``, ``ipc``, ``settings``), MTT's rows first, IPCs ascending, the
        published row before this run's; one text column per field (``batch_syn`` ``None``
        is ``"all"``: the whole synthetic set per inner step).
    """
    import pandas as pd

    ipcs = sorted({int(i) for i in ipcs})
    rows, index = [], []
    for method in ("MTT", "MCT"):
        mct = method == "MCT"
        for ipc in sorted(set(ipcs) | set(MCT_CIFAR10)):
            configs = []
            if ipc in MCT_CIFAR10:
                mtt = MTTConfig.for_dataset("cifar10", ipc)
                configs.append(("paper (CIFAR-10)", mct_config(mtt, published=True) if mct else mtt))
            if ipc in ipcs:
                configs.append((f"this run ({scale})", chapter_config(settings, ipc, mct=mct, scale=scale)))
            for name, config in configs:
                values = config.to_dict()
                rows.append([display_value(values[f], "all") for f in fields])
                index.append((method, ipc, name))
    return pd.DataFrame(rows, columns=list(fields),
                        index=pd.MultiIndex.from_tuples(index, names=["method", "ipc", "settings"]))


def _mb(value: float) -> str:
    # whole MB for the paper's buffers (gigabytes), three significant digits for this run's
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _stored(epochs: Sequence[int]) -> str:
    epochs = list(epochs)
    return f"all {len(epochs)} (0 to {epochs[-1]})" if len(epochs) > 6 else ", ".join(map(str, epochs))


def storage_tables(records: Any, experiment: str, published: Any, authors_rows: Mapping[str, str]):
    """Table (b) as two tables: this run's buffers, and the paper's data sets beside the authors'.

    Parameters
    ----------
    records : pandas.DataFrame
        :func:`~ddlib.results.records.read_records` of the run. Reads ``experiment``'s metrics
        ``measured_mb`` and ``computed_mb`` (method = buffer, ``config["stored_epochs"]``)
        and ``buffer_storage_mb`` (``config["for_dataset"]``: the data set's name).
    published : pandas.DataFrame
        The authors' figures: columns ``method``, ``dataset``, ``value`` (MB).
    authors_rows : mapping
        The authors' method name -> the buffer (row) it is shown in, e.g. ``{"MCT": "MCT: 4
        waypoints (authors' code)"}``; a name not among the records' buffers gets a row of its
        own.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        This run: index ``buffer``; columns ``stored epochs``, ``measured on disk (MB)``,
        ``computed from tensor sizes (MB)``. The paper's data sets: index (``data set``,
        ``buffer``); columns ``ours: computed from tensor sizes (MB)`` and ``paper: authors'
        code (MB)``, :data:`MISSING` where one of the two has no figure. Text cells.
    """
    import pandas as pd

    rows = records[records["experiment"] == experiment]
    unknown = sorted(set(published["method"]) - set(authors_rows))
    if unknown:
        raise ValueError(f"published methods {unknown} have no row; pass authors_rows for them")
    run = {}
    for metric, column in (("measured_mb", "measured on disk (MB)"),
                           ("computed_mb", "computed from tensor sizes (MB)")):
        for r in rows[rows["metric"] == metric].itertuples():
            entry = run.setdefault(r.method, {})
            entry[column] = _mb(r.value)
            if "stored_epochs" in r.config:
                entry["stored epochs"] = _stored(r.config["stored_epochs"])
    run_table = pd.DataFrame.from_dict(run, orient="index")
    run_table = run_table[[c for c in ("stored epochs", "measured on disk (MB)", "computed from tensor sizes (MB)")
                           if c in run_table.columns]].rename_axis("buffer")
    ours = {(r.config["for_dataset"], r.method): r.value
            for r in rows[rows["metric"] == "buffer_storage_mb"].itertuples()}
    paper = {(r.dataset, authors_rows[r.method]): r.value for r in published.itertuples()}
    buffers = list(dict.fromkeys([m for _, m in ours] + list(authors_rows.values())))
    datasets = list(dict.fromkeys([d for d, _ in ours] + [d for d, _ in paper]))
    table = {(d, b): {"ours: computed from tensor sizes (MB)": _mb(ours[d, b]) if (d, b) in ours else MISSING,
                      "paper: authors' code (MB)": _mb(paper[d, b]) if (d, b) in paper else MISSING}
             for d in datasets for b in buffers if (d, b) in ours or (d, b) in paper}
    paper_table = pd.DataFrame.from_dict(table, orient="index")
    paper_table.index.names = ["data set", "buffer"]
    return run_table, paper_table


def convergence_table(frame: Any):
    """Figure (c) as numbers: mean ± sd over the seeds at each iteration, one column per method.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`~ddlib.chapters.mct_runs.convergence_frame`: columns ``method``, ``distill_seed``,
        ``iteration``, ``value`` (percent; each seed's mean over its evaluation networks).

    Returns
    -------
    pandas.DataFrame
        Index ``iteration``; one text column per method, in order of appearance:
        ``"mean ± sd"`` to one decimal (the sd over seeds; the mean alone for one seed).
    """
    import pandas as pd

    missing = sorted({"method", "distill_seed", "iteration", "value"} - set(frame.columns))
    if missing:
        raise ValueError(f"frame lacks columns {missing}; expected mct_runs.convergence_frame's")
    table = {}
    for method, group in frame.groupby("method", sort=False):
        table[method] = {int(i): _mean_sd(g["value"].to_numpy(dtype=np.float64))
                         for i, g in group.groupby("iteration")}
    out = pd.DataFrame(table).sort_index()
    out.index.name = "iteration"
    return out.fillna(MISSING)


def _mean_sd(values: np.ndarray) -> str:
    spread = f" ± {values.std(ddof=1):.1f}" if len(values) > 1 else ""
    return f"{values.mean():.1f}{spread}"


class PathStatistics(NamedTuple):
    """Figure (a) read back from the records (:func:`path_statistics`).

    Attributes
    ----------
    curves : pandas.DataFrame
        The ``test_acc`` records with columns ``expert`` and ``epoch``: one row per (path, expert, epoch).
    per_expert : pandas.DataFrame
        Index (``method``, ``expert``); one column per oscillation statistic (``drops``,
        ``total_drop``, ``max_drop``, ``net_gain``, ...), in points.
    stats : pandas.DataFrame
        Index ``method``; ``experts``, ``drops`` and ``total_drop`` summed over the experts,
        ``max_drop`` the largest, ``net_gain`` the mean, ``final test_acc`` the mean at the last epoch.
    """

    curves: Any
    per_expert: Any
    stats: Any


def path_statistics(records: Any, experiment: str) -> PathStatistics:
    """Figure (a)'s curves and drops from the records of :func:`~ddlib.chapters.mct_runs.record_paths`.

    Raises
    ------
    ValueError
        ``experiment`` has no ``test_acc`` record.
    """
    rows = records[records["experiment"] == experiment]
    rows = rows.assign(expert=rows["config"].str["expert"])
    curves = rows[rows["metric"] == "test_acc"]
    if curves.empty:
        raise ValueError(f"no test_acc records of {experiment!r}; expected mct_runs.record_paths' records")
    curves = curves.assign(epoch=curves["config"].str["epoch"])
    per_expert = rows[rows["metric"] != "test_acc"].pivot_table(
        index=["method", "expert"], columns="metric", values="value")
    stats = per_expert.groupby("method").agg(
        experts=("drops", "size"), drops=("drops", "sum"), total_drop=("total_drop", "sum"),
        max_drop=("max_drop", "max"), net_gain=("net_gain", "mean"))
    last = curves["epoch"].max()
    stats["final test_acc"] = curves[curves["epoch"] == last].groupby("method")["value"].mean()
    return PathStatistics(curves, per_expert, stats)


def path_table(stats: Any):
    """:attr:`PathStatistics.stats` as the page shows it: named columns, two decimals (the final
    accuracy one), the count of drops whole.

    Returns
    -------
    pandas.DataFrame
        Index ``method``; columns ``experts``, ``drops (count, all experts)``, ``total drop (pp,
        all experts)``, ``largest drop (pp)``, ``gain epoch 0 to K (pp, mean)``, ``final test
        accuracy (%, mean)``.
    """
    return stats.rename(columns={
        "drops": "drops (count, all experts)", "total_drop": "total drop (pp, all experts)",
        "max_drop": "largest drop (pp)", "net_gain": "gain epoch 0 to K (pp, mean)",
        "final test_acc": "final test accuracy (%, mean)"}).round(2).round(
        {"final test accuracy (%, mean)": 1}).astype({"drops (count, all experts)": int})


def agreement_table(records: Any, experiment: str):
    """Table (f): each measure of :func:`~ddlib.chapters.mct_chapter.record_agreement` per start and
    iteration.

    Returns
    -------
    pandas.DataFrame
        Index (``images``, ``iteration``) in recorded order; one numeric column per metric.
    """
    rows = records[records["experiment"] == experiment]
    if rows.empty:
        raise ValueError(f"no records of {experiment!r}; expected mct_chapter.record_agreement's records")
    rows = rows.assign(images=rows["provenance"].str["images"], iteration=rows["provenance"].str["iteration"])
    return rows.pivot_table(index=["images", "iteration"], columns="metric", values="value", sort=False)
