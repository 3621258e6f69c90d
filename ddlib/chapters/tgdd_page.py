"""The TGDD chapter page's tables, captions and Figure 1 (Ran et al., AAAI 2026); presentation only.

Every function here reads records (:func:`~ddlib.results.records.read_records`) or the published
numbers (:func:`~ddlib.results.records.paper_results`) and lays them out for the book; none runs a
distillation or an evaluation. The runs are in :mod:`ddlib.chapters.tgdd_experiments`, the verdicts
in :mod:`ddlib.chapters.tgdd_reporting`.

* :func:`accuracy_view`: :func:`~ddlib.chapters.tgdd_reporting.accuracy_table` with a caption;
* :func:`paper_table`, :func:`paper_view`: a published table laid out as a table (captioned);
* :func:`settings_table`, :func:`switches_table`, :func:`protocol_text`: what a run used;
* :func:`cost_table` and :func:`cost_figure` (Figure 1), :func:`analysis_records` and
  :func:`stage_table` (Figures 2, 4, 5), :func:`imagenet_view`, :func:`claims_table`;
* :func:`sig_text`, :func:`table_view`: rounding and the captioned, index-free view.
"""
from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from ddlib.results.seeded import STATISTIC_METRICS
from ddlib.chapters.tgdd_reporting import NOT_IN_PAPER, accuracy_table

__all__ = ["METRIC_LABELS", "sig_text", "table_view", "accuracy_view", "paper_table", "paper_view", "settings_table",
           "switches_table", "cost_table", "stage_table", "claims_table", "protocol_text", "ANALYSIS_EXPERIMENTS",
           "analysis_records", "cost_figure", "IMAGENET_LAYOUT", "imagenet_view"]

#: The page's names of the analysis measures (Figures 2, 4 and 5).
METRIC_LABELS = {"silhouette": "silhouette", "correlation_similarity": "(a) correlation similarity",
                 "snapshot_acc": "(b) snapshot accuracy (%)", "activation_per_image": "(c) activation per image",
                 "activation_per_set": "(c) activation per set", "coverage_distance": "coverage distance"}


def sig_text(value: float | None, digits: int = 2) -> str:
    """``value`` to ``digits`` significant digits without exponent; ``"–"`` for None or NaN.

    ``36.4 -> "36"``, ``0.288 -> "0.29"``, ``5 -> "5.0"``, ``1234 -> "1,200"`` (times and
    memory on a shared machine support no more digits than that).
    """
    if value is None or not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    rounded = float(f"{value:.{digits}g}")
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:,.{decimals}f}"


def table_view(frame: Any, caption: str):
    """``frame`` as the page shows it: no row numbers, ``caption`` above (a pandas ``Styler``)."""
    return frame.style.hide(axis="index").set_caption(caption)


def _ipcs_text(values: Any) -> str:
    """``"1, 10 and 50"`` from IPCs given as numbers or text."""
    ipcs = sorted({int(float(v)) for v in values if str(v) not in ("", "nan", "None", "<NA>")})
    words = [str(v) for v in ipcs]
    return " and ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)


def accuracy_view(records: Any, published: Any, experiment: str, *, what: str,
                  keys: Sequence[str] = ("method", "ipc"),
                  statistic_label: str = "best of tests, as the TGDD code"):
    """:func:`~ddlib.chapters.tgdd_reporting.accuracy_table` for the page (``compact``), with a caption
    saying what each column is.

    The seed and network counts move into the caption when every row has the same; paper
    columns without a single number collapse into one ``paper (best)`` column of
    :data:`~ddlib.chapters.tgdd_reporting.NOT_IN_PAPER`. Without ``ipc`` in ``keys`` the caption names
    our IPC and the paper's.

    Returns
    -------
    pandas.io.formats.style.Styler
    """
    table = accuracy_table(records, published, experiment, keys=keys, statistic_label=statistic_label,
                           compact=True)
    ours = ("ours: mean ± standard deviation over distillation seeds (the seeds column), each seed the mean "
            "of its evaluation networks")
    if table["seeds"].nunique() == 1 and table["networks per set"].nunique() == 1:
        seeds, nets = int(table["seeds"].iloc[0]), int(table["networks per set"].iloc[0])
        ours = (f"ours: mean ± standard deviation over {seeds} distillation seed{'s' * (seeds != 1)}, each "
                f"seed the mean of its {nets} evaluation network{'s' * (nets != 1)}")
        table = table.drop(columns=["seeds", "networks per set"])
    paper_columns = [c for c in table if c.startswith("paper")]
    rows = published[published["table"] == experiment]
    name = experiment if experiment.endswith("table") else f"{experiment} table"
    if all((table[c] == NOT_IN_PAPER).all() for c in paper_columns):
        table = table.drop(columns=paper_columns).assign(**{"paper (best)": NOT_IN_PAPER})
        paper = f"paper: no number for these rows (its {name} is at IPC {_ipcs_text(rows['ipc'])})"
    else:
        paper = (f"paper: the published {name} (TGDD's code reports the best of tests; "
                 f"{NOT_IN_PAPER}: the paper has no such row)")
    if "ipc" not in keys:
        mine = records.loc[records["experiment"] == experiment, "ipc"]
        paper += f"; ours at IPC {_ipcs_text(mine)}, the paper's at IPC {_ipcs_text(rows['ipc'])}"
    if rows["unverified"].any():
        paper += "; the published numbers come from a secondary summary of the paper (UNVERIFIED)"
    caption = (f"{what}. Test accuracy (%); {ours}; best of tests: the best of the periodic tests, the "
               f"statistic TGDD's code reports; last epoch: the accuracy at the end of training; {paper}.")
    return table_view(table.rename(columns={"ipc": "IPC", "arch": "architecture"}), caption)


def _column_label(value: Any, names: Sequence[str]) -> str:
    parts = value if isinstance(value, tuple) else (value,)
    return ", ".join(f"IPC {v}" if name == "ipc" else str(v) for name, v in zip(names, parts))


def paper_table(published: Any, table: str, *, index: str = "method",
                columns: str | Sequence[str] = ("dataset", "ipc"), prefix: str = ""):
    """The paper's numbers of ``table`` laid out as a table: one row per ``index`` value, one
    column per combination of ``columns`` (``"CIFAR-10, IPC 10"``), in the order published.

    Cells are the published values to one decimal,
    :data:`~ddlib.chapters.tgdd_reporting.NOT_IN_PAPER` where there is none.

    Raises
    ------
    ValueError
        ``published`` has no row of ``table`` (naming the tables it has).
    """
    rows = published[published["table"] == table]
    if rows.empty:
        raise ValueError(f"no published rows of table {table!r}: expected one of "
                         f"{sorted(set(published['table']))}")
    names = [columns] if isinstance(columns, str) else list(columns)
    pivot = rows.pivot_table(index=index, columns=names, values="value", aggfunc="first", sort=False)
    pivot.columns = [prefix + _column_label(c, names) for c in pivot.columns]
    return pivot.map(lambda v: NOT_IN_PAPER if np.isnan(v) else f"{v:.1f}").reset_index()


def paper_view(published: Any, table: str, caption: str, **layout: Any):
    """:func:`paper_table` (``layout``: its keywords) captioned, with what
    :data:`~ddlib.chapters.tgdd_reporting.NOT_IN_PAPER` means and, where the numbers come from a
    secondary summary of the paper, UNVERIFIED."""
    rows = published[published["table"] == table]
    mark = (" The numbers come from a secondary summary of the paper, not yet checked against the paper "
            "(UNVERIFIED)." if rows["unverified"].any() else "")
    return table_view(paper_table(published, table, **layout),
                      f"{caption} {NOT_IN_PAPER.capitalize()}: no published number.{mark}")


def _setting_text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_setting_text(v) for v in value)
    return str(value)


def settings_table(paper: Mapping[str, Any], run: Mapping[str, Any], label: str, *,
                   paper_label: str = "paper scale"):
    """One row per setting: the paper scale's value (column ``paper_label``), this run's (column
    ``label``) and ``changed``.

    Lists read ``"1, 10, 50"``, booleans yes/no, and ``None`` (unset: the method's or the
    protocol's own default applies) ``"–"``; ``changed`` is ``"yes"`` where the texts differ.
    """
    import pandas as pd

    keys = list(dict.fromkeys([*paper, *run]))
    frame = pd.DataFrame([{"setting": k, paper_label: _setting_text(paper.get(k)), label: _setting_text(run.get(k))}
                          for k in keys])
    return frame.assign(changed=np.where(frame[paper_label] != frame[label], "yes", ""))


def switches_table(rows: Mapping[str, tuple[str, Mapping[str, Any]]]):
    """The ablation's rows: label, the distiller run and its config switches (``"defaults"``: none)."""
    import pandas as pd

    return pd.DataFrame([{"row": label, "distiller": name,
                          "switches": ", ".join(f"{k}={v}" for k, v in switches.items()) or "defaults"}
                         for label, (name, switches) in rows.items()])


#: Figure 1's columns: metric -> column header.
_COST_COLUMNS = {"distill_time_s": "distillation (s)", "time_s": "+ this run's experts (s)",
                 "time_paper_experts_s": "+ the paper's expert count (s)", "peak_memory_mb": "peak memory (MB)",
                 "pretrain_time_s": "pre-training (s)", "pretrain_peak_memory_mb": "pre-training peak (MB)"}


def cost_table(records: Any, *, accuracy_metric: str = STATISTIC_METRICS["best"]):
    """Figure 1 as numbers: per method and IPC the accuracy and the cost of distillation.

    Means over every record of the cell (seeds, networks); accuracy to one decimal, times and
    memory to two significant digits (:func:`sig_text`), ``"–"`` where nothing was measured
    (random images are not distilled; a method only timed has no accuracy). The pre-training
    columns are per method (this run's experts) and repeat across IPCs.
    """
    import pandas as pd

    rows = records[records["experiment"].isin(["Figure 1", "main table"]) & records["ipc"].notna()
                   & records["metric"].isin([accuracy_metric, *_COST_COLUMNS])]
    order = list(dict.fromkeys(rows["method"]))
    cells = rows.pivot_table(index=["method", "ipc"], columns="metric", values="value")
    pre = records[(records["experiment"] == "Figure 1") & records["metric"].str.startswith("pretrain")]
    cells = cells.join(pre.pivot_table(index="method", columns="metric", values="value"), on="method")
    out = pd.DataFrame({"method": cells.index.get_level_values("method"),
                        "IPC": cells.index.get_level_values("ipc").astype(int)})
    acc = cells[accuracy_metric] if accuracy_metric in cells else pd.Series(np.nan, index=cells.index)
    out["accuracy, best of tests (%)"] = ["–" if np.isnan(v) else f"{v:.1f}" for v in acc]
    for metric, header in _COST_COLUMNS.items():
        out[header] = [sig_text(v) for v in (cells[metric] if metric in cells else [math.nan] * len(out))]
    out["order"] = out["method"].map(order.index)
    return out.sort_values(["order", "IPC"], kind="stable").drop(columns="order").reset_index(drop=True)


def stage_table(analysis: Any, experiment: str, *, labels: Mapping[str, str] = METRIC_LABELS):
    """An analysis figure's numbers: one row per (measure,) set, one column per snapshot epoch.

    ``analysis`` has the records' columns plus ``epoch``; accuracies (``*_acc``) to one
    decimal, the other measures to two. The ``measure`` column (named by ``labels``, rows
    sorted by it, sets in recorded order) appears only where the figure has more than one.
    """
    import pandas as pd

    rows = analysis[analysis["experiment"] == experiment]
    if rows.empty:
        raise ValueError(f"no analysis rows of {experiment!r}: expected one of "
                         f"{sorted(set(analysis['experiment']))}")
    out = []
    for (metric, method), group in rows.groupby(["metric", "method"], sort=False):
        cells = group.groupby("epoch")["value"].mean()
        digits = 1 if metric.endswith("_acc") else 2
        out.append({"measure": labels.get(metric, metric), "set": method,
                    **{f"epoch {int(e)}": f"{v:.{digits}f}" for e, v in cells.items()}})
    frame = pd.DataFrame(out).sort_values("measure", kind="stable").reset_index(drop=True)
    return frame.drop(columns="measure") if rows["metric"].nunique() == 1 else frame


#: The experiments of the analysis figures (:func:`analysis_records`).
ANALYSIS_EXPERIMENTS = ("Figure 2", "Figure 4", "Figure 5")


def analysis_records(records: Any):
    """The records of Figures 2, 4 and 5 with an ``epoch`` column: the snapshot epoch of each
    measure, read from its config (as :func:`~ddlib.chapters.tgdd_setup.record_analysis` writes it).

    The input of :func:`stage_table`; other experiments' records are dropped.
    """
    rows = records[records["experiment"].isin(ANALYSIS_EXPERIMENTS)]
    return rows.assign(epoch=rows["config"].map(lambda c: c["epoch"]))


#: Figure 1's panels: metric -> y label (the accuracy panel is added by :func:`cost_figure`).
_COST_PANELS = {"time_paper_experts_s": "time incl. pre-training (s)",
                "peak_memory_mb": "peak memory of the distillation (MB)"}


def cost_figure(records: Any, ipcs: Sequence[int], *, title: str, metric: str = STATISTIC_METRICS["best"]):
    """Figure 1 as a picture: accuracy (``metric``), time including the paper's count of expert
    pre-training and peak memory of the distillation, per method against IPC (log axis, ticks
    at ``ipcs``), each point the mean over seeds (and networks).

    Returns
    -------
    matplotlib.figure.Figure
        One row of three panels; assign it (``fig = ...``) so that a notebook shows it once.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    shown = [metric, "distill_time_s", "time_s", "time_paper_experts_s", "peak_memory_mb"]
    rows = records[(records["experiment"].isin(["Figure 1", "main table"])) & records["metric"].isin(shown)
                   & records["ipc"].notna()]
    rows = rows.assign(ipc=rows["ipc"].astype(int))
    labels = {metric: "test accuracy, best of tests (%)", **_COST_PANELS}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (name, label) in zip(axes, labels.items()):
        sns.lineplot(rows[rows["metric"] == name], x="ipc", y="value", hue="method", marker="o", errorbar=None,
                     ax=ax)
        ax.set(xscale="log", xlabel="images per class", ylabel=label, xticks=list(ipcs), xticklabels=list(ipcs))
    fig.suptitle(title)
    plt.tight_layout()
    return fig


#: The layout of the ImageNet-subset table: a row per data set, a column per method.
IMAGENET_LAYOUT: Mapping[str, str] = MappingProxyType({"index": "dataset", "columns": "method", "prefix": "paper: "})


def imagenet_view(published: Any, records: Any, *, metric: str = STATISTIC_METRICS["best"],
                  table: str = "ImageNet subsets"):
    """The paper's ImageNet-subset table with our TGDD column (``metric`` per data set, mean over
    records, one decimal; ``"–"`` for a subset we have no record of), captioned.

    ``records`` are those of :func:`~ddlib.chapters.tgdd_setup.imagenet_subsets`; their ``dataset``
    is the canonical name (:func:`~ddlib.data.canonical_name`) of the published one.

    Returns
    -------
    pandas.io.formats.style.Styler
    """
    from ddlib.data import canonical_name

    ours = records[records["metric"] == metric].groupby("dataset")["value"].mean().round(1)
    frame = paper_table(published, table, **IMAGENET_LAYOUT)
    mine = [ours.get(canonical_name(d)) for d in frame["dataset"]]
    frame.insert(1, "ours: TGDD (best of tests)", ["–" if v is None else f"{v:.1f}" for v in mine])
    unverified = " (UNVERIFIED)" if published.loc[published["table"] == table, "unverified"].any() else ""
    return table_view(frame, "ImageNet subsets at IPC 10: our TGDD (one seed, best of tests) "
                      f"beside the paper's numbers{unverified}; not in the paper: no number.")


def _effect_text(claim: Mapping[str, Any]) -> str:
    """A verdict's effect and interval as the summary shows it (ratios back on the ratio scale)."""
    effect, low, high = (claim.get(k) for k in ("effect", "low", "high"))
    if effect is None:
        return "–"
    n = claim.get("n", 0)
    if claim.get("scale") == "log":
        ref = claim.get("reference", 1.0) or 1.0
        shown = [None if v is None else ref * math.exp(v) for v in (effect, low, high)]
        text = f"{claim['estimand']} = {sig_text(shown[0])} (geometric mean)"
        return text + (f" [{sig_text(shown[1])}, {sig_text(shown[2])}]" if n > 1 else ", no interval")
    unit = f" {claim['unit']}" if claim.get("unit") else ""
    bound = [("–" if v is None else f"{v:.1f}") for v in (low, high)]
    text = f"{claim['estimand']} = {effect:+.1f}{unit}"
    return text + (f" [{bound[0]}, {bound[1]}]" if n > 1 else ", no interval")


def claims_table(records: Any):
    """Every verdict of the run, in the order recorded: section, claim, verdict, effect with its
    interval (the header names the level) and the number of seeds."""
    import pandas as pd

    claims = records[records["metric"] == "claim_verdict"]
    if claims.empty:
        raise ValueError("no claim_verdict records: run the chapter's verdict cells before its summary")
    levels = {r.config.get("level") for r in claims.itertuples()}
    header = f"effect [{100 * levels.pop():g} % interval]" if len(levels) == 1 else "effect [interval]"
    return pd.DataFrame([{"section": r.experiment, "claim": r.config["claim"], "verdict": r.config["verdict"],
                          header: _effect_text(r.config), "seeds": r.config["n"]} for r in claims.itertuples()])


_AUGMENTATION_TEXT = {"tgdd": "CutMix and per-sample colour-and-crop DiffAug (as TGDD's code)",
                      "dsa": "DSA (as MTT's code)"}


def protocol_text(config: Any) -> str:
    """The evaluation protocol of ``config`` (an :class:`~ddlib.evaluation.protocols.EvalConfig`) in
    words, every number read from the config (``lr=None``: the set's distilled learning rate)."""
    milestones = [str(m) for m in config.milestones]
    decay = f"epoch{'s' * (len(milestones) > 1)} {' and '.join(milestones)}"
    lr = "the set's distilled one" if config.lr is None else f"{config.lr:g}"
    augmentation = _AUGMENTATION_TEXT.get(config.augmentation, config.augmentation) if config.dsa else "none"
    score = ("the best of those tests (and, beside it, the last epoch's)" if config.statistic == "best"
             else "the last epoch's accuracy")
    every = "every epoch" if config.test_every == 1 else f"every {config.test_every} epochs"
    tests = (f"tested {every}; the set's score is {score}" if config.test_every
             else f"tested after the last epoch; the set's score is {score}")
    return (f"At this scale every set is evaluated by {config.num_eval} network{'s' * (config.num_eval != 1)} "
            f"({config.arch}), each trained from scratch on the set for {config.epochs} epochs with SGD "
            f"(learning rate {lr}, momentum {config.momentum:g}, weight decay {config.weight_decay:g}, "
            f"batch {config.batch_size}; the learning rate x{config.lr_factor:g} after {decay}), "
            f"augmentation: {augmentation}, and {tests}.")
