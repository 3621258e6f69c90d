"""Seeded comparisons: what every chapter records per distillation seed, and the verdict on a claim.

A compared quantity comes from several independent distillation seeds (``ScaleSettings.seeds``),
each synthetic set evaluated by ``num_eval`` networks. :func:`record_evaluation` writes one
record per network, with the last-epoch accuracy (metric ``test_acc``) and the best test
accuracy over the protocol's test points (``test_acc_best``), tagged with the distillation
seed and the network's index. :func:`compare_methods` reads them back, pairs two methods per
seed (:func:`ddlib.results.records.paired_samples` averages each set's networks first, so the unit is
the seed) and returns the :class:`~ddlib.results.verdicts.Verdict` of "A beats B" (or "A less than B").
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ddlib.evaluation.protocols import EvalResult
from ddlib.results.recorder import Recorder
from ddlib.results.records import paired_samples, read_records
from ddlib.results.verdicts import Verdict, paired_verdict

__all__ = ["STATISTIC_METRICS", "record_evaluation", "method_values", "compare_methods", "mean_text"]

#: Record metric of each evaluation statistic: the last epoch (MTT, MCT) or the best test point
#: (AST's and TGDD's code).
STATISTIC_METRICS = {"last": "test_acc", "best": "test_acc_best"}


def record_evaluation(recorder: Recorder, experiment: str, method: str, result: EvalResult | Mapping[str, Any], *,
                      distill_seed: int, ipc: int | None = None, arch: str = "ConvNet",
                      config: Mapping[str, Any] | None = None) -> float:
    """Record every evaluation network's last and best accuracy (percent) of one synthetic set.

    Parameters
    ----------
    result : EvalResult or its ``to_dict()``
        ``last`` and ``best`` hold one accuracy in ``[0, 1]`` per network.
    distill_seed : int
        The distillation seed that made the set (also the evaluation seed: paired design).

    Returns
    -------
    float
        Mean over the networks of the protocol's own statistic (``result.statistic``), in percent.
    """
    values = result.to_dict() if isinstance(result, EvalResult) else dict(result)
    last, best = list(values["last"]), list(values.get("best") or values["last"])
    if len(last) != len(best) or not last:
        raise ValueError(f"{experiment}/{method}: expected one last and one best accuracy per network; "
                         f"got {len(last)} and {len(best)}")
    statistic = values.get("statistic", "last")
    for index, (acc_last, acc_best) in enumerate(zip(last, best)):
        for metric, acc in ((STATISTIC_METRICS["last"], acc_last), (STATISTIC_METRICS["best"], acc_best)):
            recorder.add(experiment, method, metric, 100 * float(acc), ipc=ipc, arch=arch, distill_seed=distill_seed,
                         eval_index=index, config={**dict(config or {}), "statistic": statistic})
    return 100 * float(np.mean(best if statistic == "best" else last))


def _rows(records: Any, experiment: str, metric: str, match: Mapping[str, Any]):
    rows = records[(records["experiment"] == experiment) & (records["metric"] == metric)]
    for key, value in match.items():
        rows = rows[rows[key] == value]
    return rows


def method_values(recorder: Recorder, experiment: str, method: str, *, metric: str = "test_acc",
                  **match: Any) -> np.ndarray:
    """Per-seed values of ``method`` (each seed's networks averaged), sorted by distillation seed."""
    rows = _rows(read_records(recorder.path), experiment, metric, {"method": method, **match})
    if rows.empty:
        raise ValueError(f"no records of {experiment}/{method}/{metric} {match or ''} in {recorder.path}")
    return rows.groupby("distill_seed")["value"].mean().sort_index().to_numpy(dtype=np.float64)


def compare_methods(recorder: Recorder, experiment: str, claim: str, a: str, b: str, *, metric: str = "test_acc",
                    direction: str = "greater", unit: str = "points", **match: Any) -> Verdict:
    """Verdict on "``a`` beats ``b``" (``direction="greater"``) from this run's records of ``experiment``.

    ``match`` filters further columns (``ipc=1``, ``arch="VGG11"``). The two methods must have
    been evaluated with the same distillation seeds and networks; the unit is the seed.
    """
    rows = _rows(read_records(recorder.path), experiment, metric, match)
    values_a, values_b = paired_samples(rows, a, b)
    return paired_verdict(claim, values_a, values_b, direction=direction, names=(a, b), unit=unit)


def mean_text(values: np.ndarray, unit: str = "%") -> str:
    """``"81.2 % ± 1.3 (3 seeds)"``: mean and standard deviation over seeds."""
    values = np.asarray(values, dtype=np.float64)
    spread = f" ± {values.std(ddof=1):.1f}" if len(values) > 1 else ""
    return f"{values.mean():.1f} {unit}{spread} ({len(values)} seed{'s' if len(values) != 1 else ''})"
