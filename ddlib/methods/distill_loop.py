"""The outer distillation loop every method shares: checkpoint, resume, NaN guard, evaluation.

A method (MTT/AST/MCT, DM/TGDD) implements :class:`Distiller`: one ``step`` per outer
iteration, a ``state_dict`` holding everything needed to continue bit-identically, and
``synthetic_set``. :func:`run_distillation` drives it: it resumes from the last
checkpoint, writes a checkpoint every ``checkpoint_every`` iterations (atomically, with a
sha256 header checked on resume) and on Ctrl-C, evaluates periodically, and stops cleanly on
a non-finite loss or a diverged update (:func:`check_update`), restoring the last good state.

The guard: a method raises :class:`NonFiniteLoss` when its loss or gradient is NaN/Inf
(before updating), and after its update calls :func:`check_update` on the synthetic images
(bound :func:`guard_bound`: ``GUARD_FACTOR`` times the real data's largest absolute value)
and on a learned learning rate. The loop keeps a copy of the method's state from before each
step; on a stop it restores that copy (images, optimizer, random generator), checkpoints it,
and says so in :attr:`DistillResult.stopped_reason` and the synthetic set's provenance. A
rerun therefore retries the same random draw and stops again, instead of skipping it.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from tqdm.auto import tqdm

from ddlib.data.dataset import ImageDataset
from ddlib.core.fileio import atomic_write, check_writable_folder, checked_torch_bytes, read_checked_torch
from ddlib.core.provenance import distillation_provenance
from ddlib.methods.synthetic import SyntheticSet

__all__ = ["NonFiniteLoss", "UnstableUpdate", "Distiller", "DistillResult", "run_distillation", "atomic_torch_save",
           "GUARD_FACTOR", "guard_bound", "check_update", "saturation_flags"]

logger = logging.getLogger(__name__)


# A synthetic image value beyond GUARD_FACTOR x the largest |value| of the real images (floored at 1),
# or a learned lr beyond GUARD_FACTOR x max(its initial value, 0.01), means the update diverged: no working
# distillation moves that far (MTT's largest lr_img, 1e4, moves CIFAR images by O(1) per step).
GUARD_FACTOR = 1e3
# TGDD clamps pixels to [0, 1]: a set with this fraction of its pixels at a bound has diverged into
# the clamp (real digits on black have 58 % (digits) to 81 % (mnist5k) of their pixels at 0 or 1).
SATURATION_LIMIT = 0.99


class NonFiniteLoss(FloatingPointError):
    """Raised by a method's ``step`` *before* it updates anything when its loss is NaN/Inf."""


class UnstableUpdate(NonFiniteLoss):
    """Raised by :func:`check_update` *after* an update made the images or learned lr non-finite or huge."""


def guard_bound(data: ImageDataset, *, pixels: bool = False, factor: float = GUARD_FACTOR) -> float:
    """Largest absolute value a synthetic image may take: ``factor * max(max |real value|, 1)``.

    Parameters
    ----------
    data : ImageDataset
        The real data; the maximum is over ``data.images_train`` (normalised), or over its
        raw pixels (``data.denormalize``, computed from per-channel extremes without a copy)
        when ``pixels``. The same bound is used for ZCA-whitened images, whose values are a
        few times the normalised ones (mnist5k: at most 9.5 whitened, 2.8 normalised).
    factor : float
        ``GUARD_FACTOR`` by default.
    """
    images = data.images_train.detach()
    low, high = images.amin(dim=(0, 2, 3)).double(), images.amax(dim=(0, 2, 3)).double()
    if pixels:  # denormalize is affine per channel: the extremes map to the extremes
        mean = torch.tensor(data.mean, dtype=torch.float64, device=low.device)
        std = torch.tensor(data.std, dtype=torch.float64, device=low.device)
        low, high = low * std + mean, high * std + mean
    return float(factor) * max(float(torch.maximum(low.abs(), high.abs()).max()), 1.0)


def check_update(what: str, values: torch.Tensor, bound: float) -> None:
    """Raise :class:`UnstableUpdate` unless every entry of ``values`` is finite with ``|value| <= bound``.

    Parameters
    ----------
    what : str
        Names the tensor and the step in the message ("MTT images (iteration 3)").
    values : torch.Tensor
        Any shape, e.g. images ``(N, C, H, W)`` or a learned lr ``()``.
    bound : float
        From :func:`guard_bound` (images) or ``GUARD_FACTOR`` times the initial lr.
    """
    peak = float(values.detach().abs().max())  # NaN propagates through max
    if not math.isfinite(peak) or peak > bound:
        raise UnstableUpdate(f"{what}: max |value| is {peak:.3g} after the update, beyond the bound {bound:.3g} "
                             f"(GUARD_FACTOR={GUARD_FACTOR:g} x the real data's range); lower the learning rate")


def saturation_flags(pixels: torch.Tensor, limit: float = SATURATION_LIMIT) -> dict[str, str]:
    """``{"saturated": message}`` when at least ``limit`` of the pixels ``(N, C, H, W)`` sit at <= 0 or >= 1."""
    values = pixels.detach()
    fraction = float(((values <= 0) | (values >= 1)).float().mean())
    if fraction < limit:
        return {}
    return {"saturated": f"{100 * fraction:.1f} % of the synthetic pixels sit at 0 or 1 (limit "
                         f"{100 * limit:g} %): the images diverged into the [0, 1] clamp; lower lr_img"}


class Distiller(Protocol):
    """What :func:`run_distillation` needs from a method."""

    def step(self, iteration: int) -> dict[str, Any]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def synthetic_set(self) -> SyntheticSet: ...
    def fingerprint(self) -> dict[str, Any]: ...
    # Optional: ``diagnose() -> dict[str, str]`` of warnings about the final state (flag -> message).
    # Optional attributes: ``config`` (its ``iterations`` is run_distillation's default; recorded with
    # ``seed`` and the expert store ``source`` in the synthetic set's provenance).


@dataclasses.dataclass
class DistillResult:
    """Outcome of a distillation run.

    Attributes
    ----------
    synthetic : SyntheticSet
        The last good synthetic set.
    history : list of dict
        One entry per completed iteration (loss, syn_lr, start epoch, ...).
    evaluations : list of dict
        ``{"iteration": i, **metrics}`` per periodic evaluation.
    iterations_done : int
    stopped_reason : str
        ``"completed"``, or why the run stopped early (also in ``synthetic.provenance["stopped"]``).
    wall_time_s : float
        Seconds spent in this call (not counting earlier runs resumed from).
    flags : dict of str to str
        Warnings about the final state from the method's ``diagnose()`` (e.g. TGDD's
        ``"saturated"``), also logged and kept in ``synthetic.provenance["flags"]``.
    """

    synthetic: SyntheticSet
    history: list[dict[str, Any]]
    evaluations: list[dict[str, Any]]
    iterations_done: int
    stopped_reason: str
    wall_time_s: float = 0.0
    flags: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def stopped(self) -> bool:
        """Whether the run stopped early (non-finite loss or diverged update)."""
        return self.stopped_reason != "completed"


def atomic_torch_save(payload: Any, path: Path) -> None:
    """``torch.save`` written atomically (temporary file, fsync, rename) behind a sha256 header."""
    atomic_write(path, checked_torch_bytes(payload))


def _digest(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


def _load_checkpoint(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    # Histories and evaluations may hold numpy scalars: weights_only=False (the sha256 is checked first).
    payload = read_checked_torch(path, "checkpoint", "delete it to start the run over", weights_only=False)
    if not isinstance(payload, dict) or not {"method", "history", "evaluations", "iteration"} <= set(payload):
        raise ValueError(f"checkpoint {path} is not a distillation checkpoint (keys "
                         f"{sorted(payload) if isinstance(payload, dict) else type(payload).__name__}); "
                         "delete it to start over")
    if payload.get("fingerprint_digest") != _digest(fingerprint):
        old = payload.get("fingerprint", {})
        changed = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
        raise ValueError(
            f"checkpoint {path} was written by a different run (differs in {changed}); "
            "use another checkpoint folder or delete it"
        )
    return payload


def _restore(method: Distiller, state: dict[str, Any], path: Path) -> None:
    """``method.load_state_dict(state)`` from the checkpoint ``path``; a mismatch names the file."""
    for key, value in method.state_dict().items():
        stored = state.get(key)
        if isinstance(value, torch.Tensor) and isinstance(stored, torch.Tensor) and stored.shape != value.shape:
            raise ValueError(f"checkpoint {path} holds {key!r} of shape {tuple(stored.shape)}, but this run's "
                             f"{key!r} has shape {tuple(value.shape)} (another data set, image size or ipc); "
                             "delete the checkpoint or use another checkpoint_path")
    try:
        method.load_state_dict(state)
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"checkpoint {path} does not fit this run's method state ({err!r}); "
                         "delete the checkpoint or use another checkpoint_path") from err


def _annotated(synthetic: SyntheticSet, reason: str, flags: dict[str, str]) -> SyntheticSet:
    """``synthetic`` with a stop reason and the diagnose flags in its provenance (where there are any)."""
    extra = ({"stopped": reason} if reason != "completed" else {}) | ({"flags": dict(flags)} if flags else {})
    return dataclasses.replace(synthetic, provenance={**synthetic.provenance, **extra}) if extra else synthetic


def _planned_iterations(method: Distiller, iterations: int | None) -> int:
    """The one number of iterations: ``iterations`` or the method config's, never two that differ."""
    configured = getattr(getattr(method, "config", None), "iterations", None)
    if iterations is None:
        if configured is None:
            raise ValueError(f"iterations=None but {type(method).__name__} has no config.iterations: "
                             "pass iterations=")
        return int(configured)
    if configured is not None and int(configured) != int(iterations):
        raise ValueError(f"iterations={iterations} differs from the method config's iterations={configured}: "
                         "set the config's iterations (e.g. config.replace(iterations=...)) and omit the argument")
    return int(iterations)


def run_distillation(
    method: Distiller,
    iterations: int | None = None,
    *,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    evaluate: Callable[[SyntheticSet, int], dict[str, Any]] | None = None,
    eval_every: int = 0,
    progress: bool = True,
    desc: str = "distill",
) -> DistillResult:
    """Run ``iterations`` outer iterations of ``method`` with checkpoints and evaluation.

    Parameters
    ----------
    iterations : int, optional
        ``None`` (default): the method config's ``iterations``, the single source of truth.
        Given, it must equal the config's when the method has one (a ValueError names both);
        methods without ``config.iterations`` need it.
    checkpoint_path : path, optional
        File to resume from and write to; ``None`` disables checkpointing.
    evaluate : callable, optional
        ``evaluate(synthetic_set, iteration) -> metrics``; called at iteration 0, every
        ``eval_every`` iterations and at the end (when ``eval_every > 0``).

    Notes
    -----
    A data-parallel method (``method.shard`` set, :mod:`ddlib.methods.data_parallel`) runs this
    loop on every rank: all ranks resume from the same ``checkpoint_path``, only rank 0 writes it.

    The loop keeps a copy of ``method.state_dict()`` from before each step (one copy of the
    synthetic set and its optimizer state per iteration), restored when the step raises
    :class:`NonFiniteLoss` (or :class:`UnstableUpdate`) or is interrupted, so the stop and
    the checkpoint hold the last good state, random generator included.

    Raises
    ------
    ValueError
        Bad counts; the checkpoint's folder is not writable (before the first iteration); the
        checkpoint is corrupt (sha256), from another run, or holds tensors of other shapes
        (naming the file and the fix).
    """
    import time

    iterations = _planned_iterations(method, iterations)
    if iterations < 0 or checkpoint_every < 1 or eval_every < 0:
        raise ValueError(f"iterations={iterations}, checkpoint_every={checkpoint_every}, eval_every={eval_every}: "
                         "expected iterations >= 0, checkpoint_every >= 1, eval_every >= 0")
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    if path is not None:  # fail now, not at the first checkpoint hours later
        check_writable_folder(path.parent, f"checkpoint_path={str(path)!r}")
    fingerprint = method.fingerprint()
    history: list[dict[str, Any]] = []
    evaluations: list[dict[str, Any]] = []
    start = 0
    payload = _load_checkpoint(path, fingerprint) if path is not None else None
    if payload is not None:
        _restore(method, payload["method"], path)
        history, evaluations, start = payload["history"], payload["evaluations"], payload["iteration"]
        logger.info("%s: resumed from checkpoint at iteration %d (%s)", desc, start, path)

    shard = getattr(method, "shard", None)  # a data-parallel method's DataParallel (ddlib.core.data_parallel)

    def save(iteration: int) -> None:
        if path is not None and (shard is None or shard.rank == 0):  # data parallel: one file, by rank 0
            atomic_torch_save({"method": method.state_dict(), "history": history, "evaluations": evaluations,
                               "iteration": iteration, "fingerprint": fingerprint,
                               "fingerprint_digest": _digest(fingerprint)}, path)

    def maybe_evaluate(iteration: int) -> None:
        if evaluate is None or not eval_every:
            return
        due = iteration == 0 or iteration % eval_every == 0 or iteration == iterations
        if due and all(e["iteration"] != iteration for e in evaluations):
            evaluations.append({"iteration": iteration, **evaluate(method.synthetic_set(), iteration)})

    clock = time.perf_counter()
    done, reason = start, "completed"
    good = copy.deepcopy(method.state_dict())  # the state after iteration `done`, restored on a stop
    bar = tqdm(total=iterations, initial=start, desc=desc, disable=not progress, leave=False)
    try:
        maybe_evaluate(start)
        for iteration in range(start, iterations):
            try:
                log = method.step(iteration)
            except NonFiniteLoss as err:
                method.load_state_dict(good)  # images, optimizer and generator from before this step
                reason = f"stopped at iteration {iteration}: {err}; kept the synthetic set of iteration {iteration}"
                logger.error(reason)
                break
            snapshot = copy.deepcopy(method.state_dict())
            history.append({"iteration": iteration, **log})
            good, done = snapshot, iteration + 1
            bar.update(1)
            bar.set_postfix(loss=f"{log.get('loss', float('nan')):.4f}")
            maybe_evaluate(done)
            if done % checkpoint_every == 0:
                save(done)
    except KeyboardInterrupt:
        method.load_state_dict(good)  # an interrupted step may have drawn random numbers or moved images
        save(done)
        logger.warning("interrupted at iteration %d; checkpoint saved to %s", done, path)
        raise
    finally:
        bar.close()
    save(done)
    if shard is not None:
        shard.barrier()  # no rank returns (and, say, reads the checkpoint) before rank 0 wrote it
    diagnose = getattr(method, "diagnose", None)
    flags = dict(diagnose()) if callable(diagnose) else {}
    for flag, message in flags.items():
        logger.warning("%s: %s (flag %r in the result)", desc, message, flag)
    synthetic = _annotated(method.synthetic_set(), reason, flags).with_provenance(
        **distillation_provenance(method, iterations_planned=iterations, iterations_done=done))
    return DistillResult(synthetic, history, evaluations, done, reason, time.perf_counter() - clock, flags)
