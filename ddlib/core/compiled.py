"""Optional ``torch.compile`` of a network's forward pass: the ``compile`` switch of DM, TGDD and the evaluation.

Distribution matching spends most of an iteration embedding the real batch (2,560 images
at IPC 10 on CIFAR-10) with a randomly initialised or expert ConvNet. In eager PyTorch the
instance norm, ReLU and average pooling after every convolution each read and write the
whole activation; compiled with TorchInductor they are fused into one pass. Measured on a
2-core CPU with ConvNet-128 (``benchmarks/``): a DM iteration at IPC 10 takes 0.91 s eager
and 0.70 s compiled; one ConvNet forward and backward pass at batch 256 0.28 s and 0.21 s;
one epoch of the evaluation protocol's five networks 0.60 s and 0.47 s.

Compiled kernels sum in a different order, so values differ from eager ones by
floating-point rounding (about 1e-6 relative); the first call of each graph compiles
(seconds to a minute). On the CPU TorchInductor needs a C++ compiler; on CUDA it uses
Triton, which ships with PyTorch's CUDA wheels.
"""
from __future__ import annotations

import os
import shutil
from typing import Callable, TypeVar

import torch

__all__ = ["compiler_missing", "maybe_compile"]

F = TypeVar("F", bound=Callable)
_CPP_COMPILERS = ("g++", "clang++", "c++")


def compiler_missing(device: torch.device | str) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here, or ``None`` when it can.

    On the CPU TorchInductor compiles C++: ``$CXX`` or one of g++, clang++, c++ must be on
    the ``PATH``. CUDA devices need no host compiler.
    """
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    if torch.device(device).type != "cpu":
        return None
    candidates = ([os.environ["CXX"]] if os.environ.get("CXX") else []) + list(_CPP_COMPILERS)
    if any(shutil.which(c) for c in candidates):
        return None
    return (f"torch.compile on the CPU needs a C++ compiler and none of {candidates} is on the PATH; "
            "install one (e.g. g++) or set compile=False")


def maybe_compile(fn: F, enabled: bool, device: torch.device | str) -> F:
    """``torch.compile(fn, dynamic=False)`` when ``enabled``, else ``fn`` itself.

    Parameters
    ----------
    fn : callable
        A network's forward or ``embed`` method, ``(N, C, H, W) -> (N, D)``. Parameters
        changed in place later (re-initialisation, loading expert snapshots) are read
        afresh at every call; they do not trigger recompilation.
    enabled : bool
        The config's ``compile`` switch.
    device : torch.device or str
        Where ``fn`` runs (checked for a C++ compiler on the CPU).

    Raises
    ------
    ValueError
        When ``enabled`` and :func:`compiler_missing` gives a reason, before any compute.
    """
    if not enabled:
        return fn
    reason = compiler_missing(device)
    if reason:
        raise ValueError(reason)
    return torch.compile(fn, dynamic=False)
