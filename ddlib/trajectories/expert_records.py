"""Per-expert record files: how several processes fill one trajectory store without sharing its manifest.

A store's ``manifest.json`` lists its finished experts ``0 .. n-1`` (always a prefix: readers index
it by position). When the experts are trained by several processes at once (``torchrun``, each
rank a share of the ids), no rank may rewrite the manifest: each writes, after an expert's file,
that expert's manifest record to ``expert_<k>.record.json`` (atomically). Rank 0 then folds the
records into the manifest (:func:`merge_records`), in index order and only as far as they are
contiguous, and removes the record files it folded in. A rerun after a crash finds the records
of the experts that did finish and trains only the others; the finished store is the same file
for file as a one-process run's.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

from ddlib.core.fileio import atomic_write

__all__ = ["RECORD_SUFFIX", "record_path", "write_record", "read_records", "merge_records"]

logger = logging.getLogger(__name__)

RECORD_SUFFIX = ".record.json"


def record_path(root: Path, k: int) -> Path:
    """``root/expert_<k>.record.json``."""
    return Path(root) / f"expert_{k:03d}{RECORD_SUFFIX}"


def write_record(root: Path, record: dict[str, Any]) -> None:
    """Write expert ``record["index"]``'s manifest record next to its (already written) file."""
    atomic_write(record_path(root, int(record["index"])), (json.dumps(record, indent=1) + "\n").encode())


def read_records(root: Path, expected_seed: Callable[[int], int]) -> dict[int, dict[str, Any]]:
    """The usable record files under ``root``, by expert index.

    A record is used only when its expert file exists with the recorded size and its seed is
    ``expected_seed(k)`` (the store's derivation); others are logged and ignored, so their
    experts are trained again.
    """
    found = {}
    for path in sorted(Path(root).glob(f"expert_*{RECORD_SUFFIX}")):
        try:
            record = json.loads(path.read_text())
            k = int(record["index"])
            data_file = Path(root) / record["file"]
            if record["seed"] != expected_seed(k) or path != record_path(root, k):
                raise ValueError(f"record of expert {k} with seed {record['seed']!r}")
            if not data_file.is_file() or data_file.stat().st_size != record["nbytes"]:
                raise ValueError(f"{record['file']} is missing or has another size than recorded")
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("ignoring %s (%s); its expert is trained again", path, error)
            continue
        found[k] = record
    return found


def merge_records(root: Path, manifest: dict[str, Any], records: dict[int, dict[str, Any]],
                  write_manifest: Callable[[Path, dict[str, Any]], None]) -> int:
    """Append ``records`` to ``manifest["experts"]`` while they continue its prefix; write it if any were added.

    The record files of the appended experts (and their partial checkpoints) are removed after
    the manifest is written, so a crash in between leaves them to be folded in again.

    Returns
    -------
    int
        How many records were appended.
    """
    added = []
    while (k := len(manifest["experts"])) in records:
        manifest["experts"].append(records.pop(k))
        added.append(k)
    if added:
        write_manifest(root, manifest)
        for k in added:
            record_path(root, k).unlink(missing_ok=True)
            (Path(root) / f"expert_{k:03d}.partial.pt").unlink(missing_ok=True)
    return len(added)
