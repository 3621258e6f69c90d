"""Crash-safe file writes and verified reads, shared by every store in ddlib.

Trajectory stores, convexified stores, distillation checkpoints and result files all
write through :func:`atomic_write` (temporary file in the same folder, ``fsync``,
``os.replace``), so a crash -- even ``kill -9`` -- leaves the old or the new file, never a
torn one; and they read back through :func:`read_verified`, which checks size and
sha256 against the manifest and names the file in every error. The two expert stores share
:class:`ExpertFileStore` (manifest metadata, index checks, one-slot cache of loaded experts).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

__all__ = ["TMP_PREFIX", "atomic_write", "torch_bytes", "json_normalise", "read_verified", "load_torch_payload",
           "read_json_manifest", "ExpertFileStore"]

TMP_PREFIX = ".tmp-"


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (best effort: not every platform can open a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file in the same folder, fsync and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # os.open with mode 0o666 honours the umask (tempfile.mkstemp would force 0o600).
    tmp = path.parent / f"{TMP_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def torch_bytes(obj: Any) -> bytes:
    """``torch.save(obj)`` as bytes (so it can be hashed and written atomically)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def json_normalise(value: Any) -> Any:
    """What ``value`` looks like after a JSON round trip (tuples become lists, ...)."""
    return json.loads(json.dumps(value))


def read_json_manifest(root: Path, name: str, keys: Sequence[str], store: str) -> dict[str, Any]:
    """Read the JSON manifest ``root / name`` of a store and check that it holds every key in ``keys``.

    Parameters
    ----------
    root : Path
        The store's folder.
    name : str
        File name of the manifest inside ``root``.
    keys : sequence of str
        Keys the manifest must hold.
    store : str
        What kind of store ``root`` is, for the error when the manifest is missing
        (``"no {store} at {root!r}: ..."``).

    Returns
    -------
    dict
        The parsed manifest (its values are not checked).

    Raises
    ------
    FileNotFoundError
        The manifest does not exist.
    ValueError
        The manifest is not valid JSON, or not an object holding all of ``keys``, naming the file.
    """
    path = root / name
    if not path.is_file():
        raise FileNotFoundError(f"no {store} at {str(root)!r}: {str(path)!r} does not exist")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"manifest {str(path)!r} is not valid JSON: {error}") from error
    if missing := [k for k in keys if not isinstance(manifest, dict) or k not in manifest]:
        raise ValueError(f"manifest {str(path)!r} lacks the key(s) {missing}; expected {list(keys)}")
    return manifest


def read_verified(path: Path, record: Mapping[str, Any], what: str, *, verify: bool = True) -> bytes:
    """Read a file a manifest describes (``record["nbytes"]``, ``record["sha256"]``).

    Raises
    ------
    FileNotFoundError
        The file is missing.
    ValueError
        Wrong size (truncated/overwritten) or sha256 mismatch, naming the file.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what}: file {str(path)!r} does not exist")
    payload = path.read_bytes()
    if len(payload) != int(record["nbytes"]):
        raise ValueError(f"{what} file {str(path)!r} has {len(payload)} bytes but the manifest records "
                         f"{record['nbytes']} (truncated or overwritten)")
    if verify and (digest := hashlib.sha256(payload).hexdigest()) != record["sha256"]:
        raise ValueError(f"{what} file {str(path)!r} is corrupt: sha256 {digest} differs from the "
                         f"manifest's {record['sha256']}")
    return payload


def load_torch_payload(payload: bytes, path: Path, what: str) -> Any:
    """``torch.load`` (weights only) of bytes read from ``path``; a damaged archive raises ValueError."""
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged archives
        raise ValueError(f"{what} file {str(path)!r} cannot be read by torch.load: {error}") from error


class ExpertFileStore:
    """Read side shared by the stores that keep one verified file per expert.

    Base of :class:`~ddlib.trajectory_store.TrajectoryStore` and
    :class:`~ddlib.convexified.ConvexifiedStore`: metadata read from the manifest, index checks
    and a one-slot cache of the last expert loaded.

    Attributes
    ----------
    root : Path
        The store's folder (set by the subclass).
    manifest : dict
        The manifest, with ``experts`` (records as :func:`read_verified` takes them, plus
        ``file``), ``epochs`` and ``num_params`` (set by the subclass).
    verify : bool
        Check each file's sha256 when it is loaded (set by the subclass).
    experts : list of dict
        The manifest's expert records (a property of the subclass).
    _cached : tuple or None
        ``(k, expert)`` of the last load; the subclass sets it to ``None``.
    _store_name, _counted : str
        How messages name the store ("expert k of the ...") and its experts ("... has n ...").
    """

    _store_name = "store"
    _counted = "experts"

    def __len__(self) -> int:
        """Number of finished experts."""
        return len(self.manifest["experts"])

    @property
    def num_epochs(self) -> int:
        """``K``, the training epochs per (source) expert."""
        return int(self.manifest["epochs"])

    @property
    def num_params(self) -> int:
        """``P``, the length of one flat parameter vector."""
        return int(self.manifest["num_params"])

    @property
    def nbytes(self) -> int:
        """Total size in bytes of the finished expert files (tensors plus ``torch.save`` framing)."""
        return sum(int(e["nbytes"]) for e in self.experts)

    def _check_index(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(self):
            raise IndexError(f"expert index {k!r} out of range: the store {str(self.root)!r} has {len(self)} "
                             f"{self._counted} (valid indices 0..{len(self) - 1})")
        return k

    def _load_cached(self, k: Any, kind: str, build: Callable[[Any, Path, dict[str, Any]], Any]) -> Any:
        """Expert ``k`` from the one-slot cache, else ``build(data, path, record)`` of its verified file.

        ``kind`` names the file in a ``torch.load`` error; raises as :func:`read_verified`,
        :func:`load_torch_payload` and ``build`` do, or ``IndexError`` for a bad ``k``.
        """
        k = self._check_index(k)
        if self._cached is not None and self._cached[0] == k:
            return self._cached[1]
        self._cached = None  # release the previous expert before reading the next
        record = self.experts[k]
        path = self.root / record["file"]
        payload = read_verified(path, record, f"expert {k} of the {self._store_name}", verify=self.verify)
        loaded = build(load_torch_payload(payload, path, kind), path, record)
        self._cached = (k, loaded)
        return loaded
