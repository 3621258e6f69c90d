"""Reporting helpers of the AST chapter (``notebooks/ast.py``): figure series, metrics of curves, tables.

Split from :mod:`ddlib.ast_experiments` (which re-exports everything here): Fig. 7's
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

from .experiments import SCALES, Recorder, ScaleSettings
from .results import Record, collect_provenance, paper_results

__all__ = ["best_so_far", "first_reaching", "coefficient_of_variation", "relative_jitter", "record_series",
           "beside_paper", "unit_values", "settings_table"]


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
    provenance; returns the values recorded. :meth:`ddlib.recorder.Recorder.add` rewrites the file per number.

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


def _mean_std(values) -> str:
    """``"mean ± sd"`` (sample sd, ddof 1, over the units) or the mean alone for one unit."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return ""
    return f"{values.mean():.4g}" if len(values) == 1 else f"{values.mean():.4g} ± {values.std(ddof=1):.2g}"


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
                 published_metrics: Mapping[str, str | None] | None = None):
    """Our records (mean ± sd over units) beside the published cells of ``experiment``.

    Rows are the ``keys`` groups of ``ours`` (a :func:`~ddlib.results.read_records` frame); a
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

    Returns
    -------
    pandas.DataFrame
        The keys, one column per metric, ``n``, ``scale``, ``dataset``, then
        ``paper <dataset>: <published metric>`` per published data set ("" where the paper has no cell).
    """
    import pandas as pd

    labels = {m: f"ours: {m}" for m in metrics} | dict(labels or {})
    compared = {m: m for m in metrics} | dict(published_metrics or {})
    published = paper_results()
    published = published[(published["paper"] == paper) & (published["table"] == experiment)]
    rows = []
    for key, group in ours.groupby(list(keys), sort=False, dropna=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for metric in metrics:
            row[labels[metric]] = _mean_std(unit_values(group[group["metric"] == metric]))
        row.update(n=_units_text(group, metrics), scale=", ".join(sorted(group["scale"].unique())),
                   dataset=", ".join(sorted(group["dataset"].unique())))
        for name, cells in published.groupby("dataset", sort=False):
            for k in (k for k in keys if k in ("method", "arch", "ipc")):
                cells = cells[cells[k].astype(str) == _text(row[k])]
            for metric in dict.fromkeys(compared[m] for m in metrics if compared[m] is not None):
                cell = cells[cells["metric"] == metric]
                row[f"paper {name}: {metric}"] = "" if cell.empty else f"{cell['value'].iloc[0]:g}" + (
                    f" ± {cell['std'].iloc[0]:g}" if pd.notna(cell["std"].iloc[0]) else "")
        rows.append(row)
    return pd.DataFrame(rows)


def settings_table(settings: ScaleSettings, extra: Mapping[str, tuple[Any, Any]] | None = None):
    """Every setting of this run beside the paper scale's, with a ``shrunk`` flag.

    ``extra`` adds rows ``name -> (this run, paper)`` (e.g. the chapter's own choices).
    """
    import pandas as pd

    paper = SCALES["paper"]
    rows = [(f.name, getattr(settings, f.name), getattr(paper, f.name)) for f in dataclasses.fields(settings)]
    rows += [(name, ours, theirs) for name, (ours, theirs) in (extra or {}).items()]
    return pd.DataFrame([{"setting": name, "this run": str(ours), "paper": str(theirs),
                          "changed": "yes" if str(ours) != str(theirs) else ""} for name, ours, theirs in rows])
