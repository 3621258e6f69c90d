"""Provenance of a measured number: git SHA, versions, device, threads, wall time, peak memory.

:func:`collect_provenance` builds the ``provenance`` field of a
:class:`ddlib.results.records.Record`; :func:`peak_memory_mb` is the process's peak memory
(CUDA allocator peak on a GPU, max RSS on the CPU), also used for the cost figures.
"""
from __future__ import annotations

import os
import platform
import resource
import sys
import time
from typing import Any

import torch

from ddlib.core.provenance import git_sha

__all__ = ["collect_provenance", "peak_memory_mb"]


def peak_memory_mb(device: torch.device | str = "cpu") -> float:
    """Peak memory of this process in MB: CUDA allocator peak on GPU, max RSS on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def collect_provenance(device: torch.device | str, wall_time_s: float, **extra: Any) -> dict[str, Any]:
    """Provenance of a measurement: git SHA, versions, device, wall time, peak memory.

    ``thp_mem_alloc_enable`` is the process's ``THP_MEM_ALLOC_ENABLE`` (``"1"`` when PyTorch
    backs large CPU tensors with huge pages, as ``make`` runs the chapters; ``None`` when
    unset): it moves CPU wall times, never values.
    """
    from ddlib.core.version import __version__

    device = torch.device(device)
    return {
        "git_sha": git_sha(),
        "ddlib_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "thp_mem_alloc_enable": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "wall_time_s": round(float(wall_time_s), 3),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
