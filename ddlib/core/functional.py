"""Flat-parameter helpers shared by the unrolled methods (MTT, AST, MCT).

Trajectory matching trains a student network for many steps *as a function of one
flat parameter vector* ``(P,)`` so that the distillation loss can be differentiated
through the whole unrolled run. These helpers convert between a module's trainable
parameters and that vector, and evaluate the module with parameters taken from it
(:func:`functional_forward`, built on ``torch.func.functional_call``).

The flat order is ``module.named_parameters()`` order restricted to parameters with
``requires_grad``, the same order as ``list(module.parameters())`` that MTT expert
buffers are stored in.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import torch
from torch import Tensor, nn

__all__ = ["ParamLayout", "flatten_params", "load_flat_params", "functional_forward"]


@dataclasses.dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of a module's trainable parameters, and where each sits in the flat vector.

    Attributes
    ----------
    names : tuple of str
        Parameter names in ``named_parameters()`` order.
    shapes : tuple of tuple of int
        Matching parameter shapes.

    Examples
    --------
    >>> layout = ParamLayout.of(torch.nn.Linear(3, 2))
    >>> layout.names, layout.numels, layout.offsets, layout.numel
    (('weight', 'bias'), (6, 2), (0, 6), 8)
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.shapes):
            raise ValueError(f"{len(self.names)} names but {len(self.shapes)} shapes")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate parameter names in {self.names}")

    @classmethod
    def of(cls, module: nn.Module) -> "ParamLayout":
        """Layout of ``module``'s parameters that require grad (shared ones counted once)."""
        items = [(n, tuple(p.shape)) for n, p in module.named_parameters() if p.requires_grad]
        return cls(tuple(n for n, _ in items), tuple(s for _, s in items))

    @property
    def numels(self) -> tuple[int, ...]:
        """Number of elements of each parameter."""
        return tuple(math.prod(s) for s in self.shapes)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Start index of each parameter in the flat vector."""
        starts, total = [], 0
        for n in self.numels:
            starts.append(total)
            total += n
        return tuple(starts)

    @property
    def numel(self) -> int:
        """Length ``P`` of the flat vector."""
        return sum(self.numels)

    def check(self, flat: Tensor) -> None:
        """Raise ``ValueError`` unless ``flat`` is a 1-D tensor of length :attr:`numel`."""
        if not isinstance(flat, Tensor):
            raise ValueError(f"flat parameters must be a torch.Tensor; got {type(flat).__name__}")
        if flat.dim() != 1 or flat.numel() != self.numel:
            raise ValueError(
                f"flat parameter vector must have shape ({self.numel},) for this layout; "
                f"got shape {tuple(flat.shape)} ({flat.numel()} elements)"
            )

    def flatten(self, params: Mapping[str, Tensor]) -> Tensor:
        """Concatenate ``params`` into one vector (differentiable).

        Parameters
        ----------
        params : Mapping[str, Tensor]
            At least the layout's names, with matching shapes (extra keys are ignored,
            so ``dict(module.named_parameters())`` works even with frozen parameters).

        Returns
        -------
        Tensor
            Shape ``(P,)``.
        """
        missing = [n for n in self.names if n not in params]
        if missing:
            raise ValueError(f"missing parameter(s) {missing}; the layout expects {list(self.names)}")
        for name, shape in zip(self.names, self.shapes):
            if tuple(params[name].shape) != shape:
                got = tuple(params[name].shape)
                raise ValueError(f"parameter {name!r} has shape {got}; expected {shape}")
        return torch.cat([params[n].reshape(-1) for n in self.names])

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """Split ``flat`` ``(P,)`` into named tensors of the layout's shapes.

        The tensors are views into ``flat``, so they stay in ``flat``'s autograd graph
        (gradients w.r.t. the views flow back to ``flat``) and share its storage.
        """
        self.check(flat)
        pieces = torch.split(flat, self.numels)
        return {n: piece.view(shape) for n, piece, shape in zip(self.names, pieces, self.shapes)}


def flatten_params(module: nn.Module) -> Tensor:
    """Detached copy ``(P,)`` of ``module``'s trainable parameters in :class:`ParamLayout` order."""
    params = [p.detach().reshape(-1) for p in module.parameters() if p.requires_grad]
    if not params:
        return torch.zeros(0)
    return torch.cat(params)  # cat always allocates, so this never aliases the parameters


def load_flat_params(module: nn.Module, flat: Tensor) -> None:
    """Copy ``flat`` ``(P,)`` into ``module``'s trainable parameters in place (no autograd)."""
    layout = ParamLayout.of(module)
    values = layout.unflatten(flat.detach())
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name in layout.names:
            params[name].copy_(values[name])


def functional_forward(
    module: nn.Module,
    flat_params: Tensor,
    x: Tensor,
    buffers: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """Evaluate ``module(x)`` with its trainable parameters taken from ``flat_params``.

    Parameters
    ----------
    module : nn.Module
        Supplies the architecture (and, unless ``buffers`` is given, the buffers).
        Its own parameters are neither read (for trainable ones) nor modified.
    flat_params : Tensor
        Shape ``(P,)`` in :class:`ParamLayout` order.
    x : Tensor
        Input batch, e.g. images ``(N, C, H, W)``.
    buffers : Mapping[str, Tensor], optional
        Buffers to use instead of the module's (e.g. BatchNorm running statistics).
        In training mode BatchNorm updates the buffers it is given in place, exactly as
        a normal module call updates its own.

    Returns
    -------
    Tensor
        The module's output, e.g. logits ``(N, num_classes)``, differentiable w.r.t.
        ``flat_params`` and ``x`` (to any order, as far as the layers allow).
    """
    layout = ParamLayout.of(module)
    tensors: dict[str, Tensor] = dict(module.named_buffers()) if buffers is None else dict(buffers)
    tensors.update(layout.unflatten(flat_params))
    return torch.func.functional_call(module, tensors, (x,))
