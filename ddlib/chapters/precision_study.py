"""Does bf16 mixed precision change accuracy at the book's scale, and how much faster is it?

:func:`precision_study` measures three uses of ``precision="bf16"`` (:mod:`ddlib.core.precision`:
forward passes under bfloat16 autocast, parameters, gradients and losses in float32) against
float32, paired by seed over ``settings.seeds``, in one process with float32 and bf16 run back
to back for every seed (so a slow drift of a shared machine hits both alike):

* **expert training**: one expert per seed with the scale's MTT expert config, trained twice
  from the same seed; its final test accuracy and wall time per epoch;
* **evaluation**: one float32 DM synthetic set per seed at the scale's first IPC, evaluated with
  the scale's MTT protocol in float32 and in bf16 (same networks, same seed); accuracy and time;
* **DM embedding**: the same DM distillation with ``precision="bf16"``, its set evaluated in
  float32, against the float32 set's float32 evaluation; accuracy and distillation time.

Each gets a two-sided verdict (:func:`~ddlib.results.verdicts.paired_verdict` of "bf16 raises
accuracy", whose "does not hold" means bf16 lowers it and whose "inconclusive at this scale"
means no change was detected: the interval then bounds the change this scale could detect).
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from ddlib.chapters.scales import ScaleSettings
from ddlib.core.runtime import derive_seed
from ddlib.data import ImageDataset
from ddlib.evaluation.runner import evaluate_synthetic
from ddlib.results.recorder import Recorder
from ddlib.results.seeded import record_evaluation
from ddlib.results.verdicts import Verdict, paired_verdict
from ddlib.trajectories.experts import train_expert

__all__ = ["EXPERIMENTS", "TABLE_FORMATS", "PrecisionComparison", "PrecisionStudy", "precision_study", "outcome_text"]

#: The three measurements: record experiment name -> what is compared.
EXPERIMENTS = {"bf16: expert training": "expert trained in bf16 vs float32 (same seed)",
               "bf16: evaluation": "float32 DM set evaluated in bf16 vs float32 (same networks)",
               "bf16: DM embedding": "DM set distilled with a bf16 embedding vs float32, evaluated in float32"}
#: How the page prints the columns of :meth:`PrecisionStudy.table` (pandas ``Styler.format``).
TABLE_FORMATS = {"fp32 acc %": "{:.1f}", "bf16 acc %": "{:.1f}", "bf16 - fp32 (points)": "{:+.2f}",
                 "detectable +-": "{:.2f}", "time bf16 / fp32": "{:.2f}"}
_CLAIM = "bf16 raises accuracy"  # two-sided reading: "does not hold" = lowers it, "inconclusive" = no change seen


def outcome_text(verdict: Verdict) -> str:
    """The two-sided reading of a verdict on the claim "bf16 raises accuracy": raises, lowers, or no change detected."""
    return {"holds": "bf16 raises accuracy", "does not hold": "bf16 lowers accuracy"}.get(
        verdict.verdict, "no change detected")


@dataclasses.dataclass(frozen=True)
class PrecisionComparison:
    """float32 against bf16 for one use, per seed.

    Attributes
    ----------
    experiment : str
        A key of :data:`EXPERIMENTS`.
    seeds : tuple of int
    fp32, bf16 : tuple of float, shape (n_seeds,)
        Test accuracy in percent per seed (evaluations: mean over the protocol's networks).
    fp32_s, bf16_s : tuple of float, shape (n_seeds,)
        Seconds per seed (experts: per epoch; DM sets: the run that made the checkpoint); NaN where not measured.
    time_unit : str
        What the seconds measure ("s per epoch", "s per evaluation", "s per distillation").
    verdict : Verdict
        :func:`~ddlib.results.verdicts.paired_verdict` of "bf16 raises accuracy", effect bf16 - fp32 in points.
    """

    experiment: str
    seeds: tuple[int, ...]
    fp32: tuple[float, ...]
    bf16: tuple[float, ...]
    fp32_s: tuple[float, ...]
    bf16_s: tuple[float, ...]
    time_unit: str
    verdict: Verdict

    @property
    def speed_ratio(self) -> float:
        """Median over seeds of bf16 seconds / float32 seconds (below 1: bf16 faster); NaN if no seed timed both."""
        ratios = [b / f for f, b in zip(self.fp32_s, self.bf16_s) if math.isfinite(f) and math.isfinite(b) and f > 0]
        return statistics.median(ratios) if ratios else math.nan

    @property
    def detectable(self) -> float:
        """Half-width of the verdict's interval in points: the smallest change this scale could detect."""
        return (self.verdict.high - self.verdict.low) / 2

    def row(self) -> dict[str, Any]:
        """One row of :meth:`PrecisionStudy.table`."""
        mean = statistics.fmean
        return {"measurement": self.experiment.split(": ", 1)[1], "fp32 acc %": mean(self.fp32),
                "bf16 acc %": mean(self.bf16), "bf16 - fp32 (points)": self.verdict.effect,
                "90 % CI": f"[{self.verdict.low:.2f}, {self.verdict.high:.2f}]",
                "detectable +-": self.detectable, "n": self.verdict.n, "verdict": outcome_text(self.verdict),
                "time bf16 / fp32": self.speed_ratio, "timed": self.time_unit}


@dataclasses.dataclass(frozen=True)
class PrecisionStudy:
    """The three comparisons of :func:`precision_study` and the study's own wall time."""

    comparisons: tuple[PrecisionComparison, ...]
    wall_s: float

    def table(self):
        """pandas.DataFrame: one row per comparison (:meth:`PrecisionComparison.row`), indexed by measurement."""
        import pandas as pd

        return pd.DataFrame([c.row() for c in self.comparisons]).set_index("measurement")

    @property
    def unchanged_and_faster(self) -> bool:
        """No accuracy change detected in any comparison and every timed one faster in bf16."""
        timed = [c.speed_ratio for c in self.comparisons if math.isfinite(c.speed_ratio)]
        return (all(outcome_text(c.verdict) == "no change detected" for c in self.comparisons)
                and bool(timed) and all(r < 1 for r in timed))

    def caption(self, scale: str, dataset: str) -> str:
        """The table's caption at ``scale`` on ``dataset``, followed by :meth:`conclusion`."""
        seeds = list(self.comparisons[0].seeds) if self.comparisons else []
        return (f"*Table: bf16 against float32 at scale {scale} ({dataset}, seeds {seeds}; the study took "
                f"{self.wall_s:.0f} s). Accuracies are means over the seeds; the interval is the 90 % "
                f"interval of the mean paired difference in points; the time ratio is the median over the "
                f"seeds.* {self.conclusion()}")

    def conclusion(self) -> str:
        """One sentence: the book's chapters run float32, and what this study found."""
        if self.unchanged_and_faster:
            return ("No accuracy change was detected at this scale and bf16 was faster in every timed "
                    "measurement, so the chapters could run in bf16; they still run in float32 until that "
                    "is decided, and every recorded number names its precision.")
        changed = [c.row()["measurement"] for c in self.comparisons if outcome_text(c.verdict) != "no change detected"]
        slower = [c.row()["measurement"] for c in self.comparisons if not c.speed_ratio < 1]
        found = ([f"bf16 changed the accuracy of {', '.join(changed)}"] if changed else []) + (
            [f"bf16 was not measured faster in {', '.join(slower)}"] if slower else [])
        return f"The book's chapters run in float32: at this scale {' and '.join(found)}."


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _distill_dm(data: ImageDataset, settings: ScaleSettings, ipc: int, seed: int, precision: str,
                artifacts_dir: Path, device: Any, options: Mapping[str, Any] | None = None):
    """DM set of ``seed`` (``ddlib.distill(data, "dm", ...)``'s config) and the seconds its distillation took.

    Checkpointed by :func:`~ddlib.chapters.tgdd_analysis.timed_distillation`, which keeps the
    measured time beside the checkpoint: a set read back from a finished checkpoint reports the
    time of the run that made it, not the time of loading it.
    """
    from ddlib.chapters.tgdd_analysis import timed_distillation
    from ddlib.methods.dm import DistributionMatching, DMConfig

    config = DMConfig(ipc=ipc, iterations=settings.dm_iterations, width=settings.width, precision=precision)
    config = config.replace(**dict(options or {}))
    method = DistributionMatching(data, config, seed, device=device)
    folder = artifacts_dir / "precision_study"
    folder.mkdir(parents=True, exist_ok=True)
    result, cost = timed_distillation(method, config.iterations, folder, device=device,
                                      prefix=f"dm-{precision}-{data.name}-ipc{ipc}-seed{seed}-")
    return result.synthetic, cost.wall_time_s


def _compare(recorder: Recorder, experiment: str, seeds, fp32, bf16, fp32_s, bf16_s, unit: str) -> PrecisionComparison:
    verdict = paired_verdict(_CLAIM, bf16, fp32, names=("bf16", "fp32"), unit="points")
    comparison = PrecisionComparison(experiment, tuple(seeds), tuple(fp32), tuple(bf16), tuple(fp32_s),
                                     tuple(bf16_s), unit, verdict)
    recorder.add(experiment, f"verdict: {_CLAIM}", "precision_verdict", verdict.effect,
                 config={**verdict.to_dict(), "outcome": outcome_text(verdict),
                         "speed_ratio": None if math.isnan(comparison.speed_ratio) else comparison.speed_ratio,
                         "detectable": comparison.detectable if math.isfinite(comparison.detectable) else None})
    return comparison


def precision_study(settings: ScaleSettings, data: ImageDataset, recorder: Recorder, *, seed: int, device: Any,
                    artifacts_dir: str | Path, dm_options: Mapping[str, Any] | None = None) -> PrecisionStudy:
    """Measure bf16 against float32 for expert training, evaluation and the DM embedding.

    Parameters
    ----------
    settings : ScaleSettings
        The chapter's scale: its ``seeds`` are the paired units, ``expert_config("mtt")`` the
        experts, ``eval_config("mtt")`` the evaluation, ``ipcs[0]``, ``dm_iterations`` and ``width``
        the DM sets.
    data : ImageDataset
        The scale's data set (:func:`~ddlib.chapters.scales.load_scaled_dataset`).
    recorder : Recorder
        Receives every accuracy and time (experiments :data:`EXPERIMENTS`; config ``precision``
        names the precision of each number) and each verdict (metric ``precision_verdict``).
    seed : int
        The run seed: expert ``s`` is trained from ``derive_seed(seed, "precision-expert", s)``.
    device : str or torch.device
    artifacts_dir : str or Path
        The DM sets are checkpointed, with their measured time, under ``artifacts_dir/precision_study/``.
    dm_options : mapping, optional
        :class:`~ddlib.methods.dm.DMConfig` fields replacing ``ddlib.distill``'s DM defaults at this
        scale (e.g. ``batch_real``, ``iterations``); ``None``: those defaults.

    Returns
    -------
    PrecisionStudy
    """
    start = time.perf_counter()
    artifacts_dir, seeds, ipc = Path(artifacts_dir), tuple(settings.seeds), settings.ipcs[0]
    names = list(EXPERIMENTS)
    acc = {(name, p): [] for name in names for p in ("fp32", "bf16")}
    secs = {(name, p): [] for name in names for p in ("fp32", "bf16")}
    eval_config = settings.eval_config("mtt")
    for s in seeds:
        for p in ("fp32", "bf16"):  # (a) experts: same seed, float32 then bf16
            config = settings.expert_config("mtt", precision=p)
            trajectory, seconds = _timed(lambda: train_expert(data, config, derive_seed(seed, "precision-expert", s),
                                                              device=device))
            acc[names[0], p].append(recorder.add(names[0], f"expert {p}", "test_acc",
                                                 100 * trajectory.test_accuracy[-1], distill_seed=s,
                                                 config={"precision": p, "epochs": config.epochs}))
            secs[names[0], p].append(recorder.add(names[0], f"expert {p}", "s_per_epoch", seconds / config.epochs,
                                                  distill_seed=s, config={"precision": p}))
        sets = {p: _distill_dm(data, settings, ipc, s, p, artifacts_dir, device, dm_options) for p in ("fp32", "bf16")}
        runs = ((names[1], "fp32", "fp32"), (names[1], "bf16", "fp32"), (names[2], "fp32", "bf16"))
        for name, eval_precision, set_precision in runs:  # (b) one set, two evaluations; (c) bf16 set, fp32 eval
            result, seconds = _timed(lambda: evaluate_synthetic(
                sets[set_precision][0], data, eval_config.replace(precision=eval_precision), seed=s,
                device=device, progress=False))
            p = eval_precision if name == names[1] else set_precision
            method = f"DM {set_precision} set, {eval_precision} evaluation"
            acc[name, p].append(record_evaluation(recorder, name, method, result, distill_seed=s, ipc=ipc,
                                                  config={"precision": p, "set_precision": set_precision,
                                                          "eval_precision": eval_precision}))
            timed = seconds if name == names[1] else sets[set_precision][1]
            secs[name, p].append(math.nan if math.isnan(timed) else recorder.add(
                name, method, "eval_s" if name == names[1] else "distill_s", timed, distill_seed=s, ipc=ipc,
                config={"precision": p}))
        acc[names[2], "fp32"].append(acc[names[1], "fp32"][-1])  # (c)'s baseline: the fp32 set, fp32 evaluation
        secs[names[2], "fp32"].append(sets["fp32"][1] if math.isnan(sets["fp32"][1]) else recorder.add(
            names[2], "DM fp32 set", "distill_s", sets["fp32"][1], distill_seed=s, ipc=ipc, config={"precision": "fp32"}))
    units = ("s per epoch", "s per evaluation", "s per distillation")
    comparisons = tuple(_compare(recorder, name, seeds, acc[name, "fp32"], acc[name, "bf16"], secs[name, "fp32"],
                                 secs[name, "bf16"], unit) for name, unit in zip(names, units))
    return PrecisionStudy(comparisons, time.perf_counter() - start)
