"""Process groups for multi-process runs (``torchrun``, ``srun``): rank info, init, barrier, sharding.

``torchrun`` (and SLURM wrappers that call it) start one process per GPU and tell each its place
through the environment: ``RANK`` (0 .. ``WORLD_SIZE - 1`` over all nodes), ``WORLD_SIZE`` and
``LOCAL_RANK`` (the GPU on its node). :func:`rank_info` reads them (one process, rank 0, when
they are absent), :func:`process_group` joins the group (NCCL on CUDA, Gloo on CPU) and pins the
process to ``cuda:LOCAL_RANK``. Work is split by :func:`shard`; results never depend on the split,
because every item seeds from the run seed and its own id, never from the rank.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from typing import Any, Iterator, Mapping, Sequence, TypeVar

import torch
import torch.distributed as dist

__all__ = ["RankInfo", "rank_info", "shard", "process_group", "barrier", "gather_objects"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class RankInfo:
    """Where this process sits in a run: global ``rank``, ``world_size`` and ``local_rank`` (GPU on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise ValueError(f"world_size={self.world_size}: expected >= 1")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank={self.rank}: expected 0 <= rank < world_size={self.world_size}")
        if self.local_rank < 0:
            raise ValueError(f"local_rank={self.local_rank}: expected >= 0")

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes manifests and summaries."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "")
    if text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r}: expected an integer") from None


def rank_info(environ: Mapping[str, str] | None = None) -> RankInfo:
    """The process's :class:`RankInfo` from ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (``torchrun`` sets them).

    Without them (a plain ``python -m ddlib ...``) the process is rank 0 of 1.

    Raises
    ------
    ValueError
        A variable is not an integer, or the three do not fit together (naming the value).
    """
    env = os.environ if environ is None else environ
    rank = _env_int(env, "RANK", 0)
    return RankInfo(rank=rank, world_size=_env_int(env, "WORLD_SIZE", 1), local_rank=_env_int(env, "LOCAL_RANK", rank))


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """The items rank ``rank`` of ``world_size`` handles: every ``world_size``-th, starting at ``rank``.

    Round robin rather than contiguous blocks, so that with items of growing cost every rank
    gets a similar share. The shards of all ranks partition ``items`` (disjoint, covering).

    Examples
    --------
    >>> shard(range(5), 1, 2)
    [1, 3]
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank}, world_size={world_size}: expected 0 <= rank < world_size")
    return list(items)[rank::world_size]


def _device_of(info: RankInfo, device: str | torch.device) -> torch.device:
    """``device`` with CUDA pinned to ``cuda:LOCAL_RANK`` (each rank its own GPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        return device
    if info.local_rank >= torch.cuda.device_count():
        raise ValueError(f"LOCAL_RANK={info.local_rank} but this node has {torch.cuda.device_count()} GPU(s); "
                         "start at most one process per GPU (--nproc_per_node)")
    torch.cuda.set_device(info.local_rank)
    return torch.device("cuda", info.local_rank)


@contextlib.contextmanager
def process_group(info: RankInfo, device: str | torch.device = "cpu") -> Iterator[torch.device]:
    """Join the run's process group for the ``with`` block; yields this rank's device.

    One process (``world_size == 1``) joins nothing. Otherwise the backend is NCCL on CUDA and
    Gloo on the CPU, the rendezvous is ``torchrun``'s (``MASTER_ADDR``/``MASTER_PORT`` in the
    environment), and a CUDA process is pinned to ``cuda:LOCAL_RANK``. The group is destroyed on
    exit (also on an error, so the other ranks fail fast instead of waiting).
    """
    device = _device_of(info, device)
    if not info.distributed or dist.is_initialized():
        yield device
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=info.rank, world_size=info.world_size,
                            **({"device_id": device} if device.type == "cuda" else {}))
    logger.info("rank %d of %d joined the %s process group on %s", info.rank, info.world_size, backend, device)
    try:
        yield device
    finally:
        dist.destroy_process_group()


def barrier(info: RankInfo) -> None:
    """Wait until every rank reaches this point (nothing to wait for in one process)."""
    if info.distributed and dist.is_initialized():
        dist.barrier()


def gather_objects(obj: Any, info: RankInfo) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` in one process."""
    if not (info.distributed and dist.is_initialized()):
        return [obj]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
