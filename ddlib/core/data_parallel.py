"""Data-parallel distillation steps on ``torch.distributed``: who computes which part of a batch.

A data-parallel distiller runs one copy of itself per process ("rank"). Every rank holds the
same synthetic images, ``syn_lr``, optimizer state and random generator, draws the same random
numbers and takes the same optimizer step; only the expensive part of a step is divided:

* trajectory matching (MTT/AST/MCT, :mod:`ddlib.core.unroll`): each inner step's synthetic
  mini-batch ``B_t`` is cut into ``world`` contiguous parts; rank ``r`` takes the cross-entropy
  gradient of the student on its part, weighted by ``|part| / |B_t|``, and the SUM over ranks
  (an all-reduce) is the full-batch gradient every rank then steps with. The image gradient
  only holds each rank's own parts and is all-reduced at the end of the outer step;
* DM/TGDD (:mod:`ddlib.methods.data_parallel`): rank ``r`` takes the classes ``c`` with
  ``c % world == r``; the losses are sums over classes, so the all-reduced image gradient is
  the full one.

Differentiating through a replicated unroll (``memory="graph"``) needs two autograd-aware
collectives, the pair Megatron-LM uses for tensor parallelism: :meth:`DataParallel.replicate`
(identity forward, all-reduce backward) where a replicated tensor (the student's parameters)
enters a rank's partial computation, and :meth:`DataParallel.reduce` (all-reduce forward,
identity backward) where the partial results are summed into a replicated tensor (the
gradient). With them, the adjoint of every replicated tensor stays replicated and equal to
the single-process one, so the ``syn_lr`` gradient is already complete on every rank. (The
autograd all-reduce of ``torch.distributed.nn`` all-reduces in BOTH directions, which would
multiply the pulled-back adjoints by the world size and mix the ranks' Hessian terms.)

Exactness needs per-sample networks (instance, layer or no norm): a batch norm would
normalise each part with its own statistics (checked by the distillers).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

__all__ = ["DataParallel", "resolve_data_parallel"]


def _all_reduce(tensor: torch.Tensor, group: Any) -> torch.Tensor:
    """Sum ``tensor`` over the ranks of ``group`` in place (a contiguous copy when needed)."""
    import torch.distributed as dist

    target = tensor if tensor.is_contiguous() else tensor.contiguous()
    dist.all_reduce(target, op=dist.ReduceOp.SUM, group=group)
    if target is not tensor:
        tensor.copy_(target)
    return tensor


class _Replicate(torch.autograd.Function):
    """Identity forward; backward sums the ranks' gradients (a replicated input feeds rank-local work)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, group: Any) -> torch.Tensor:
        ctx.group = group
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _all_reduce(grad.clone(), ctx.group), None


class _Reduce(torch.autograd.Function):
    """All-reduce forward; identity backward (rank-local parts summed into a replicated tensor)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, group: Any) -> torch.Tensor:
        return _all_reduce(tensor.clone(), group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """This process's place in a data-parallel distillation, and the collectives it uses.

    Build it with :func:`resolve_data_parallel` (or :meth:`current`) after
    ``torch.distributed.init_process_group``; a world of one process needs none (the
    distillers then run their single-process code unchanged).

    Attributes
    ----------
    rank : int
        This process's rank in ``group``.
    world : int
        Number of processes in ``group`` (at least 2).
    group : ProcessGroup or None
        The ``torch.distributed`` group; ``None`` is the default (``WORLD``) group.
    """

    rank: int
    world: int
    group: Any = None

    def __post_init__(self) -> None:
        if self.world < 2:
            raise ValueError(f"world={self.world}: a data-parallel step needs at least 2 processes "
                             "(use data_parallel=False, or None, for one)")
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank={self.rank}: expected 0 <= rank < world={self.world}")

    @classmethod
    def current(cls, group: Any = None) -> "DataParallel | None":
        """The initialised process group as a :class:`DataParallel`; ``None`` without one or with one process."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return None
        world = dist.get_world_size(group)
        return cls(rank=dist.get_rank(group), world=world, group=group) if world > 1 else None

    # -- who does what -----------------------------------------------------------------------
    def part(self, size: int) -> slice:
        """This rank's contiguous part of ``size`` batch positions (sizes differ by at most one).

        Raises
        ------
        ValueError
            If ``size < world``: a rank would get no image (use a larger ``batch_syn`` or fewer processes).
        """
        if size < self.world:
            raise ValueError(f"a batch of {size} synthetic images cannot be split over {self.world} processes: "
                             "expected batch_syn (or ipc * num_classes) >= the world size")
        base, extra = divmod(size, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def classes(self, num_classes: int) -> list[int]:
        """This rank's classes ``c % world == rank``.

        Raises
        ------
        ValueError
            If ``num_classes < world`` (a rank would own no class).
        """
        if num_classes < self.world:
            raise ValueError(f"{num_classes} classes cannot be divided over {self.world} processes: expected "
                             "num_classes >= the world size")
        return list(range(self.rank, num_classes, self.world))

    # -- collectives ----------------------------------------------------------------------------
    def all_reduce_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place (no autograd); returns it."""
        return _all_reduce(tensor, self.group)

    def replicate(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` unchanged; its gradient is summed over the ranks in backward (see the module docstring)."""
        return _Replicate.apply(tensor, self.group)

    def reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over the ranks; the gradient passes back unchanged (see the module docstring)."""
        return _Reduce.apply(tensor, self.group)

    def barrier(self) -> None:
        """Wait until every rank of the group gets here."""
        import torch.distributed as dist

        dist.barrier(group=self.group)


def resolve_data_parallel(data_parallel: "bool | DataParallel | None") -> DataParallel | None:
    """A distiller's ``data_parallel`` argument as a :class:`DataParallel` or ``None`` (one process).

    ``False``/``None``: single process. ``True``: the default process group when one is
    initialised with more than one process, else ``None``. A :class:`DataParallel` is used as is.
    """
    if data_parallel is None or data_parallel is False:
        return None
    if data_parallel is True:
        return DataParallel.current()
    if isinstance(data_parallel, DataParallel):
        return data_parallel
    raise ValueError(f"data_parallel={data_parallel!r}: expected True, False, None or a DataParallel")
