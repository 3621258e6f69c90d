"""Experiment helpers of the AST chapter (``notebooks/03_ast.py``): the pieces too long for a notebook cell.

The chapter reproduces Shen et al. (2023), "Efficient Dataset Distillation through
Alignment with Smooth and High-Quality Expert Trajectories". This module names the
paper's expert variants (Tables 1 and 6, Fig. 4) and ablation rows (Tables 2 and 7) with
the method names of ``resources/paper_results.csv``, runs one trajectory-matching
distillation with a checkpoint and a cached final evaluation (:func:`distill`), times
distillation iterations (Table 8) and selects the initial images of Fig. 6. The reporting
helpers (:func:`~ddlib.chapters.ast_reporting.record_series`, :func:`~ddlib.chapters.ast_reporting.beside_paper`, ...) live in :mod:`ddlib.chapters.ast_reporting`
and are re-exported here; the tables and figures as the chapter shows them are in
:mod:`ddlib.chapters.ast_tables` and :mod:`ddlib.chapters.ast_figures`.

Where the AST paper and its authors' code disagree, the helpers take ``preset`` /
``variant`` = ``"code"`` (the default, the book's main rows) or ``"paper"``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import torch
from torch import nn

from ddlib.methods.ast_components import class_features, representative_init
from ddlib.chapters.ast_experts import (EXPERT_VARIANTS, VariantLoss, _check_preset, expert_input_gradient_norms,
                          expert_network, expert_summary, expert_variant, first_experts, input_gradient_norm,
                          per_expert_metrics, trajectory_curves)
from ddlib.chapters.ast_reporting import (beside_paper, best_so_far, coefficient_of_variation, first_reaching, record_series,
                            relative_jitter, settings_table, unit_values)
from ddlib.methods.coresets import forgetting_counts, select_most_forgotten
from ddlib.data.dataset import ImageDataset
from ddlib.data.zca import ZCA
from ddlib.methods.distill_loop import DistillResult, run_distillation
from ddlib.evaluation.runner import EvalConfig, evaluate_synthetic
from ddlib.core.fileio import read_json, write_json
from ddlib.chapters.scales import ScaleSettings, cached_experts
from ddlib.trajectories.experts import ZCA_REGULARIZATION, build_expert_model
from ddlib.methods.mtt import TrajectoryMatching
from ddlib.methods.mtt_config import MTTConfig
from ddlib.core.runtime import derive_seed, make_generator
from ddlib.methods.synthetic import SyntheticSet
from ddlib.trajectories.trajectory_store import TrajectoryStore

__all__ = [
    "EXPERT_VARIANTS", "TABLE1_NAMES", "TABLE6_NAMES", "TABLE2_ROWS", "ABLATION_STEPS", "ast_changes",
    "cumulative_ablation", "fit_zca", "RunOutcome", "run_key", "display_images", "distill",
    "IMAGENET_SUBSETS", "imagenet_subset_config", "run_subset", "seconds_per_iteration", "forgetting_sets",
    "init_picks", "coverage_distance", "pca_2d",
]

#: Method names of the paper's Table 1 rows (paper_results.csv).
TABLE1_NAMES = {"SGD": "expert optimizer: SGD", "SGD+momentum": "expert optimizer: SGD+momentum",
                "Adam": "expert optimizer: Adam"}
#: Method names of Table 6 rows; "expert: Adam" is ours only (the paper shows Adam in Table 1 and Fig. 4).
TABLE6_NAMES = {"SGD": "expert: none", "SGD+momentum": "expert: momentum", "Adam": "expert: Adam",
                "momentum+GP": "expert: momentum+GP", "momentum+GP+clip": "expert: momentum+GP+clip"}
#: Table 2 rows: method name -> MTTConfig changes (all on the plain SGD experts).
TABLE2_ROWS = {"init=random; start epoch=random": {},
               "init=representative; start epoch=random": {"init": "representative"},
               "init=random; start epoch=balanced": {"balanced_inner_loss": True}}
#: Table 7, cumulative, per variant: row name -> the MTTConfig changes it adds (all on the smooth experts).
#: ``"code"``: the authors' code has no switch for its momentum-0.9 student, so it is in the base row; its
#: representative init clusters the expert's logits, its balanced loss uses log base 5 and its perturbation
#: the code's formula. ``"paper"``: penultimate features, Eq. 2 with the natural log, Eq. 5 with alpha 0.1, a
#: plain SGD student. The last row equals ``MTTConfig.with_ast(variant)``.
ABLATION_STEPS = {
    "code": (("base (smooth experts)", {"inner_momentum": 0.9}),
             ("+ representative init", {"init": "representative", "representative_features": "logits"}),
             ("+ balanced inner-loop loss", {"balanced_inner_loss": True, "balance_log_base": 5.0}),
             ("+ intermediate matching loss", {"intermediate_matching": True}),
             ("+ weight perturbation", {"perturbation": "code"})),
    "paper": (("base (smooth experts)", {}), ("+ representative init", {"init": "representative"}),
              ("+ balanced inner-loop loss", {"balanced_inner_loss": True}),
              ("+ intermediate matching loss", {"intermediate_matching": True}),
              ("+ weight perturbation", {"perturbation": "paper"})),
}


def ast_changes(ipc: int, variant: Literal["code", "paper"] = "code") -> dict[str, Any]:
    """MTTConfig changes of the full AST method at ``ipc`` (as :meth:`ddlib.methods.mtt_config.MTTConfig.with_ast` of
    ``variant``), with the paper's IPC-50 representative initialisation (10 clusters x 5 nearest, Sec. 4.1)."""
    return cumulative_ablation(ipc, variant)["+ weight perturbation"]


def cumulative_ablation(ipc: int, variant: Literal["code", "paper"] = "code") -> dict[str, dict[str, Any]]:
    """Table 7's rows -> cumulative MTTConfig changes of ``variant`` (:data:`ABLATION_STEPS`); the last
    row equals :func:`ast_changes`."""
    _check_preset(variant, "variant")
    rows, changes = {}, {}
    for name, step in ABLATION_STEPS[variant]:
        changes = {**changes, **step}
        if changes.get("init") == "representative" and ipc == 50:
            changes["representative_clusters"] = 10
        rows[name] = dict(changes)
    return rows


def fit_zca(data: ImageDataset) -> ZCA:
    """The ZCA whitening the experts use (fit on the training split, regularisation 0.1 as in MTT)."""
    return ZCA.fit(data.images_train, regularization=ZCA_REGULARIZATION)


def run_key(*values: Any) -> str:
    """Short hash of ``values`` (JSON), to name checkpoints by the settings that made them."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]


def display_images(syn: SyntheticSet, data: ImageDataset, zca: ZCA | None = None) -> torch.Tensor:
    """Synthetic images ``(N, C, H, W)`` as raw pixels for display (un-whitened, de-normalised, CPU)."""
    images = syn.images_syn.detach()
    if syn.zca:
        images = zca.inverse(images.to(zca.device)).cpu()
    return data.denormalize(images.cpu()).clamp(0, 1)


@dataclasses.dataclass
class RunOutcome:
    """One distillation: its :class:`DistillResult`, the final evaluation (``EvalResult.to_dict()``
    plus ``iteration``), the config and the experts' folder."""

    result: DistillResult
    final: dict[str, Any]
    config: MTTConfig
    experts: str

    def record_config(self, **extra: Any) -> dict[str, Any]:
        """What a record of this run stores as its ``config``."""
        return {"mtt": self.config.to_dict(), "experts": self.experts, "iterations_done": self.result.iterations_done,
                "stopped_reason": self.result.stopped_reason, **extra}


def distill(data: ImageDataset, store: TrajectoryStore, config: MTTConfig, seed: int, *, eval_config: EvalConfig,
            folder: str | Path, name: str, zca: ZCA | None = None, device: str | torch.device = "cpu",
            eval_every: int = 0, periodic_eval_config: EvalConfig | None = None) -> RunOutcome:
    """Run (or resume) one MTT/AST distillation and evaluate its final synthetic set.

    The checkpoint is ``folder/<name>-<key>.pt``, the key hashing the config, seed,
    experts, evaluation protocol and ``eval_every``, so a rerun resumes (or finds the run
    finished) and a changed setting starts afresh. ``eval_every > 0`` evaluates at
    iteration 0, every ``eval_every`` iterations and at the end (Fig. 7); otherwise the
    final set is evaluated once and the result cached beside the checkpoint as JSON.
    ``periodic_eval_config`` (default: ``eval_config``) evaluates the sets before the last
    iteration, e.g. with fewer networks: network ``i`` of any evaluation with ``seed`` is the same
    network, so a one-network curve follows network 0 of the final evaluation.
    """
    net = build_expert_model(data, store.config)
    method = TrajectoryMatching(data, store, net, config, seed, zca=zca, device=device)
    extra = () if periodic_eval_config is None else (periodic_eval_config.to_dict(),)  # old keys unchanged
    key = run_key(config.to_dict(), seed, store.root.name, len(store), eval_config.to_dict(), eval_every, *extra)
    checkpoint = Path(folder) / f"{name}-{key}.pt"

    def evaluate_with(chosen: EvalConfig, syn: SyntheticSet) -> dict[str, Any]:
        return evaluate_synthetic(syn, data, chosen, seed, device=device, zca=zca, progress=False).to_dict()

    def evaluate(syn: SyntheticSet, iteration: int) -> dict[str, Any]:
        last = periodic_eval_config is None or iteration == config.iterations
        return evaluate_with(eval_config if last else periodic_eval_config, syn)

    result = run_distillation(method, config.iterations, checkpoint_path=checkpoint, evaluate=evaluate,
                              eval_every=eval_every, progress=False, desc=name)
    done = result.iterations_done  # a stopped run's last periodic evaluation is not the final protocol's
    full = periodic_eval_config is None or done == config.iterations
    final = next((e for e in result.evaluations if e["iteration"] == done and full), None)
    cache = checkpoint.with_suffix(".eval.json")
    if final is None and cache.exists():  # an empty or damaged cache is recomputed (with a warning)
        cached = read_json(cache, "evaluation cache", on_corrupt="recompute")
        final = cached if isinstance(cached, dict) and cached.get("iteration") == result.iterations_done else None
    if final is None:
        final = {"iteration": result.iterations_done, **evaluate_with(eval_config, result.synthetic)}
        write_json(cache, final)
    return RunOutcome(result, final, config, store.root.name)


#: Table 5's data sets (128x128, ConvNet-5).
IMAGENET_SUBSETS = ("imagenette", "imagewoof", "imagefruit", "imagemeow")


def imagenet_subset_config(ipc: int, iterations: int) -> MTTConfig:
    """MTT settings for the ImageNet subsets (128x128, no ZCA) at ``ipc``.

    * IPC 1: MTT's own readme row: syn_steps 20, expert_epochs 2,
      max_start_epoch 10, lr_img 1000, lr_lr 1e-6, lr_teacher 0.01, all images per inner step.
      The network is ConvNetD5, which :func:`~ddlib.trajectories.experts.build_expert_model` picks for
      128x128 images (depth ``None`` -> :func:`~ddlib.models.default_depth`).
    * IPC 10: not in MTT's readme; our unverified reading of MTT's appendix:
      syn_steps 20, expert_epochs 2, max_start_epoch 10, lr_img 1e4, lr_lr 1e-4, lr_teacher 0.01.
    """
    if ipc not in (1, 10):
        raise ValueError(f"ipc={ipc}: the paper's Table 5 has IPC 1 and 10 only")
    lr_img, lr_lr = (1000.0, 1e-6) if ipc == 1 else (1e4, 1e-4)
    return MTTConfig(ipc=ipc, iterations=iterations, syn_steps=20, expert_epochs=2, max_start_epoch=10,
                     lr_img=lr_img, lr_lr=lr_lr, lr_teacher=0.01, batch_syn=None, zca=False)


def run_subset(data: ImageDataset, settings: ScaleSettings, ipc: int, seed: int, *, artifacts_dir: str | Path,
               eval_config: EvalConfig, folder: str | Path, device: str | torch.device = "cpu",
               preset: Literal["code", "paper"] = "code") -> dict[str, RunOutcome]:
    """Table 5 on one ImageNet subset at ``ipc``: MTT (SGD experts) and AST (smooth experts, all components),
    AST's experts and distiller as ``preset`` has them (:func:`~ddlib.chapters.ast_experts.expert_variant`, :func:`ast_changes`)."""
    outcomes = {}
    for method, variant, changes in (("MTT", "SGD", {}), ("AST", "momentum+GP+clip", ast_changes(ipc, preset))):
        expert_config, hook = expert_variant(settings, variant, preset=preset)
        store = cached_experts(artifacts_dir, data, expert_config, settings.num_experts, seed, loss_hook=hook,
                               device=device, progress=False)
        config = imagenet_subset_config(ipc, settings.iterations).replace(**changes)
        outcomes[method] = distill(data, store, config, seed, eval_config=eval_config, folder=folder,
                                   name=f"{data.name}-{method}-ipc{ipc}", device=device)
    return outcomes


def seconds_per_iteration(data: ImageDataset, store: TrajectoryStore, config: MTTConfig, seed: int, *,
                          steps: int = 3, zca: ZCA | None = None, device: str | torch.device = "cpu") -> float:
    """Wall seconds of one outer iteration of a fresh distiller (Table 8), after one warm-up step.

    Initialisation (e.g. representative K-Means) is not timed, as in the paper's per-iteration figure.
    """
    method = TrajectoryMatching(data, store, build_expert_model(data, store.config), config, seed, zca=zca,
                                device=device)
    method.step(0)
    start = time.perf_counter()
    for iteration in range(1, steps + 1):
        method.step(iteration)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def forgetting_sets(data: ImageDataset, ipcs: Iterable[int], *, epochs: int, seed: int, width: int,
                    device: str | torch.device = "cpu") -> dict[int, SyntheticSet]:
    """Forgetting coresets at every IPC from ONE training run (the counts do not depend on the IPC)."""
    counts = forgetting_counts(data, epochs=epochs, seed=seed, width=width, device=device)
    sets = {}
    for ipc in ipcs:
        flat = torch.cat(select_most_forgotten(counts, data.labels_train, ipc, data.num_classes))
        sets[ipc] = SyntheticSet(
            images_syn=data.images_train[flat.to(data.images_train.device)].cpu(),
            labels_syn=torch.arange(data.num_classes).repeat_interleave(ipc), syn_lr=None,
            config={"method": "forgetting", "ipc": ipc, "epochs": epochs, "width": width},
            provenance={"indices": flat.tolist(), "seed": seed}, dataset=data.name, ipc=ipc, zca=False)
    return sets


def init_picks(encoder: nn.Module, data: ImageDataset, ipc: int, classes: Sequence[int], seed: int,
               images: torch.Tensor | None = None) -> dict[int, dict[str, torch.Tensor]]:
    """Per class: its features ``(N_c, D)`` under ``encoder`` and the ``ipc`` indices chosen by
    representative initialisation (K-Means, seeded as in the distiller) and by random initialisation.

    ``images`` (default: ``data.images_train``) are the images the distiller starts from (ZCA space
    when the run whitens).
    """
    images = data.images_train if images is None else images
    picks = {}
    for c in classes:
        features = class_features(encoder, images[data.class_indices[c].to(images.device)])
        representative = representative_init(features, ipc, derive_seed(seed, "representative", c))
        random = torch.randperm(len(features), generator=make_generator(derive_seed(seed, "random init", c)))[:ipc]
        picks[c] = {"features": features, "representative": representative, "random": random}
    return picks


def coverage_distance(features: torch.Tensor, chosen: torch.Tensor) -> float:
    """Mean distance from each sample ``(N, D)`` to its nearest chosen sample: lower means the chosen
    samples cover the class (no outliers, no clumping), the property Fig. 6 illustrates."""
    features = features.to(torch.float64)
    return float(torch.cdist(features, features[chosen]).min(dim=1).values.mean())


def pca_2d(features: torch.Tensor) -> np.ndarray:
    """Two principal components ``(N, 2)`` of ``features`` (scikit-learn PCA, as Fig. 6)."""
    from sklearn.decomposition import PCA

    return PCA(n_components=2, svd_solver="full").fit_transform(features.to(torch.float64).numpy())
