"""Reporting helpers of the AST chapter (``notebooks/03_ast.py``): figure series, metrics of curves, tables.

Split from :mod:`ddlib.chapters.ast_experiments` (which re-exports everything here): Fig. 7's
best-so-far curve (:func:`best_so_far`, :func:`first_reaching`), Fig. 2 and Fig. 9's
fluctuation measures (:func:`coefficient_of_variation`, :func:`relative_jitter`), figure
series recorded in one write (:func:`record_series`), our records beside the published
cells (:func:`beside_paper`) and the run's settings beside the paper scale's
(:func:`settings_table`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ddlib.chapters.scales import SCALES, Recorder, ScaleSettings
from ddlib.results.records import Record, paper_results
from ddlib.results.measurement import collect_provenance

__all__ = ["best_so_far", "first_reaching", "coefficient_of_variation", "relative_jitter", "record_series",
           "beside_paper", "unit_values", "mean_sd_text", "settings_table"]


def best_so_far(evaluations: Sequence[Mapping[str, Any]], statistic: str = "last",
                network: int | None = None) -> tuple[list[int], list[float]]:
    """Fig. 7's curve: iterations and the best accuracy (percent) reached so far.

    Each evaluation (an ``EvalResult.to_dict()`` with ``iteration``) contributes its ``statistic``
    (``"last"`` epoch or ``"best"`` test point): the mean over its networks (``network=None``)
    or network ``network``'s own value (the same network in every evaluation of one seed).
    """
    if statistic not in ("last", "best"):
        raise ValueError(f"statistic={statistic!r}: expected 'last' or 'best'")
    iterations = [int(e["iteration"]) for e in evaluations]
    values = [e[f"{statistic}_mean"] if network is None else e[statistic][network] for e in evaluations]
    best = np.maximum.accumulate([100 * float(v) for v in values])
    return iterations, [float(b) for b in best]


def first_reaching(iterations: Sequence[int], values: Sequence[float], level: float) -> int | None:
    """The first iteration whose value is at least ``level``, or ``None``."""
    return next((int(i) for i, v in zip(iterations, values) if v >= level), None)


def coefficient_of_variation(values: Sequence[float]) -> float:
    """``std / mean`` of ``values`` (Fig. 2: how much the inner-loop loss fluctuates)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std() / abs(values.mean()))


def relative_jitter(values: Sequence[float]) -> float:
    """Std of successive differences over the mean magnitude (Fig. 9: syn_lr fluctuation).
    ``nan`` values (a collapsed run) make the result ``inf``."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        return float("inf")
    return float(np.diff(values).std() / np.abs(values).mean()) if len(values) > 1 else 0.0


def record_series(recorder: Recorder, experiment: str, method: str, metric: str, xs: Iterable[Any],
                  ys: Iterable[float], *, x_name: str, ipc: int | None = None, seed: int | None = None,
                  distill_seed: int | None = None, config: Mapping[str, Any] | None = None,
                  wall_time_s: float = 0.0) -> list[float]:
    """Record a figure's series (``x_name`` goes into each record's config) in ONE write, with one
    provenance; returns the values recorded. :meth:`ddlib.results.recorder.Recorder.add` rewrites the file per number.

    ``seed`` (default: the recorder's run seed) is the record's run seed; ``distill_seed`` tags a
    series of one distillation seed."""
    provenance = collect_provenance(recorder.device, wall_time_s)
    seed = recorder.seed if seed is None else seed
    records = [Record(paper=recorder.paper, experiment=experiment, method=method, dataset=recorder.dataset,
                      ipc=ipc, arch="ConvNet", seed=seed, metric=metric, value=float(y), scale=recorder.scale,
                      config={**dict(config or {}), x_name: x}, provenance=provenance, distill_seed=distill_seed)
               for x, y in zip(xs, ys)]
    recorder.extend(records)  # stamps the run's key, id and params
    return [r.value for r in records]


def _text(value: Any) -> str:
    """Key as text: 10.0 -> "10" (pandas turns int columns with gaps into floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


#: How :func:`mean_sd_text` rounds: style -> (mean, sd) formatter.
_STYLES = {
    "g4": (lambda x: f"{x:.4g}", lambda x: f"{x:.2g}"),
    # accuracies in percent: one decimal, all that a handful of seeds and networks supports
    "percent": (lambda x: f"{x:.1f}", lambda x: f"{x:.1f}"),
    "sig2": (lambda x: _significant(x, 2), lambda x: _significant(x, 2)),
    "sig3": (lambda x: _significant(x, 3), lambda x: _significant(x, 2)),
}


def _significant(x: float, digits: int) -> str:
    """``x`` to ``digits`` significant digits, positional (0.073, 120; no exponent)."""
    if not np.isfinite(x):
        return str(x)
    return np.format_float_positional(x, precision=digits, unique=False, fractional=False, trim="-")


def mean_sd_text(values, style: str = "g4") -> str:
    """``"mean ± sd"`` (sample sd, ddof 1, over the units), the mean alone for one unit, "" for none.

    Parameters
    ----------
    values : array-like
        Shape ``(n,)``: one value per unit.
    style : {"g4", "percent", "sig2", "sig3"}
        ``"g4"``: 4 significant digits (sd 2); ``"percent"``: one decimal each (accuracies);
        ``"sig2"``/``"sig3"``: 2 or 3 significant digits (sd 2), positional (e.g. times).
    """
    if style not in _STYLES:
        raise ValueError(f"style={style!r}: expected one of {sorted(_STYLES)}")
    mean_text, sd_text = _STYLES[style]
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return ""
    if len(values) == 1:
        return mean_text(values.mean())
    return f"{mean_text(values.mean())} ± {sd_text(values.std(ddof=1))}"


def _published_text(value: float, std: float, style: str | None) -> str:
    """A published cell as printed: one decimal where ours are percentages ("26.0 ± 0.8"), else as given."""
    text = (lambda x: f"{x:.1f}") if style == "percent" else (lambda x: f"{x:g}")
    return text(value) + (f" ± {text(std)}" if std == std else "")  # std is nan where none was published


def unit_values(records) -> np.ndarray:
    """One value per independent unit: the mean of each distillation seed's records (its evaluation
    networks), and every record without a seed (an expert, a timing) as its own unit."""
    seeded = records["distill_seed"].notna() if "distill_seed" in records else np.zeros(len(records), bool)
    per_seed = records[seeded].groupby("distill_seed")["value"].mean()
    return np.concatenate([per_seed.to_numpy(np.float64), records.loc[~seeded, "value"].to_numpy(np.float64)])


def _units_text(group, metrics: Sequence[str]) -> int | str:
    """How many units the columns average: an int when all columns count the same kind of unit,
    else e.g. ``"5 experts, 3 seeds"``."""
    counts: dict[str, int] = {}
    for metric in metrics:
        rows = group[group["metric"] == metric]
        seeded = "distill_seed" in rows and rows["distill_seed"].notna().any()
        experts = "config" in rows and len(rows) and all("expert" in c for c in rows["config"])
        counts.setdefault("seeds" if seeded else "experts" if experts else "records", len(unit_values(rows)))
    if len(counts) == 1:
        return next(iter(counts.values()))
    return ", ".join(f"{n} {kind if n != 1 else kind[:-1]}" for kind, n in counts.items())


def beside_paper(ours, experiment: str, metrics: Sequence[str], keys: Sequence[str] = ("method",),
                 paper: str = "AST", *, labels: Mapping[str, str] | None = None,
                 published_metrics: Mapping[str, str | None] | None = None,
                 styles: Mapping[str, str] | None = None):
    """Our records (mean ± sd over units) beside the published cells of ``experiment``.

    Rows are the ``keys`` groups of ``ours`` (a :func:`~ddlib.results.records.read_records` frame); a
    published cell matches on every key that is a column of the results file (method, arch, ipc).
    The values of each distillation seed are averaged first (:func:`unit_values`), so ``±`` is the
    spread over seeds (over experts for expert records) and ``n`` counts those units.

    Parameters
    ----------
    labels : mapping, optional
        Column title of each metric (default ``"ours: <metric>"``).
    published_metrics : mapping, optional
        Our metric -> the published metric it is compared with (default: the same name);
        ``None`` gives that metric no paper column (e.g. the last epoch, where the paper reports
        the best test point).
    styles : mapping, optional
        Metric -> rounding style of :func:`mean_sd_text` (default ``"g4"``); a published metric
        compared with a ``"percent"`` metric is printed with one decimal too, others as published.

    Returns
    -------
    pandas.DataFrame
        The keys, one column per metric, ``n``, ``scale``, ``dataset``, then
        ``paper <dataset>: <published metric>`` per published data set ("" where the paper has no cell).
    """
    import pandas as pd

    labels = {m: f"ours: {m}" for m in metrics} | dict(labels or {})
    compared = {m: m for m in metrics} | dict(published_metrics or {})
    paper_styles = {compared[m]: style for m, style in reversed(list(dict(styles or {}).items())) if m in compared}
    published = paper_results()
    published = published[(published["paper"] == paper) & (published["table"] == experiment)]
    rows = []
    for key, group in ours.groupby(list(keys), sort=False, dropna=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for metric in metrics:
            values = unit_values(group[group["metric"] == metric])
            row[labels[metric]] = mean_sd_text(values, dict(styles or {}).get(metric, "g4"))
        row.update(n=_units_text(group, metrics), scale=", ".join(sorted(group["scale"].unique())),
                   dataset=", ".join(sorted(group["dataset"].unique())))
        for name, cells in published.groupby("dataset", sort=False):
            for k in (k for k in keys if k in ("method", "arch", "ipc")):
                cells = cells[cells[k].astype(str) == _text(row[k])]
            for metric in dict.fromkeys(compared[m] for m in metrics if compared[m] is not None):
                cell = cells[cells["metric"] == metric]
                row[f"paper {name}: {metric}"] = "" if cell.empty else _published_text(
                    cell["value"].iloc[0], cell["std"].iloc[0], paper_styles.get(metric))
        rows.append(row)
    return pd.DataFrame(rows)


def _zca_text(settings: ScaleSettings) -> str:
    """Whether the distillation whitens (ZCA), per IPC as ``ScaleSettings.mtt_config`` resolves it."""
    texts = ["yes" if settings.mtt_config(ipc).zca else "no" for ipc in settings.ipcs]
    if len(set(texts)) == 1:
        return texts[0]
    return f"{', '.join(texts)} (IPC {', '.join(str(i) for i in settings.ipcs)})"


def settings_table(settings: ScaleSettings, extra: Mapping[str, tuple[Any, Any]] | None = None,
                   paper: ScaleSettings | None = None):
    """Every setting of this run beside the paper scale's, with a ``changed`` flag.

    ``None`` never shows: it is spelled out as :func:`ddlib.chapters.reporting.settings_table` does ("all"
    images, the iterations an ablation row inherits, and the values MTT's published table gives
    per IPC for the distillation settings left to it, e.g. ``lr_img`` at the paper scale). A
    ``zca`` row says per IPC whether the distillation whitens.

    Parameters
    ----------
    settings : ScaleSettings
        This run's settings.
    extra : mapping, optional
        More rows, ``name -> (this run, paper)`` (e.g. the chapter's own choices).
    paper : ScaleSettings, optional
        The paper scale's settings (default ``SCALES["paper"]``).

    Returns
    -------
    pandas.DataFrame
        Columns ``setting``, ``what it sets``, ``this run``, ``paper``, ``changed`` ("yes" or "").
    """
    import pandas as pd

    from ddlib.chapters.reporting import settings_table as described

    paper = SCALES["paper"] if paper is None else paper
    table = described(settings, "run", paper).reset_index().rename(columns={"this run (run)": "this run"})
    rows = [{"setting": "zca", "what it sets": "ZCA whitening of the images distilled",
             "this run": _zca_text(settings), "paper": _zca_text(paper)}]
    rows += [{"setting": name, "what it sets": "this chapter's choice", "this run": str(ours), "paper": str(theirs)}
             for name, (ours, theirs) in (extra or {}).items()]
    table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)[["setting", "what it sets", "this run", "paper"]]
    return table.assign(changed=["yes" if a != b else "" for a, b in zip(table["this run"], table["paper"])])
