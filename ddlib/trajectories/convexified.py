"""MCT's convexified expert trajectories (Zhong et al., CVPR 2025) and their on-disk store.

An SGD expert trajectory ``theta_0 .. theta_K`` is replaced by the straight line
``theta_hat^l(lambda) = (1 - lambda^l) theta_0^l + lambda^l theta_K^l`` per layer ``l`` (one
layer = one named parameter of the :class:`~ddlib.core.functional.ParamLayout`). Epoch ``t``
maps to ``lambda[t, l]``: the cumulative share of layer ``l``'s SGD path length
("path", the paper's "set of constants") or ``t / K`` ("uniform", an ablation). Only the
two end models and the ``(K + 1, L)`` table are kept; real-valued epochs interpolate the
table linearly, which is what MCT's continuous sampling needs.

The authors' code stores ``n`` waypoints by default (``num_interpolation = 4``) and
interpolates piecewise; :class:`ConvexifiedTrajectory` supports both. Which models are
stored and how they are smoothed (paper vs code) lives in :mod:`ddlib.trajectories.waypoints`. One table
represents any ``n``: ``table[t, l] = s + share`` where ``s`` is the segment holding epoch
``t`` and ``share`` in ``[0, 1]`` is layer ``l``'s path-length share *within* that segment
(the authors' choice: each segment is convexified on its own). ``table`` runs from 0 at
epoch 0 to ``n - 1`` at epoch ``K``; at a waypoint epoch "end of segment s" and "start of
segment s + 1" are the same value ``s + 1``, so the piecewise line is continuous.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from ddlib.core.config import Config
from ddlib.trajectories.experts import ExpertConfig
from ddlib.core.functional import ParamLayout
from ddlib.models import build_model
from ddlib.core.locks import clean_stale_temporaries
from ddlib.core.fileio import atomic_write as _atomic_write
from ddlib.core.fileio import json_normalise as _json_normalise
from ddlib.core.fileio import ExpertFileStore, read_json_manifest
from ddlib.core.fileio import torch_bytes as _torch_bytes
from ddlib.trajectories.fingerprints import _differences
from ddlib.trajectories.trajectory_manifest import MANIFEST_NAME
from ddlib.trajectories.trajectory_store import TrajectoryStore
from ddlib.trajectories.waypoints import smoothed_waypoints, waypoint_epochs

__all__ = [
    "ConvexifyOptions", "ConvexifiedTrajectory", "ConvexifiedStore", "convexify_store", "waypoint_epochs",
    "storage_bytes", "convnet_param_counts", "PAPER_DATASETS",
]

FORMAT_VERSION = 1
_KEYS = ("format_version", "kind", "source", "options", "waypoint_epochs", "param_names", "param_shapes",
         "num_params", "epochs", "dtype", "experts")


@dataclasses.dataclass(frozen=True)
class ConvexifyOptions(Config):
    """How a trajectory is convexified.

    Attributes
    ----------
    smoothing : {"code", "paper", "none"}
        How the stored models are smoothed (:func:`ddlib.trajectories.waypoints.smoothed_waypoints`).
        ``"code"`` (default, the authors' ``trajectory_compression.py``): nothing with 2
        models; interior waypoints and the end point with more. ``"paper"``: the end point
        ``mean(theta_{K-1}, theta_K)`` only. ``"none"``: the SGD snapshots.
    lambda_mode : {"path", "uniform"}
        Per-layer cumulative path-length share (MCT) or ``t / K`` (ablation).
    waypoints : int
        Stored models ``n >= 2`` (paper: 2; authors' code default: 4).
    waypoint_rule : {"authors", "even"}
        Epochs of the waypoints, see :func:`waypoint_epochs`.
    """

    #: Smoothing of the stored models: ``"code"`` (default, the authors' ``trajectory_compression.py``: none with 2
    #: models, interior and end points with more), ``"paper"`` (``mean(theta_{K-1}, theta_K)`` at the end), ``"none"``.
    smoothing: Literal["code", "paper", "none"] = "code"
    #: Epoch-to-``lambda`` map: per-layer cumulative path-length share (``"path"``, MCT) or ``t / K`` (ablation).
    lambda_mode: Literal["path", "uniform"] = "path"
    #: Stored models, ``n >= 2`` (the MCT paper: 2; the authors' code default: 4).
    waypoints: int = 2
    #: Epochs of the waypoints: ``"authors"`` (the stride rule of ``trajectory_compression.py``) or ``"even"``.
    waypoint_rule: Literal["authors", "even"] = "authors"

    def validate(self) -> None:
        if self.waypoints < 2:
            raise ValueError(f"waypoints={self.waypoints}: expected >= 2 (start and end point)")


@dataclasses.dataclass(eq=False)
class ConvexifiedTrajectory:
    """A convexified expert: ``n`` waypoint models and the per-layer coordinate table.

    Attributes
    ----------
    waypoints : Tensor
        ``(n, P)`` models at :attr:`waypoint_epochs` (``0`` first, ``K`` last; smoothed as
        :attr:`ConvexifyOptions.smoothing` says), in the source's storage dtype.
    waypoint_epochs : tuple of int
    table : Tensor
        ``(K + 1, L)`` float32 segment coordinate per integer epoch and layer, in ``[0, n - 1]``
        (module docstring); for ``n = 2`` it is the paper's ``lambda[t, l]``.
    layout : ParamLayout
        The ``L`` named parameters making up ``P``.
    seed, options
        The source expert's seed and the :class:`ConvexifyOptions` used (provenance only).
    """

    waypoints: Tensor
    waypoint_epochs: tuple[int, ...]
    table: Tensor
    layout: ParamLayout
    seed: int | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        n, L = len(self.waypoint_epochs), len(self.layout.names)
        if self.waypoints.dim() != 2 or tuple(self.waypoints.shape) != (n, self.layout.numel):
            raise ValueError(f"waypoints must have shape ({n}, {self.layout.numel}); got {tuple(self.waypoints.shape)}")
        if self.table.dim() != 2 or self.table.shape[1] != L or self.table.shape[0] < 2:
            raise ValueError(f"table must have shape (K + 1, {L}) with K >= 1; got {tuple(self.table.shape)}")
        epochs, K = list(self.waypoint_epochs), self.num_epochs
        if n < 2 or epochs[0] != 0 or epochs[-1] != K or epochs != sorted(set(epochs)):
            raise ValueError(f"waypoint_epochs {self.waypoint_epochs} must increase strictly from 0 to {K}")

    @classmethod
    def from_trajectory(cls, trajectory: Any, *, smoothing: str = "code", lambda_mode: str = "path",
                        waypoints: int = 2, waypoint_rule: str = "authors") -> "ConvexifiedTrajectory":
        """Convexify an SGD trajectory (anything with ``snapshots (K + 1, P)`` and ``layout``).

        The table is computed from the *unsmoothed* snapshots (as the authors do); only the
        stored waypoint models are smoothed. A layer that does not move within a segment
        gets the uniform share ``(t - a) / (b - a)`` there.

        Parameters
        ----------
        trajectory : ddlib.trajectories.experts.Trajectory
        smoothing, lambda_mode, waypoints, waypoint_rule
            See :class:`ConvexifyOptions`.
        """
        opts = ConvexifyOptions(smoothing=smoothing, lambda_mode=lambda_mode, waypoints=waypoints,
                                waypoint_rule=waypoint_rule)
        layout, snaps = trajectory.layout, trajectory.snapshots
        K = int(snaps.shape[0]) - 1
        if snaps.dim() != 2 or snaps.shape[1] != layout.numel or K < 1:
            raise ValueError(f"snapshots must have shape (K + 1, {layout.numel}) with K >= 1; got {tuple(snaps.shape)}")
        epochs = waypoint_epochs(K, opts.waypoints, opts.waypoint_rule)
        full = snaps.to(torch.float32)
        step = full[1:] - full[:-1]  # (K, P)
        norms = torch.stack([torch.linalg.vector_norm(piece, dim=1, dtype=torch.float64)
                             for piece in torch.split(step, layout.numels, dim=1)], dim=1)  # (K, L)
        table = torch.zeros(K + 1, len(layout.names), dtype=torch.float64)
        for s, (a, b) in enumerate(zip(epochs[:-1], epochs[1:])):
            uniform = (torch.arange(1, b - a + 1, dtype=torch.float64) / (b - a))[:, None].expand(-1, table.shape[1])
            share = uniform
            if opts.lambda_mode == "path":
                cum = torch.cumsum(norms[a:b], dim=0)  # cum[-1] is the total, so share[-1] == 1 exactly
                total = cum[-1]
                share = torch.where(total > 0, cum / torch.where(total > 0, total, 1.0), uniform)
            table[a] = s
            table[a + 1: b + 1] = s + share
        stored = smoothed_waypoints(snaps, epochs, opts.smoothing)
        return cls(stored, epochs, table.to(torch.float32), layout,
                   getattr(trajectory, "seed", None), opts.to_dict())

    @property
    def num_epochs(self) -> int:
        """``K``."""
        return int(self.table.shape[0]) - 1

    @property
    def lambdas(self) -> Tensor:
        """``(K + 1, L)`` overall progress ``table / (n - 1)`` in ``[0, 1]``; the paper's lambda for ``n = 2``."""
        return self.table / (len(self.waypoint_epochs) - 1)

    @property
    def nbytes(self) -> int:
        """Bytes of the stored tensors: ``n`` models plus the table."""
        return sum(t.numel() * t.element_size() for t in (self.waypoints, self.table))

    def at(self, epoch: float) -> Tensor:
        """Parameters ``(P,)`` float32 at a real-valued ``epoch`` in ``[0, K]`` (else ``ValueError``).

        The table is interpolated linearly between the integer epochs around ``epoch``; per
        layer the coordinate ``u`` selects segment ``s = min(floor(u), n - 2)`` and
        ``theta^l = lerp(w_s^l, w_{s+1}^l, u - s)`` (for ``n = 2``: ``(1 - lambda^l) theta_0^l +
        lambda^l theta_K^l``). ``at(0) = theta_0`` and ``at(K)`` = the stored end point, exactly.
        """
        K = self.num_epochs
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real) or not 0 <= epoch <= K:
            raise ValueError(f"epoch={epoch!r} out of range: expected a number in [0, {K}]")
        i = int(math.floor(epoch))
        coords = self.table[i].to(torch.float64)
        if float(epoch) != i:  # at integer epochs the stored row is used as is
            coords = coords + (float(epoch) - i) * (self.table[i + 1].to(torch.float64) - coords)
        last = len(self.waypoint_epochs) - 2
        pieces = []
        for l, (offset, numel) in enumerate(zip(self.layout.offsets, self.layout.numels)):
            s = min(int(math.floor(float(coords[l]))), last)
            weight = float(coords[l]) - s
            start = self.waypoints[s, offset: offset + numel].to(torch.float32)
            end = self.waypoints[s + 1, offset: offset + numel].to(torch.float32)
            pieces.append(torch.lerp(start, end, weight))
        return torch.cat(pieces) if pieces else torch.zeros(0)

    def snapshot(self, epoch: int) -> Tensor:
        """``at(epoch)``, so integer sampling works on a convexified trajectory too."""
        return self.at(epoch)


# ---------------------------------------------------------------------- store
def _header(store: TrajectoryStore, opts: ConvexifyOptions) -> dict[str, Any]:
    source = {k: store.manifest[k] for k in ("dataset", "arch", "model_kwargs", "channel", "num_classes",
                                             "im_size", "dtype", "epochs", "config", "loss_hook", "seed")}
    return _json_normalise({
        "format_version": FORMAT_VERSION, "kind": "convexified", "source": source, "options": opts.to_dict(),
        "waypoint_epochs": list(waypoint_epochs(store.num_epochs, opts.waypoints, opts.waypoint_rule)),
        "param_names": list(store.layout.names), "param_shapes": [list(s) for s in store.layout.shapes],
        "num_params": store.num_params, "epochs": store.num_epochs, "dtype": store.manifest["dtype"],
    })


def _read_manifest(root: Path) -> dict[str, Any]:
    manifest = read_json_manifest(root, MANIFEST_NAME, _KEYS, "convexified store")
    if manifest["kind"] != "convexified" or manifest["format_version"] != FORMAT_VERSION:
        path = root / MANIFEST_NAME
        raise ValueError(f"manifest {str(path)!r} has kind {manifest['kind']!r}, format_version "
                         f"{manifest['format_version']!r}; expected 'convexified', {FORMAT_VERSION}")
    return manifest


class ConvexifiedStore(ExpertFileStore):
    """Read access to a folder written by :func:`convexify_store`; a trajectory source for
    :class:`ddlib.methods.mtt.TrajectoryMatching` (``len``, ``trajectory(k)``, ``num_epochs``).

    Layout::

        root/manifest.json        source store info, options, waypoint epochs, layout, and per
                                  expert: index, seed, file, sha256, nbytes, source_sha256, metrics
        root/convexified_000.pt   {"waypoints": (n, P) source dtype, "table": (K + 1, L) float32}
    """

    _store_name = "convexified store"

    def __init__(self, root: str | os.PathLike, *, verify: bool = True) -> None:
        self.root = Path(root)
        self.manifest = manifest = _read_manifest(self.root)
        self.verify = bool(verify)
        self.layout = ParamLayout(tuple(manifest["param_names"]),
                                  tuple(tuple(int(d) for d in s) for s in manifest["param_shapes"]))
        self.config = ExpertConfig.from_dict(manifest["source"]["config"])  # the experts' training config
        if self.layout.numel != manifest["num_params"]:
            raise ValueError(f"manifest in {str(self.root)!r} says num_params={manifest['num_params']} but its "
                             f"parameter shapes add up to {self.layout.numel}")
        self._cached: tuple[int, ConvexifiedTrajectory] | None = None

    @classmethod
    def open(cls, root: str | os.PathLike, *, verify: bool = True) -> "ConvexifiedStore":
        """Open an existing store (``verify``: check each file's sha256 when it is loaded)."""
        return cls(root, verify=verify)

    @property
    def experts(self) -> list[dict[str, Any]]:
        """Per expert: ``index``, ``seed``, ``file``, ``sha256``, ``nbytes``, ``source_sha256``, metrics."""
        return self.manifest["experts"]

    @property
    def waypoint_epochs(self) -> tuple[int, ...]:
        return tuple(self.manifest["waypoint_epochs"])

    def trajectory(self, k: int) -> ConvexifiedTrajectory:
        """Load expert ``k`` (one-slot cache: do not modify its tensors in place).

        Raises ``IndexError`` for a bad ``k``, ``FileNotFoundError`` for a missing file and
        ``ValueError`` for a wrong size, a sha256 mismatch, an unreadable file or tensors of
        the wrong shape or dtype, each naming the file.
        """
        return self._load_cached(k, "convexified", self._build_trajectory)

    def _build_trajectory(self, data: Any, path: Path, record: dict[str, Any]) -> ConvexifiedTrajectory:
        n, K, L = len(self.waypoint_epochs), self.num_epochs, len(self.layout.names)
        dtype = torch.float16 if self.manifest["dtype"] == "float16" else torch.float32
        expected = {"waypoints": ((n, self.num_params), dtype), "table": ((K + 1, L), torch.float32)}
        for key, (shape, want) in expected.items():
            tensor = data.get(key) if isinstance(data, dict) else None
            if not isinstance(tensor, Tensor) or tuple(tensor.shape) != shape or tensor.dtype != want:
                got = (tuple(tensor.shape), tensor.dtype) if isinstance(tensor, Tensor) else type(tensor).__name__
                raise ValueError(f"convexified file {str(path)!r}: {key!r} is {got}; expected {shape}, {want}")
        return ConvexifiedTrajectory(data["waypoints"], self.waypoint_epochs, data["table"], self.layout,
                                     record["seed"], dict(self.manifest["options"]))


def convexify_store(store: TrajectoryStore, root: str | os.PathLike, **options: Any) -> ConvexifiedStore:
    """Convexify every expert of ``store`` (loaded one at a time) into the folder ``root``.

    ``root`` is created, or resumed: experts already recorded in its manifest are skipped.
    ``options`` are :class:`ConvexifyOptions` fields (unknown keys raise ``ValueError``).

    Raises
    ------
    ValueError
        ``root`` is the source folder, or holds a store made from another source or with other
        options (naming the differences), or a finished file is missing or resized, or a
        source expert changed since it was converted.
    """
    opts = ConvexifyOptions.from_dict(options)
    root = Path(root)
    if root.resolve() == Path(store.root).resolve():
        raise ValueError(f"the convexified store needs its own folder, not the source store's {str(root)!r}")
    root.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(root)  # left by a crash mid-write; never another live process's files
    header = _header(store, opts)
    if (root / MANIFEST_NAME).exists():
        manifest = _read_manifest(root)
        stored = {k: v for k, v in manifest.items() if k not in ("experts", "source_root")}
        if diffs := _differences(stored, header):
            raise ValueError(f"the convexified store {str(root)!r} was made from another source or with other "
                             f"options; differences: {'; '.join(diffs)}")
        for record in manifest["experts"]:
            path = root / record["file"]
            if not path.is_file() or path.stat().st_size != record["nbytes"]:
                raise ValueError(f"finished convexified file {str(path)!r} is missing or has the wrong size")
            source = store.experts[record["index"]] if record["index"] < len(store) else None
            if source is None or source["sha256"] != record["source_sha256"]:
                raise ValueError(f"source expert {record['index']} of {str(store.root)!r} changed since "
                                 f"{str(path)!r} was written; delete the convexified store")
    else:
        manifest = dict(header, experts=[])
    manifest["source_root"] = str(store.root)
    _atomic_write(root / MANIFEST_NAME, (json.dumps(manifest, indent=1) + "\n").encode())
    for k in range(len(manifest["experts"]), len(store)):
        source = store.experts[k]
        conv = ConvexifiedTrajectory.from_trajectory(store.trajectory(k), **opts.to_dict())
        payload = _torch_bytes({"waypoints": conv.waypoints.clone(), "table": conv.table.clone()})
        name = f"convexified_{k:03d}.pt"
        _atomic_write(root / name, payload)
        manifest["experts"].append({
            "index": k, "seed": source["seed"], "file": name, "sha256": hashlib.sha256(payload).hexdigest(),
            "nbytes": len(payload), "source_sha256": source["sha256"],
            "train_loss": source["train_loss"], "test_accuracy": source["test_accuracy"],
        })
        _atomic_write(root / MANIFEST_NAME, (json.dumps(manifest, indent=1) + "\n").encode())
    return ConvexifiedStore.open(root)


# ---------------------------------------------------------------------- storage accounting
#: Data sets of MCT's storage table: (channel, num_classes, im_size, ConvNet depth).
PAPER_DATASETS = {
    "cifar10": (3, 10, (32, 32), 3), "cifar100": (3, 100, (32, 32), 3), "tinyimagenet": (3, 200, (64, 64), 4),
}


def storage_bytes(num_params: int, num_experts: int, *, kind: str, epochs: int = 50, waypoints: int = 4,
                  bytes_per_param: int = 4, num_layers: int | None = None,
                  waypoint_rule: str = "authors") -> int:
    """Bytes of the raw tensors of an expert buffer (no file framing).

    ``"full"``: ``(epochs + 1)`` snapshots per expert (MTT). ``"convexified"``: 2 models plus
    the ``(epochs + 1, num_layers)`` table. ``"waypoints"``: ``len(waypoint_epochs(epochs,
    waypoints, waypoint_rule))`` models (``n`` for the paper's settings) plus the same table.
    Table entries take ``bytes_per_param`` bytes each.
    """
    if min(num_params, num_experts, epochs, bytes_per_param) < 1:
        raise ValueError("num_params, num_experts, epochs and bytes_per_param must be >= 1")
    if kind == "full":
        return num_experts * (epochs + 1) * num_params * bytes_per_param
    if kind not in ("convexified", "waypoints"):
        raise ValueError(f"kind={kind!r}: expected 'full', 'convexified' or 'waypoints'")
    if num_layers is None or num_layers < 1:
        raise ValueError(f"kind={kind!r} stores a per-layer table: pass num_layers >= 1 (got {num_layers!r})")
    models = 2 if kind == "convexified" else len(waypoint_epochs(epochs, waypoints, waypoint_rule))
    return num_experts * (models * num_params + (epochs + 1) * num_layers) * bytes_per_param


def convnet_param_counts(width: int = 128, norm: str = "instance") -> dict[str, dict[str, int]]:
    """``{dataset: {"num_params": P, "num_layers": L}}`` of MTT's ConvNet on ``PAPER_DATASETS``,
    counted on models built by :func:`ddlib.models.build_model`."""
    layouts = {name: ParamLayout.of(build_model("ConvNet", c, k, size, width=width, depth=d, norm=norm))
               for name, (c, k, size, d) in PAPER_DATASETS.items()}
    return {name: {"num_params": lay.numel, "num_layers": len(lay.names)} for name, lay in layouts.items()}
