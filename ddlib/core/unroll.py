"""The student unroll shared by MTT, AST and MCT, and the normalised matching loss.

The student is a flat parameter vector driven through ``functional_forward``; each inner
step is ``theta_{k+1} = theta_k - syn_lr * grad CE(theta_k; batch_k)`` with
``create_graph=True``, so the matching loss at the end differentiates through every step
to the synthetic images and to the learnable ``syn_lr``. One copy of this loop serves
every trajectory-matching method.

:func:`matching_gradients` gives the same gradients of the outer matching loss with
respect to the images and ``syn_lr`` in memory that does not grow with ``syn_steps``:
it replays the unroll by exact recomputation (reverse-mode differentiation by hand,
one step's graph at a time) instead of keeping the graph of every step.

Both take ``gradient="tesla"`` for the approximation that MCT's code uses (TESLA, Cui et
al., ICML 2023; constant memory there, where the alternative is MTT's full graph): each
step's cross-entropy gradient is taken at *detached* student weights, so the images and
``syn_lr`` receive only each step's direct contribution and the cross-step (Hessian) terms
through later steps are dropped. ``"exact"`` (the default) differentiates through every
step, as MTT does.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Collection, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ddlib.core.functional import functional_forward

__all__ = ["UnrollResult", "unroll_student", "matching_loss", "batch_schedule", "MatchingGradients",
           "matching_gradients", "GRADIENTS"]

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
        grows with ``syn_steps`` here, :func:`matching_gradients` gives it in flat memory).
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
        loss = loss_weight * F.cross_entropy(functional_forward(net, at, batch), labels[index])
        grad = torch.autograd.grad(loss, at, create_graph=True)[0]
        if momentum:
            velocity = momentum * velocity + grad
            params = params - syn_lr * velocity
        else:
            params = params - syn_lr * grad
        losses.append(float(loss.detach()))
        if step in keep_steps:
            kept[step] = params
    return UnrollResult(final=params, kept=kept, inner_losses=losses)


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


@dataclasses.dataclass
class MatchingGradients:
    """Outcome of :func:`matching_gradients`.

    Attributes
    ----------
    loss : float
        The outer matching loss.
    images : torch.Tensor
        ``d loss / d images``, shaped like the images (NaN-filled when ``loss`` is not finite).
    syn_lr : torch.Tensor
        ``d loss / d syn_lr``, shaped like ``syn_lr`` (NaN when ``loss`` is not finite).
    inner_losses : list of float
        The (weighted) inner cross-entropy of every step, as in :class:`UnrollResult`.
    """

    loss: float
    images: torch.Tensor
    syn_lr: torch.Tensor
    inner_losses: list[float]


def _restored(state: torch.Tensor, device: torch.device) -> torch.Generator:
    """A fresh generator in the saved ``state`` (the caller's generator is left alone)."""
    generator = torch.Generator(device=device)
    generator.set_state(state)
    return generator


def matching_gradients(
    net: nn.Module,
    start: torch.Tensor,
    images: torch.Tensor,
    labels: torch.Tensor,
    syn_lr: torch.Tensor,
    *,
    outer: Callable[[torch.Tensor, dict[int, torch.Tensor]], torch.Tensor],
    syn_steps: int,
    generator: torch.Generator,
    batch_syn: int | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    loss_weight: float = 1.0,
    momentum: float = 0.0,
    keep_steps: Collection[int] = (),
    gradient: Literal["exact", "tesla"] = "exact",
) -> MatchingGradients:
    """Gradients of an outer loss of the unrolled student, by exact recomputation.

    Equivalent to ``r = unroll_student(...); outer(r.final, r.kept).backward()`` (same
    arguments, same draws from ``generator``, same gradients for ``images`` and ``syn_lr``
    up to floating-point rounding), but the autograd graph of only one inner step is
    alive at any time, so peak memory does not grow with ``syn_steps`` beyond one ``(P,)``
    parameter vector (and one generator state) per step.

    Method: a forward sweep without a kept graph stores ``theta_k`` (k = 0..N), the batch
    indices and the generator state before every step's augmentation (and, with momentum,
    the velocities ``v_k``); the outer loss gives ``a_N = dL/dtheta_N`` and the direct terms
    ``dL/dtheta_k`` of the kept steps; then for ``k = N-1 .. 0`` step ``k``'s graph is
    rebuilt (same augmented batch from the stored state). With ``grad_k`` the step's
    (weighted) cross-entropy gradient, ``H_k`` its Hessian and ``J_k = d grad_k / dX``, the
    step ``v_{k+1} = m v_k + grad_k``, ``theta_{k+1} = theta_k - lr v_{k+1}`` (plain SGD
    is ``m = 0``) is pulled back with the adjoints ``a`` of ``theta`` and ``u`` of ``v``::

        b       = u_{k+1} - lr a_{k+1}        (total adjoint of v_{k+1})
        dL/dX  += J_k^T b
        dL/dlr += -<v_{k+1}, a_{k+1}>
        a_k     = a_{k+1} + H_k b  (+ dL/dtheta_k if step k is kept)
        u_k     = m b

    Parameters
    ----------
    net, start, images, labels, syn_lr, syn_steps, generator, batch_syn, augment, loss_weight, keep_steps
        As in :func:`unroll_student`. ``images`` and ``syn_lr`` are only read (their
        ``.grad`` is not touched); the gradients are returned.
    outer : callable
        ``outer(final, kept) -> scalar loss`` with ``final`` the ``(P,)`` parameters after
        ``syn_steps`` steps and ``kept`` the parameters after each step of ``keep_steps``
        (as :attr:`UnrollResult.final` / :attr:`UnrollResult.kept`); must be
        differentiable with respect to them.
    momentum : float
        Heavy-ball momentum of the student, as in :func:`unroll_student` (0 = plain SGD).
        With momentum one more ``(P,)`` vector per step is stored.
    gradient : {"exact", "tesla"}
        ``"tesla"`` sets ``H_k = 0`` above: the adjoint ``a`` is not pulled back through
        the steps' Hessians, so ``dL/dX = sum_k J_k^T b_k`` with ``J_k`` taken at the
        (detached) ``theta_k``, and ``dL/dlr = -sum_k <v_{k+1}, a_{k+1}>``. For plain SGD
        and MTT's loss this is MCT's code: ``b_k = -lr dL/dtheta_N`` with ``lr =
        syn_lr.item()``, i.e. ``dL/dX = (2 / D) sum_k J_k^T (lr (target - start) + lr^2
        sum_j grad_j)``, ``D = ||start - target||^2``. Equal to ``"exact"`` for
        ``syn_steps = 1`` (no later step). Against MTT's full-graph unroll TESLA saves memory;
        against this recomputation it saves only the pull-back to the parameters, and the
        double backward to the images, which both need, dominates (CPU, mini scale: about
        the same time per iteration).

    Returns
    -------
    MatchingGradients
        When the outer loss is not finite, the backward sweep is skipped and the
        gradients are NaN-filled (the caller decides how to fail).

    Raises
    ------
    ValueError
        For ``syn_steps < 1``, ``momentum`` outside ``[0, 1)`` or an unknown ``gradient``,
        before any computation.
    """
    if syn_steps < 1:
        raise ValueError(f"syn_steps={syn_steps}: expected >= 1")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum={momentum}: expected 0 <= momentum < 1")
    _check_gradient(gradient)
    lr = syn_lr.detach()
    data = images.detach()
    schedule = batch_schedule(len(images), batch_syn, syn_steps, generator)
    kept_steps = sorted({int(s) for s in keep_steps if 1 <= s <= syn_steps})

    # Forward sweep: one step's graph at a time (first-order only), nothing kept. The
    # parameters (and velocities) of every step go into ONE preallocated (N + 1, P) buffer:
    # N separate vectors allocated between each step's temporaries would fragment the heap
    # and let the process's resident memory creep up with syn_steps.
    thetas = start.new_empty((syn_steps + 1, *start.shape))
    thetas[0] = start.detach()
    velocities = torch.zeros_like(thetas) if momentum else None  # v_0 .. v_N
    states: list[torch.Tensor | None] = []
    losses: list[float] = []
    for k, index in enumerate(schedule):
        params = thetas[k].clone().requires_grad_(True)
        batch = data[index]
        if augment is not None:
            states.append(generator.get_state())
            batch = augment(batch, generator)
        else:
            states.append(None)
        loss = loss_weight * F.cross_entropy(functional_forward(net, params, batch), labels[index])
        grad = torch.autograd.grad(loss, params)[0]
        with torch.no_grad():
            if velocities is not None:
                velocities[k + 1] = momentum * velocities[k] + grad
                thetas[k + 1] = thetas[k] - lr * velocities[k + 1]
            else:
                thetas[k + 1] = thetas[k] - lr * grad
        losses.append(float(loss.detach()))
        del params, batch, loss, grad

    # Outer loss on leaf copies of the final and kept parameters.
    leaves = {s: thetas[s].clone().requires_grad_(True) for s in {*kept_steps, syn_steps}}
    outer_loss = outer(leaves[syn_steps], {s: leaves[s] for s in kept_steps})
    value = float(outer_loss.detach())
    if not math.isfinite(value):
        return MatchingGradients(loss=value, images=torch.full_like(data, math.nan),
                                 syn_lr=torch.full_like(lr, math.nan), inner_losses=losses)
    steps = list(leaves)
    direct = dict(zip(steps, torch.autograd.grad(outer_loss, [leaves[s] for s in steps], allow_unused=True)))
    del outer_loss, leaves

    # Backward sweep: rebuild step k's graph, pull the adjoints (a of theta, u of v) back to step k.
    zero = torch.zeros_like(thetas[0])
    adjoint = direct[syn_steps] if direct[syn_steps] is not None else zero
    adjoint_v = zero
    d_images = torch.zeros_like(data)
    d_lr = torch.zeros_like(lr)
    for k in range(syn_steps - 1, -1, -1):
        index = schedule[k]
        params = thetas[k].clone().requires_grad_(True)
        x = data.detach().requires_grad_(True)
        batch = x[index]
        if augment is not None:
            batch = augment(batch, _restored(states[k], generator.device))
        loss = loss_weight * F.cross_entropy(functional_forward(net, params, batch), labels[index])
        grad = torch.autograd.grad(loss, params, create_graph=True)[0]
        with torch.no_grad():
            total_v = adjoint_v - lr * adjoint  # b: the adjoint of v_{k+1} = m v_k + grad_k
            d_lr -= torch.dot(velocities[k + 1] if velocities is not None else grad.detach(), adjoint)
        if gradient == "tesla":  # H_k = 0: no pull-back through the parameters
            hvp, (vjp_x,) = None, torch.autograd.grad(grad, (x,), grad_outputs=total_v, allow_unused=True)
        else:
            hvp, vjp_x = torch.autograd.grad(grad, (params, x), grad_outputs=total_v, allow_unused=True)
        with torch.no_grad():
            if vjp_x is not None:
                d_images += vjp_x
            adjoint = adjoint + hvp if hvp is not None else adjoint.clone()
            if k in direct and direct[k] is not None:
                adjoint += direct[k]
            adjoint_v = momentum * total_v if momentum else zero
        del loss, grad, hvp, vjp_x, batch, x, params  # free step k's graph before rebuilding k - 1
    return MatchingGradients(loss=value, images=d_images, syn_lr=d_lr, inner_losses=losses)
