"""The student unroll shared by MTT, AST and MCT, and the normalised matching loss.

The student is a flat parameter vector driven through ``functional_forward``; each inner
step is ``theta_{k+1} = theta_k - syn_lr * grad CE(theta_k; batch_k)`` with
``create_graph=True``, so the matching loss at the end differentiates through every step
to the synthetic images and to the learnable ``syn_lr``. One copy of this loop serves
every trajectory-matching method.

:func:`ddlib.core.unroll_recompute.matching_gradients` gives the same gradients of the outer
matching loss with respect to the images and ``syn_lr`` in memory that does not grow with
``syn_steps``: it replays the unroll by exact recomputation (reverse-mode differentiation by
hand, one step's graph at a time) instead of keeping the graph of every step.

Both take ``gradient="tesla"`` for the approximation that MCT's code uses (TESLA, Cui et
al., ICML 2023; constant memory there, where the alternative is MTT's full graph): each
step's cross-entropy gradient is taken at *detached* student weights, so the images and
``syn_lr`` receive only each step's direct contribution and the cross-step (Hessian) terms
through later steps are dropped. ``"exact"`` (the default) differentiates through every
step, as MTT does.

Both take ``shard=`` (a :class:`ddlib.core.data_parallel.DataParallel`) to divide every inner
step's mini-batch among the processes of a data-parallel run: the gradients they return (and
the graph ``unroll_student`` builds) are then the single-process ones, except that the image
gradient holds only this rank's part of every batch, to be summed over the ranks by the caller.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, Collection, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ddlib.core.functional import functional_forward

if TYPE_CHECKING:
    from ddlib.core.data_parallel import DataParallel

__all__ = ["UnrollResult", "unroll_student", "matching_loss", "batch_schedule", "GRADIENTS"]

#: How the outer loss is differentiated through the inner steps (see the module docstring).
GRADIENTS = ("exact", "tesla")


def _check_gradient(gradient: str) -> None:
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient={gradient!r}: expected one of {GRADIENTS}")


@dataclasses.dataclass
class UnrollResult:
    """Outcome of one student unroll.

    Attributes
    ----------
    final : torch.Tensor
        ``(P,)`` student parameters after ``syn_steps`` steps (in the autograd graph).
    kept : dict of int to torch.Tensor
        ``(P,)`` parameters after the requested intermediate steps.
    inner_losses : list of float
        The (weighted) inner cross-entropy of every step.
    """

    final: torch.Tensor
    kept: dict[int, torch.Tensor]
    inner_losses: list[float]


def batch_schedule(num_images: int, batch_syn: int | None, syn_steps: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Mini-batch indices for every inner step: shuffled passes over the synthetic set.

    Returns
    -------
    list of torch.Tensor
        ``syn_steps`` int64 index tensors of length ``batch_syn`` (or all images).
    """
    size = num_images if not batch_syn else min(batch_syn, num_images)
    chunks: list[torch.Tensor] = []
    schedule = []
    for _ in range(syn_steps):
        if not chunks:
            chunks = list(torch.randperm(num_images, generator=generator).split(size))
        schedule.append(chunks.pop(0))
    return schedule


def unroll_student(
    net: nn.Module,
    start: torch.Tensor,
    images: torch.Tensor,
    labels: torch.Tensor,
    syn_lr: torch.Tensor,
    *,
    syn_steps: int,
    generator: torch.Generator,
    batch_syn: int | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    loss_weight: float = 1.0,
    momentum: float = 0.0,
    keep_steps: Collection[int] = (),
    gradient: Literal["exact", "tesla"] = "exact",
    shard: DataParallel | None = None,
) -> UnrollResult:
    """Train a functional student for ``syn_steps`` SGD steps on the synthetic set.

    Parameters
    ----------
    net : nn.Module
        Architecture of the student (its own parameters are not used).
    start : torch.Tensor
        ``(P,)`` starting parameters (an expert snapshot, possibly perturbed); detached here.
    images : torch.Tensor
        ``(N, C, H, W)`` synthetic images (requires grad to learn them).
    labels : torch.Tensor
        ``(N,)`` int64.
    syn_lr : torch.Tensor
        Scalar learnable step size.
    batch_syn : int, optional
        Mini-batch size of the inner steps (default: all images).
    augment : callable, optional
        Per-sample DSA ``augment(batch, generator)``.
    loss_weight : float
        Multiplies the inner cross-entropy (AST's balanced inner-loop loss, Eq. 2).
    momentum : float
        Heavy-ball momentum of the student (0 = plain SGD as in MTT; the AST code uses 0.9).
    keep_steps : collection of int
        Steps (1-based counts of completed steps) whose parameters are returned in ``kept``.
    gradient : {"exact", "tesla"}
        ``"exact"``: every step's gradient is a function of the previous steps' parameters
        (MTT). ``"tesla"``: it is taken at detached parameters, so ``final`` depends on the
        images and ``syn_lr`` only through each step's own term (MCT's code; the graph still
        grows with ``syn_steps`` here, :func:`~ddlib.core.unroll_recompute.matching_gradients` gives it in flat memory).
    shard : DataParallel, optional
        Data parallel: this rank takes the gradient of its contiguous part of every batch
        (weighted by the part's share of the batch, after augmenting the whole batch so the
        draws match one process) and the parts are summed over the ranks. ``final``,
        ``kept``, ``inner_losses`` and the ``syn_lr`` gradient are the single-process ones on
        every rank; backpropagating leaves in ``images.grad`` only this rank's parts (sum it
        over the ranks). ``None``: one process.
    """
    if syn_steps < 1:
        raise ValueError(f"syn_steps={syn_steps}: expected >= 1")
    _check_gradient(gradient)
    params = start.detach().clone().requires_grad_(True)
    velocity = torch.zeros_like(params)
    kept: dict[int, torch.Tensor] = {}
    losses: list[float] = []
    for step, index in enumerate(batch_schedule(len(images), batch_syn, syn_steps, generator), 1):
        batch = images[index]
        if augment is not None:
            batch = augment(batch, generator)
        # TESLA: a fresh leaf cuts the path from this step's gradient back to earlier steps.
        at = params.detach().requires_grad_(True) if gradient == "tesla" else params
        if shard is None:
            loss = loss_weight * F.cross_entropy(functional_forward(net, at, batch), labels[index])
            grad = torch.autograd.grad(loss, at, create_graph=True)[0]
        else:
            # replicate/reduce keep the adjoints of the replicated parameters equal on every rank
            # (ddlib.core.data_parallel); TESLA's detached leaf has no adjoint to pull back.
            local = shard.replicate(at) if gradient == "exact" else at
            loss = _part_loss(net, local, batch, labels[index], loss_weight, shard)
            grad = shard.reduce(torch.autograd.grad(loss, local, create_graph=True)[0])
        if momentum:
            velocity = momentum * velocity + grad
            params = params - syn_lr * velocity
        else:
            params = params - syn_lr * grad
        losses.append(float(loss.detach()))
        if step in keep_steps:
            kept[step] = params
    return UnrollResult(final=params, kept=kept, inner_losses=_summed(losses, shard, images.device))


def _part_loss(net: nn.Module, params: torch.Tensor, batch: torch.Tensor, labels: torch.Tensor,
               loss_weight: float, shard: DataParallel) -> torch.Tensor:
    """This rank's share of one step's loss: ``loss_weight * |part| / |B| * CE(part)``, summing to the batch mean."""
    part = shard.part(len(batch))
    share = (part.stop - part.start) / len(batch)
    return loss_weight * share * F.cross_entropy(functional_forward(net, params, batch[part]), labels[part])


def _summed(losses: list[float], shard: DataParallel | None, device: torch.device) -> list[float]:
    """The per-step inner losses summed over the ranks (one all-reduce for all steps; on ``device`` for NCCL)."""
    if shard is None:
        return losses
    return shard.all_reduce_(torch.tensor(losses, dtype=torch.float64, device=device)).tolist()


def matching_loss(student: torch.Tensor, start: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MTT's normalised parameter-matching loss.

    ``||student - target||^2 / ||start - target||^2``: 0 when the student lands on the
    expert's target, 1 when it does not move from the start.

    Parameters
    ----------
    student, start, target : torch.Tensor
        ``(P,)`` flat parameters.
    """
    denominator = (start.detach() - target.detach()).pow(2).sum()
    if float(denominator) == 0.0:
        raise ValueError("start and target expert parameters are identical: the matching loss is undefined")
    return (student - target.detach()).pow(2).sum() / denominator


