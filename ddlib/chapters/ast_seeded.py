"""The AST chapter's runs, one per distillation seed: which rows a scale runs (:class:`ASTPlan`) and
the experts, distillations and baselines behind them (:class:`ASTRuns`).

Every compared setting is distilled once per seed of ``ScaleSettings.seeds`` and each synthetic
set is evaluated with that seed, so two methods compared in one claim share the evaluation
networks (paired design). The experts are trained once from the notebook's run seed and shared
by all distillation seeds. The main rows (Table 3) always run at ``settings.iterations``; the
ablation rows (Tables 1, 2, 6, 7) at ``settings.ablation_length``, and a scale's plan may drop
ablation rows (never seeds) to fit its time budget.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import torch

from ddlib.chapters.ast_claims import record_experts, record_outcomes
from ddlib.chapters.ast_experiments import (ABLATION_STEPS, TABLE2_ROWS, RunOutcome, ast_changes, coverage_distance,
                              cumulative_ablation, distill, forgetting_sets, init_picks, run_key, seconds_per_iteration)
from ddlib.chapters.ast_experts import EXPERT_VARIANTS, expert_network, expert_variant, first_experts, per_expert_metrics
from ddlib.chapters.dry_run import probe_iterations
from ddlib.core.config import Config
from ddlib.methods.coresets import herding_coreset, random_coreset
from ddlib.data.dataset import ImageDataset
from ddlib.data.zca import ZCA
from ddlib.methods.distill_loop import run_distillation
from ddlib.methods.dm import DistributionMatching, DMConfig
from ddlib.evaluation.protocols import EvalConfig, EvalResult
from ddlib.evaluation.runner import evaluate_cross_arch, evaluate_synthetic
from ddlib.chapters.scales import ScaleSettings, cached_experts, subset_per_class
from ddlib.methods.mtt_config import MTTConfig
from ddlib.results.recorder import Recorder
from ddlib.methods.synthetic import SyntheticSet
from ddlib.trajectories.trajectory_store import TrajectoryStore

__all__ = ["ASTPlan", "ASTRuns", "TABLE7_ROWS", "MAIN_METHODS", "plan_table", "experts_table", "record_table3",
           "record_expert_table", "record_table4", "record_table8", "coverage_by_seed"]

#: Table 7's rows: MTT itself, then the cumulative steps of :data:`~ddlib.chapters.ast_experiments.ABLATION_STEPS`.
TABLE7_ROWS = ("MTT", *(name for name, _ in ABLATION_STEPS["code"]))
#: Table 3's distilled rows: method -> expert variant.
MAIN_METHODS = {"MTT": "SGD", "AST": "momentum+GP+clip"}
_ARCHS = ("ConvNet", "ResNet18", "VGG11", "AlexNet")


@dataclasses.dataclass(frozen=True)
class ASTPlan(Config):
    """Which rows and how much evaluation the AST chapter runs at a scale (the main rows always run).

    ``for_scale("paper")`` is the paper's plan (every row, full evaluation); smaller scales drop
    ablation rows to fit their time budget and say so (:meth:`dropped`).
    """

    #: Expert variants trained, for Tables 1, 6 and Fig. 4 (SGD and smooth always); default: the paper's plan, all.
    expert_variants: tuple[str, ...] = EXPERT_VARIANTS
    #: Rows of AST's Table 2 that run (init and start-epoch ablation); default: the paper's plan, every row.
    table2_rows: tuple[str, ...] = tuple(TABLE2_ROWS)
    #: Rows of AST's Table 7 that run (MTT, then the cumulative ablation steps); default: the paper's plan, every row.
    table7_rows: tuple[str, ...] = TABLE7_ROWS
    #: Evaluation networks per ablation set; ``None``: the scale's ``num_eval``.
    ablation_num_eval: int | None = None
    #: Distillation iterations between Fig. 7 evaluations; ``None``: the scale's ``eval_every``.
    fig7_every: int | None = None
    #: Networks of a Fig. 7 evaluation; ``None``: the scale's ``num_eval``.
    fig7_num_eval: int | None = None
    #: Architectures of Table 4 (cross-architecture), ConvNet (the distilling network) first; default: the paper's
    #: plan, ConvNet, ResNet18, VGG11 and AlexNet.
    cross_archs: tuple[str, ...] = _ARCHS
    #: Table 4's training epochs; ``None``: the protocol's.
    cross_epochs: int | None = None
    #: Table 4's evaluation networks per set; ``None``: the protocol's ``num_eval``.
    cross_num_eval: int | None = None
    #: Test images per class in Table 4; ``None``: the whole test split.
    cross_test_per_class: int | None = None
    #: ``"recompute"`` (paper scale) keeps memory flat in ``syn_steps``; ``"graph"`` keeps every inner step's graph
    #: (about 1.5x faster on a CPU for tiny networks, same gradients up to rounding).
    memory: Literal["graph", "recompute"] = "recompute"
    #: Student's initial step size: ``"scale"``, the scale's ``lr_teacher`` (the authors' code: 0.01 for all experts);
    #: ``"experts"``, the experts' own lr (MTT; AST code's: 0.003). At mini, 0.01 diverged AST on one seed of three.
    student_lr: Literal["scale", "experts"] = "scale"

    def validate(self) -> None:
        for name, chosen, known in (("expert_variants", self.expert_variants, EXPERT_VARIANTS),
                                    ("table2_rows", self.table2_rows, tuple(TABLE2_ROWS)),
                                    ("table7_rows", self.table7_rows, TABLE7_ROWS)):
            unknown = [row for row in chosen if row not in known]
            if unknown or not chosen or chosen[0] != known[0]:
                raise ValueError(f"{name}={chosen!r}: expected rows of {known} starting with {known[0]!r}")
        if "init=random; start epoch=balanced" not in self.table2_rows:
            raise ValueError(f"table2_rows={self.table2_rows!r}: Figure 2 needs the row "
                             "'init=random; start epoch=balanced'")
        if "momentum+GP+clip" not in self.expert_variants:
            raise ValueError(f"expert_variants={self.expert_variants!r}: AST's 'momentum+GP+clip' experts are "
                             "needed by the main rows")
        for name in ("ablation_num_eval", "fig7_every", "fig7_num_eval", "cross_epochs", "cross_num_eval",
                     "cross_test_per_class"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected None or an int >= 1")
        if self.student_lr not in ("scale", "experts"):
            raise ValueError(f"student_lr={self.student_lr!r}: expected 'scale' or 'experts'")
        if not self.cross_archs or self.cross_archs[0] != "ConvNet":
            raise ValueError(f"cross_archs={self.cross_archs!r}: expected 'ConvNet' (the distilling network) first")

    @classmethod
    def for_scale(cls, scale: str) -> "ASTPlan":
        """The plan of a book scale: ``paper`` and ``smoke`` run every row; ``mini`` fits its budget."""
        if scale in ("paper", "smoke"):
            return cls(memory="recompute" if scale == "paper" else "graph")
        if scale != "mini":
            raise ValueError(f"scale={scale!r}: expected 'smoke', 'mini' or 'paper'")
        return cls(expert_variants=("SGD", "SGD+momentum", "momentum+GP+clip"),
                   table2_rows=(tuple(TABLE2_ROWS)[0], "init=random; start epoch=balanced"),
                   table7_rows=("MTT", "base (smooth experts)", "+ weight perturbation"), ablation_num_eval=2,
                   fig7_num_eval=1, cross_archs=("ConvNet", "VGG11", "AlexNet"), cross_epochs=60, cross_num_eval=1,
                   cross_test_per_class=30, memory="graph", student_lr="experts")

    def dropped(self) -> dict[str, tuple[str, ...]]:
        """Rows of the paper's plan that this plan does not run, per field (empty tuples omitted)."""
        full = ASTPlan()
        out = {name: tuple(r for r in getattr(full, name) if r not in getattr(self, name))
               for name in ("expert_variants", "table2_rows", "table7_rows", "cross_archs")}
        return {name: rows for name, rows in out.items() if rows}


class ASTRuns:
    """The chapter's experts, distillations and baselines, each made once (cached on disk and here).

    Parameters
    ----------
    data : ImageDataset
    settings : ScaleSettings
    plan : ASTPlan
    seed : int
        The run seed: every kind of expert is trained once from it, shared by all distillation seeds.
    eval_config : EvalConfig
        The chapter's protocol (AST's); ablation sets use ``plan.ablation_num_eval`` networks of it.
    artifacts_dir, run_dir : path
        Expert cache and the distillations' checkpoints (keys include the distillation seed).
    zca : ZCA, optional
        The fitted whitening, needed where the scale's MTT settings whiten.
    preset : {"code", "paper"}
        AST's experts and distiller as the authors' code (the book's main rows) or the paper has them.
    """

    def __init__(self, data: ImageDataset, settings: ScaleSettings, plan: ASTPlan, *, seed: int,
                 eval_config: EvalConfig, artifacts_dir: str | Path, run_dir: str | Path, zca: ZCA | None = None,
                 device: str | torch.device = "cpu", preset: Literal["code", "paper"] = "code") -> None:
        self.data, self.settings, self.plan, self.seed = data, settings, plan, seed
        self.eval_config, self.zca, self.device, self.preset = eval_config, zca, device, preset
        self.artifacts_dir, self.run_dir = Path(artifacts_dir), Path(run_dir)
        self.ablation_eval = eval_config.replace(num_eval=plan.ablation_num_eval or eval_config.num_eval)
        self._experts: dict[tuple[str, bool], TrajectoryStore] = {}
        self._runs: dict[tuple[str, MTTConfig, int], RunOutcome] = {}
        self._sets: dict[tuple[str, int, int], SyntheticSet] = {}
        self._metrics: dict[tuple[str, str, bool], dict[str, np.ndarray]] = {}

    @property
    def seeds(self) -> tuple[int, ...]:
        """The distillation seeds (the independent units of every claim on distilled sets)."""
        return tuple(self.settings.seeds)

    def experts(self, variant: str, zca_space: bool = False) -> TrajectoryStore:
        """The ``num_experts`` cached experts of ``variant`` (:func:`~ddlib.chapters.ast_experts.expert_variant`)."""
        if (variant, zca_space) not in self._experts:
            config, hook = expert_variant(self.settings, variant, zca=zca_space, preset=self.preset)
            store = cached_experts(self.artifacts_dir, self.data, config, self.settings.num_experts, self.seed,
                                   loss_hook=hook, device=self.device, progress=False, zca=self.zca)
            self._experts[variant, zca_space] = first_experts(store, self.settings.num_experts)
        return self._experts[variant, zca_space]

    def mtt_config(self, ipc: int, *, ablation: bool = False, variant: str = "SGD", **changes: Any) -> MTTConfig:
        """The scale's MTT settings at ``ipc`` with ``changes``, for a run on ``variant``'s experts;
        ``ablation``: ``ablation_length`` iterations. With ``plan.student_lr == "experts"`` the student
        starts at the learning rate ``variant``'s experts trained with (unless ``changes`` sets it)."""
        iterations = self.settings.ablation_length if ablation else self.settings.iterations
        if self.plan.student_lr == "experts" and "lr_teacher" not in changes:
            changes["lr_teacher"] = expert_variant(self.settings, variant, preset=self.preset)[0].optimizer.lr
        return self.settings.mtt_config(ipc, memory=self.plan.memory, **changes).replace(iterations=iterations)

    def main_configs(self, ipc: int) -> dict[str, MTTConfig]:
        """Table 3's distiller settings at ``ipc``: ``"MTT"`` (plain) and ``"AST"`` (all components)."""
        return {"MTT": self.mtt_config(ipc, variant=MAIN_METHODS["MTT"]),
                "AST": self.mtt_config(ipc, variant=MAIN_METHODS["AST"], **ast_changes(ipc, self.preset))}

    def distill(self, variant: str, ipc: int, distill_seed: int, *, ablation: bool = False,
                **changes: Any) -> RunOutcome:
        """Distil from ``variant``'s experts (resumable), evaluated with ``distill_seed``'s networks.

        A run at the main length with a main row's experts and config is that main row's run
        (evaluated also every ``fig7_every`` iterations, for Fig. 7); a shorter one is an ablation
        run, evaluated with ``ablation_num_eval`` networks.
        """
        config = self.mtt_config(ipc, ablation=ablation, variant=variant, **changes)
        key = (variant, config, distill_seed)
        if key not in self._runs:
            main = config.iterations == self.settings.iterations
            periodic = main and any(MAIN_METHODS[m] == variant and c == config
                                    for m, c in self.main_configs(ipc).items())
            eval_config = self.eval_config if main else self.ablation_eval
            every = self.plan.fig7_every or self.settings.eval_every
            fig7 = (eval_config.replace(num_eval=self.plan.fig7_num_eval) if periodic and self.plan.fig7_num_eval
                    else None)  # Fig. 7's intermediate points: fewer networks, the same network 0
            self._runs[key] = distill(self.data, self.experts(variant, config.zca), config, distill_seed,
                                      eval_config=eval_config, folder=self.run_dir, name=f"{variant}-ipc{ipc}",
                                      zca=self.zca if config.zca else None, device=self.device,
                                      eval_every=every if periodic else 0, periodic_eval_config=fig7)
        return self._runs[key]

    def main(self, method: str, ipc: int, distill_seed: int) -> RunOutcome:
        """Table 3's ``"MTT"`` (SGD experts, plain distiller) or ``"AST"`` (smooth experts, all components)."""
        changes = {} if method == "MTT" else ast_changes(ipc, self.preset)
        return self.distill(MAIN_METHODS[method], ipc, distill_seed, **changes)

    def rows(self, ipc: int, rows: Mapping[str, tuple[str, Mapping[str, Any]]]) -> dict[str, dict[int, RunOutcome]]:
        """Ablation rows (name -> (expert variant, MTTConfig changes)) at the ablation length:
        name -> distillation seed -> run."""
        return {name: {s: self.distill(variant, ipc, s, ablation=True, **changes) for s in self.seeds}
                for name, (variant, changes) in rows.items()}

    def expert_rows(self, ipc: int) -> dict[str, dict[int, RunOutcome]]:
        """Tables 1 and 6: MTT's plain distiller on each planned kind of expert."""
        return self.rows(ipc, {variant: (variant, {}) for variant in self.plan.expert_variants})

    def table2(self, ipc: int) -> dict[str, dict[int, RunOutcome]]:
        """Table 2's planned rows (all on the SGD experts)."""
        return self.rows(ipc, {row: ("SGD", TABLE2_ROWS[row]) for row in self.plan.table2_rows})

    def table7(self, ipc: int) -> dict[str, dict[int, RunOutcome]]:
        """Table 7's planned rows, cumulative as ``preset`` has them (``"MTT"``: SGD experts, plain distiller)."""
        steps = cumulative_ablation(ipc, self.preset)
        return self.rows(ipc, {row: ("SGD", {}) if row == "MTT" else ("momentum+GP+clip", steps[row])
                               for row in self.plan.table7_rows})

    def expert_metrics(self, variant: str, zca_space: bool = False) -> dict[str, np.ndarray]:
        """:func:`~ddlib.chapters.ast_experts.per_expert_metrics` of ``variant``, input gradients measured on the first
        256 training images as the experts saw them (whitened when ``zca_space``)."""
        if ("metrics", variant, zca_space) not in self._metrics:
            images = self.data.images_train[:256]
            images = self.zca.transform(images) if zca_space else images
            self._metrics["metrics", variant, zca_space] = per_expert_metrics(self.experts(variant, zca_space),
                                                                              self.data, images)
        return self._metrics["metrics", variant, zca_space]

    def expert_preset(self, variant: str) -> str:
        """Which settings trained ``variant``'s experts, in words (Tables 1 and 6)."""
        return "MTT's (no AST preset)" if variant == "SGD" else f"AST {self.preset}"

    def baselines(self, ipc: int, distill_seed: int) -> dict[str, SyntheticSet]:
        """Table 3's coresets and DM made with ``distill_seed``: random pick, herding (deterministic, in
        the first SGD expert's feature space), the most-forgotten examples of one training run, DM."""
        herding_net = expert_network(self.experts("SGD"), self.data)
        forgetting = forgetting_sets(self.data, [ipc], epochs=self.settings.expert_epochs_total, seed=distill_seed,
                                     width=self.settings.width, device=self.device)[ipc]
        return {"Random": random_coreset(self.data, ipc, distill_seed),
                "Herding": herding_coreset(self.data, ipc, herding_net), "Forgetting": forgetting,
                "DM": self.dm_set(ipc, distill_seed)}

    def dm_set(self, ipc: int, distill_seed: int) -> SyntheticSet:
        """DM's synthetic set at ``ipc`` from ``distill_seed`` (resumable checkpoint)."""
        if ("DM", ipc, distill_seed) not in self._sets:
            config = DMConfig(ipc=ipc, iterations=self.settings.dm_iterations, width=self.settings.width)
            method = DistributionMatching(self.data, config, distill_seed, device=self.device)
            path = self.run_dir / f"DM-ipc{ipc}-{run_key(config.to_dict(), distill_seed, self.data.name)}.pt"
            result = run_distillation(method, config.iterations, checkpoint_path=path, progress=False)
            self._sets["DM", ipc, distill_seed] = result.synthetic
        return self._sets["DM", ipc, distill_seed]

    def evaluate(self, syn: SyntheticSet, distill_seed: int, config: EvalConfig | None = None) -> EvalResult:
        """``syn`` under the chapter's protocol (or ``config``) with ``distill_seed``'s networks."""
        return evaluate_synthetic(syn, self.data, config or self.eval_config, distill_seed, device=self.device,
                                  zca=self.zca if syn.zca else None, progress=False)

    def cross_eval_config(self) -> EvalConfig:
        """Table 4's protocol: the chapter's, shortened by the plan (tested once, at the end, when shortened)."""
        if self.plan.cross_epochs is None:
            return self.eval_config.replace(num_eval=self.plan.cross_num_eval or self.eval_config.num_eval)
        return self.eval_config.replace(epochs=self.plan.cross_epochs, test_every=0, statistic="last",
                                        num_eval=self.plan.cross_num_eval or self.eval_config.num_eval)


#: What ``None`` means in each optional :class:`ASTPlan` field, as the plan table spells it out.
_PLAN_DEFAULTS = {"ablation_num_eval": "the scale's num_eval", "fig7_every": "the scale's eval_every",
                  "fig7_num_eval": "the scale's num_eval", "cross_epochs": "the protocol's",
                  "cross_num_eval": "the scale's num_eval", "cross_test_per_class": "all"}


def _plan_text(name: str, value: Any) -> str:
    if value is None:
        return _PLAN_DEFAULTS.get(name, "–")
    return ", ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def plan_table(plan: ASTPlan):
    """The plan beside the paper's, with the rows it drops (the chapter's "what this scale runs").

    Lists are written out and ``None`` says what it defers to (e.g. "the scale's num_eval").
    """
    import pandas as pd

    full, dropped = ASTPlan.for_scale("paper").to_dict(), plan.dropped()
    return pd.DataFrame([{"plan": name, "this run": _plan_text(name, value), "paper": _plan_text(name, full[name]),
                          "dropped here": ", ".join(dropped.get(name, ()))} for name, value in plan.to_dict().items()])


def experts_table(runs: ASTRuns, zca_space: bool = False):
    """The planned kinds of experts: the settings that trained them, their cache folder, count, epochs."""
    import pandas as pd

    stores = {v: runs.experts(v, zca_space) for v in runs.plan.expert_variants}
    return pd.DataFrame([{"experts": v, "settings": runs.expert_preset(v), "folder": store.root.name,
                          "trained": len(store), "epochs": store.num_epochs} for v, store in stores.items()])


def record_table3(recorder: Recorder, runs: ASTRuns, ipc: int) -> None:
    """Table 3 at ``ipc``: the coresets, DM, MTT and AST of every seed, each evaluated with that seed."""
    for s in runs.seeds:
        for method, syn in runs.baselines(ipc, s).items():
            record_outcomes(recorder, "Table 3", method, {s: runs.evaluate(syn, s)}, ipc=ipc,
                            config={"set": syn.config})
        for method in MAIN_METHODS:
            record_outcomes(recorder, "Table 3", method, {s: runs.main(method, ipc, s)}, ipc=ipc)


def record_expert_table(recorder: Recorder, runs: ASTRuns, experiment: str, names: Mapping[str, str],
                        ipc: int) -> list[str]:
    """Tables 1 and 6: per expert (:meth:`ASTRuns.expert_metrics`) and per seed (the set distilled by
    MTT's plain distiller from those experts), for the planned variants among ``names`` (variant -> row
    name). Returns the rows recorded."""
    zca_space = runs.mtt_config(ipc).zca
    outcomes, done = runs.expert_rows(ipc), []
    for variant, name in names.items():
        if variant in runs.plan.expert_variants:
            config = {"preset": runs.expert_preset(variant), "experts": runs.experts(variant, zca_space).root.name}
            record_experts(recorder, experiment, name, runs.expert_metrics(variant, zca_space), ipc=ipc, config=config)
            record_outcomes(recorder, experiment, name, outcomes[variant], ipc=ipc, config=config)
            done.append(name)
    return done


def record_table4(recorder: Recorder, runs: ASTRuns, ipc: int) -> EvalConfig:
    """Table 4: every seed's MTT and AST sets (Table 3's) train each planned architecture, evaluated
    with that seed on the plan's test subset. Returns the protocol used."""
    config = runs.cross_eval_config()
    data = subset_per_class(runs.data, None, runs.plan.cross_test_per_class)
    for s in runs.seeds:
        for method in MAIN_METHODS:
            syn = runs.main(method, ipc, s).result.synthetic
            results = evaluate_cross_arch(syn, data, runs.plan.cross_archs, config, s, device=runs.device,
                                          zca=runs.zca if syn.zca else None, progress=False)
            for arch, result in results.items():
                record_outcomes(recorder, "Table 4", method, {s: result}, ipc=ipc, arch=arch,
                                config={"cross_eval": config.to_dict(), "test_images": len(data.labels_test)})
    return config


def record_table8(recorder: Recorder, runs: ASTRuns, ipc: int, steps: int | None = None) -> None:
    """Table 8: seconds per iteration of fresh MTT and AST distillers, per seed (after one warm-up step).

    ``steps`` timed iterations: default 3, or fewer when the scale's distillations are shorter than
    4 iterations (a paper-scale dry run times 1).
    """
    if steps is None:
        steps = probe_iterations(runs.settings.iterations)
    for s in runs.seeds:
        for method, config in runs.main_configs(ipc).items():
            store = runs.experts(MAIN_METHODS[method], config.zca)
            seconds = seconds_per_iteration(runs.data, store, config, s, steps=steps,
                                            zca=runs.zca if config.zca else None, device=runs.device)
            recorder.add("Table 8", method, "sec_per_iteration", seconds, ipc=ipc, distill_seed=s,
                         config={"mtt": config.to_dict(), "steps_timed": steps})


def coverage_by_seed(encoder: torch.nn.Module, data: ImageDataset, ipc: int, seeds: tuple[int, ...],
                     images: torch.Tensor | None = None) -> tuple[dict[int, dict[str, float]], dict[int, Any]]:
    """Fig. 6 per seed: the mean over classes of :func:`~ddlib.chapters.ast_experiments.coverage_distance` of the
    representative and of the random picks, and the first seed's picks (for the figure).

    Returns
    -------
    (dict, dict)
        ``seed -> {"representative": float, "random": float}`` and the first seed's
        :func:`~ddlib.chapters.ast_experiments.init_picks`.
    """
    coverage, first = {}, None
    for s in seeds:
        picks = init_picks(encoder, data, ipc, range(data.num_classes), s, images=images)
        first = picks if first is None else first
        coverage[s] = {m: float(np.mean([coverage_distance(p["features"], p[m]) for p in picks.values()]))
                       for m in ("representative", "random")}
    return coverage, first
