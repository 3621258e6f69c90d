"""The synthetic-set container every distillation method and coreset returns.

A :class:`SyntheticSet` holds ``ipc`` images per class, their labels, the learned
learning rate (MTT/AST/MCT learn one; DM/TGDD/coresets do not), the method config and
provenance. On disk it is a folder with two files::

    <path>/images.pt       torch.save({"images_syn": ..., "labels_syn": ...})
    <path>/manifest.json   shapes, dtypes, sha256 of images.pt, config, provenance, ...

The folder is written under a temporary name and renamed into place, so a crash never
leaves a half-written set at ``path``; :meth:`SyntheticSet.load` re-checks the hash,
shapes and label counts so a corrupt or mismatched file fails loudly instead of being
evaluated.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

__all__ = ["SyntheticSet", "MANIFEST_NAME", "TENSORS_NAME"]

MANIFEST_NAME = "manifest.json"
TENSORS_NAME = "images.pt"
_FORMAT = "ddlib.SyntheticSet/1"


def _plain(value: Any, what: str) -> dict[str, Any]:
    """JSON-checked ``dict`` copy of a config/provenance mapping (a ``Config`` is converted)."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict (or a Config); got {type(value).__name__}")
    try:
        # Round trip so the stored copy is detached from the caller's and surely serialisable.
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be JSON-serialisable (finite numbers, str keys): {err}") from err


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticSet:
    """A distilled (or coreset) training set.

    Attributes
    ----------
    images_syn : torch.Tensor
        ``(N, C, H, W)`` float32 with ``N = ipc * num_classes``; a detached copy of what
        was passed (so later in-place updates of a distillation parameter do not leak in).
    labels_syn : torch.Tensor
        ``(N,)`` int64, exactly ``ipc`` of each class ``0 .. num_classes - 1``.
    syn_lr : float or None
        Learned student learning rate (MTT/AST/MCT), else ``None``.
    config : dict
        The method's configuration (a ``Config`` is converted with ``to_dict``).
    provenance : dict
        Where the set came from. A distilled set returned by
        :func:`~ddlib.methods.distill_loop.run_distillation` has ``iterations`` (actually run),
        ``iterations_planned``, ``method_config``, ``expert_store`` (folder, experts used and
        manifest sha256, or ``None``), ``seed``, ``ddlib_version``, ``git_sha`` and
        ``ddlib_source_sha256`` (:func:`ddlib.core.provenance.distillation_provenance`); coresets
        record their source ``indices``.
    dataset : str
        Name of the real data set (``ImageDataset.name``).
    ipc : int
        Images per class.
    zca : bool
        ``True`` when the images live in the ZCA-whitened space of the data set.

    Raises
    ------
    ValueError
        On construction, for wrong ranks/dtypes, ``N`` not a multiple of ``ipc``, labels
        outside ``[0, N / ipc)`` or a class count different from ``ipc``.
    """

    images_syn: torch.Tensor
    labels_syn: torch.Tensor
    syn_lr: float | None
    config: dict
    provenance: dict
    dataset: str
    ipc: int
    zca: bool = False

    def __post_init__(self) -> None:
        images, labels = self.images_syn, self.labels_syn
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
            raise ValueError(
                f"images_syn must be a floating (N, C, H, W) tensor; got "
                f"{type(images).__name__} {tuple(getattr(images, 'shape', ()))}"
            )
        if not isinstance(labels, torch.Tensor) or labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels_syn must have shape ({images.shape[0]},) to match images_syn "
                f"{tuple(images.shape)}; got {tuple(getattr(labels, 'shape', ()))}"
            )
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"labels_syn must be an integer tensor; got dtype {labels.dtype}")
        if not isinstance(self.ipc, int) or isinstance(self.ipc, bool) or self.ipc < 1:
            raise ValueError(f"ipc={self.ipc!r}: expected a positive int")
        syn_lr = self.syn_lr
        if isinstance(syn_lr, torch.Tensor):
            syn_lr = float(syn_lr.detach())  # MTT keeps its learned lr as a 1-element tensor
        if syn_lr is not None:
            if isinstance(syn_lr, bool) or not isinstance(syn_lr, (int, float)) or not float(syn_lr) > 0:
                raise ValueError(f"syn_lr={self.syn_lr!r}: expected a positive float or None")
            syn_lr = float(syn_lr)
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("images_syn", images.detach().to(torch.float32).clone())
        set_("labels_syn", labels.detach().to(torch.int64).clone())
        set_("syn_lr", syn_lr)
        set_("config", _plain(self.config, "config"))
        set_("provenance", _plain(self.provenance, "provenance"))
        set_("dataset", str(self.dataset))
        set_("zca", bool(self.zca))
        self._check_labels()

    def _check_labels(self) -> None:
        n = int(self.labels_syn.numel())
        if n == 0 or n % self.ipc:
            raise ValueError(f"{n} images is not a positive multiple of ipc={self.ipc}")
        k = n // self.ipc
        low, high = int(self.labels_syn.min()), int(self.labels_syn.max())
        if low < 0 or high >= k:
            raise ValueError(
                f"labels_syn range [{low}, {high}] is outside [0, {k}) "
                f"({n} images / ipc={self.ipc} = {k} classes)"
            )
        counts = self.class_counts()
        bad = {c: int(v) for c, v in enumerate(counts.tolist()) if v != self.ipc}
        if bad:
            raise ValueError(f"every class needs ipc={self.ipc} images; class counts differ: {bad}")

    # ------------------------------------------------------------------ views
    @property
    def num_classes(self) -> int:
        """Number of classes ``N / ipc``."""
        return int(self.labels_syn.numel()) // self.ipc

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one image."""
        return tuple(int(s) for s in self.images_syn.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return int(self.labels_syn.numel())

    def class_counts(self) -> torch.Tensor:
        """Images per class, int64 tensor ``(num_classes,)`` (all equal to ``ipc`` once built)."""
        return torch.bincount(self.labels_syn.cpu(), minlength=self.num_classes)

    def with_provenance(self, **fields: Any) -> "SyntheticSet":
        """Copy with ``fields`` added to (or replacing keys of) the provenance (JSON values)."""
        return dataclasses.replace(self, provenance={**self.provenance, **fields})

    def to(self, device: str | torch.device) -> "SyntheticSet":
        """Copy with the tensors on ``device``."""
        return dataclasses.replace(
            self, images_syn=self.images_syn.to(device), labels_syn=self.labels_syn.to(device)
        )

    def __repr__(self) -> str:
        return (
            f"SyntheticSet(dataset={self.dataset!r}, ipc={self.ipc}, num_classes={self.num_classes}, "
            f"shape={self.image_shape}, syn_lr={self.syn_lr}, zca={self.zca}, "
            f"method={self.config.get('method')!r})"
        )

    # ------------------------------------------------------------------ disk
    def manifest(self, sha256: str = "") -> dict[str, Any]:
        """The JSON manifest written next to the tensors (``sha256`` of the tensor file)."""
        return {
            "format": _FORMAT,
            "dataset": self.dataset,
            "ipc": self.ipc,
            "num_classes": self.num_classes,
            "zca": self.zca,
            "syn_lr": self.syn_lr,
            "images_shape": list(self.images_syn.shape),
            "images_dtype": str(self.images_syn.dtype),
            "labels_shape": list(self.labels_syn.shape),
            "labels_dtype": str(self.labels_syn.dtype),
            "tensors_file": TENSORS_NAME,
            "sha256": sha256,
            "config": self.config,
            "provenance": self.provenance,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the set to the folder ``path`` atomically (replacing an existing set).

        Returns
        -------
        Path
            The folder written.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ValueError(f"cannot save a SyntheticSet to {path}: it exists and is not a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:
            tensors = staging / TENSORS_NAME
            torch.save({"images_syn": self.images_syn.cpu(), "labels_syn": self.labels_syn.cpu()}, tensors)
            manifest = self.manifest(_sha256(tensors))
            (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, allow_nan=False))
            # A folder cannot be os.replace()d over a non-empty one: move the old set aside
            # first, so at every moment `path` is either the old or the new complete set.
            backup = None
            if path.exists():
                backup = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
                os.replace(path, backup / "set")
            os.replace(staging, path)
            if backup is not None:
                shutil.rmtree(backup, ignore_errors=True)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return path

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, expect_shape: Sequence[int] | None = None
    ) -> "SyntheticSet":
        """Read and validate a set written by :meth:`save`.

        Parameters
        ----------
        path : path
            The folder given to :meth:`save`.
        expect_shape : sequence of int, optional
            ``(C, H, W)`` of one image or the full ``(N, C, H, W)``; checked if given.

        Raises
        ------
        FileNotFoundError
            ``path``, its manifest or its tensor file is missing (naming the path).
        ValueError
            Unreadable/corrupt manifest or tensor file, sha256 mismatch (naming the file),
            shapes differing from the manifest or from ``expect_shape`` (naming both), or
            invalid labels/class counts.
        """
        path = Path(path)
        manifest_path, tensors_path = path / MANIFEST_NAME, path / TENSORS_NAME
        if not path.is_dir():
            raise FileNotFoundError(f"no SyntheticSet folder at {path}")
        for required in (manifest_path, tensors_path):
            if not required.is_file():
                raise FileNotFoundError(f"SyntheticSet at {path} is incomplete: {required} is missing")
        try:
            manifest = json.loads(manifest_path.read_text())
            if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
                raise ValueError(f"format tag {manifest.get('format') if isinstance(manifest, dict) else None!r}"
                                 f" is not {_FORMAT!r}")
            expected_sha = str(manifest["sha256"])
            shapes = {"images_syn": tuple(manifest["images_shape"]), "labels_syn": tuple(manifest["labels_shape"])}
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise ValueError(f"corrupt SyntheticSet manifest {manifest_path}: {err}") from err
        actual_sha = _sha256(tensors_path)
        if actual_sha != expected_sha:
            raise ValueError(
                f"sha256 of {tensors_path} is {actual_sha}, manifest {manifest_path} says {expected_sha}: "
                "the tensor file is corrupt, truncated or was replaced"
            )
        try:
            payload = torch.load(tensors_path, map_location="cpu", weights_only=True)
            images, labels = payload["images_syn"], payload["labels_syn"]
        except Exception as err:  # torch raises many types for a bad pickle/zip
            raise ValueError(f"cannot read SyntheticSet tensors {tensors_path}: {err}") from err
        for name, tensor in (("images_syn", images), ("labels_syn", labels)):
            if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shapes[name]:
                raise ValueError(
                    f"{name} in {tensors_path} has shape {tuple(getattr(tensor, 'shape', ()))}; "
                    f"manifest {manifest_path} says {shapes[name]}"
                )
        if expect_shape is not None:
            expect = tuple(int(s) for s in expect_shape)
            got = tuple(images.shape) if len(expect) == 4 else tuple(images.shape[1:])
            if got != expect:
                raise ValueError(
                    f"SyntheticSet {path} has image shape {got}; expected {expect} "
                    f"(full shape {tuple(images.shape)})"
                )
        try:
            return cls(
                images_syn=images, labels_syn=labels, syn_lr=manifest.get("syn_lr"),
                config=manifest.get("config", {}), provenance=manifest.get("provenance", {}),
                dataset=manifest.get("dataset", ""), ipc=manifest.get("ipc"), zca=manifest.get("zca", False),
            )
        except (ValueError, TypeError) as err:
            raise ValueError(f"invalid SyntheticSet in {path}: {err}") from err
