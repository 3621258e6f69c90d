"""Pieces shared by every model family: norm/activation factories, size checks, the base class.

Conventions (DC/MTT ``networks.py``): "instance" norm is ``nn.GroupNorm(C, C, affine=True)``
(one group per channel, so it behaves like instance norm but has per-channel affine weights
and no running statistics, which keeps unrolled/functional training free of buffer updates);
"batch" is ``nn.BatchNorm2d(C)``; "layer" is ``nn.GroupNorm(1, C)`` (resolution independent,
unlike DC's ``nn.LayerNorm((C, H, W))``); "none" is no normalisation.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = [
    "NORMS", "ACTS", "POOLS", "make_norm", "make_act", "check_choice", "min_input_size", "DDModel", "AvgPool2x2",
]

NORMS = ("instance", "batch", "layer", "none")
ACTS = ("relu", "leakyrelu", "sigmoid", "swish")
POOLS = ("avg", "max", "none")

# The largest side searched for when reporting the minimum input size; far above any
# resolution used in dataset distillation, so the search is cheap and never truncates.
_MAX_SIDE = 4096


def check_choice(kind: str, value: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``.

    Raises
    ------
    ValueError
        Naming the bad value and the valid ones.
    """
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; expected one of {list(choices)}")
    return value


def make_norm(norm: str, channels: int) -> nn.Module:
    """Normalisation layer for ``(N, channels, H, W)`` maps (``nn.Identity`` for ``"none"``)."""
    check_choice("norm", norm, NORMS)
    if norm == "instance":
        return nn.GroupNorm(channels, channels, affine=True)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels, affine=True)
    return nn.Identity()


def make_act(act: str) -> nn.Module:
    """Activation module.

    Never in-place: in-place activations can break higher-order gradients and
    ``torch.func`` transforms that the unrolled methods (MTT/AST/MCT) rely on.
    """
    check_choice("activation", act, ACTS)
    if act == "relu":
        return nn.ReLU()
    if act == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.01)
    if act == "sigmoid":
        return nn.Sigmoid()
    return nn.SiLU()  # swish: x * sigmoid(x)


class AvgPool2x2(nn.AvgPool2d):
    """``nn.AvgPool2d(kernel_size=2, stride=2)`` computed as two pairwise sums.

    PyTorch's CPU ``avg_pool2d`` kernel works out every output's window and divisor
    separately: on a 16 x 128 x 32 x 32 map it took 1.9 ms on the development machine
    (2 cores), ten times a ReLU over the same map, and it was a quarter of a DM iteration.
    Adding the row pairs, then the column pairs, then scaling by ``1/4`` is the same average
    with the four terms summed as ``(a + c) + (b + d)`` instead of ``((a + b) + c) + d``, so
    values agree with ``nn.AvgPool2d`` to float rounding; measured 0.23 ms for that map, and
    the layer's forward plus backward at batch 256 about 20 % faster (a whole ConvNet-128
    training step: within noise). Works under ``torch.func``
    transforms and higher-order gradients (only views, additions and a scale). Maps with an
    odd side, or inputs that are not ``(N, C, H, W)``, go to ``nn.AvgPool2d`` (which drops
    the last row/column of an odd side).
    """

    def __init__(self) -> None:
        super().__init__(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, H // 2, W // 2)``."""
        if x.dim() != 4 or x.shape[-2] % 2 or x.shape[-1] % 2:
            return super().forward(x)
        n, c, h, w = x.shape
        rows = x.reshape(n, c, h // 2, 2, w)
        rows = rows[:, :, :, 0] + rows[:, :, :, 1]  # (N, C, H/2, W): sums of vertical pairs
        cols = rows.reshape(n, c, h // 2, w // 2, 2)
        return (cols[..., 0] + cols[..., 1]) * 0.25


def min_input_size(out_side: Callable[[int], int], at_least: int = 1) -> int:
    """Smallest input side for which ``out_side(side) >= at_least``.

    ``out_side`` maps an input side to the side of a critical feature map (0 or less
    when a pooling step has collapsed it); it is monotone for every model here. Use
    ``at_least=2`` when that map is instance-normalised: a 1x1 map has no spatial
    statistics, and PyTorch rejects ``GroupNorm(C, C)`` on it.
    """
    for side in range(1, _MAX_SIDE + 1):
        if out_side(side) >= at_least:
            return side
    raise ValueError(f"no input side up to {_MAX_SIDE} gives a large enough feature map")


def _pair(im_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Normalise ``im_size`` to ``(H, W)``."""
    if isinstance(im_size, int) and not isinstance(im_size, bool):
        return (im_size, im_size)
    size = tuple(im_size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"im_size={im_size!r}: expected a positive int or a pair (H, W) of positive ints")
    return size  # type: ignore[return-value]


class DDModel(nn.Module):
    """Base class: ``forward(x) = classifier(embed(x))``.

    Subclasses set ``self.classifier`` (the final ``nn.Linear``), ``self.min_size``
    (smallest accepted ``(H, W)``) and implement ``_features``, returning the
    penultimate features ``(N, D)``.
    """

    classifier: nn.Linear
    min_size: tuple[int, int]

    def _check_input(self, x: torch.Tensor) -> None:
        """Raise a readable ``ValueError`` for inputs the model cannot take."""
        if x.dim() < 3:
            raise ValueError(f"{type(self).__name__} expects (N, C, H, W) images; got shape {tuple(x.shape)}")
        h, w = x.shape[-2], x.shape[-1]
        if h < self.min_size[0] or w < self.min_size[1]:
            raise ValueError(
                f"{type(self).__name__} needs inputs of at least {self.min_size[0]}x{self.min_size[1]} "
                f"pixels; got {h}x{w}"
            )

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (the input of :attr:`classifier`).

        Parameters
        ----------
        x : torch.Tensor
            Images, shape ``(N, C, H, W)``.

        Returns
        -------
        torch.Tensor
            Features, shape ``(N, D)`` with ``D = classifier.in_features``.
        """
        self._check_input(x)
        return self._features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(N, num_classes)``, for images ``x`` of shape ``(N, C, H, W)``."""
        return self.classifier(self.embed(x))
