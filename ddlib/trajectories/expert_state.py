"""The resumable state of an expert's training, written after every epoch.

:class:`ExpertState` holds everything :func:`ddlib.trajectories.experts.train_expert` needs to
continue an expert bit-identically after a completed epoch (model, optimizer, lr schedule,
data generator, snapshots and metrics so far); :mod:`ddlib.trajectories.trajectory_store`
writes it as a checkpoint. :func:`cpu_copy` and :func:`scheduled_optimizer_state` convert
between the running objects' state dicts and this record.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Mapping

import torch

__all__ = ["ExpertState", "cpu_copy", "scheduled_optimizer_state"]


@dataclasses.dataclass(eq=False)
class ExpertState:
    """Everything needed to continue an expert exactly after ``epoch`` completed epochs.

    Attributes
    ----------
    epoch : int
        Completed epochs.
    model_state : dict
        ``net.state_dict()`` (parameters and buffers, e.g. BatchNorm statistics), CPU tensors.
    optimizer_state : dict
        ``state_dict()`` of the running optimizer (the rebuilt one after a restart).
    scheduler_state : dict
        The rest of :meth:`ddlib.core.train.ScheduledOptimizer.state_dict`: ``finished_epochs`` and
        ``scheduler`` (the ``MultiStepLR`` state, ``None`` when the optimizer restarts at milestones).
    generator_state : torch.Tensor
        ``generator.get_state()`` of the CPU data generator (uint8).
    snapshots : torch.Tensor
        ``(epoch + 1, P)`` float32 snapshots recorded so far.
    train_loss, test_accuracy : list of float
        Metrics of the completed epochs (length ``epoch``).
    """

    epoch: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    scheduler_state: dict[str, Any]
    generator_state: torch.Tensor
    snapshots: torch.Tensor
    train_loss: list[float]
    test_accuracy: list[float]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tensors, numbers, lists) loadable with ``torch.load(weights_only=True)``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ExpertState":
        """Inverse of :meth:`to_dict`; ``ValueError`` naming missing or unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        if set(values) != names:
            raise ValueError(
                f"ExpertState needs keys {sorted(names)}; missing {sorted(names - set(values))}, "
                f"unknown {sorted(set(values) - names)}"
            )
        state = cls(**dict(values))
        if state.snapshots.dim() != 2 or state.snapshots.shape[0] != state.epoch + 1:
            raise ValueError(
                f"ExpertState at epoch {state.epoch} needs snapshots ({state.epoch + 1}, P); "
                f"got {tuple(state.snapshots.shape)}"
            )
        if len(state.train_loss) != state.epoch or len(state.test_accuracy) != state.epoch:
            raise ValueError(f"ExpertState at epoch {state.epoch} holds {len(state.train_loss)} train losses "
                             f"and {len(state.test_accuracy)} test accuracies")
        return state


def cpu_copy(value: Any) -> Any:
    """Recursively move the tensors of a state dict to the CPU (cloned, so later steps do not alias)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        out = copy.copy(value)  # keeps the mapping type (Counter, OrderedDict with _metadata)
        for key, item in value.items():
            out[key] = cpu_copy(item)
        return out
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_copy(v) for v in value)
    return value


def scheduled_optimizer_state(state: ExpertState) -> dict[str, Any]:
    """:meth:`~ddlib.core.train.ScheduledOptimizer.state_dict` of ``state``: its ``optimizer_state`` plus
    ``scheduler_state``.

    ``scheduler_state`` holds ``finished_epochs`` and the ``MultiStepLR`` state (``None`` when
    the optimizer restarts at milestones). States written before :class:`~ddlib.core.train.ScheduledOptimizer`
    hold the bare ``MultiStepLR`` state there; they are read as such.
    """
    schedule = dict(state.scheduler_state)
    if "finished_epochs" not in schedule:
        schedule = {"finished_epochs": state.epoch, "scheduler": schedule}
    # a copy: Optimizer.load_state_dict keeps tensors that already sit on the right device, so
    # training would update the caller's momentum buffers in place and spoil a second resume
    return copy.deepcopy({**schedule, "optimizer": state.optimizer_state})
