"""Building blocks of AST (Shen et al., 2023, "Efficient Dataset Distillation through
Alignment with Smooth and High-Quality Expert Trajectories").

Each function implements the paper's (Sec. 3) version by default; where the authors'
code differs, that is an option documented in the docstring. Smooth experts (Eq. 1):
:class:`SmoothExpertLoss` (a ``LossHook`` for :func:`ddlib.core.train.train_epoch`),
:func:`clip_factor`, :func:`gradient_penalty`, the metric :func:`average_variation` /
:func:`step_sizes`; balanced inner-loop loss (Eq. 2): :func:`balanced_loss_weight`;
intermediate matching (Eq. 4): :func:`intermediate_points`, :func:`intermediate_weights`;
weight perturbation (Eq. 5): :func:`~ddlib.methods.ast_perturbation.perturb_weights` (in :mod:`ddlib.methods.ast_perturbation`,
re-exported here); representative initialisation: :func:`class_features`,
:func:`representative_init`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddlib.methods.ast_perturbation import perturb_weights
from ddlib.core.config import Config

__all__ = [
    "clip_factor", "input_gradient_norms", "gradient_penalty", "SmoothExpertLoss", "step_sizes",
    "average_variation", "balanced_loss_weight", "intermediate_points", "intermediate_weights",
    "class_features", "representative_init",
]


# --------------------------------------------------------------------------- smooth experts
def clip_factor(epoch: int, clip_start: float = 0.5, clip_epochs: int = 5) -> float:
    """Coefficient ``lambda(epoch)`` of the clipped cross-entropy (Eq. 1).

    ``lambda(e) = clip_start + (1 - clip_start) * e / clip_epochs`` for ``e < clip_epochs``,
    else ``1``; ``e`` is the zero-based epoch.

    * Paper (Sec. 4.1, "an array ranging from 0.5 to 1 ... for the first 5 training
      epochs"): ``clip_start=0.5, clip_epochs=5`` gives 0.5, 0.6, 0.7, 0.8, 0.9, then 1.
    * Authors' code variant: ``clip_epochs=10`` gives 0.5, 0.55, ..., 0.95, then 1.

    ``clip_epochs=0`` disables the schedule (always 1).
    """
    if epoch < 0:
        raise ValueError(f"epoch={epoch}: expected >= 0")
    if clip_epochs < 0 or not 0 < clip_start <= 1:
        raise ValueError(f"clip_start={clip_start}, clip_epochs={clip_epochs}: expected (0, 1] and >= 0")
    if epoch >= clip_epochs:
        return 1.0
    return clip_start + (1.0 - clip_start) * epoch / clip_epochs


def input_gradient_norms(grad: Tensor, norm: Literal["sample", "pixel"] = "sample") -> Tensor:
    """Norms of an input gradient ``grad`` ``(B, C, H, W)`` as AST's gradient penalty reads them.

    * ``"sample"`` (the paper's Eq. 1): one L2 norm per sample over all ``C * H * W`` elements,
      shape ``(B,)``.
    * ``"pixel"`` (the authors' code, ``torch.norm(gradients, p=2, dim=1)``): one L2 norm per
      sample and pixel over the channels (dim 1), shape ``(B, H, W)``.

    A ``(B, D)`` gradient gives ``(B,)`` under both.
    """
    if norm == "sample":
        return grad.reshape(len(grad), -1).norm(p=2, dim=1)
    if norm == "pixel":
        return grad.norm(p=2, dim=1)
    raise ValueError(f"norm={norm!r}: expected 'sample' (paper, per-sample norm over C*H*W) or 'pixel' "
                     "(code, norm over channels per pixel)")


def gradient_penalty(net: nn.Module, x: Tensor, target: float = 1.0,
                     norm: Literal["sample", "pixel"] = "sample") -> Tensor:
    """Two-sided input-gradient penalty of Eq. 1 (without the weight ``mu``).

    ``g = d sum(net(x)) / d x`` and the mean of ``(||g|| - target)^2`` over the norms of
    :func:`input_gradient_norms`:

    * ``norm="sample"`` (paper): ``mean_b (||g_b||_2 - K)^2``, the norm over all of sample
      ``b``'s input elements;
    * ``norm="pixel"`` (authors' code): ``mean_{b,h,w} (||g_{b,:,h,w}||_2 - K)^2``, the norm over
      the channels of each pixel, averaged over pixels and samples.

    The gradient is computed with ``create_graph=True``, so the returned scalar can be
    back-propagated to the network's parameters (double back-prop).

    Parameters
    ----------
    net : nn.Module
        Called on ``x`` in its current mode (AST: the expert, in train mode). Batch norm
        in train mode couples the samples (cross-sample terms in the gradient) and
        updates its running statistics again; ddlib's default instance norm does neither.
    x : Tensor
        ``(B, C, H, W)`` input batch, AST: the *un-augmented* images. It is detached and
        cloned; the caller's tensor is not modified.
    target : float
        ``K`` of Eq. 1 (paper and code: 1).
    norm : {"sample", "pixel"}

    Returns
    -------
    Tensor
        Scalar (0-dim) penalty.
    """
    inputs = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = net(inputs)
        (grad,) = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
    return ((input_gradient_norms(grad, norm) - target) ** 2).mean()


@dataclasses.dataclass(frozen=True)
class SmoothExpertLoss(Config):
    """AST's expert-training loss (Eq. 1) as a :class:`ddlib.core.train.LossHook`.

    ``loss = lambda(epoch) * CE(net(images), labels)
    + gp_weight * gradient_penalty(net, raw_images, gp_target, gp_norm)``
    with ``lambda`` from :func:`clip_factor` (1 when ``use_clip`` is off) and the penalty
    on the un-augmented batch (dropped when ``use_gp`` is off).

    Defaults are the paper's (Sec. 4.1: lambda from 0.5 to 1 over 5 epochs, mu = 1,
    K = 1, per-sample norm), also :meth:`paper`; :meth:`code` gives the authors' code
    (``buffer.py`` / ``utils.epoch_gp``: 10 epochs of steps of 0.05, the penalty multiplied
    by 2 and its norm taken over the channels of each pixel).
    """

    #: Clip factor ``lambda`` of the CE loss at epoch 0, rising linearly to 1 (the paper, Sec. 4.1: 0.5).
    clip_start: float = 0.5
    #: Epochs over which ``lambda`` rises to 1 (the paper, Sec. 4.1: 5; the code: 10).
    clip_epochs: int = 5
    #: Scale the CE loss by ``lambda(epoch)`` (AST's clipped loss); off: ``lambda = 1``.
    use_clip: bool = True
    #: Add the gradient penalty on the un-augmented batch (AST's Eq. 1); off: no penalty.
    use_gp: bool = True
    #: ``mu``, weight of the gradient penalty (the paper, Sec. 4.1: 1; the code: ``LAMBDA=2``).
    gp_weight: float = 1.0
    #: ``K``, target norm of the input gradient (the paper, Sec. 3.1.2: 1).
    gp_target: float = 1.0
    #: Gradient norm: per sample over ``C*H*W`` (``"sample"``, the paper) or over the channels per pixel
    #: (``"pixel"``, the code).
    gp_norm: Literal["sample", "pixel"] = "sample"

    def validate(self) -> None:
        if not 0 < self.clip_start <= 1:
            raise ValueError(f"clip_start={self.clip_start}: expected in (0, 1]")
        if self.clip_epochs < 0:
            raise ValueError(f"clip_epochs={self.clip_epochs}: expected >= 0")
        if self.gp_weight < 0:
            raise ValueError(f"gp_weight={self.gp_weight}: expected >= 0")

    @classmethod
    def paper(cls, **changes: Any) -> "SmoothExpertLoss":
        """The paper's settings (the defaults): clip 0.5 -> 1 over 5 epochs, mu 1, K 1, per-sample norm."""
        return cls(**changes)

    @classmethod
    def code(cls, **changes: Any) -> "SmoothExpertLoss":
        """The authors' code: clip 0.5, 0.55, ..., 0.95 over 10 epochs, penalty x2, per-pixel channel norm."""
        return cls(**{"clip_epochs": 10, "gp_weight": 2.0, "gp_norm": "pixel", **changes})

    def clip(self, epoch: int) -> float:
        """``lambda(epoch)`` of this config (1 when ``use_clip`` is off)."""
        return clip_factor(epoch, self.clip_start, self.clip_epochs) if self.use_clip else 1.0

    def __call__(self, net: nn.Module, images: Tensor, labels: Tensor, *, epoch: int,
                 raw_images: Tensor) -> Tensor:
        """Scalar loss of one mini-batch (``images``/``raw_images`` ``(B, C, H, W)``, ``labels`` ``(B,)``)."""
        loss = self.clip(epoch) * F.cross_entropy(net(images), labels)
        if self.use_gp and self.gp_weight > 0:
            loss = loss + self.gp_weight * gradient_penalty(net, raw_images, self.gp_target, self.gp_norm)
        return loss


def _stack_snapshots(snapshots) -> Tensor:
    """``(E+1, P)`` float64 detached snapshots (a list of ``(P,)`` tensors is stacked)."""
    if not isinstance(snapshots, Tensor):
        snapshots = torch.stack([torch.as_tensor(s).reshape(-1) for s in snapshots])
    if snapshots.dim() != 2 or len(snapshots) < 2:
        raise ValueError(f"snapshots must have shape (E+1, P) with E >= 1; got {tuple(snapshots.shape)}")
    return snapshots.detach().to(torch.float64)


def step_sizes(snapshots: Tensor) -> Tensor:
    """Per-epoch squared parameter change ``||theta_t - theta_{t+1}||_2^2`` (AST Fig. 4).

    Parameters
    ----------
    snapshots : Tensor
        ``(E+1, P)`` flat parameters at epochs ``0..E`` (or a list of ``(P,)`` tensors).

    Returns
    -------
    Tensor
        ``(E,)`` float64.
    """
    s = _stack_snapshots(snapshots)
    return ((s[1:] - s[:-1]) ** 2).sum(dim=1)


def average_variation(snapshots: Tensor) -> float:
    """Smoothness metric Avg Var ``= mean_t ||theta_t - theta_{t+1}||_2^2`` (AST Table 6).

    ``snapshots`` is ``(E+1, P)``; returns the mean of :func:`step_sizes`.
    """
    return float(step_sizes(snapshots).mean())


# --------------------------------------------------------------------------- distillation
def balanced_loss_weight(start_epoch: float, max_start_epoch: int, theta: float = 8.0,
                         log_base: float | None = None) -> float:
    """Coefficient ``nu`` of the balanced inner-loop loss (Eq. 2): ``l_BIL = nu * l_IL``.

    ``middle = max_start_epoch / 2``;
    ``nu = log(start - middle + theta)`` if ``start >= middle`` else
    ``1 / log(middle - start + theta)``. Early starts (large losses) are scaled down,
    late starts (small losses) up; ``nu = log(theta)`` at the middle.

    Parameters
    ----------
    start_epoch : float
        Expert epoch ``t`` the student starts from.
    max_start_epoch : int
        ``T+`` (> 0).
    theta : float
        Offset ``theta`` (paper: 8); must be > 1 so that the logarithm stays positive.
    log_base : float, optional
        ``None``: natural log (paper). Authors' code: ``log_base=5``. (The code also uses
        the integer middle ``max_start_epoch // 2``, equal to the paper's for the even
        ``T+`` of all published settings.)

    """
    if max_start_epoch <= 0:
        raise ValueError(f"max_start_epoch={max_start_epoch}: expected > 0")
    if start_epoch < 0:
        raise ValueError(f"start_epoch={start_epoch}: expected >= 0")
    if theta <= 1:
        raise ValueError(f"theta={theta}: expected > 1 (log(theta) must be positive)")
    if log_base is not None and (log_base <= 0 or log_base == 1):
        raise ValueError(f"log_base={log_base}: expected > 0 and != 1")
    log = math.log if log_base is None else (lambda v: math.log(v, log_base))
    middle = max_start_epoch / 2
    if start_epoch >= middle:
        return log(start_epoch - middle + theta)
    return 1.0 / log(middle - start_epoch + theta)


def intermediate_points(num_steps: int, expert_epochs: int) -> list[int]:
    """Inner steps ``xi_i = floor(i * N / M)``, ``i = 1..M-1``, of intermediate matching (Eq. 4).

    After ``xi_i`` student updates (``theta_hat_{t + xi_i}``, index ``xi_i`` of the list
    of student parameters that starts with the initial ones) the student is matched to
    the expert at epoch ``t + i``: ``L_i = ||theta_hat - theta*_{t+i}||^2 /
    ||theta*_t - theta*_{t+i}||^2``. (The paper writes ``theta*_{t+xi_i}``; the expert is
    indexed by epochs and step ``xi_i`` corresponds to epoch ``i`` of ``M``.)

    Parameters
    ----------
    num_steps : int
        ``N`` = syn_steps; must be >= ``M`` so that the points are distinct and >= 1.
    expert_epochs : int
        ``M`` (>= 1); ``M = 1`` gives no intermediate point.

    Examples
    --------
    >>> intermediate_points(30, 3)
    [10, 20]
    """
    if expert_epochs < 1:
        raise ValueError(f"expert_epochs={expert_epochs}: expected >= 1")
    if num_steps < expert_epochs:
        raise ValueError(f"num_steps={num_steps} < expert_epochs={expert_epochs}: "
                         "intermediate points would repeat or be 0")
    return [i * num_steps // expert_epochs for i in range(1, expert_epochs)]


def intermediate_weights(expert_epochs: int, mode: Literal["equal", "adaptive"] = "equal") -> list[float]:
    """Weights ``beta_i`` of the ``M - 1`` intermediate matching terms (Algorithm 1, line 17).

    * ``"equal"`` (paper's better choice, Fig. 5): ``beta_i = 1``.
    * ``"adaptive"`` ("varied scale based on the value of xi"): ``beta_i = i / (n + 1)``
      with ``n = M - 1`` intermediate points, i.e. ``i / M``, growing towards the target.

    Our reading: the final (usual MTT) term at epoch ``t + M`` keeps weight 1 in both
    modes (``i = M`` in the adaptive formula), and the total loss is
    ``L_final + sum_i beta_i L_i``. The returned list aligns with
    :func:`intermediate_points`.

    Examples
    --------
    >>> intermediate_weights(3, "adaptive")
    [0.3333333333333333, 0.6666666666666666]
    """
    if expert_epochs < 1:
        raise ValueError(f"expert_epochs={expert_epochs}: expected >= 1")
    n = expert_epochs - 1
    if mode == "equal":
        return [1.0] * n
    if mode == "adaptive":
        return [i / (n + 1) for i in range(1, n + 1)]
    raise ValueError(f"mode={mode!r}: expected 'equal' or 'adaptive'")


# --------------------------------------------------------------------------- initialisation
@torch.no_grad()
def class_features(net: nn.Module, images: Tensor, batch_size: int = 256, *, use_logits: bool = False) -> Tensor:
    """Features of ``images`` ``(N, C, H, W)`` for representative initialisation -> ``(N, D)``.

    Paper (Sec. 3.2.1): the penultimate features ``net.embed(x)`` of a trained expert.
    Authors' code variant: ``use_logits=True`` uses ``net(x)`` ``(N, num_classes)``.
    Runs under ``no_grad`` in eval mode (the module's mode is restored afterwards),
    batches moved to the network's device; the result is a float CPU tensor.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected >= 1")
    first = next(net.parameters(), None)
    device = first.device if first is not None else images.device
    was_training = net.training
    net.eval()
    try:
        fn = net if use_logits else net.embed
        chunks = [fn(images[i : i + batch_size].to(device)).float().cpu()
                  for i in range(0, len(images), batch_size)]
    finally:
        net.train(was_training)
    return torch.cat(chunks) if chunks else torch.zeros(0, 0)


def _nearest_distinct(features: np.ndarray, centroids: np.ndarray, per: int) -> list[int]:
    """For each centroid in order, the ``per`` nearest samples not taken by an earlier one."""
    sq = (features ** 2).sum(1)[:, None] - 2 * features @ centroids.T + (centroids ** 2).sum(1)[None]
    used: set[int] = set()
    chosen: list[int] = []
    for k in range(len(centroids)):
        taken = 0
        for i in np.argsort(sq[:, k], kind="stable"):
            if int(i) not in used:
                used.add(int(i))
                chosen.append(int(i))
                if (taken := taken + 1) == per:
                    break
    return chosen


def representative_init(features: Tensor, ipc: int, seed: int, clusters: int | None = None) -> Tensor:
    """Indices of the real samples of one class used to initialise its synthetic images.

    K-Means (scikit-learn, ``n_init=10``, ``random_state=seed % 2**32``) on the class's
    features with ``K = ipc`` clusters; for each centroid (in K-Means' order) the real
    sample nearest to it (Euclidean). Samples are distinct: if a centroid's nearest
    sample was already taken by an earlier centroid, the next nearest unused one is
    used. ``K = 1`` uses the class mean (the K-Means solution) directly.

    ``clusters=k`` is the paper's IPC-50 variant (10 sub-clusters, each giving its
    centroid's nearest sample plus 4 more): ``K = k`` and the ``ipc / k`` nearest
    unused samples of each centroid. (The authors' code takes ``int(ipc / 10)`` per
    cluster of 10, i.e. nothing at IPC 1; not reproduced.)

    Parameters
    ----------
    features : Tensor
        ``(N_c, D)`` features of the class's real images (:func:`class_features`).
    ipc : int
        Images per class, ``1 <= ipc <= N_c``.
    seed : int
        K-Means seed.
    clusters : int, optional
        Number of clusters when it differs from ``ipc``; ``ipc`` must be a multiple.

    Returns
    -------
    Tensor
        ``(ipc,)`` int64 distinct indices into the class's images, grouped by cluster.
    """
    from sklearn.cluster import KMeans

    x = features.detach().cpu().to(torch.float64).reshape(len(features), -1).numpy()
    n = len(x)
    if ipc < 1 or ipc > n:
        raise ValueError(f"ipc={ipc}: expected 1 <= ipc <= {n} (the class's number of samples)")
    k = ipc if clusters is None else clusters
    if k < 1 or ipc % k:
        raise ValueError(f"clusters={clusters}: expected >= 1 and a divisor of ipc={ipc}")
    centroids = (x.mean(axis=0, keepdims=True) if k == 1 else
                 KMeans(n_clusters=k, n_init=10, random_state=int(seed) % 2**32).fit(x).cluster_centers_)
    return torch.tensor(_nearest_distinct(x, centroids, ipc // k), dtype=torch.int64)
