"""Records and verdicts of the AST chapter: what is recorded per unit, and each claim's sentence.

The units of a claim are independent replicates:

* a **distillation seed** for anything measured on a distilled set (accuracy, the inner loss's
  variation, ``syn_lr``'s jitter, time per iteration): each seed's evaluation networks are
  averaged first, and two methods pair by seed (same evaluation networks, paired design);
* an **expert** for the properties of experts (Avg Var, accuracy, input-gradient norm): expert
  ``k`` of every variant is trained from the same seed, so experts pair by index.

Every claim helper computes a :class:`~ddlib.results.verdicts.Verdict` from the recorded values, records
it with :func:`~ddlib.results.recorder.record_claim` and returns the chapter's sentence (markdown).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from ddlib.chapters.ast_experiments import RunOutcome
from ddlib.chapters.ast_reporting import record_series
from ddlib.evaluation.protocols import EvalResult
from ddlib.results.recorder import Recorder, record_claim
from ddlib.results.records import paired_samples, read_records
from ddlib.results.seeded import STATISTIC_METRICS, record_evaluation
from ddlib.results.verdicts import Verdict, paired_verdict, threshold_verdict

__all__ = ["BEST", "LAST", "STATISTIC_LABELS", "record_outcomes", "record_per_seed", "record_experts",
           "record_rows", "table_records", "record_curves", "record_history", "history_statistic",
           "verdict_table", "expert_values", "seed_values", "values_at", "strongest", "paired_claim",
           "expert_claim", "ratio_claim", "summary_text"]

#: Record metrics of the two statistics of every evaluated set.
BEST, LAST = STATISTIC_METRICS["best"], STATISTIC_METRICS["last"]
#: What the chapter's tables and sentences call each statistic.
STATISTIC_LABELS = {BEST: "ours: best of tests (as the AST code)", LAST: "ours: last epoch"}
_WORDS = {BEST: "best of tests, as the AST code reports", LAST: "last epoch"}


def record_outcomes(recorder: Recorder, experiment: str, method: str, results: Mapping[int, Any], *,
                    ipc: int | None = None, arch: str = "ConvNet", config: Mapping[str, Any] | None = None) -> float:
    """Record the final evaluation of every seed's set of ``method`` (last and best of every network).

    Parameters
    ----------
    results : mapping
        Distillation seed -> :class:`~ddlib.chapters.ast_experiments.RunOutcome`, :class:`EvalResult` or its dict.

    Returns
    -------
    float
        Mean over seeds of the protocol's own statistic, in percent.
    """
    means = []
    for distill_seed, result in results.items():
        final, base = (result.final, result.record_config()) if isinstance(result, RunOutcome) else (result, {})
        final = final.to_dict() if isinstance(final, EvalResult) else final
        means.append(record_evaluation(recorder, experiment, method, final, distill_seed=distill_seed, ipc=ipc,
                                       arch=arch, config={**base, **dict(config or {})}))
    return float(np.mean(means))


def record_per_seed(recorder: Recorder, experiment: str, method: str, metric: str, values: Mapping[int, float], *,
                    ipc: int | None = None, config: Mapping[str, Any] | None = None) -> None:
    """One record per distillation seed (``values``: seed -> number)."""
    for distill_seed, value in values.items():
        recorder.add(experiment, method, metric, float(value), ipc=ipc, distill_seed=distill_seed, config=config)


def record_experts(recorder: Recorder, experiment: str, method: str, metrics: Mapping[str, Sequence[float]], *,
                   ipc: int | None = None, config: Mapping[str, Any] | None = None) -> None:
    """One record per expert and metric (``metrics``: name -> values of experts ``0..K-1``; the
    index goes into the record's config as ``expert``)."""
    for metric, values in metrics.items():
        for k, value in enumerate(values):
            recorder.add(experiment, method, metric, float(value), ipc=ipc, config={**dict(config or {}), "expert": k})


def record_rows(recorder: Recorder, experiment: str, rows: Mapping[str, Mapping[int, RunOutcome]], *,
                ipc: int | None = None) -> None:
    """:func:`record_outcomes` of every row (``rows``: row name -> distillation seed -> run)."""
    for name, outcomes in rows.items():
        record_outcomes(recorder, experiment, name, outcomes, ipc=ipc)


def table_records(recorder: Recorder, experiment: str, config_columns: Sequence[str] = ()):
    """This run's records of ``experiment`` without its claims, ``ipc`` as int, plus the named
    ``config`` entries as columns (e.g. ``preset``), ready for :func:`~ddlib.chapters.ast_reporting.beside_paper`."""
    records = read_records(recorder.path)
    rows = records[(records["experiment"] == experiment) & ~records["metric"].isin(["claim_verdict", "claim_holds"])]
    rows = rows.assign(ipc=[int(i) if i == i and i is not None else None for i in rows["ipc"]])
    return rows.assign(**{name: [c.get(name, "") for c in rows["config"]] for name in config_columns})


def record_curves(recorder: Recorder, experiment: str, method: str, metric: str,
                  curves: Mapping[int, tuple[Sequence[Any], Sequence[float]]], *, x_name: str,
                  ipc: int | None = None, config: Mapping[str, Any] | None = None) -> None:
    """A figure's series of every seed (``curves``: seed -> (xs, ys)), one write per seed."""
    for distill_seed, (xs, ys) in curves.items():
        record_series(recorder, experiment, method, metric, xs, ys, x_name=x_name, ipc=ipc,
                      distill_seed=distill_seed, config=config)


def record_history(recorder: Recorder, experiment: str, method: str, outcomes: Mapping[int, RunOutcome],
                   keys: Sequence[str], *, ipc: int | None = None, points: int = 200) -> None:
    """Record the per-iteration ``keys`` of every seed's distillation history as figure series
    (metric = key, ``iteration`` in the config), keeping about ``points`` points per series."""
    for key in keys:
        curves = {}
        for distill_seed, outcome in outcomes.items():
            history = outcome.result.history
            kept = history[:: max(1, len(history) // points)]
            curves[distill_seed] = ([h["iteration"] for h in kept], [h[key] for h in kept])
        record_curves(recorder, experiment, method, key, curves, x_name="iteration", ipc=ipc)


def history_statistic(outcomes: Mapping[int, RunOutcome], key: str, statistic: Any) -> dict[int, float]:
    """Seed -> ``statistic`` (a function of a sequence) of the history's ``key`` over all iterations."""
    return {s: float(statistic([h[key] for h in o.result.history])) for s, o in outcomes.items()}


def verdict_table(recorder: Recorder):
    """Every verdict this run recorded: experiment, claim, kind, n, verdict and our numbers."""
    import pandas as pd

    records = read_records(recorder.path)
    configs = records.loc[records["metric"] == "claim_verdict", "config"]
    rows = records.loc[records["metric"] == "claim_verdict", "experiment"]
    return pd.DataFrame({"experiment": list(rows), **{name: [c[key] for c in configs] for name, key in (
        ("claim", "claim"), ("kind", "kind"), ("n", "n"), ("verdict", "verdict"), ("this run", "ours"))}})


def _rows(recorder: Recorder, experiment: str, metric: str, match: Mapping[str, Any]):
    records = read_records(recorder.path)
    rows = records[(records["experiment"] == experiment) & (records["metric"] == metric)]
    for key, value in match.items():
        rows = rows[rows[key] == value]
    return rows


def expert_values(recorder: Recorder, experiment: str, method: str, metric: str) -> np.ndarray:
    """This run's per-expert values of ``method`` (:func:`record_experts`), ordered by expert index."""
    rows = _rows(recorder, experiment, metric, {"method": method})
    if rows.empty:
        raise ValueError(f"no expert records of {experiment}/{method}/{metric} in {recorder.path}")
    order = np.argsort([c["expert"] for c in rows["config"]], kind="stable")
    return rows["value"].to_numpy(np.float64)[order]


def seed_values(recorder: Recorder, experiment: str, method: str, metric: str, **match: Any) -> dict[int, float]:
    """Seed -> value of ``method`` (each seed's records averaged), from this run's records."""
    rows = _rows(recorder, experiment, metric, {"method": method, **match})
    if rows.empty:
        raise ValueError(f"no records of {experiment}/{method}/{metric} {match or ''} in {recorder.path}")
    return {int(s): float(v) for s, v in rows.groupby("distill_seed")["value"].mean().items()}


def values_at(recorder: Recorder, experiment: str, method: str, metric: str, *, x_name: str, x: Any,
              **match: Any) -> dict[int, float]:
    """Seed -> the value of ``method``'s recorded series (:func:`record_curves`) at ``x_name == x``."""
    rows = _rows(recorder, experiment, metric, {"method": method, **match})
    rows = rows[[c.get(x_name) == x for c in rows["config"]]]
    if rows.empty:
        raise ValueError(f"no point {x_name}={x!r} in the series {experiment}/{method}/{metric}")
    return {int(s): float(v) for s, v in zip(rows["distill_seed"], rows["value"])}


def strongest(recorder: Recorder, experiment: str, methods: Sequence[str], *, metric: str = BEST,
              **match: Any) -> str:
    """The method of ``methods`` with the highest mean over seeds (ties: the first listed)."""
    means = {m: np.mean(list(seed_values(recorder, experiment, m, metric, **match).values())) for m in methods}
    return max(methods, key=lambda m: means[m])


def summary_text(values: Sequence[float], unit: str = "%", units: str = "seeds") -> str:
    """``"81.2 % ± 1.3 (3 seeds)"``: mean and sample sd (ddof 1) over the units."""
    values = np.asarray(values, dtype=np.float64)
    digits = ".1f" if unit == "%" else ".3g"
    spread = f" ± {values.std(ddof=1):{'.1f' if unit == '%' else '.2g'}}" if len(values) > 1 else ""
    named = units if len(values) != 1 else units[:-1] if units.endswith("s") else units
    return f"{values.mean():{digits}}{' ' + unit if unit else ''}{spread} ({len(values)} {named})"


def _record(recorder: Recorder, experiment: str, verdict: Verdict, ours: str, paper: str, ipc: int | None) -> str:
    return record_claim(recorder, experiment, verdict, ours=ours, paper=paper, ipc=ipc)


def paired_claim(recorder: Recorder, experiment: str, claim: str, a: str, b: str, *, paper: str,
                 metric: str = BEST, direction: str = "greater", ipc: int | None = None, unit: str = "points",
                 value_unit: str = "%", **match: Any) -> str:
    """Verdict on "``a`` beats ``b``" over distillation seeds (paired), recorded; returns the sentence.

    ``metric`` defaults to the best-of-tests accuracy (the AST paper's statistic); ``match``
    filters further columns (``arch="VGG11"``).
    """
    match = {**match, **({"ipc": ipc} if ipc is not None else {})}
    values_a, values_b = paired_samples(_rows(recorder, experiment, metric, match), a, b)
    verdict = dataclasses.replace(paired_verdict(claim, values_a, values_b, direction=direction, names=(a, b),
                                                 unit=unit), n_unit="seeds (paired)")
    ours = f"{a} {summary_text(values_a, value_unit)} vs {b} {summary_text(values_b, value_unit)}"
    return _record(recorder, experiment, verdict, ours + (f" ({_WORDS[metric]})" if metric in _WORDS else ""),
                   paper, ipc)


def expert_claim(recorder: Recorder, experiment: str, claim: str, a: str, b: str, metric: str, *, paper: str,
                 direction: str = "greater", ratio: float | None = None, unit: str = "",
                 source: str | None = None) -> str:
    """Verdict on a claim about experts, the experts as units (expert ``k`` of ``a`` paired with ``b``'s).

    ``ratio=None``: the paired difference ``a_k - b_k`` is ``direction`` zero. ``ratio=r``:
    the ratios ``a_k / b_k`` are ``direction`` ``r`` (on the log scale, e.g. "more than 2x").
    ``source``: the experiment whose expert records are read (default: ``experiment``).
    """
    values_a = expert_values(recorder, source or experiment, a, metric)
    values_b = expert_values(recorder, source or experiment, b, metric)
    if len(values_a) != len(values_b):
        raise ValueError(f"{a!r} has {len(values_a)} experts, {b!r} {len(values_b)}: expected the same experts")
    if ratio is None:
        verdict = paired_verdict(claim, values_a, values_b, direction=direction, names=(a, b), unit=unit)
    else:
        verdict = threshold_verdict(claim, values_a / values_b, ratio, direction=direction, scale="log",
                                    name=f"{metric} ratio {a} / {b}", unit="x")
    verdict = dataclasses.replace(verdict, n_unit="experts" if len(values_a) != 1 else "expert")
    value_unit = "%" if metric == "expert_acc" else ""
    ours = (f"{metric}: {a} {summary_text(values_a, value_unit, 'experts')} vs "
            f"{b} {summary_text(values_b, value_unit, 'experts')}")
    return _record(recorder, experiment, verdict, ours, paper, None)


def ratio_claim(recorder: Recorder, experiment: str, claim: str, a: str, b: str, metric: str, threshold: float, *,
                paper: str, direction: str = "less", ipc: int | None = None) -> str:
    """Verdict on "``a`` / ``b`` is ``direction`` ``threshold``" with one ratio per distillation seed
    (log scale, e.g. Table 8's "AST costs less than 1.5x MTT's time per iteration")."""
    match = {"ipc": ipc} if ipc is not None else {}
    values_a, values_b = paired_samples(_rows(recorder, experiment, metric, match), a, b)
    verdict = threshold_verdict(claim, values_a / values_b, threshold, direction=direction, scale="log",
                                name=f"{metric} ratio {a} / {b}", unit="x")
    verdict = dataclasses.replace(verdict, n_unit="seeds" if len(values_a) != 1 else "seed")
    ours = f"{a} {summary_text(values_a, '')} vs {b} {summary_text(values_b, '')} ({metric})"
    return _record(recorder, experiment, verdict, ours, paper, ipc)
