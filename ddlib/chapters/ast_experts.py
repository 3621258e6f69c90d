"""AST's expert variants (Tables 1 and 6, Fig. 4) and what the chapter measures on them.

Split from :mod:`ddlib.chapters.ast_experiments` (which re-exports everything here):
:func:`expert_variant` names each kind of expert (optimizer, loss hook) under the authors'
``"code"`` preset or the ``"paper"``'s, with a :class:`VariantLoss` hook that carries both
labels into the trajectory store; :func:`expert_summary`, :func:`trajectory_curves` and
:func:`expert_input_gradient_norms` measure a store of experts.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ddlib.methods.ast_components import SmoothExpertLoss, average_variation, input_gradient_norms, step_sizes
from ddlib.core.config import Config
from ddlib.data.dataset import ImageDataset
from ddlib.chapters.scales import ScaleSettings
from ddlib.trajectories.experts import ExpertConfig, build_expert_model
from ddlib.core.functional import load_flat_params
from ddlib.core.train import LossHook, cross_entropy_hook
from ddlib.trajectories.trajectory_store import TrajectoryStore

__all__ = ["EXPERT_VARIANTS", "VariantLoss", "expert_variant", "first_experts", "expert_summary",
           "input_gradient_norm", "expert_input_gradient_norms", "per_expert_metrics", "trajectory_curves",
           "expert_network"]

#: Expert-training variants: Table 1's optimizers and Table 6's smoothness ablation.
EXPERT_VARIANTS = ("SGD", "SGD+momentum", "Adam", "momentum+GP", "momentum+GP+clip")


def _check_preset(value: str, name: str = "preset") -> None:
    if value not in ("code", "paper"):
        raise ValueError(f"{name}={value!r}: expected 'code' (the authors' code) or 'paper'")


@dataclasses.dataclass(frozen=True)
class VariantLoss(Config):
    """Loss hook of one AST expert variant, labelled with the variant and the preset that made it.

    Behaves as ``smooth`` (a :class:`~ddlib.methods.ast_components.SmoothExpertLoss`) or, when that is
    ``None``, as plain cross-entropy. Being a :class:`~ddlib.core.config.Config`, its fields are
    written into the trajectory store's manifest (and its cache key), so every row can name
    the preset its experts were trained with (``hook.preset``).
    """

    #: Name of the AST expert variant, one of ``EXPERT_VARIANTS`` other than ``"SGD"`` (required).
    variant: str
    #: The preset that made the hook: ``"code"`` (the authors' code) or ``"paper"`` (required).
    preset: Literal["code", "paper"]
    #: AST's smooth-expert loss; ``None`` (default): plain cross-entropy (Table 1's optimizers).
    smooth: SmoothExpertLoss | None = None

    def __post_init__(self) -> None:
        if isinstance(self.smooth, Mapping):  # from_dict / a manifest
            object.__setattr__(self, "smooth", SmoothExpertLoss.from_dict(self.smooth))
        super().__post_init__()

    def validate(self) -> None:
        if self.variant not in EXPERT_VARIANTS[1:]:
            raise ValueError(f"variant={self.variant!r}: expected one of {EXPERT_VARIANTS[1:]}")

    def __call__(self, net: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epoch: int,
                 raw_images: torch.Tensor) -> torch.Tensor:
        """Scalar loss of one mini-batch (``images``/``raw_images`` ``(B, C, H, W)``, ``labels`` ``(B,)``)."""
        hook = cross_entropy_hook if self.smooth is None else self.smooth
        return hook(net, images, labels, epoch=epoch, raw_images=raw_images)


def expert_variant(settings: ScaleSettings, name: str, *, zca: bool = False,
                   preset: Literal["code", "paper"] = "code") -> tuple[ExpertConfig, LossHook]:
    """Expert config and loss hook of variant ``name`` (one of ``EXPERT_VARIANTS``) under ``preset``.

    ``SGD`` is MTT's expert (``settings.expert_config("mtt")``, shared with the other
    chapters, plain cross-entropy) under either preset. The others train with
    :meth:`ExpertConfig.ast(preset) <ddlib.trajectories.experts.ExpertConfig.ast>` at this scale's epochs,
    width and batch, and return a :class:`VariantLoss` hook that carries ``name`` and
    ``preset``:

    * ``SGD+momentum``: plain cross-entropy;
    * ``Adam``: the same schedule with Adam (``"code"``: ``buffer.py``'s Adam, lr 0.003 and no
      weight decay, rebuilt with lr x0.6; ``"paper"``: lr 0.01 halved half-way, as the paper
      does not state Adam's lr);
    * ``momentum+GP``: adds the gradient penalty of Eq. 1;
    * ``momentum+GP+clip``: AST's smooth expert (penalty and clipped loss),
      :meth:`SmoothExpertLoss.code() <ddlib.methods.ast_components.SmoothExpertLoss.code>` (clip over
      10 epochs, penalty x2, per-pixel norm) or :meth:`~ddlib.methods.ast_components.SmoothExpertLoss.paper`.
    """
    if name not in EXPERT_VARIANTS:
        raise ValueError(f"expert variant {name!r}: expected one of {EXPERT_VARIANTS}")
    _check_preset(preset)
    if name == "SGD":
        return settings.expert_config("mtt", zca=zca), cross_entropy_hook
    scaled = settings.expert_config("ast", zca=zca)  # this scale's epochs, width and batch
    config = ExpertConfig.ast(preset, epochs=scaled.epochs, width=scaled.width, batch_size=scaled.batch_size, zca=zca)
    if name == "Adam":
        # buffer.py builds Adam(lr=lr) without the SGD's weight decay; the paper's reading has none either
        config = config.replace(optimizer=config.optimizer.replace(kind="adam", weight_decay=0.0))
    smooth = SmoothExpertLoss.code if preset == "code" else SmoothExpertLoss.paper
    losses = {"SGD+momentum": None, "Adam": None, "momentum+GP": smooth(use_clip=False), "momentum+GP+clip": smooth()}
    return config, VariantLoss(name, preset, losses[name])


def first_experts(store: TrajectoryStore, n: int) -> TrajectoryStore:
    """The same store restricted to its first ``n`` experts, as a :class:`TrajectoryStore`.

    :func:`~ddlib.chapters.scales.cached_experts` returns ``n`` experts, but as a ``FirstExperts`` view
    (``len`` and ``trajectory`` only) when another chapter extended the shared store; this store
    also iterates, and its ``manifest`` and ``nbytes`` cover just the ``n`` experts.
    """
    if len(store) < n:
        raise ValueError(f"the store {str(store.root)!r} holds {len(store)} experts; {n} were requested")
    return TrajectoryStore(store.root, {**store.manifest, "experts": store.manifest["experts"][:n]},
                           verify=store.verify)


def expert_summary(store: TrajectoryStore) -> dict[str, float]:
    """``avg_var`` (AST's Avg Var, mean over experts of mean_t ||theta_t - theta_{t+1}||^2) and the
    experts' final test accuracy (``expert_acc``, percent, mean and std over experts)."""
    variations = [average_variation(trajectory.snapshots) for trajectory in store]
    finals = [100 * float(e["test_accuracy"][-1]) for e in store.experts]
    return {"avg_var": float(np.mean(variations)), "expert_acc": float(np.mean(finals)),
            "expert_acc_std": float(np.std(finals))}


def input_gradient_norm(net: nn.Module, images: torch.Tensor,
                        norm: Literal["sample", "pixel"] = "sample") -> float:
    """Mean input-gradient norm of ``net`` on ``images`` ``(N, C, H, W)``: the quantity AST's gradient
    penalty (Eq. 1) pulls towards ``K`` from either side (so it only smooths an expert whose norm exceeds K).

    ``g = d sum(net(x)) / d x``; ``norm="sample"`` (paper): the mean over samples of ``||g_b||_2``
    over ``C*H*W``; ``norm="pixel"`` (authors' code): the mean over samples and pixels of the norm over
    the channels (:func:`~ddlib.methods.ast_components.input_gradient_norms`).
    """
    return _input_gradient_norms(net, images, (norm,))[norm]


def _input_gradient_norms(net: nn.Module, images: torch.Tensor, norms: Sequence[str]) -> dict[str, float]:
    inputs = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(inputs).sum(), inputs)
    return {norm: float(input_gradient_norms(grad, norm).mean()) for norm in norms}


def expert_input_gradient_norms(store: TrajectoryStore, data: ImageDataset, images: torch.Tensor,
                                num_experts: int | None = None) -> dict[str, float]:
    """The experts' mean input-gradient norm under both readings, to report beside the penalty's ``K``.

    Each of the first ``num_experts`` experts (default: all) is loaded at its final epoch
    (:func:`expert_network`) and measured on ``images`` ``(N, C, H, W)`` (the images the experts
    saw: whitened when they were trained with ZCA) with :func:`input_gradient_norm`.

    Returns
    -------
    dict
        ``sample`` and ``pixel``: the means over experts (paper's per-sample norm, code's
        per-pixel norm); ``sample_std``, ``pixel_std``: their std over experts; ``experts``: how
        many were measured.
    """
    count = len(store) if num_experts is None else num_experts
    if not 1 <= count <= len(store):
        raise ValueError(f"num_experts={num_experts}: expected 1 <= num_experts <= {len(store)} (the store's experts)")
    per_expert = [_input_gradient_norms(expert_network(store, data, k), images.to(data.images_train.device),
                                        ("sample", "pixel")) for k in range(count)]
    out: dict[str, float] = {"experts": count}
    for norm in ("sample", "pixel"):
        values = np.array([e[norm] for e in per_expert])
        out[norm], out[f"{norm}_std"] = float(values.mean()), float(values.std())
    return out


def per_expert_metrics(store: TrajectoryStore, data: ImageDataset, images: torch.Tensor) -> dict[str, np.ndarray]:
    """Tables 1 and 6 per expert (the experts are the units of the claims on experts).

    Expert ``k`` of every variant is trained from the same seed (init and data order), so
    experts of two variants pair by index.

    Parameters
    ----------
    images : torch.Tensor, shape (N, C, H, W)
        Where the input-gradient norms are measured (the images the experts saw).

    Returns
    -------
    dict of numpy.ndarray, each of shape (num_experts,)
        ``avg_var`` (mean_t ||theta_t - theta_{t+1}||^2), ``expert_acc`` (final test accuracy,
        percent), ``input_grad_norm_sample`` (paper's per-sample norm) and ``input_grad_norm_pixel``
        (code's per-pixel norm) of the final network.
    """
    norms = [_input_gradient_norms(expert_network(store, data, k), images.to(data.images_train.device),
                                   ("sample", "pixel")) for k in range(len(store))]
    return {"avg_var": np.array([average_variation(store.trajectory(k).snapshots) for k in range(len(store))]),
            "expert_acc": np.array([100 * float(e["test_accuracy"][-1]) for e in store.experts]),
            "input_grad_norm_sample": np.array([n["sample"] for n in norms]),
            "input_grad_norm_pixel": np.array([n["pixel"] for n in norms])}


def trajectory_curves(store: TrajectoryStore) -> dict[str, np.ndarray]:
    """Fig. 4's curves, averaged over experts: ``epoch`` (1..E), ``step_size``
    ``||theta_{t-1} - theta_t||^2`` ending at that epoch and ``test_acc`` (percent) after it."""
    steps = np.mean([step_sizes(trajectory.snapshots).numpy() for trajectory in store], axis=0)
    accuracy = 100 * np.mean([e["test_accuracy"] for e in store.experts], axis=0)
    return {"epoch": np.arange(1, len(steps) + 1), "step_size": steps, "test_acc": accuracy}


def expert_network(store: TrajectoryStore, data: ImageDataset, k: int = 0) -> nn.Module:
    """A network holding expert ``k``'s final parameters, on the data's device (herding, Fig. 6)."""
    trajectory = store.trajectory(k)
    net = build_expert_model(data, store.config).to(data.images_train.device)
    load_flat_params(net, trajectory.snapshot(trajectory.num_epochs).to(data.images_train.device))
    return net
