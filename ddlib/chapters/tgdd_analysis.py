"""Measurements behind TGDD's cost and analysis figures (Ran et al., AAAI 2026, Figs. 1, 2, 4, 5).

The paper shows these analyses as pictures; each function here turns one into numbers so the
book can say whether the pictured direction holds:

* Fig. 1, cost of a run: :func:`~ddlib.chapters.run_cost.measure_run` (wall time and peak memory of one call),
  :func:`timed_distillation` (a resumable distillation whose cost survives resumption) and
  :func:`expert_cost` (expert pre-training, which the paper includes in the time);
* features of a network snapshot, used by every other figure: :func:`snapshot_features`;
* Fig. 2, synthetic features per training stage: :func:`stage_epochs`, :func:`tsne_embedding`
  and the class separation :func:`class_silhouette`;
* Fig. 4 (a) :func:`feature_correlation_similarity`, (b) :func:`snapshot_accuracies`,
  (c) :func:`activation_ratios`;
* Fig. 5, real vs synthetic features: :func:`pca_embedding` and :func:`coverage_distance`.

The summary of the paper we work from names these metrics without defining them; the
definitions are ours and each docstring states its own.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ddlib.data.dataset import ImageDataset
from ddlib.methods.distill_loop import DistillResult, run_distillation
from ddlib.trajectories.experts import ExpertConfig, train_expert
from ddlib.core.fileio import read_json, write_json
from ddlib.core.functional import load_flat_params
from ddlib.models import MODEL_NAMES
from ddlib.chapters.run_cost import RunCost, measure_run
from ddlib.core.runtime import derive_seed
from ddlib.core.train import accuracy

__all__ = [
    "timed_distillation", "expert_cost", "zoo_name", "stage_epochs",
    "snapshot_features", "correlation_matrix", "feature_correlation_similarity", "activation_ratios",
    "snapshot_accuracies", "class_silhouette", "tsne_embedding", "pca_embedding", "coverage_distance",
]


# -- cost of a run (Fig. 1) --------------------------------------------------------------------


def timed_distillation(method: Any, iterations: int, folder: str | Path, *, device: str | torch.device = "cpu",
                       progress: bool = False, prefix: str = "") -> tuple[DistillResult, RunCost]:
    """:func:`~ddlib.methods.distill_loop.run_distillation` with a checkpoint and its measured cost.

    The checkpoint is ``folder/<prefix><hash of method.fingerprint()>.pt`` (a changed config
    gets a new file instead of a mismatch error). The cost is kept beside it in
    ``<same name>.cost.json``: a run resumed part-way adds this call's time to the earlier
    one (peak: the larger), and a run already complete returns the stored cost, so a
    re-executed notebook reports the time of the original run, not the time of loading it.

    Returns
    -------
    (DistillResult, RunCost)
    """
    digest = hashlib.sha256(json.dumps(method.fingerprint(), sort_keys=True, default=str).encode()).hexdigest()
    checkpoint = Path(folder) / f"{prefix}{digest[:12]}.pt"
    sidecar = checkpoint.with_suffix(".cost.json")
    earlier = (read_json(sidecar, "cost record", fix=f"delete it and the checkpoint {str(checkpoint)!r} to "
                         "re-measure the run") if checkpoint.exists() and sidecar.exists() else None)
    result, cost = measure_run(lambda: run_distillation(method, iterations, checkpoint_path=checkpoint,
                                                        progress=progress), device)
    if earlier is not None:
        stored = RunCost(earlier["wall_time_s"], earlier["peak_memory_mb"], earlier["memory_method"])
        cost = stored if earlier["iterations"] >= result.iterations_done else stored.plus(cost)
    write_json(sidecar, {**dataclasses.asdict(cost), "iterations": result.iterations_done})
    return result, cost


def expert_cost(data: ImageDataset, config: ExpertConfig, num_experts: int, seed: int, *,
                device: str | torch.device = "cpu", probe_epochs: int = 1) -> RunCost:
    """Measured cost of pre-training ``num_experts`` experts of ``config`` (cached or not).

    One expert is trained for ``probe_epochs`` epochs (not stored) and its time is scaled by
    ``num_experts * config.epochs / probe_epochs``: every epoch does the same work (one pass
    over the training set, one test pass). The peak memory is the probe's. The probe runs
    twice and the second run is measured, so one-time costs of the process (lazy imports,
    thread pools, allocator growth) are not charged to whichever method is measured first.
    """
    probe = config.replace(epochs=min(probe_epochs, config.epochs))
    run = lambda: train_expert(data, probe, derive_seed(seed, "cost probe"), device=device)  # noqa: E731
    run()
    _, cost = measure_run(run, device)
    factor = num_experts * config.epochs / probe.epochs
    return RunCost(cost.wall_time_s * factor, cost.peak_memory_mb,
                   f"{cost.memory_method}; time of {probe.epochs} epoch(s) of one expert x {factor:g}")


# -- features of snapshots -----------------------------------------------------------------------
def zoo_name(label: str) -> str | None:
    """The ``ddlib.models.MODEL_NAMES`` entry of a paper's architecture label, or ``None``.

    ``"ConvNet-3"`` -> ``"ConvNetD3"``, ``"ResNet-10"`` -> ``"ResNet10"``, ``"DenseNet-121"``
    -> ``"DenseNet121"``; labels of models the zoo lacks give ``None``.
    """
    key = str(label).lower().replace("-", "").replace("_", "").replace(" ", "")
    key = re.sub(r"^convnet(\d)$", r"convnetd\1", key)
    return {name.lower(): name for name in MODEL_NAMES}.get(key)


def stage_epochs(num_epochs: int, num_stages: int) -> list[int]:
    """``num_stages`` evenly spaced snapshot epochs from 0 to ``num_epochs`` (rounded, unique)."""
    if num_epochs < 0 or num_stages < 1:
        raise ValueError(f"num_epochs={num_epochs}, num_stages={num_stages}: expected >= 0 and >= 1")
    return sorted({int(round(e)) for e in np.linspace(0, num_epochs, num_stages)})


def snapshot_features(net: nn.Module, params: torch.Tensor | None, images: torch.Tensor,
                      batch_size: int = 512) -> torch.Tensor:
    """Penultimate features ``net.embed`` of ``images`` with the flat snapshot ``params`` loaded.

    Parameters
    ----------
    net : nn.Module
        A zoo model (has ``embed``); its parameters are overwritten with ``params``.
    params : Tensor (P,), optional
        Flat parameters (e.g. ``trajectory.snapshot(epoch)``); ``None`` keeps ``net``'s own.
    images : Tensor (N, C, H, W)
        Normalised images.

    Returns
    -------
    Tensor (N, D)
        On the CPU, computed in eval mode without gradient.
    """
    device = next(net.parameters()).device
    if params is not None:
        load_flat_params(net, params.to(device))
    was_training = net.training
    net.eval()
    with torch.no_grad():
        parts = [net.embed(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    net.train(was_training)
    return torch.cat(parts)


def snapshot_accuracies(net: nn.Module, trajectory: Any, epochs: Sequence[int], images: torch.Tensor,
                        labels: torch.Tensor) -> list[float]:
    """Fig. 4 (b), class separability: accuracy of each snapshot ``epochs`` of ``trajectory`` on a set.

    Returns
    -------
    list of float
        Per epoch, the fraction of ``images`` ``(N, C, H, W)`` the snapshot classifies as ``labels``.
    """
    device = next(net.parameters()).device
    out = []
    for epoch in epochs:
        load_flat_params(net, trajectory.snapshot(int(epoch)).to(device))
        out.append(accuracy(net, images.to(device), labels.to(device)))
    return out


# -- Fig. 4 (a), (c) -------------------------------------------------------------------------------
def correlation_matrix(features: torch.Tensor) -> torch.Tensor:
    """Pearson correlations ``(D, D)`` between the ``D`` features over the ``N`` samples of ``(N, D)``.

    A constant feature correlates 0 with every feature, itself included (no NaN).
    """
    if features.dim() != 2:
        raise ValueError(f"features must be (N, D); got shape {tuple(features.shape)}")
    x = features.double() - features.double().mean(0)
    norm = x.norm(dim=0)
    z = torch.where(norm > 1e-12, x / norm.clamp_min(1e-12), torch.zeros_like(x))
    return (z.T @ z).float()


def feature_correlation_similarity(real: torch.Tensor, syn: torch.Tensor) -> float:
    """Fig. 4 (a): cosine similarity of the off-diagonal entries of the two correlation matrices.

    Parameters
    ----------
    real, syn : Tensor (N_real, D), (N_syn, D)
        Features of real and synthetic images from the same network.

    Returns
    -------
    float
        In ``[-1, 1]``; 1 when the synthetic features co-vary exactly as the real ones do
        (up to a positive factor); 0 when either matrix has no off-diagonal correlation.
    """
    if real.dim() != 2 or syn.dim() != 2 or real.shape[1] != syn.shape[1]:
        raise ValueError(f"need (N, D) features with the same D; got {tuple(real.shape)} and {tuple(syn.shape)}")
    off = ~torch.eye(real.shape[1], dtype=torch.bool)
    a, b = correlation_matrix(real)[off].double(), correlation_matrix(syn)[off].double()
    denom = a.norm() * b.norm()
    return float(a @ b / denom) if denom > 0 else 0.0


def activation_ratios(features: torch.Tensor, threshold: float | torch.Tensor = 0.0) -> tuple[torch.Tensor, float]:
    """Fig. 4 (c), information density: the share of neurons an image or a set activates.

    Parameters
    ----------
    features : Tensor (N, D)
        Activations of ``D`` neurons (e.g. the post-ReLU penultimate features).
    threshold : float or Tensor (D,)
        A neuron is active when its activation exceeds ``threshold`` (one value, or one per
        neuron, e.g. a quantile of its activations on real data: after average pooling almost
        every ReLU feature is positive, so ``0`` saturates).

    Returns
    -------
    (Tensor (N,), float)
        Per image, the fraction of the ``D`` neurons it activates; for the set, the fraction
        of neurons at least one image activates.
    """
    if features.dim() != 2 or not len(features):
        raise ValueError(f"features must be a non-empty (N, D); got shape {tuple(features.shape)}")
    threshold = torch.as_tensor(threshold, dtype=features.dtype)
    if threshold.dim() > 1 or (threshold.dim() == 1 and len(threshold) != features.shape[1]):
        raise ValueError(f"threshold must be a number or one value per neuron ({features.shape[1]}); "
                         f"got shape {tuple(threshold.shape)}")
    active = features > threshold
    return active.float().mean(1), float(active.any(0).float().mean())


# -- Fig. 2 and Fig. 5 ---------------------------------------------------------------------------
def class_silhouette(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Fig. 2, class separation: mean silhouette (Euclidean) of ``(N, D)`` features by label.

    Returns NaN when undefined (fewer than 2 classes, or every class a single sample).
    """
    from sklearn.metrics import silhouette_score

    n_labels = len(torch.unique(labels))
    if not 2 <= n_labels <= len(labels) - 1:
        return float("nan")
    return float(silhouette_score(features.double().numpy(), labels.numpy()))


def tsne_embedding(features: torch.Tensor, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE (scikit-learn, PCA init) of ``(N, D)`` features; returns ``(N, 2)``.

    The perplexity is capped at ``(N - 1) / 3`` so small sets work; ``N >= 4`` is required.
    It runs on one thread: for the few hundred points of a synthetic set that is as fast, and
    on a busy machine OpenMP threads spinning for a core slow it down a hundredfold.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    if len(features) < 4:
        raise ValueError(f"t-SNE needs at least 4 samples; got {len(features)}")
    perplexity = min(float(perplexity), (len(features) - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    with threadpool_limits(limits=1):
        return tsne.fit_transform(features.double().numpy())


def pca_embedding(reference: torch.Tensor, *others: torch.Tensor, components: int = 2) -> list[np.ndarray]:
    """Project ``reference`` and ``others`` onto the principal axes of ``reference``.

    The mean and the axes come from ``reference`` ``(N, D)`` only (e.g. the real features), so
    every set is drawn in the same coordinates. Each axis's sign is fixed so that its
    largest-magnitude loading is positive (SVD signs are arbitrary).

    Returns
    -------
    list of ndarray
        ``(N_i, components)`` per input, ``reference`` first.
    """
    ref = reference.double()
    mean = ref.mean(0)
    _, _, vh = torch.linalg.svd(ref - mean, full_matrices=False)
    axes = vh[:components]
    signs = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    axes = axes * signs
    return [((x.double() - mean) @ axes.T).numpy() for x in (reference, *others)]


def coverage_distance(real: torch.Tensor, real_labels: torch.Tensor, syn: torch.Tensor,
                      syn_labels: torch.Tensor) -> float:
    """Fig. 5: mean distance from each real feature to the nearest synthetic feature of its class.

    Lower means the synthetic set covers the real distribution of each class better (it is
    both representative and diverse).

    Parameters
    ----------
    real, syn : Tensor (N_real, D), (N_syn, D)
    real_labels, syn_labels : Tensor (N_real,), (N_syn,)

    Raises
    ------
    ValueError
        If a class of ``real_labels`` has no synthetic sample.
    """
    # the labels index the features: on the features' device (a CUDA run keeps the data set's labels on the CPU)
    real_labels, syn_labels = real_labels.to(real.device), syn_labels.to(syn.device)
    total = 0.0
    for c in torch.unique(real_labels).tolist():
        mine = syn[syn_labels == c]
        if not len(mine):
            raise ValueError(f"class {c} has real samples but no synthetic sample")
        total += float(torch.cdist(real[real_labels == c].double(), mine.double()).min(1).values.sum())
    return total / len(real_labels)
