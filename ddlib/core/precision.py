"""Mixed precision: forward passes in bfloat16 under ``torch.autocast``, everything else in float32.

``precision="bf16"`` (ddlib's option, not in any paper's code) runs the matrix products and
convolutions of a forward pass in bfloat16 through ``torch.autocast(device_type, torch.bfloat16)``;
the parameters, their gradients, the optimizer state and the loss stay float32 (the logits
and embeddings are cast back to float32 before the loss). On CPUs with bf16 matrix units
(Intel AMX, AMD Zen 4 ``avx512_bf16``) and on CUDA this roughly halves the time of a
ConvNet-128 forward+backward; the results change at bfloat16 rounding (8 mantissa bits), so
a run's precision is part of its cache key whenever it is not the default ``"fp32"``.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch

__all__ = ["PRECISIONS", "check_precision", "autocast", "autocast_float32_output"]

#: The accepted ``precision`` values: ``"fp32"`` (default: plain float32) and ``"bf16"`` (autocast).
PRECISIONS = ("fp32", "bf16")


def check_precision(precision: object, owner: str = "precision") -> None:
    """Raise ``ValueError`` naming ``precision`` unless it is one of :data:`PRECISIONS`.

    ``owner`` names the field in the message (e.g. ``"ExpertConfig.precision"``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"{owner}={precision!r}: expected one of {list(PRECISIONS)} "
                         "('fp32': float32 throughout; 'bf16': forward passes under bfloat16 autocast)")


def autocast(precision: str, device: torch.device | str) -> ContextManager:
    """``torch.autocast(device.type, torch.bfloat16)`` for ``"bf16"``, a no-op context for ``"fp32"``.

    Parameters
    ----------
    precision : {"fp32", "bf16"}
    device : torch.device or str
        Where the forward pass runs (``"cpu"``, ``"cuda"``, ...); its type selects the autocast backend.
    """
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def autocast_float32_output(fn: Callable[[torch.Tensor], torch.Tensor], precision: str,
                            device: torch.device | str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``fn`` run under :func:`autocast`, its output cast to float32 (``fn`` itself for ``"fp32"``).

    For embeddings ``(N, C, H, W) -> (N, D)`` whose distances (DM's class-mean gap, TGDD's
    MMD) must be summed in float32: bfloat16 sums of 2048 features lose about 3 digits.
    """
    check_precision(precision)
    if precision == "fp32":
        return fn

    def wrapped(x: torch.Tensor) -> torch.Tensor:
        with autocast(precision, device):
            out = fn(x)
        return out.float()

    wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapped
