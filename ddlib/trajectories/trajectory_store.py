"""On-disk store of expert trajectories (MTT's "buffers"), crash-safe and resumable.

One folder holds one buffer::

    root/
      manifest.json           data set, model, parameter layout, ExpertConfig, loss hook,
                              base seed and, per finished expert, seed, metrics, file, sha256, size
      expert_000.pt           tensor (epochs + 1, P) in the storage dtype (float32 or float16)
      expert_001.pt
      expert_002.partial.pt   checkpoint of the expert being trained (exact-resume state)

Every file is written atomically (temporary file in the same folder, ``fsync``,
``os.replace``), so a crash (even ``kill -9``) leaves either the old or the new version.
The manifest (:mod:`ddlib.trajectories.trajectory_manifest`) is rewritten after each finished
expert; the partial checkpoint (with its own sha256 header, checked on resume) is rewritten after
every epoch and removed once its expert is recorded in the manifest. Rerunning
:func:`generate_experts` with the same arguments continues where the crash happened and produces bit-identical trajectories. A writer holds
``root/.lock`` (:func:`ddlib.core.locks.file_lock`), so a second run generating the same store
waits and then reuses the first run's experts.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from ddlib.data.dataset import ImageDataset
from ddlib.data.zca import ZCA
from ddlib.trajectories.expert_state import ExpertState
from ddlib.trajectories.experts import ExpertConfig, Trajectory, train_expert
from ddlib.trajectories.expert_records import merge_records, read_records, write_record
from ddlib.core.fileio import atomic_write as _atomic_write
from ddlib.core.fileio import checked_torch_bytes, read_checked_torch
from ddlib.core.fileio import json_normalise as _json_normalise
from ddlib.core.fileio import ExpertFileStore
from ddlib.core.fileio import torch_bytes as _torch_bytes
from ddlib.core.functional import ParamLayout
from ddlib.trajectories.fingerprints import _differences
from ddlib.trajectories.trajectory_manifest import (FORMAT_VERSION, MANIFEST_NAME, manifest_header, read_manifest,
                                                   save_manifest)
from ddlib.core.locks import LOCK_NAME, clean_stale_temporaries, file_lock
from ddlib.core.runtime import derive_seed
from ddlib.core.train import LossHook, cross_entropy_hook

__all__ = ["TrajectoryStore", "generate_experts"]

logger = logging.getLogger(__name__)


def _arch_key(arch: str) -> str:
    return str(arch).lower().replace("-", "").replace("_", "")


# ---------------------------------------------------------------------- reading
class TrajectoryStore(ExpertFileStore):
    """Read access to a folder of expert trajectories: ``TrajectoryStore(root)``, :meth:`open` (which
    also checks arch and ``P``) or :func:`generate_experts`.

    Only the manifest (``.manifest``, a dict) is held in memory, with the ``.layout``
    (:class:`ParamLayout` of the ``P`` parameters) and ``.config`` (:class:`ExpertConfig`) it
    describes; :meth:`trajectory` reads one expert file on demand and caches only that one.
    """

    _store_name = "trajectory store"
    _counted = "finished experts"

    def __init__(self, root: str | os.PathLike, manifest: dict[str, Any] | None = None, *,
                 verify: bool = True) -> None:
        self.root = Path(root)
        self.manifest = manifest = read_manifest(self.root) if manifest is None else manifest
        self.verify = bool(verify)
        self.layout = ParamLayout(
            tuple(manifest["param_names"]), tuple(tuple(int(d) for d in s) for s in manifest["param_shapes"])
        )
        if self.layout.numel != manifest["num_params"]:
            raise ValueError(f"manifest in {str(self.root)!r} says num_params={manifest['num_params']} but its "
                             f"parameter shapes add up to {self.layout.numel}")
        self.config = ExpertConfig.from_dict(manifest["config"])
        self._cached: tuple[int, Trajectory] | None = None

    @classmethod
    def open(cls, root: str | os.PathLike, *, arch: str | None = None, num_params: int | None = None,
             verify: bool = True) -> "TrajectoryStore":
        """Open an existing store and check it fits the caller's network.

        Parameters
        ----------
        root : path
            Folder holding ``manifest.json``.
        arch, num_params : str, int, optional
            The caller's architecture (compared case-insensitively) and ``P``.
        verify : bool
            Check each expert file's sha256 when it is loaded (costs one hash per load).

        Raises
        ------
        FileNotFoundError
            No ``manifest.json`` under ``root`` (naming the path).
        ValueError
            Unreadable manifest, or ``arch``/``num_params`` differ from the stored ones (naming both).
        """
        root = Path(root)
        manifest = read_manifest(root)
        if arch is not None and _arch_key(arch) != _arch_key(manifest["arch"]):
            raise ValueError(f"trajectory store {str(root)!r} holds experts of arch {manifest['arch']!r}, "
                             f"but arch {arch!r} was expected")
        if num_params is not None and int(num_params) != manifest["num_params"]:
            raise ValueError(f"trajectory store {str(root)!r} holds {manifest['num_params']} parameters per "
                             f"snapshot (arch {manifest['arch']!r}, {manifest['model_kwargs']}), "
                             f"but num_params={num_params} was expected")
        return cls(root, manifest, verify=verify)

    # ------------------------------------------------------------------ metadata
    @property
    def experts(self) -> list[dict[str, Any]]:
        """Per finished expert: ``index``, ``seed``, ``file``, ``sha256``, ``nbytes``, ``train_loss``,
        ``test_accuracy``."""
        return self.manifest["experts"]

    @property
    def dtype(self) -> torch.dtype:
        """Storage dtype of the expert files."""
        return torch.float16 if self.manifest["dtype"] == "float16" else torch.float32

    def __repr__(self) -> str:
        return (f"TrajectoryStore({str(self.root)!r}, experts={len(self)}, arch={self.manifest['arch']!r}, "
                f"epochs={self.num_epochs}, num_params={self.num_params}, dtype={self.manifest['dtype']})")

    # ------------------------------------------------------------------ loading
    def trajectory(self, k: int) -> Trajectory:
        """Load expert ``k`` (validated) as a :class:`~ddlib.trajectories.experts.Trajectory`.

        ``snapshots`` is ``(num_epochs + 1, P)`` in the storage dtype; ``snapshot(e)`` returns
        float32 ``(P,)``. The returned object is shared with the one-slot cache: do not modify
        its tensors in place.

        Raises
        ------
        IndexError
            ``k`` not in ``[0, len(self))``.
        FileNotFoundError
            The expert file is missing (naming it).
        ValueError
            The file has the wrong size (truncated), a sha256 different from the manifest's,
            cannot be read by ``torch.load``, or holds a tensor of the wrong shape or dtype.
        """
        return self._load_cached(k, "expert", self._build_trajectory)

    def _build_trajectory(self, snapshots: Any, path: Path, record: dict[str, Any]) -> Trajectory:
        expected = (self.num_epochs + 1, self.num_params)
        if not isinstance(snapshots, torch.Tensor) or tuple(snapshots.shape) != expected:
            got = tuple(snapshots.shape) if isinstance(snapshots, torch.Tensor) else type(snapshots).__name__
            raise ValueError(f"expert file {str(path)!r} holds {got}; expected a tensor of shape {expected}")
        if snapshots.dtype != self.dtype:
            raise ValueError(f"expert file {str(path)!r} holds dtype {snapshots.dtype}; expected {self.dtype}")
        return Trajectory(snapshots=snapshots, layout=self.layout, train_loss=list(record["train_loss"]),
                          test_accuracy=list(record["test_accuracy"]), seed=record["seed"])

    def __getitem__(self, k: int) -> Trajectory:
        return self.trajectory(k)

    def __iter__(self) -> Iterator[Trajectory]:
        """Yield the experts one at a time (each loaded when reached)."""
        for k in range(len(self)):
            yield self.trajectory(k)


# ---------------------------------------------------------------------- writing
def _load_partial(path: Path, k: int, expert_seed: int, config: ExpertConfig) -> ExpertState | None:
    """The resume state in ``path``, or ``None`` (with a warning) if it was written for other settings.

    Raises
    ------
    ValueError
        The file is corrupt (sha256 mismatch, truncated, unreadable), naming it and the fix.
    """
    payload = read_checked_torch(path, f"partial checkpoint of expert {k}",
                                 f"delete it to retrain expert {k} from epoch 0")
    try:
        if not isinstance(payload, dict):
            raise ValueError(f"checkpoint holds a {type(payload).__name__}, not a dict")
        if payload.get("format_version") != FORMAT_VERSION or payload.get("expert") != k:
            raise ValueError(f"checkpoint is for expert {payload.get('expert')!r}, "
                             f"format {payload.get('format_version')!r}")
        if payload.get("seed") != expert_seed or payload.get("config") != _json_normalise(config.to_dict()):
            raise ValueError("checkpoint was written with another seed or config")
        return ExpertState.from_dict(payload["state"])
    except Exception as error:  # an intact checkpoint of other settings only costs the time to retrain
        logger.warning("ignoring checkpoint %s (%s); expert %d restarts from epoch 0", path, error, k)
        return None


def _open_for_writing(root: Path, header: dict[str, Any], num_experts: int) -> dict[str, Any]:
    """The manifest of the store at ``root`` (created from ``header`` if absent), checked against ``header``.

    Partial checkpoints of experts the manifest already records are removed (a crash between
    the manifest write and their deletion leaves them behind).
    """
    if not (root / MANIFEST_NAME).exists():
        manifest = dict(header, experts=[])
        save_manifest(root, manifest)
        logger.info("created trajectory store %s for %d experts", root, num_experts)
        return manifest
    manifest = read_manifest(root)
    stored = {k: v for k, v in manifest.items() if k != "experts"}
    diffs = _differences(stored, header)
    if diffs:
        raise ValueError(f"the trajectory store {str(root)!r} was made with other settings; "
                         f"differences: {'; '.join(diffs)}. Use another folder, or delete this one to "
                         "regenerate it")
    for record in manifest["experts"]:
        path = root / record["file"]
        if not path.is_file() or path.stat().st_size != record["nbytes"]:
            raise ValueError(f"finished expert file {str(path)!r} is missing or has the wrong size; "
                             "delete the store or restore the file")
        (root / f"expert_{record['index']:03d}.partial.pt").unlink(missing_ok=True)
    logger.info("resuming trajectory store %s: %d of %d experts done", root, len(manifest["experts"]), num_experts)
    return manifest


def _train_missing(root: Path, manifest: dict[str, Any], data: ImageDataset, config: ExpertConfig,
                   num_experts: int, seed: int, loss_hook: LossHook, device: str | torch.device, progress: bool,
                   on_epoch: Callable[[int, ExpertState], None] | None, ids: list[int],
                   write_manifest: bool, zca: ZCA | None = None) -> None:
    """Train the experts of ``ids`` that are neither in the manifest nor recorded in a record file.

    With ``write_manifest`` (the caller holds the lock) each finished expert is folded into the
    manifest as soon as the experts before it are; without, its record file is written instead
    (:mod:`ddlib.trajectories.expert_records`) and rank 0 folds it in later.
    """
    records = read_records(root, lambda k: derive_seed(seed, "expert", k))
    if write_manifest:
        merge_records(root, manifest, records, save_manifest)
    finished = {int(r["index"]) for r in manifest["experts"]} | set(records)
    todo = [k for k in ids if k not in finished]
    bar = tqdm(total=len(ids) * config.epochs, initial=(len(ids) - len(todo)) * config.epochs,
               disable=not progress, desc="experts", unit="epoch")
    try:
        for k in todo:
            expert_seed = derive_seed(seed, "expert", k)
            partial = root / f"expert_{k:03d}.partial.pt"
            start = _load_partial(partial, k, expert_seed, config) if partial.exists() else None
            if start is not None:
                logger.info("expert %d: resuming from epoch %d", k, start.epoch)
                bar.update(start.epoch)

            def checkpoint(state: ExpertState, k: int = k, expert_seed: int = expert_seed,
                           partial: Path = partial) -> None:
                _atomic_write(partial, checked_torch_bytes({
                    "format_version": FORMAT_VERSION, "expert": k, "seed": expert_seed,
                    "config": _json_normalise(config.to_dict()), "state": state.to_dict(),
                }))
                bar.update(1)
                bar.set_postfix(expert=k, test_acc=f"{state.test_accuracy[-1]:.3f}")
                if on_epoch is not None:
                    on_epoch(k, state)

            trajectory = train_expert(data, config, expert_seed, loss_hook=loss_hook, device=device,
                                      on_epoch=checkpoint, start=start, zca=zca)
            payload = _torch_bytes(trajectory.snapshots.to(config.torch_storage_dtype).clone())
            name = f"expert_{k:03d}.pt"
            _atomic_write(root / name, payload)
            record = {
                "index": k, "seed": expert_seed, "file": name,
                "sha256": hashlib.sha256(payload).hexdigest(), "nbytes": len(payload),
                "train_loss": trajectory.train_loss, "test_accuracy": trajectory.test_accuracy,
            }
            if write_manifest:
                records[k] = record
                merge_records(root, manifest, records, save_manifest)
            if not write_manifest or k in records:  # not (yet) in the manifest: leave a record for its writer
                write_record(root, record)
                partial.unlink(missing_ok=True)
            logger.info("expert %d done: final test accuracy %.4f", k, trajectory.test_accuracy[-1])
    finally:
        bar.close()


def generate_experts(
    root: str | os.PathLike,
    data: ImageDataset,
    config: ExpertConfig,
    num_experts: int,
    seed: int,
    *,
    loss_hook: LossHook = cross_entropy_hook,
    device: str | torch.device = "cpu",
    progress: bool = True,
    on_epoch: Callable[[int, ExpertState], None] | None = None,
    ids: Sequence[int] | None = None,
    write_manifest: bool = True,
    zca: ZCA | None = None,
) -> TrajectoryStore:
    """Train ``num_experts`` experts into ``root``, creating the store or resuming it.

    Expert ``k`` is trained by :func:`~ddlib.trajectories.experts.train_expert` with seed
    ``derive_seed(seed, "expert", k)``. Finished experts are skipped, an interrupted expert
    continues from its last completed epoch (bit-identical to an uninterrupted run), and the
    missing ones are trained.

    Parameters
    ----------
    root : path
        Store folder (created if needed).
    data, config, device
        As for :func:`~ddlib.trajectories.experts.train_expert`.
    num_experts : int
        Experts the store should hold when done (``>= 1``).
    seed : int
        Base seed of the buffer.
    loss_hook : LossHook
        Training loss (recorded in the manifest by name and, for Config hooks, by value).
    progress : bool
        Show a tqdm progress bar over all epochs of all experts.
    on_epoch : callable, optional
        ``on_epoch(k, state)`` after expert ``k``'s epoch checkpoint has been written.
    ids : sequence of int, optional
        Train only these expert indices (each in ``[0, num_experts)``); ``None``: all. One rank's
        share of a multi-process run (:func:`ddlib.core.distributed.shard`); ``()`` trains
        nothing and only folds finished records into the manifest.
    write_manifest : bool
        ``True``: hold ``root/.lock``, create or check the manifest and rewrite it after each
        expert. ``False`` (the ranks of a multi-process run, which share the folder): the manifest
        must exist already (rank 0 creates it with ``ids=()`` before a barrier); each finished
        expert leaves a record file (:mod:`ddlib.trajectories.expert_records`) that rank 0 folds
        in after the next barrier with another ``ids=()`` call. Expert ``k`` is seeded from
        ``seed`` and ``k`` alone, so the store does not depend on how the ids were split.
    zca : ZCA, optional
        With ``config.zca``: the whitening fitted on ``data.images_train`` (regularisation
        0.1), reused instead of fitted once per expert (see
        :func:`~ddlib.trajectories.experts.train_expert`).

    Raises
    ------
    ValueError
        ``root`` already holds a store whose data set, config, seed, loss hook or layout
        differ from the request (naming each difference), or a partial checkpoint that is
        corrupt (naming it: delete it to retrain that expert); an id outside
        ``[0, num_experts)``; ``write_manifest=False`` and no manifest yet.

    Notes
    -----
    A second process (or thread) generating the same ``root`` waits on ``root/.lock`` until
    the first is done, then trains only what is still missing.
    """
    if isinstance(num_experts, bool) or not isinstance(num_experts, int) or num_experts < 1:
        raise ValueError(f"num_experts={num_experts!r}: expected an int >= 1")
    if not isinstance(config, ExpertConfig):
        raise TypeError(f"config must be an ExpertConfig; got {type(config).__name__}")
    ids = list(range(num_experts)) if ids is None else [int(k) for k in ids]
    if bad := [k for k in ids if not 0 <= k < num_experts]:
        raise ValueError(f"ids {bad}: expected expert indices in [0, {num_experts})")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    header = manifest_header(data, config, seed, loss_hook)
    if not write_manifest:  # one rank's share: no lock (the other ranks write the same folder), no manifest write
        if not (root / MANIFEST_NAME).exists():
            raise ValueError(f"write_manifest=False needs the manifest of {str(root)!r}; create it first "
                             "(generate_experts(..., ids=()) on one process)")
        manifest = read_manifest(root)
        if diffs := _differences({k: v for k, v in manifest.items() if k != "experts"}, header):
            raise ValueError(f"the trajectory store {str(root)!r} was made with other settings; "
                             f"differences: {'; '.join(diffs)}")
        _train_missing(root, manifest, data, config, num_experts, seed, loss_hook, device, progress, on_epoch,
                       ids, write_manifest=False, zca=zca)
        return TrajectoryStore.open(root)
    # One writer at a time: a second run waits here, then finds the first run's experts finished.
    with file_lock(root / LOCK_NAME, f"trajectory store {root}"):
        clean_stale_temporaries(root)  # only files whose writing process is gone
        manifest = _open_for_writing(root, header, num_experts)
        _train_missing(root, manifest, data, config, num_experts, seed, loss_hook, device, progress, on_epoch,
                       ids, write_manifest=True, zca=zca)
    return TrajectoryStore.open(root)
