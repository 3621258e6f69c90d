"""``memory="auto"``: keep the student's whole graph when it fits, else recompute step by step.

Trajectory matching differentiates through ``syn_steps`` student updates. Keeping every
step's autograd graph (``memory="graph"``, the MTT code's way) is the fastest on a CPU (one
forward and one first-order backward per step fewer than recomputation) but its memory grows
with ``syn_steps x batch``; recomputation (``memory="recompute"``) keeps one step's graph at a
time. ``"auto"`` measures what one step's graph holds, by running one inner step under
``torch.autograd.graph.saved_tensors_hooks`` and adding up the storage of every tensor the
graph saves, multiplies it by ``syn_steps``, and keeps the graph when that fits in
``AUTO_MEMORY_SHARE`` of the memory the device has free; both modes give the same gradients
up to rounding. The probe draws its own random numbers, so the distillation's stream is
untouched.

Examples
--------
>>> choose_memory(per_step_bytes=2**20, syn_steps=50, available_bytes=2**30)
'graph'
>>> choose_memory(per_step_bytes=2**26, syn_steps=50, available_bytes=2**30)
'recompute'
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Literal

import torch
from torch import nn

from ddlib.core.runtime import make_generator
from ddlib.core.unroll import unroll_student

__all__ = ["AUTO_MEMORY_SHARE", "available_memory_bytes", "graph_bytes_per_step", "choose_memory"]

logger = logging.getLogger(__name__)

#: Share of the device's free memory the whole graph may take under ``memory="auto"``: the rest is
#: left to the data, the evaluation networks and whatever else runs on the machine.
AUTO_MEMORY_SHARE = 0.5


def available_memory_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes: ``torch.cuda.mem_get_info`` on a GPU, ``MemAvailable`` of
    ``/proc/meminfo`` on a Linux CPU, else the free physical pages; ``None`` when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def graph_bytes_per_step(net: nn.Module, start: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
                         syn_lr: torch.Tensor, *, batch_syn: int | None, seed: int,
                         augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                         momentum: float = 0.0, gradient: Literal["exact", "tesla"] = "exact") -> int:
    """Bytes the autograd graph saves for one inner step of the student, measured.

    Runs one step of :func:`~ddlib.core.unroll.unroll_student` (its own generator, seeded by
    ``seed``) and adds up the storage of every distinct tensor the graph saves for the backward
    pass; inputs saved by reference count too, so the figure errs on the safe side.

    Parameters
    ----------
    net : nn.Module
        The student's architecture.
    start : torch.Tensor
        ``(P,)`` starting parameters.
    images, labels : torch.Tensor
        ``(N, C, H, W)`` synthetic images (requiring grad) and ``(N,)`` labels.
    syn_lr : torch.Tensor
        Scalar step size (requiring grad).
    """
    storages: dict[Any, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[(storage.data_ptr(), tensor.device)] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = unroll_student(net, start, images, labels, syn_lr, syn_steps=1, generator=make_generator(seed),
                                batch_syn=batch_syn, augment=augment, momentum=momentum, gradient=gradient)
    del result
    return int(sum(storages.values()))


def choose_memory(per_step_bytes: int, syn_steps: int, available_bytes: int | None,
                  share: float = AUTO_MEMORY_SHARE) -> Literal["graph", "recompute"]:
    """``"graph"`` when ``syn_steps`` steps' graphs fit in ``share`` of ``available_bytes``, else
    ``"recompute"`` (also when the free memory is unknown).

    Raises
    ------
    ValueError
        If ``per_step_bytes`` is negative, ``syn_steps`` below 1 or ``share`` outside (0, 1].
    """
    if per_step_bytes < 0 or syn_steps < 1 or not 0 < share <= 1:
        raise ValueError(f"per_step_bytes={per_step_bytes}, syn_steps={syn_steps}, share={share}: expected "
                         "bytes >= 0, steps >= 1 and a share in (0, 1]")
    if available_bytes is None:
        return "recompute"
    return "graph" if per_step_bytes * syn_steps <= share * available_bytes else "recompute"
