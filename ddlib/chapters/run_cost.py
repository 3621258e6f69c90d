"""The cost of a run: its wall time and its peak memory above the memory in use at its start.

:func:`measure_run` calls a function and returns its result with a :class:`RunCost`: on CUDA
the allocator's peak, on Linux CPUs the peak resident set size (reset through
``/proc/self/clear_refs``), elsewhere the rise of ``ru_maxrss``. TGDD's cost figure
(:mod:`ddlib.chapters.tgdd_analysis`) is built on it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import gc
import re
import time
from pathlib import Path
from typing import Callable, TypeVar

import torch

from ddlib.results.measurement import peak_memory_mb

__all__ = ["RunCost", "measure_run"]

T = TypeVar("T")
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_CUDA_METHOD = "CUDA max_memory_allocated above the start"
_RSS_METHOD = "peak RSS above the RSS at the start (malloc_trim, then VmHWM reset by /proc/self/clear_refs)"
_MAXRSS_METHOD = "rise of the process's max RSS (ru_maxrss)"


@dataclasses.dataclass(frozen=True)
class RunCost:
    """Wall time and peak memory of a run.

    Attributes
    ----------
    wall_time_s : float
        Seconds.
    peak_memory_mb : float
        Peak memory during the run ABOVE the memory in use when it started, in MB (2**20 bytes).
    memory_method : str
        How the peak was measured (see :func:`measure_run`).
    """

    wall_time_s: float
    peak_memory_mb: float
    memory_method: str

    def plus(self, other: "RunCost") -> "RunCost":
        """Two runs one after the other: times add, the peak is the larger one."""
        return RunCost(self.wall_time_s + other.wall_time_s, max(self.peak_memory_mb, other.peak_memory_mb),
                       self.memory_method)


def _status_mb(field: str) -> float:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"{field} not in {_STATUS}")
    return int(match.group(1)) / 1024


def _release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so memory an
    earlier run freed but the allocator kept does not hide the next run's needs."""
    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _reset_rss_peak() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    _release_free_memory()
    try:
        _CLEAR_REFS.write_text("5")
        _status_mb("VmHWM")
        return True
    except OSError:
        return False


def measure_run(fn: Callable[[], T], device: str | torch.device = "cpu") -> tuple[T, RunCost]:
    """Call ``fn()`` and measure its wall time and peak memory.

    Peak memory is taken above the level at the start, so earlier work of the process does
    not count: on CUDA, ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``
    (the tensor memory the paper's GPU figure reports); on Linux CPUs, the peak resident set
    size ``VmHWM`` after resetting it through ``/proc/self/clear_refs``, minus ``VmRSS`` at the
    start (all memory of the process, tensors or not; freed heap pages are first returned to
    the OS with glibc's ``malloc_trim`` so that memory kept from earlier runs is not reused
    unseen); elsewhere, the rise of ``ru_maxrss`` (0 when the run stays below an earlier peak
    of the process). ``memory_method`` says which.

    Returns
    -------
    (object, RunCost)
        ``fn``'s result and its cost.
    """
    device = torch.device(device)
    base, method, peak = _start_memory_probe(device)
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return result, RunCost(seconds, max(0.0, peak() - base), method)


def _start_memory_probe(device: torch.device) -> tuple[float, str, Callable[[], float]]:
    """``(memory now in MB, how it is measured, function reading the peak since now in MB)``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return (torch.cuda.memory_allocated(device) / 2**20, _CUDA_METHOD,
                lambda: torch.cuda.max_memory_allocated(device) / 2**20)
    if _reset_rss_peak():
        return _status_mb("VmRSS"), _RSS_METHOD, lambda: _status_mb("VmHWM")
    return peak_memory_mb("cpu"), _MAXRSS_METHOD, lambda: peak_memory_mb("cpu")
