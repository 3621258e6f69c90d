"""The TGDD chapter's runs over distillation seeds, and its verdicts (Ran et al., AAAI 2026).

:mod:`ddlib.chapters.tgdd_analysis` measures single things (the cost of a run, features of a
snapshot); this module runs the chapter's comparisons with the book's paired design. Every
compared method distils one set per distillation seed ``s`` of ``ScaleSettings.seeds``, and
each set is evaluated with ``evaluate_synthetic(..., seed=s)``: two methods with the same
``s`` are tested by the same evaluation networks (initialisation and data order derive from
``s``). The random-real-image row ("Random") draws its images with seed ``s``. The expert
trajectories are shared by every seed (trained once, from the run seed).

* :class:`ChapterKnobs`, :data:`CHAPTER_KNOBS`: the chapter's own settings per scale;
* :class:`TGDDChapter`: distil, evaluate and record, per seed: the main table, MTT's cost
  probe, the ablation and cross-architecture generalisation; the sets of the analyses;
* :func:`pretraining_costs`: Figure 1's expert pre-training cost per method;
* :func:`analysis_metrics`: the numbers behind Figures 2, 4 and 5 for some sets.

The chapter's verdicts and tables are in :mod:`ddlib.chapters.tgdd_reporting`.

Accuracies in records are percentages; ``test_acc`` is the last epoch's, ``test_acc_best``
the best test point's (the statistic TGDD's code reports; :mod:`ddlib.results.seeded`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ddlib.core.config import Config
from ddlib.methods.coresets import random_coreset
from ddlib.data.dataset import ImageDataset
from ddlib.methods.dm import DistributionMatching, DMConfig
from ddlib.evaluation.protocols import EvalConfig, EvalResult
from ddlib.evaluation.runner import evaluate_synthetic
from ddlib.chapters.scales import ScaleSettings, subset_per_class
from ddlib.trajectories.experts import ExpertConfig, build_expert_model
from ddlib.methods.mtt import TrajectoryMatching
from ddlib.results.recorder import Recorder
from ddlib.results.seeded import record_evaluation
from ddlib.methods.synthetic import SyntheticSet
from ddlib.methods.tgdd import TGDD, TGDDConfig
from ddlib.chapters.run_cost import RunCost
from ddlib.chapters.tgdd_analysis import (activation_ratios, class_silhouette, coverage_distance, expert_cost,
                            feature_correlation_similarity, snapshot_accuracies, snapshot_features,
                            timed_distillation)

__all__ = ["ChapterKnobs", "CHAPTER_KNOBS", "PAPER_EXPERTS", "DISTILLERS", "TGDDChapter", "pretraining_costs",
           "analysis_metrics"]

#: Expert trajectories pre-trained per method in the paper's Figure 1 (5 for TGDD, 100 for
#: FTD, the trajectory matcher it plots; DM trains none).
PAPER_EXPERTS: Mapping[str, int] = MappingProxyType({"DM": 0, "TGDD": 5, "MTT": 100})
#: The distillers the chapter runs (``"Random"`` is the random-real-image row, not distilled).
DISTILLERS = ("DM", "TGDD", "MTT")


@dataclasses.dataclass(frozen=True)
class ChapterKnobs(Config):
    """The TGDD chapter's own settings beside the scale preset; defaults: paper scale.

    Attributes
    ----------
    dm_batch_real, tgdd_batch_real : int
        Real images per class and iteration: DM's paper and code 256, TGDD's code
        (``arg_condense.py``) 128. The ablation uses ``tgdd_batch_real`` for every row.
    main_num_eval : int, optional
        Evaluation networks per set in the main table; ``None``: the scale's ``num_eval``.
    mtt_accuracy : bool
        Distil and evaluate MTT at every IPC and seed (with ``num_experts`` experts);
        ``False``: MTT enters Figure 1's cost only, timed by :meth:`TGDDChapter.mtt_cost_probe`.
    cost_probe_iterations : int
        Iterations of that probe; its time is scaled to ``ScaleSettings.iterations``.
    ablation_num_eval : int, optional
        Evaluation networks per ablation set; ``None``: as ``main_num_eval``.
    cross_archs : tuple of str
        The paper's architecture labels evaluated in the cross-architecture table.
    cross_ipc : int
        IPC of the sets evaluated there (one of the main table's).
    cross_epochs, cross_num_eval, cross_tests, cross_test_per_class : int, optional
        The shortened protocol there: epochs, networks, test points, test images per class
        (``None``: as the main protocol, its test interval, the whole test split).
    analysis_ipc : int
        IPC of the sets behind Figures 2, 4 and 5 (distilled for one seed).
    analysis_iterations : int, optional
        Their distillation iterations; ``None``: the main table's.
    stages : int
        Snapshot epochs of the held-out expert the analyses look through.
    real_per_class : int, optional
        Real training images per class in the analyses; ``None``: all.
    """

    #: Real images per class and iteration of DM (DM, Zhao & Bilen 2023, paper and code: 256).
    dm_batch_real: int = 256
    #: Real images per class and iteration of TGDD, also used by every ablation row
    #: (TGDD's code, ``arg_condense.py --batch_real``: 128).
    tgdd_batch_real: int = 128
    #: Evaluation networks per set in the main table; ``None``: the scale's ``num_eval``.
    main_num_eval: int | None = None
    #: Distil and evaluate MTT at every IPC and seed; ``False``: MTT enters Figure 1's cost only, timed by a probe.
    mtt_accuracy: bool = True
    #: Iterations of MTT's cost probe; its time is scaled to ``ScaleSettings.iterations``.
    cost_probe_iterations: int = 100
    #: Evaluation networks per ablation set; ``None``: as ``main_num_eval``.
    ablation_num_eval: int | None = None
    #: The paper's architecture labels evaluated in the cross-architecture table (default: the paper's table).
    cross_archs: tuple[str, ...] = ("ConvNet-3", "ResNet-10", "DenseNet-121")
    #: IPC of the sets evaluated there, one of the main table's (the paper's cross-architecture table: IPC 50).
    cross_ipc: int = 50
    #: Training epochs of the cross-architecture protocol; ``None``: as the main protocol.
    cross_epochs: int | None = None
    #: Evaluation networks per cross-architecture set; ``None``: as the main protocol.
    cross_num_eval: int | None = None
    #: Test points per cross-architecture run; ``None``: the main protocol's test interval.
    cross_tests: int | None = None
    #: Test images per class in the cross-architecture table; ``None``: the whole test split.
    cross_test_per_class: int | None = None
    #: IPC of the sets behind Figures 2, 4 and 5, distilled for one seed (the paper's Figures 2 and 5: IPC 50).
    analysis_ipc: int = 50
    #: Distillation iterations of those sets; ``None``: the main table's.
    analysis_iterations: int | None = None
    #: Snapshot epochs of the held-out expert the analyses look through.
    stages: int = 5
    #: Real training images per class in the analyses; ``None``: all.
    real_per_class: int | None = 500

    def validate(self) -> None:
        positive = ("dm_batch_real", "tgdd_batch_real", "cost_probe_iterations", "cross_ipc", "analysis_ipc",
                    "stages")
        optional = ("main_num_eval", "ablation_num_eval", "cross_epochs", "cross_num_eval", "cross_tests",
                    "cross_test_per_class", "analysis_iterations", "real_per_class")
        bad = [f"{k}={getattr(self, k)!r}" for k in positive if getattr(self, k) < 1]
        bad += [f"{k}={getattr(self, k)!r}" for k in optional if getattr(self, k) is not None and getattr(self, k) < 1]
        if bad:
            raise ValueError(f"ChapterKnobs out of range: {', '.join(bad)} (expected ints >= 1, or None "
                             "for the optional ones)")
        if not self.cross_archs:
            raise ValueError("cross_archs=(): expected at least one architecture label, e.g. ('ConvNet-3',)")


#: The chapter's knobs per scale. mini fits the chapter's 14 minutes on one CPU thread: 64 real
#: images per class, 2 evaluation networks per main-table set and 1 per ablation set, MTT timed
#: on a probe, ResNet-10 as the one extra architecture with a short protocol.
CHAPTER_KNOBS: Mapping[str, ChapterKnobs] = MappingProxyType({
    "paper": ChapterKnobs(),
    "mini": ChapterKnobs(dm_batch_real=64, tgdd_batch_real=64, main_num_eval=2, mtt_accuracy=False,
                         cost_probe_iterations=20, ablation_num_eval=1, cross_archs=("ConvNet-3", "ResNet-10"),
                         cross_ipc=1, cross_epochs=40, cross_num_eval=1, cross_tests=2, cross_test_per_class=20,
                         analysis_ipc=10, analysis_iterations=60, stages=4, real_per_class=100),
    "smoke": ChapterKnobs(dm_batch_real=8, tgdd_batch_real=8, mtt_accuracy=False, cost_probe_iterations=1,
                          ablation_num_eval=1, cross_archs=("ConvNet-3", "ResNet-10"), cross_ipc=1, cross_epochs=1,
                          cross_num_eval=1, cross_tests=1, cross_test_per_class=2, analysis_ipc=2, stages=3,
                          real_per_class=10),
})


def pretraining_costs(data: ImageDataset, configs: Mapping[str, ExpertConfig], num_experts: int, seed: int, *,
                      device: str | torch.device = "cpu") -> dict[str, RunCost]:
    """Figure 1's pre-training cost of ``num_experts`` experts per method (DM: none).

    Measured afresh (:func:`~ddlib.chapters.tgdd_analysis.expert_cost`: one epoch of one expert,
    scaled), so it does not depend on whether the experts were cached.
    """
    costs = {name: expert_cost(data, config, num_experts, seed, device=device) for name, config in configs.items()}
    return {"DM": RunCost(0.0, 0.0, "DM trains no expert"), **costs}


@dataclasses.dataclass(frozen=True)
class TGDDChapter:
    """One run of the chapter: its data, experts, recorder and checkpoint folder.

    Attributes
    ----------
    stores : mapping
        Expert trajectories per distiller (``"TGDD"``, ``"MTT"``); the store's folder name
        enters every checkpoint name, so other experts never resume a stale set.
    pretrain : mapping of str to RunCost
        :func:`pretraining_costs` of this run's experts (``settings.num_experts`` each).
    """

    data: ImageDataset
    settings: ScaleSettings
    knobs: ChapterKnobs
    stores: Mapping[str, Any]
    pretrain: Mapping[str, RunCost]
    recorder: Recorder
    run_dir: Path
    device: torch.device = torch.device("cpu")

    def eval_config(self, num_eval: int | None = None, **overrides: Any) -> EvalConfig:
        """TGDD's protocol at this scale (1.5x MTT's epochs, best of tests) with ``num_eval`` networks."""
        num_eval = num_eval or self.knobs.main_num_eval or self.settings.num_eval
        return self.settings.eval_config("tgdd", num_eval=num_eval, **overrides)

    def distiller(self, name: str, ipc: int, seed: int, *, iterations: int | None = None, **switches: Any) -> Any:
        """The distiller ``name`` (:data:`DISTILLERS`) at ``ipc``; ``switches`` override its config."""
        if name not in DISTILLERS:
            raise ValueError(f"distiller {name!r}: expected one of {DISTILLERS}")
        s = self.settings
        if name == "DM":
            config = DMConfig(ipc=ipc, iterations=iterations or s.dm_iterations, width=s.width,
                              batch_real=self.knobs.dm_batch_real).replace(**switches)
            return DistributionMatching(self.data, config, seed, device=self.device)
        store = self.stores[name]
        net = build_expert_model(self.data, store.config)
        if name == "TGDD":
            config = TGDDConfig(ipc=ipc, iterations=iterations or s.tgdd_iterations,
                                batch_real=self.knobs.tgdd_batch_real).replace(**switches)
            return TGDD(self.data, store, net, config, seed, device=self.device)
        config = s.mtt_config(ipc, zca=False, **switches)
        config = config.replace(iterations=iterations) if iterations else config
        return TrajectoryMatching(self.data, store, net, config, seed, device=self.device)

    def distill(self, name: str, ipc: int, seed: int, *, iterations: int | None = None,
                **switches: Any) -> tuple[SyntheticSet, RunCost]:
        """Distil (or resume from the checkpoint, keyed by config, seed and experts); the set and its cost."""
        method = self.distiller(name, ipc, seed, iterations=iterations, **switches)
        experts = Path(getattr(self.stores.get(name), "root", "")).name
        prefix = f"{name.lower()}-ipc{ipc}-seed{seed}-{experts + '-' if experts else ''}"
        result, cost = timed_distillation(method, method.config.iterations, self.run_dir, device=self.device,
                                          prefix=prefix)
        return result.synthetic, cost

    def warm_up(self, names: Sequence[str], ipc: int) -> None:
        """One untimed step of each distiller, so no method is charged the process's one-time costs."""
        for name in names:
            self.distiller(name, ipc, self.recorder.seed).step(0)

    def evaluate(self, experiment: str, method: str, syn: SyntheticSet, seed: int, *, ipc: int,
                 eval_config: EvalConfig | None = None, data: ImageDataset | None = None,
                 arch: str = "ConvNet") -> EvalResult:
        """Evaluate ``syn`` with the networks of ``seed`` and record every network's last and best accuracy."""
        config = eval_config or self.eval_config()
        result = evaluate_synthetic(syn, data or self.data, config, seed, device=self.device, progress=False)
        record_evaluation(self.recorder, experiment, method, result, distill_seed=seed, ipc=ipc, arch=arch,
                          config={"set": syn.config, "eval": config.to_dict()})
        return result

    def record_cost(self, name: str, ipc: int, seed: int, cost: RunCost) -> None:
        """Figure 1's numbers of one run: distillation time, time with pre-training (this run's expert
        count and the paper's, :data:`PAPER_EXPERTS`), peak memory of the distillation."""
        pre = self.pretrain[name].wall_time_s
        paper_pre = pre / self.settings.num_experts * PAPER_EXPERTS[name]
        values = {"distill_time_s": cost.wall_time_s, "time_s": cost.wall_time_s + pre,
                  "time_paper_experts_s": cost.wall_time_s + paper_pre, "peak_memory_mb": cost.peak_memory_mb}
        for metric, value in values.items():
            self.recorder.add("Figure 1", name, metric, value, ipc=ipc, distill_seed=seed,
                              memory_method=cost.memory_method)

    def main_table(self, ipc: int,
                   methods: Sequence[str] = ("Random", "DM", "TGDD")) -> dict[tuple[str, int], SyntheticSet]:
        """Every method's set of every seed at ``ipc``, evaluated and recorded ("main table", "Figure 1")."""
        sets = {}
        for seed in self.settings.seeds:
            for name in methods:
                if name == "Random":
                    sets[name, seed] = random_coreset(self.data, ipc, seed)
                else:
                    sets[name, seed], cost = self.distill(name, ipc, seed)
                    self.record_cost(name, ipc, seed, cost)
                self.evaluate("main table", name, sets[name, seed], seed, ipc=ipc)
        return sets

    def mtt_cost_probe(self, ipc: int) -> None:
        """Figure 1's MTT cost per seed from ``cost_probe_iterations`` iterations, scaled to the full run.

        Every MTT iteration does the same work (one unrolled student of ``syn_steps`` steps),
        so the time scales with the iterations; the peak memory is the probe's.
        """
        probe = self.knobs.cost_probe_iterations
        factor = self.settings.iterations / probe
        for seed in self.settings.seeds:
            _, cost = self.distill("MTT", ipc, seed, iterations=probe)
            self.record_cost("MTT", ipc, seed, RunCost(cost.wall_time_s * factor, cost.peak_memory_mb,
                                                      f"{cost.memory_method}; time of {probe} iterations x {factor:g}"))

    def ablation(self, rows: Mapping[str, tuple[str, Mapping[str, Any]]], ipc: int) -> None:
        """The cumulative ablation: ``rows`` maps a row label to (distiller, config switches).

        Every row distils ``settings.ablation_length`` iterations with ``tgdd_batch_real`` real
        images per class, so consecutive rows differ only in the named component.
        """
        config = self.eval_config(self.knobs.ablation_num_eval)
        for seed in self.settings.seeds:
            for label, (name, switches) in rows.items():
                syn, _ = self.distill(name, ipc, seed, iterations=self.settings.ablation_length,
                                      batch_real=self.knobs.tgdd_batch_real, **switches)
                self.evaluate("ablation", label, syn, seed, ipc=ipc, eval_config=config)

    def analysis_sets(self, ipc: int, seed: int) -> dict[str, SyntheticSet]:
        """The sets behind Figures 2, 4 and 5: DM's and TGDD's (``analysis_iterations``) and random real images.

        Returns
        -------
        dict
            ``{"DM", "TGDD", "random real"}`` -> the set of ``ipc`` images per class, seed ``seed``.
        """
        sets = {name: self.distill(name, ipc, seed, iterations=self.knobs.analysis_iterations)[0]
                for name in ("DM", "TGDD")}
        sets["random real"] = random_coreset(self.data, ipc, seed)
        return sets

    def cross_config(self, arch: str) -> EvalConfig:
        """The cross-architecture protocol: TGDD's, shortened by the ``cross_*`` knobs."""
        k = self.knobs
        config = self.eval_config(k.cross_num_eval, **({"epochs": k.cross_epochs} if k.cross_epochs else {}))
        if k.cross_tests:
            config = config.replace(test_every=max(1, config.epochs // k.cross_tests))
        return config.replace(arch=arch)

    def cross_architecture(self, sets: Mapping[tuple[str, int], SyntheticSet], archs: Mapping[str, str], ipc: int,
                           methods: Sequence[str] = ("DM", "TGDD")) -> None:
        """Evaluate every seed's set of ``methods`` (``sets[name, seed]``, at ``ipc``) on each zoo model of
        ``archs`` (paper label -> zoo name), recorded under the label."""
        data = subset_per_class(self.data, None, self.knobs.cross_test_per_class)
        for seed in self.settings.seeds:
            for name in methods:
                for label, arch in archs.items():
                    self.evaluate("cross-architecture", name, sets[name, seed], seed, ipc=ipc,
                                  eval_config=self.cross_config(arch), data=data, arch=label)


def analysis_metrics(net: nn.Module, trajectory: Any, stages: Sequence[int], sets: Mapping[str, SyntheticSet],
                     real: ImageDataset) -> list[dict[str, Any]]:
    """Figures 2, 4 and 5's numbers of each set in the snapshots ``stages`` of ``trajectory``.

    Per set and stage: ``silhouette`` (Fig. 2, :func:`~ddlib.chapters.tgdd_analysis.class_silhouette`),
    ``correlation_similarity`` (Fig. 4 a), ``snapshot_acc`` (Fig. 4 b, percent),
    ``activation_per_image`` and ``activation_per_set`` (Fig. 4 c; a neuron "fires" above its
    ``1 - 1/N`` quantile on ``real``, ``N`` the set's size); at the last stage also
    ``coverage_distance`` (Fig. 5). ``real`` supplies the real training images ``(M, C, H, W)``.

    Returns
    -------
    list of dict
        ``{"method", "epoch", "metric", "value"}`` rows.
    """
    real_features = {e: snapshot_features(net, trajectory.snapshot(e), real.images_train) for e in stages}
    rows = []
    for name, syn in sets.items():
        accs = snapshot_accuracies(net, trajectory, stages, syn.images_syn, syn.labels_syn)
        for e, acc in zip(stages, accs):
            feats = snapshot_features(net, trajectory.snapshot(e), syn.images_syn)
            threshold = torch.quantile(real_features[e], 1 - 1 / len(feats), dim=0)
            per_image, per_set = activation_ratios(feats, threshold)
            values = {"silhouette": class_silhouette(feats, syn.labels_syn), "snapshot_acc": 100 * acc,
                      "activation_per_image": float(per_image.mean()), "activation_per_set": per_set,
                      "correlation_similarity": feature_correlation_similarity(real_features[e], feats)}
            if e == stages[-1]:
                values["coverage_distance"] = coverage_distance(real_features[e], real.labels_train, feats,
                                                                syn.labels_syn)
            rows += [{"method": name, "epoch": int(e), "metric": k, "value": float(v)} for k, v in values.items()]
    return rows
