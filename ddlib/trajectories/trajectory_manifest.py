"""The manifest of a trajectory store: its format, how it is built, read, written and compared.

``manifest.json`` records what a store of expert trajectories was made from (data set and its
fingerprint, model and parameter layout, :class:`~ddlib.trajectories.experts.ExpertConfig`,
loss hook, base seed) and, per finished expert, its seed, metrics, file, sha256 and size.
:func:`manifest_header` builds everything but the per-expert records for a request, and
:func:`store_differences` says where a stored manifest differs from one.
:mod:`ddlib.trajectories.trajectory_store` reads and writes stores with these.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ddlib.core.fileio import atomic_write as _atomic_write
from ddlib.core.fileio import json_normalise as _json_normalise
from ddlib.core.fileio import read_json_manifest
from ddlib.core.functional import ParamLayout
from ddlib.core.train import LossHook, cross_entropy_hook
from ddlib.data.dataset import ImageDataset
from ddlib.trajectories.experts import ExpertConfig, build_expert_model
from ddlib.trajectories.fingerprints import _differences, dataset_fingerprint, describe_loss_hook

__all__ = ["MANIFEST_NAME", "FORMAT_VERSION", "manifest_header", "store_differences", "read_manifest",
           "save_manifest"]

#: The manifest's file name in a store folder.
MANIFEST_NAME = "manifest.json"
#: Format of the manifest and of the partial checkpoints; a store of another format is refused.
FORMAT_VERSION = 1
_REQUIRED_KEYS = (
    "format_version", "dataset", "arch", "model_kwargs", "channel", "num_classes", "im_size",
    "param_names", "param_shapes", "num_params", "dtype", "epochs", "config", "loss_hook", "seed", "experts",
)


def manifest_header(data: ImageDataset, config: ExpertConfig, seed: int, loss_hook: LossHook) -> dict[str, Any]:
    """Everything in the manifest except the per-expert records (JSON-normalised)."""
    layout = ParamLayout.of(build_expert_model(data, config, seed=0))
    return _json_normalise({
        "format_version": FORMAT_VERSION,
        "dataset": {
            "name": data.name, "num_train": int(data.labels_train.numel()),
            "num_test": int(data.labels_test.numel()), "fingerprint": dataset_fingerprint(data),
        },
        "arch": config.arch, "model_kwargs": {"width": config.width, "depth": config.depth, "norm": config.norm},
        "channel": data.channel, "num_classes": data.num_classes, "im_size": list(data.im_size),
        "param_names": list(layout.names), "param_shapes": [list(s) for s in layout.shapes],
        "num_params": layout.numel, "dtype": config.storage_dtype, "epochs": config.epochs,
        "config": config.to_dict(), "loss_hook": describe_loss_hook(loss_hook), "seed": seed,
    })


def store_differences(manifest: dict[str, Any], data: ImageDataset, config: ExpertConfig, seed: int,
                      loss_hook: LossHook = cross_entropy_hook) -> list[str]:
    """Where a store's manifest differs from a request (data fingerprint, config, seed, loss hook, layout).

    Returns
    -------
    list of str
        One ``"<key>: stored <value>, requested <value>"`` per differing leaf; empty when the
        store was made for exactly this request.
    """
    stored = {k: v for k, v in manifest.items() if k != "experts"}
    return _differences(stored, manifest_header(data, config, seed, loss_hook))


def save_manifest(root: Path, manifest: dict[str, Any]) -> None:
    _atomic_write(root / MANIFEST_NAME, (json.dumps(manifest, indent=1) + "\n").encode())


def read_manifest(root: Path) -> dict[str, Any]:
    manifest = read_json_manifest(root, MANIFEST_NAME, _REQUIRED_KEYS, "trajectory store")
    if manifest["format_version"] != FORMAT_VERSION:
        path = root / MANIFEST_NAME
        raise ValueError(f"manifest {str(path)!r} has format_version {manifest['format_version']!r}; "
                         f"expected {FORMAT_VERSION}")
    return manifest
