"""The MCT chapter's set-up and its recorded runs, one call per notebook step.

The notebook of the MCT chapter reads as a list of steps; this module holds the steps that are
more than a line or two, so each cell is a call and a display:

* :data:`EXPERIMENTS` (``FIG_A`` ... ``TAB_F``): the names the chapter records under;
* :func:`chapter_plan`: the run's IPCs, seeds, early checkpoint, evaluation and checkpoint
  folder, and the distiller settings of each row (:class:`ChapterPlan`);
* :func:`record_storage`: Table (b), the buffers' sizes measured on disk and computed;
* :func:`distill_main`, :func:`stopped_runs`: MTT and MCT at every IPC and seed, recorded for
  Table (d) and Figure (c);
* :data:`ABLATIONS`, :func:`ablation_methods`: the rows of Table (e) a scale runs;
* :func:`record_agreement`: Table (f), the TESLA against the exact image gradient.

The runs themselves are :mod:`ddlib.chapters.mct_runs`' (seeded, paired) and
:mod:`ddlib.chapters.mct_experiments`'; the verdict sentences are in :mod:`ddlib.chapters.mct_claims`.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from ddlib.chapters.dry_run import probe_iterations
from ddlib.chapters.mct_experiments import gradient_agreement, paper_storage
from ddlib.chapters.mct_runs import chapter_config, distill_seeds, early_iteration, record_initial_sets, record_runs
from ddlib.chapters.scales import ScaleSettings
from ddlib.data.dataset import ImageDataset
from ddlib.evaluation.runner import EvalConfig
from ddlib.methods.distill_loop import DistillResult
from ddlib.methods.mtt_config import MTTConfig
from ddlib.methods.synthetic import SyntheticSet
from ddlib.results.recorder import Recorder
from ddlib.trajectories.convexified import storage_bytes
from ddlib.trajectories.experts import ExpertConfig

__all__ = ["FIG_A", "TAB_B", "FIG_C", "TAB_D", "TAB_E", "TAB_F", "EXPERIMENTS", "ChapterPlan", "chapter_plan",
           "record_storage", "distill_main", "stopped_runs", "ABLATIONS", "ablation_methods", "AGREEMENT_METRICS",
           "record_agreement"]

FIG_A = "Figure (a) accuracy along trajectories"
TAB_B = "Table (b) storage"
FIG_C = "Figure (c) convergence"
TAB_D = "Table (d) accuracy"
TAB_E = "Table (e) ablations"
TAB_F = "Table (f) TESLA vs exact gradient"
#: The chapter's experiments in the order of the page: the names its records carry.
EXPERIMENTS = (FIG_A, TAB_B, FIG_C, TAB_D, TAB_E, TAB_F)

#: Table (e)'s rows: name -> (convexified variant, distiller changes from MCT's main row).
ABLATIONS = {"MCT w/o continuous sampling": ("path-2", {"sampling": "integer"}),
             "MCT, uniform lambda": ("uniform-2", {}), "MCT, authors' waypoints": ("path-4", {})}
#: Table (f)'s measures, in the order they are recorded (:func:`record_agreement`).
AGREEMENT_METRICS = ("cosine", "relative_difference", "norm_exact", "norm_tesla", "lr_grad_exact",
                     "lr_grad_tesla")
# The paper's data sets as the storage table names them.
_PAPER_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "tinyimagenet": "TinyImageNet"}
_SCALES = ("smoke", "mini", "paper")


@dataclasses.dataclass(frozen=True)
class ChapterPlan:
    """What every step of the chapter shares once the scale's settings are known.

    Attributes
    ----------
    settings : ScaleSettings
        The scale's preset with the chapter's overrides.
    scale : str
        ``"smoke"``, ``"mini"`` or ``"paper"``: at ``"paper"`` MCT's rows take its run file's values.
    ipcs : tuple of int
        The IPCs of the run; the first (:attr:`ipc`) is the one of Figure (c), Tables (e) and (f).
    seeds : tuple of int
        The distillation seeds (each also the evaluation seed of its sets).
    early : int
        The early checkpoint of Figure (c) (:func:`~ddlib.chapters.mct_runs.early_iteration`).
    eval_config : EvalConfig
        The evaluation of every synthetic set.
    checkpoints : Path
        The folder of the distillation checkpoints (shared by the chapter's runs, resumed).
    """

    settings: ScaleSettings
    scale: str
    ipcs: tuple[int, ...]
    seeds: tuple[int, ...]
    early: int
    eval_config: EvalConfig
    checkpoints: Path

    @property
    def ipc(self) -> int:
        """The first IPC: the one of the convergence, ablation and gradient sections."""
        return self.ipcs[0]

    def config(self, ipc: int, *, mct: bool, **changes: Any) -> MTTConfig:
        """The distiller settings of the MTT (``mct=False``) or MCT row at ``ipc``, with ``changes``
        (:func:`~ddlib.chapters.mct_runs.chapter_config`)."""
        return chapter_config(self.settings, ipc, mct=mct, scale=self.scale, **changes)

    def expert_config(self) -> ExpertConfig:
        """The chapter's experts (MTT's recipe), long enough for the longest window its rows sample.

        The scale's ``expert_epochs_total`` epochs, or more where a row's start epochs and matched
        epochs reach past them (MCT's run file at paper scale: start epoch up to 4, then 6 epochs;
        a paper-scale dry run's experts are shorter).
        """
        needed = max(c.max_start_epoch + c.expert_epochs for ipc in self.ipcs
                     for c in (self.config(ipc, mct=False), self.config(ipc, mct=True)))
        return self.settings.expert_config("mtt", epochs=max(self.settings.expert_epochs_total, needed))

    def eval_at(self, ipc: int) -> list[int]:
        """The iterations before the end at which the main runs of ``ipc`` are evaluated:
        ``[early]`` at the first IPC when the early checkpoint comes before the end, else none."""
        return [self.early] if ipc == self.ipc and self.early < self.settings.iterations else []


def chapter_plan(settings: ScaleSettings, scale: str, artifacts_dir: str | os.PathLike) -> ChapterPlan:
    """The chapter's :class:`ChapterPlan` for ``settings`` at ``scale``.

    Parameters
    ----------
    settings : ScaleSettings
        This run's settings (:attr:`ddlib.chapters.session.ChapterRun.settings`).
    scale : str
        ``"smoke"``, ``"mini"`` or ``"paper"``.
    artifacts_dir : path-like
        The caches shared by chapters; the checkpoints go to ``artifacts_dir/mct-checkpoints``.

    Raises
    ------
    ValueError
        ``scale`` is not a scale's name, or ``settings`` holds no IPC.
    """
    if scale not in _SCALES:
        raise ValueError(f"scale={scale!r}: expected one of {_SCALES}")
    if not settings.ipcs:
        raise ValueError(f"settings.ipcs={settings.ipcs!r}: expected at least one IPC")
    return ChapterPlan(settings=settings, scale=scale, ipcs=tuple(int(i) for i in settings.ipcs),
                       seeds=tuple(settings.seeds), early=early_iteration(settings),
                       eval_config=settings.eval_config(), checkpoints=Path(artifacts_dir) / "mct-checkpoints")


def record_storage(recorder: Recorder, experiment: str, buffers: Mapping[str, tuple[Any, str]], store: Any,
                   num_experts: int, *, waypoints: int = 4) -> dict[str, str]:
    """Record Table (b): each buffer's size on disk and from its tensors, and the paper's buffers.

    Parameters
    ----------
    buffers : mapping
        Row name -> (expert source, kind), kind ``"full"`` (MTT's store: every epoch),
        ``"convexified"`` (2 models) or ``"waypoints"``; the sources have ``experts`` (each with
        ``nbytes``) and, but for ``"full"``, ``waypoint_epochs``.
    store : TrajectoryStore
        MTT's store the buffers come from (its epochs, layout, dtype and parameter count).
    num_experts : int
        Experts per buffer.
    waypoints : int
        Stored models of the authors' code (the ``"waypoints"`` kind's computed size).

    Returns
    -------
    dict
        Kind -> row name (the rows of the paper's data sets, metric ``buffer_storage_mb``, are
        recorded under the row of their kind: 100 experts of 50 epochs of MTT's ConvNet).
    """
    kinds = {kind: method for method, (_, kind) in buffers.items()}
    if set(kinds) != {"full", "convexified", "waypoints"} or len(kinds) != len(buffers):
        raise ValueError(f"buffers of kinds {sorted(k for _, k in buffers.values())}: expected one each of "
                         "'convexified', 'full' and 'waypoints'")
    K = store.num_epochs
    size = dict(num_layers=len(store.layout.names), bytes_per_param=store.dtype.itemsize, epochs=K,
                waypoints=waypoints)
    for method, (source, kind) in buffers.items():
        stored = list(source.waypoint_epochs) if kind != "full" else list(range(K + 1))
        recorder.add(experiment, method, "measured_mb", sum(e["nbytes"] for e in source.experts) / 2**20,
                     config={"experts": num_experts, "epochs": K, "stored_epochs": stored})
        recorder.add(experiment, method, "computed_mb", storage_bytes(
            store.num_params, num_experts, kind=kind, **size) / 2**20, config={"experts": num_experts, "epochs": K})
    # MTT's depth-4 ConvNet on Tiny ImageNet, and the depth-3 one the authors' figure matches
    rows = paper_storage() + [r for r in paper_storage(depths={"tinyimagenet": 3}) if r["dataset"] == "tinyimagenet"]
    for row in rows:
        depth_3 = row["dataset"] == "tinyimagenet" and row["depth"] == 3
        name = _PAPER_NAMES[row["dataset"]] + (" (depth 3)" if depth_3 else "")
        recorder.add(experiment, kinds[row["buffer"]], "buffer_storage_mb", row["mb"],
                     config={"for_dataset": name, "depth": row["depth"], "computed": True,
                             "num_params": row["num_params"], "num_experts": 100, "epochs": 50})
    return kinds


def distill_main(recorder: Recorder, data: ImageDataset, sgd: Any, convex: Any, plan: ChapterPlan, *,
                 device: str | torch.device = "cpu") -> dict[int, dict[tuple[str, int], DistillResult]]:
    """Distil MTT (from ``sgd``) and MCT (from ``convex``) at every IPC and seed; record them.

    At each IPC of ``plan``: both methods with every seed
    (:func:`~ddlib.chapters.mct_runs.distill_seeds`, evaluated at :meth:`ChapterPlan.eval_at`),
    recorded under ``TAB_D``, then the random real images both start from (method
    ``"Random"``), under ``TAB_D`` and, at the first IPC, ``FIG_C``. Last, the first IPC's
    runs at the early checkpoint and at the end, under ``FIG_C`` as ``"MCT, 60 iterations"``.

    Returns
    -------
    dict
        IPC -> ``(method, seed) -> DistillResult``.
    """
    methods = {ipc: {"MTT": (sgd, plan.config(ipc, mct=False)), "MCT": (convex, plan.config(ipc, mct=True))}
               for ipc in plan.ipcs}
    runs = {}
    for ipc in plan.ipcs:
        runs[ipc] = distill_seeds(data, methods[ipc], plan.seeds, eval_config=plan.eval_config,
                                  folder=plan.checkpoints, eval_at=plan.eval_at(ipc), device=device)
        record_runs(recorder, TAB_D, runs[ipc], ipc=ipc)
        record_initial_sets(recorder, [TAB_D] + [FIG_C] * (ipc == plan.ipc), data, sgd, methods[ipc]["MTT"][1],
                            plan.seeds, eval_config=plan.eval_config, device=device)
    for iteration in (plan.early, plan.settings.iterations):
        record_runs(recorder, FIG_C, runs[plan.ipc], ipc=plan.ipc, iteration=iteration, at_label=True)
    return runs


def stopped_runs(runs: Mapping[int, Mapping[tuple[str, int], DistillResult]]) -> dict[tuple[str, int], str]:
    """``(method, seed) -> reason`` of every run of :func:`distill_main` that stopped early
    (non-finite loss); empty when all ran to the end."""
    return {key: r.stopped_reason for by_ipc in runs.values() for key, r in by_ipc.items() if r.stopped}


def ablation_methods(convex: Mapping[str, Any], plan: ChapterPlan,
                     rows: Iterable[str] | None = None) -> tuple[dict[str, tuple[Any, MTTConfig]], list[str]]:
    """Table (e)'s runs at the first IPC: MCT with one change each, for the ablations' length.

    Parameters
    ----------
    convex : mapping
        Variant name (``"path-2"``, ``"uniform-2"``, ``"path-4"``) -> convexified expert source.
    rows : iterable of str, optional
        The rows of :data:`ABLATIONS` this scale runs (default: all).

    Returns
    -------
    (dict, list of str)
        Row name -> (source, config) for :func:`~ddlib.chapters.mct_runs.distill_seeds`, in
        :data:`ABLATIONS`' order; the names of the rows left out.

    Raises
    ------
    ValueError
        A row is not in :data:`ABLATIONS`.
    """
    rows = tuple(ABLATIONS) if rows is None else tuple(rows)
    unknown = [r for r in rows if r not in ABLATIONS]
    if unknown:
        raise ValueError(f"ablation rows {unknown}: expected names from {list(ABLATIONS)}")
    length = plan.settings.ablation_length
    methods = {name: (convex[variant], plan.config(plan.ipc, mct=True, iterations=length, **changes))
               for name, (variant, changes) in ABLATIONS.items() if name in rows}
    return methods, [name for name in ABLATIONS if name not in rows]


def record_agreement(recorder: Recorder, experiment: str, data: ImageDataset, source: Any, config: MTTConfig,
                     seed: int, starts: Mapping[str, SyntheticSet | None], *, ipc: int, iterations: int | None = None,
                     device: str | torch.device = "cpu") -> None:
    """Record Table (f): the TESLA and the exact image gradient on the same iterations, per start.

    Every measure of :data:`AGREEMENT_METRICS` is recorded per (start, iteration) as method
    ``"MCT"``, with ``images``, ``iteration`` and ``start_epoch`` in its provenance.

    Parameters
    ----------
    starts : mapping
        Name of the starting images -> the set to start from (``None``: the distiller's initial
        real images); :func:`~ddlib.chapters.mct_experiments.gradient_agreement` from each.
    iterations : int, optional
        Iterations compared per start; default 3, or fewer when ``config``'s distillations are shorter
        than 4 iterations (a dry run), never more than the runs themselves take after their first.
    """
    if iterations is None:
        iterations = probe_iterations(config.iterations)
    for images, start_from in starts.items():
        for row in gradient_agreement(data, source, config, seed, iterations=iterations, start_from=start_from,
                                      device=device):
            for metric in AGREEMENT_METRICS:
                recorder.add(experiment, "MCT", metric, row[metric], ipc=ipc, config=config, distill_seed=seed,
                             images=images, iteration=row["iteration"], start_epoch=row["start_epoch"])
