"""Crash-safe file writes and verified reads, shared by every store in ddlib.

Trajectory stores, convexified stores, distillation checkpoints and result files all
write through :func:`atomic_write` (temporary file in the same folder, ``fsync``,
``os.replace``), so a crash -- even ``kill -9`` -- leaves the old or the new file, never a
torn one; and they read back through :func:`read_verified`, which checks size and
sha256 against the manifest and names the file in every error. The two expert stores share
:class:`ExpertFileStore` (manifest metadata, index checks, one-slot cache of loaded experts).

Files resumed from without a manifest (distillation checkpoints, partial experts) carry their
own sha256 in a one-line header (:func:`checked_torch_bytes`, :func:`read_checked_torch`), and
the small JSON caches go through :func:`write_json` / :func:`read_json`, so a flipped bit, a
0-byte file or a full disk is an error naming the file, never a silent resume. Locking and
stale-file cleanup for stores written by several processes live in :mod:`ddlib.core.locks`.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import torch

__all__ = ["TMP_PREFIX", "atomic_write", "torch_bytes", "json_normalise", "read_verified", "load_torch_payload",
           "read_json_manifest", "ExpertFileStore", "checked_torch_bytes", "read_checked_torch", "write_json",
           "read_json", "check_writable_folder"]

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
# Header of a self-checking torch file: magic, the sha256 (hex) of the torch.save bytes that follow, newline.
# A torch.save archive itself starts with the zip magic b"PK\x03\x04" (files written before the header).
CHECKED_MAGIC = b"DDLIB-SHA256:"
_ZIP_MAGIC = b"PK\x03\x04"


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (best effort: not every platform can open a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file in the same folder, fsync and ``os.replace``.

    The temporary file is ``.tmp-<name>.<pid>.<random>`` (per process and call), so two
    processes writing into one folder never touch each other's temporaries.

    Raises
    ------
    OSError
        Any failure (disk full, permissions, ...), with the original ``errno`` and a message
        naming ``path``; the previous file at ``path`` is then left intact and the temporary
        file is removed.
    """
    path = Path(path)
    tmp = path.parent / f"{TMP_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(6)}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # os.open with mode 0o666 honours the umask (tempfile.mkstemp would force 0o600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            view = memoryview(payload)
            while view:  # os.write may write less than asked (signals, pipes, some file systems)
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if not isinstance(error, OSError):
            raise
        hint = " (disk full: free space and rerun)" if error.errno == errno.ENOSPC else ""
        message = (f"cannot write {str(path)!r}: {error.strerror or error}{hint}; "
                   "the previous version of the file, if any, is intact")
        raise (OSError(error.errno, message) if error.errno is not None else OSError(message)) from error
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


def checked_torch_bytes(obj: Any) -> bytes:
    """``torch.save(obj)`` bytes behind a header with their sha256 (read back by :func:`read_checked_torch`).

    Returns
    -------
    bytes
        ``CHECKED_MAGIC + sha256 hex + b"\\n" + torch.save bytes``.
    """
    body = torch_bytes(obj)
    return CHECKED_MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def read_checked_torch(path: str | os.PathLike, what: str, fix: str, *, weights_only: bool = True) -> Any:
    """Load a file written with :func:`checked_torch_bytes`, verifying its sha256 first.

    A file without the header but starting like a ``torch.save`` archive (written by an older
    ddlib) is loaded unchecked, with a warning.

    Parameters
    ----------
    path : path
        The file.
    what : str
        What the file is, for messages ("checkpoint", "partial expert 3").
    fix : str
        What the user should do about a damaged file ("delete it to start over").
    weights_only : bool
        Passed to ``torch.load``.

    Raises
    ------
    ValueError
        Empty, truncated or bit-flipped file (sha256 mismatch), or bytes ``torch.load`` cannot
        read, naming the file and ``fix``.
    """
    path = Path(path)
    data = path.read_bytes()
    header = len(CHECKED_MAGIC) + 64 + 1
    if data.startswith(CHECKED_MAGIC):
        stored, body = data[len(CHECKED_MAGIC):header - 1].decode("ascii", "replace"), data[header:]
        if data[header - 1:header] != b"\n" or (digest := hashlib.sha256(body).hexdigest()) != stored:
            found = "a damaged header" if data[header - 1:header] != b"\n" else f"sha256 {digest}"
            raise ValueError(f"{what} {str(path)!r} is corrupt: {found}, but its header records sha256 "
                             f"{stored} (a flipped bit or a torn copy); {fix}")
    elif data.startswith(_ZIP_MAGIC):
        logger.warning("%s %s has no checksum header (written by an older ddlib); loading it unchecked",
                       what, path)
        body = data
    else:
        raise ValueError(f"{what} {str(path)!r} is corrupt or not a ddlib file: it starts with {data[:16]!r} "
                         f"({len(data)} bytes), expected {CHECKED_MAGIC!r}; {fix}")
    try:
        return torch.load(io.BytesIO(body), map_location="cpu", weights_only=weights_only)
    except Exception as error:  # torch raises several types for damaged archives
        raise ValueError(f"{what} {str(path)!r} cannot be read by torch.load ({error}); {fix}") from error


def write_json(path: str | os.PathLike, value: Any, *, indent: int | None = 1) -> None:
    """Write ``value`` as JSON to ``path`` crash-safely (:func:`atomic_write`, which names the file on errors)."""
    atomic_write(path, (json.dumps(value, indent=indent) + "\n").encode())


def read_json(path: str | os.PathLike, what: str, *, on_corrupt: Literal["raise", "recompute"] = "raise",
              fix: str = "delete it to recompute") -> Any:
    """Parse the JSON file ``path``; an empty or damaged file is an error naming it, never a bare JSONDecodeError.

    Parameters
    ----------
    path : path
        The file (it must exist).
    what : str
        What the file holds, for messages ("evaluation cache").
    on_corrupt : {"raise", "recompute"}
        ``"raise"``: ``ValueError`` naming the file and ``fix``. ``"recompute"``: log a warning
        and return ``None`` (the caller then recomputes and overwrites the file).
    fix : str
        What to do about a damaged file, for the ``"raise"`` message.
    """
    if on_corrupt not in ("raise", "recompute"):
        raise ValueError(f"on_corrupt={on_corrupt!r}: expected 'raise' or 'recompute'")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise ValueError("the file is empty (0 bytes or only whitespace)")
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        if on_corrupt == "recompute":
            logger.warning("%s %s is unreadable (%s); recomputing it", what, path, error)
            return None
        raise ValueError(f"{what} {str(path)!r} is not valid JSON ({error}); {fix}") from error


def check_writable_folder(folder: str | os.PathLike, what: str) -> Path:
    """Create ``folder`` if needed and check that a file can be created in it (before hours of work).

    Raises
    ------
    ValueError
        The folder cannot be created or written to (permissions, read-only file system,
        a file in the way), naming it and the error.
    """
    folder = Path(folder)
    probe = folder / f"{TMP_PREFIX}probe.{os.getpid()}.{secrets.token_hex(6)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.unlink(probe)
    except OSError as error:
        raise ValueError(f"{what}: the folder {str(folder)!r} is not writable ({error}); choose a writable "
                         "folder or fix its permissions") from error
    return folder


class ExpertFileStore:
    """Read side shared by the stores that keep one verified file per expert.

    Base of :class:`~ddlib.trajectories.trajectory_store.TrajectoryStore` and
    :class:`~ddlib.trajectories.convexified.ConvexifiedStore`: metadata read from the manifest, index checks
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
