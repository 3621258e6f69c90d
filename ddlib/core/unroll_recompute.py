"""The gradients of the unrolled student's matching loss by exact recomputation.

:func:`matching_gradients` gives the same gradients of the outer matching loss with respect
to the synthetic images and ``syn_lr`` as differentiating through
:func:`ddlib.core.unroll.unroll_student`, in memory that does not grow with ``syn_steps``:
it replays the unroll by exact recomputation (reverse-mode differentiation by hand, one
step's graph at a time) instead of keeping the graph of every step. It takes the same
``gradient=`` (``"exact"`` or MCT's ``"tesla"``) and ``shard=`` options as the unroll.
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Callable, Collection, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ddlib.core.functional import functional_forward
from ddlib.core.unroll import _check_gradient, _part_loss, _summed, batch_schedule

if TYPE_CHECKING:
    from ddlib.core.data_parallel import DataParallel

__all__ = ["MatchingGradients", "matching_gradients"]


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
        The (weighted) inner cross-entropy of every step, as in :class:`~ddlib.core.unroll.UnrollResult`.
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
    shard: DataParallel | None = None,
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
        As in :func:`~ddlib.core.unroll.unroll_student`. ``images`` and ``syn_lr`` are only read (their
        ``.grad`` is not touched); the gradients are returned.
    outer : callable
        ``outer(final, kept) -> scalar loss`` with ``final`` the ``(P,)`` parameters after
        ``syn_steps`` steps and ``kept`` the parameters after each step of ``keep_steps``
        (as :attr:`~ddlib.core.unroll.UnrollResult.final` / :attr:`~ddlib.core.unroll.UnrollResult.kept`); must be
        differentiable with respect to them.
    momentum : float
        Heavy-ball momentum of the student, as in :func:`~ddlib.core.unroll.unroll_student` (0 = plain SGD).
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
    shard : DataParallel, optional
        Data parallel, as in :func:`~ddlib.core.unroll.unroll_student`: each step's gradient, Hessian-vector
        product and ``syn_lr`` term are computed on this rank's part of the batch and summed
        over the ranks, so the returned ``loss``, ``syn_lr`` gradient and inner losses are the
        single-process ones on every rank and ``images`` is this rank's part of the image
        gradient (the caller sums it over the ranks). ``None``: one process.

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
        if shard is None:
            loss = loss_weight * F.cross_entropy(functional_forward(net, params, batch), labels[index])
            grad = torch.autograd.grad(loss, params)[0]
        else:
            loss = _part_loss(net, params, batch, labels[index], loss_weight, shard)
            grad = shard.all_reduce_(torch.autograd.grad(loss, params)[0])
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
                                 syn_lr=torch.full_like(lr, math.nan), inner_losses=_summed(losses, shard, images.device))
    steps = list(leaves)
    direct = dict(zip(steps, torch.autograd.grad(outer_loss, [leaves[s] for s in steps], allow_unused=True)))
    del outer_loss, leaves

    # Backward sweep: rebuild step k's graph, pull the adjoints (a of theta, u of v) back to step k.
    zero = torch.zeros_like(thetas[0])
    adjoint = direct[syn_steps] if direct[syn_steps] is not None else zero
    adjoint_v = zero
    d_images = torch.zeros_like(data)
    d_lr = torch.zeros_like(lr)
    d_lr_part = torch.zeros_like(lr)  # data parallel: this rank's part of -<grad_k, a_{k+1}> (plain SGD)
    for k in range(syn_steps - 1, -1, -1):
        index = schedule[k]
        params = thetas[k].clone().requires_grad_(True)
        x = data.detach().requires_grad_(True)
        batch = x[index]
        if augment is not None:
            batch = augment(batch, _restored(states[k], generator.device))
        if shard is None:
            loss = loss_weight * F.cross_entropy(functional_forward(net, params, batch), labels[index])
        else:
            loss = _part_loss(net, params, batch, labels[index], loss_weight, shard)
        grad = torch.autograd.grad(loss, params, create_graph=True)[0]  # this rank's part of grad_k
        with torch.no_grad():
            total_v = adjoint_v - lr * adjoint  # b: the adjoint of v_{k+1} = m v_k + grad_k
            if velocities is not None:  # the stored velocities are the full (replicated) ones
                d_lr -= torch.dot(velocities[k + 1], adjoint)
            else:
                (d_lr if shard is None else d_lr_part).sub_(torch.dot(grad.detach(), adjoint))
        if gradient == "tesla":  # H_k = 0: no pull-back through the parameters
            hvp, (vjp_x,) = None, torch.autograd.grad(grad, (x,), grad_outputs=total_v, allow_unused=True)
        else:
            hvp, vjp_x = torch.autograd.grad(grad, (params, x), grad_outputs=total_v, allow_unused=True)
        with torch.no_grad():
            if vjp_x is not None:
                d_images += vjp_x
            if shard is not None and hvp is not None:
                shard.all_reduce_(hvp)  # H_k b = sum over the ranks' parts of the batch
            adjoint = adjoint + hvp if hvp is not None else adjoint.clone()
            if k in direct and direct[k] is not None:
                adjoint += direct[k]
            adjoint_v = momentum * total_v if momentum else zero
        del loss, grad, hvp, vjp_x, batch, x, params  # free step k's graph before rebuilding k - 1
    if shard is not None:
        d_lr += shard.all_reduce_(d_lr_part)
    return MatchingGradients(loss=value, images=d_images, syn_lr=d_lr, inner_losses=_summed(losses, shard, images.device))
