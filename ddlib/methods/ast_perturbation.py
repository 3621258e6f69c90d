"""AST's weight perturbation of the expert's start parameters (Eq. 5), in the paper's and the code's form.

Before the student is unrolled, AST moves the expert's epoch-``t`` parameters by a random
direction ``d ~ N(0, I)``; the student starts there and every matching denominator is
measured from there (Algorithm 1; see :class:`ddlib.methods.mtt.TrajectoryMatching`). The paper and
the authors' code disagree on the formula, and both are selectable by name:

* ``"paper"`` (Eq. 5, alpha 0.1): per filter ``j`` of every weight with ``dim >= 2``,
  ``theta*_lj = theta_lj + alpha * d_j / ||d_j||_F * ||theta_lj||_F``, so each filter moves
  by ``alpha`` times its own norm.
* ``"code"`` (``distill.py``, ``weightPerturb`` called with alpha 1): for every 4-D (conv)
  weight ``W`` only, ``d <- d / ||d||_F`` over the WHOLE tensor and ``W* = W + alpha * d * W``
  (elementwise), so each element moves by about ``alpha / sqrt(numel)`` of itself: a much
  smaller perturbation than the paper's.

All other tensors (biases, normalisation affine parameters, and for ``"code"`` the linear
classifier) are returned unchanged.
"""
from __future__ import annotations

from typing import Literal, Mapping

import torch
from torch import Tensor

from ddlib.core.functional import ParamLayout

__all__ = ["PERTURBATION_ALPHA", "perturbed_names", "perturbation_directions", "perturb_weights"]

#: Default alpha of each variant: the paper's Sec. 4.1 (0.1) and the code's call ``weightPerturb(..., alpha=1)``.
PERTURBATION_ALPHA = {"paper": 0.1, "code": 1.0}


def _check_variant(variant: str) -> None:
    if variant not in PERTURBATION_ALPHA:
        raise ValueError(f"variant={variant!r}: expected 'paper' (Eq. 5, per filter) or 'code' (conv weights, "
                         "whole-tensor norm)")


def perturbed_names(layout: ParamLayout, variant: Literal["paper", "code"] = "paper") -> list[str]:
    """Names of the parameters ``variant`` perturbs, in layout order.

    ``"paper"``: every weight with ``dim >= 2`` (conv and linear weights; 1-D tensors have no
    filter structure). ``"code"``: the 4-D (conv) weights only.
    """
    _check_variant(variant)
    wanted = (lambda shape: len(shape) == 4) if variant == "code" else (lambda shape: len(shape) >= 2)
    return [name for name, shape in zip(layout.names, layout.shapes) if wanted(shape)]


def perturbation_directions(layout: ParamLayout, variant: Literal["paper", "code"] = "paper", *,
                            generator: torch.Generator, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Raw directions ``d ~ N(0, I)``, one per perturbed parameter, of that parameter's shape.

    Drawn on the CPU from ``generator`` in layout order (the global RNG is never used), so a
    test can draw the same ``d`` and pass it to :func:`perturb_weights` as ``directions``.

    Returns
    -------
    dict of str to Tensor
        ``name -> d`` with ``d.shape == shape`` of that parameter (unnormalised).
    """
    shapes = dict(zip(layout.names, layout.shapes))
    return {name: torch.randn(shapes[name], generator=generator, dtype=dtype)
            for name in perturbed_names(layout, variant)}


def perturb_weights(flat: Tensor, layout: ParamLayout, alpha: float | None = None, *,
                    variant: Literal["paper", "code"] = "paper", generator: torch.Generator | None = None,
                    directions: Mapping[str, Tensor] | None = None) -> Tensor:
    """AST's weight perturbation of the start parameters ``flat`` (Eq. 5 or the code's formula).

    * ``variant="paper"`` (Eq. 5): for each weight ``theta_l`` with ``dim >= 2`` and each filter
      ``j`` (slice along dim 0: a conv output channel, a linear row),
      ``theta*_lj = theta_lj + alpha * d_j / ||d_j||_F * ||theta_lj||_F``, so
      ``||theta*_lj - theta_lj||_F = alpha * ||theta_lj||_F`` (Li et al. 2018's filter
      normalisation; 1-D tensors are left unchanged).
    * ``variant="code"`` (authors' ``weightPerturb``): for each 4-D weight ``W`` only,
      ``W* = W + alpha * (d / ||d||_F) * W`` with the Frobenius norm of the whole tensor and an
      elementwise product with ``W`` itself.

    Parameters
    ----------
    flat : Tensor
        ``(P,)`` flat parameters in ``layout`` order.
    layout : ParamLayout
        Names and shapes of the parameters in ``flat``.
    alpha : float, optional
        Relative size (``>= 0``); ``None`` gives the variant's default
        (:data:`PERTURBATION_ALPHA`: 0.1 paper, 1.0 code).
    variant : {"paper", "code"}
    generator : torch.Generator, optional
        CPU generator the directions are drawn from (:func:`perturbation_directions`).
    directions : mapping of str to Tensor, optional
        The raw directions ``d`` themselves (``name -> tensor of the parameter's shape`` for
        every name of :func:`perturbed_names`), instead of ``generator``.

    Returns
    -------
    Tensor
        ``(P,)`` new tensor (``flat`` is not modified); differentiable w.r.t. ``flat``.
    """
    _check_variant(variant)
    alpha = PERTURBATION_ALPHA[variant] if alpha is None else float(alpha)
    if alpha < 0:
        raise ValueError(f"alpha={alpha}: expected >= 0")
    if (generator is None) == (directions is None):
        raise ValueError("pass exactly one of generator= (draw d) and directions= (use the given d)")
    names = perturbed_names(layout, variant)
    if directions is None:
        draw_dtype = flat.dtype if flat.dtype in (torch.float32, torch.float64) else torch.float32
        directions = perturbation_directions(layout, variant, generator=generator, dtype=draw_dtype)
    else:
        _check_directions(directions, layout, names, variant)
    params = layout.unflatten(flat)
    out = dict(params)
    for name in names:
        theta = params[name]
        d = directions[name].to(device=flat.device, dtype=flat.dtype)
        if variant == "code":
            out[name] = theta + alpha * (d / d.norm()) * theta
        else:
            view = (-1,) + (1,) * (theta.dim() - 1)
            d_norm = d.reshape(len(d), -1).norm(dim=1).view(view)
            theta_norm = theta.reshape(len(theta), -1).norm(dim=1).view(view)
            out[name] = theta + alpha * d / d_norm * theta_norm
    return layout.flatten(out)


def _check_directions(directions: Mapping[str, Tensor], layout: ParamLayout, names: list[str],
                      variant: str) -> None:
    """``ValueError`` unless ``directions`` holds a tensor of the right shape for each name, non-zero
    where the variant normalises it (each filter for ``"paper"``, the whole tensor for ``"code"``)."""
    if set(directions) != set(names):
        raise ValueError(f"directions has keys {sorted(directions)}; expected the perturbed parameters {names}")
    shapes = dict(zip(layout.names, layout.shapes))
    for name in names:
        d = directions[name]
        if tuple(d.shape) != tuple(shapes[name]):
            raise ValueError(f"directions[{name!r}] has shape {tuple(d.shape)}; expected {tuple(shapes[name])}")
        if variant == "code" and not bool(d.norm()):
            raise ValueError(f"directions[{name!r}] is all zeros; expected a non-zero tensor")
        if variant == "paper" and not bool(d.reshape(len(d), -1).norm(dim=1).all()):
            raise ValueError(f"directions[{name!r}] has a zero filter (slice along dim 0); expected non-zero filters")
