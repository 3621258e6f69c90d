"""Where a number or a synthetic set came from: code version, source hash, expert store id.

The lowest layer of ddlib's bookkeeping (it imports nothing else from ddlib), shared by
:mod:`ddlib.results.records` (every record's provenance), :mod:`ddlib.chapters.scales` (the run key of a
notebook run) and :mod:`ddlib.methods.distill_loop` (the provenance of a distilled set).
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["git_sha", "source_hash", "code_provenance", "expert_store_id", "distillation_provenance"]

_PACKAGE = Path(__file__).resolve().parent


def git_sha() -> str:
    """``HEAD`` of the repository holding ddlib, ``"-dirty"`` appended when tracked files changed.

    ``"unknown"`` when ddlib is not in a git checkout or git is missing.
    """
    root = _PACKAGE.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def source_hash() -> str:
    """sha256 (first 16 hex digits) of every ``.py`` file of the ddlib package, by relative path.

    Unlike :func:`git_sha` it changes with uncommitted edits, so two runs with the same
    source hash ran the same library code even in a dirty checkout.
    """
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(_PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def code_provenance() -> dict[str, str]:
    """``{"ddlib_version", "git_sha", "ddlib_source_sha256"}`` of the running library."""
    from ddlib.core.version import __version__

    return {"ddlib_version": __version__, "git_sha": git_sha(), "ddlib_source_sha256": source_hash()}


def expert_store_id(source: Any) -> dict[str, Any] | None:
    """Identity of an expert store: its folder, the number of experts used and a manifest hash.

    Parameters
    ----------
    source : TrajectoryStore, ConvexifiedStore, FirstExperts or None
        Anything with ``root`` (folder), ``manifest`` (dict) and ``len``; ``experts``, when
        present, lists the manifest entries actually used (a :class:`FirstExperts` view).

    Returns
    -------
    dict or None
        ``{"path", "experts", "manifest_sha256"}``; the hash covers the manifest without its
        expert list plus the entries of the experts used (each with its file's sha256), so it
        changes when any expert used is retrained and not when the store is extended.
        ``None`` when ``source`` is ``None`` or is not a store on disk (an in-memory stand-in).
    """
    root, manifest = getattr(source, "root", None), getattr(source, "manifest", None)
    if source is None or root is None or not isinstance(manifest, dict):
        return None
    used = getattr(source, "experts", manifest.get("experts", []))
    header = {k: v for k, v in manifest.items() if k != "experts"}
    text = json.dumps({"header": header, "experts": list(used)}, sort_keys=True, default=str)
    return {"path": str(root), "experts": len(source),
            "manifest_sha256": hashlib.sha256(text.encode()).hexdigest()}


def distillation_provenance(method: Any, *, iterations_planned: int, iterations_done: int) -> dict[str, Any]:
    """The provenance :func:`~ddlib.methods.distill_loop.run_distillation` stamps on the set it returns.

    Parameters
    ----------
    method : Distiller
        Its ``config`` (``to_dict``), ``seed`` and ``source`` (expert store; absent for DM)
        are read when present.
    iterations_planned, iterations_done : int
        The iterations asked for, and those actually run (fewer when the run stopped early;
        counting the iterations of earlier runs it resumed from).

    Returns
    -------
    dict
        ``iterations`` (done), ``iterations_planned``, ``method_config``, ``expert_store``
        (:func:`expert_store_id`), ``seed`` and :func:`code_provenance`'s fields.
    """
    config = getattr(method, "config", None)
    return {"iterations": int(iterations_done), "iterations_planned": int(iterations_planned),
            "method_config": config.to_dict() if hasattr(config, "to_dict") else None,
            "expert_store": expert_store_id(getattr(method, "source", None)),
            "seed": getattr(method, "seed", None), **code_provenance()}
