"""The measurements of the MCT chapter (Zhong et al., CVPR 2025) that are more than a few lines.

The chapter compares MTT's SGD expert trajectories with MCT's convexified ones
(:mod:`ddlib.trajectories.convexified`) in four ways: test accuracy *along* each trajectory (does it
oscillate?), the size of the stored buffer, how fast distillation converges, and the
final accuracy. This module holds the pieces the notebook would otherwise have to define:
oscillation statistics of an accuracy curve, "iterations to reach a target accuracy", a
view on the first ``n`` experts of a store, a distillation run that always ends with an
evaluation, the buffer-size arithmetic for the paper's data sets, MCT's distiller preset
(:func:`mct_config`) and how far its code's TESLA gradient is from the exact one
(:func:`gradient_agreement`).

Accuracies here are fractions in ``[0, 1]`` unless a name says ``pp`` (percentage points).
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from ddlib.trajectories.convexified import PAPER_DATASETS, ConvexifiedStore, ConvexifyOptions, convexify_store, storage_bytes
from ddlib.data.dataset import ImageDataset
from ddlib.methods.distill_loop import DistillResult, run_distillation
from ddlib.evaluation.runner import EvalConfig, evaluate_synthetic
from ddlib.chapters.scales import FirstExperts
from ddlib.trajectories.experts import build_expert_model
from ddlib.core.functional import ParamLayout, load_flat_params
from ddlib.models import build_model
from ddlib.methods.mtt import TrajectoryMatching, expert_params
from ddlib.methods.mtt_config import MTTConfig
from ddlib.methods.synthetic import SyntheticSet
from ddlib.core.train import accuracy

__all__ = ["path_accuracies", "oscillation", "iterations_to_reach", "checkpoint_file",
           "distill_and_evaluate", "convexified_variants", "paper_storage", "MCT_CIFAR10", "MCT_LR_TEACHER",
           "MCT_NUM_EVAL", "mct_config", "vector_agreement", "gradient_agreement"]

# Hyper-parameters, not results: MCT's CIFAR-10 run file (from the authors' code; no ZCA) per IPC. The run
# file also passes --lr_init (1e-2 at IPC 1, 1e-3 at IPC 50), but distill_compressed.py never reads
# it: syn_lr starts at --lr_teacher, left at its default 0.01 (MCT_LR_TEACHER) at every IPC.
MCT_CIFAR10 = {
    1: dict(syn_steps=60, expert_epochs=6, max_start_epoch=4, lr_img=1e3, lr_lr=1e-7),
    10: dict(syn_steps=30, expert_epochs=15, max_start_epoch=8, lr_img=1e3, lr_lr=1e-5),
    50: dict(syn_steps=30, expert_epochs=2, max_start_epoch=40, lr_img=1e3, lr_lr=1e-5),
}
MCT_LR_TEACHER = 0.01
MCT_NUM_EVAL = 3  # distill_compressed.py's --num_eval (MTT's protocol: 5)


def mct_config(base: MTTConfig, *, published: bool = False, **changes: Any) -> MTTConfig:
    """MCT's distiller on top of ``base``: the choices of the authors' code, then ``changes``.

    Always: ``sampling="continuous"`` (the paper and the code), ``gradient="tesla"`` (the
    code; ``changes={"gradient": "exact"}`` gives the papers' unrolled gradient) and
    ``zca=False`` (the run file). With ``published``: the run file's CIFAR-10 values at
    ``base.ipc`` (``MCT_CIFAR10``) and ``lr_teacher = 0.01`` (``MCT_LR_TEACHER``).

    Raises
    ------
    ValueError
        ``published`` for an IPC the run file does not cover.
    """
    own: dict[str, Any] = {}
    if published:
        if base.ipc not in MCT_CIFAR10:
            raise ValueError(f"ipc={base.ipc}: MCT's run file gives settings for IPC {sorted(MCT_CIFAR10)} only; "
                             f"pass published=False and set the values explicitly")
        own = dict(MCT_CIFAR10[base.ipc], lr_teacher=MCT_LR_TEACHER)
    return base.replace(**{"sampling": "continuous", "gradient": "tesla", "zca": False, **own, **changes})


@torch.no_grad()
def path_accuracies(trajectory: Any, net: torch.nn.Module, data: ImageDataset,
                    epochs: Iterable[float]) -> list[float]:
    """Test accuracy of ``net`` loaded with the trajectory's parameters at each of ``epochs``.

    Parameters
    ----------
    trajectory : ddlib.Trajectory or ddlib.trajectories.convexified.ConvexifiedTrajectory
        Integer epochs use the stored snapshot; a convexified trajectory is read with
        ``at(epoch)`` (real-valued epochs allowed).
    net : nn.Module
        The experts' architecture; its parameters are overwritten.
    data : ImageDataset
        Supplies the real test split ``(N_test, C, H, W)``, on ``net``'s device.

    Returns
    -------
    list of float
        One accuracy in ``[0, 1]`` per epoch, in order.
    """
    device = next(net.parameters()).device
    accuracies = []
    for epoch in epochs:
        load_flat_params(net, expert_params(trajectory, epoch).to(device))
        accuracies.append(accuracy(net, data.images_test, data.labels_test))
    return accuracies


def oscillation(accuracies: Sequence[float]) -> dict[str, float]:
    """How much an accuracy curve goes *down* on its way, the paper's "oscillation".

    Parameters
    ----------
    accuracies : sequence of float
        Accuracies at consecutive points of a trajectory (any unit; the statistics keep it).

    Returns
    -------
    dict
        ``drops``: number of consecutive decreases; ``total_drop``: sum of the decreases
        (0 for a non-decreasing curve); ``max_drop``: largest single decrease;
        ``total_rise``: sum of the increases; ``net_gain``: last minus first. So
        ``net_gain == total_rise - total_drop``.
    """
    values = [float(a) for a in accuracies]
    if len(values) < 2 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"need at least 2 finite accuracies; got {values!r}")
    steps = [b - a for a, b in zip(values[:-1], values[1:])]
    downs = [-s for s in steps if s < 0]
    return {"drops": float(len(downs)), "total_drop": float(sum(downs)), "max_drop": float(max(downs, default=0.0)),
            "total_rise": float(sum(s for s in steps if s > 0)), "net_gain": values[-1] - values[0]}


def iterations_to_reach(iterations: Sequence[int], accuracies: Sequence[float], target: float) -> int | None:
    """First distillation iteration at which the best accuracy so far reaches ``target``.

    Parameters
    ----------
    iterations : sequence of int
        Increasing iterations at which the synthetic set was evaluated.
    accuracies : sequence of float
        The evaluated accuracy at each of ``iterations``.
    target : float

    Returns
    -------
    int or None
        ``None`` when the curve never reaches ``target``.
    """
    if len(iterations) != len(accuracies):
        raise ValueError(f"{len(iterations)} iterations but {len(accuracies)} accuracies")
    if list(iterations) != sorted(set(iterations)):
        raise ValueError(f"iterations must increase strictly; got {list(iterations)}")
    for iteration, acc in zip(iterations, accuracies):
        if acc >= target:  # the first hit is where the best-so-far curve crosses the target
            return int(iteration)
    return None


def checkpoint_file(folder: str | os.PathLike, label: str, config: MTTConfig, seed: int, source: Any,
                    eval_config: EvalConfig | None = None) -> Path:
    """Checkpoint path ``folder/<label>-ipc<ipc>-<hash>.pt`` for one distillation run.

    The hash covers the config, the seed, the source folder, the number of experts and the
    evaluation config (a checkpoint also keeps the periodic evaluations), so a changed
    setting starts a new checkpoint instead of tripping over an old one, and two runs with
    equal configs but different trajectories (MTT vs MCT without continuous sampling) never
    share a file.
    """
    key = json.dumps({"config": config.to_dict(), "seed": seed, "source": Path(source.root).name,
                      "experts": len(source), "eval": eval_config.to_dict() if eval_config else None},
                     sort_keys=True, default=str)
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    return Path(folder) / f"{slug}-ipc{config.ipc}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.pt"


def distill_and_evaluate(data: ImageDataset, source: Any, config: MTTConfig, seed: int, *, eval_config: EvalConfig,
                         checkpoint_path: str | os.PathLike | None = None, eval_every: int = 0,
                         eval_at: Iterable[int] = (), device: str | torch.device = "cpu") -> DistillResult:
    """Distil with :class:`~ddlib.methods.mtt.TrajectoryMatching` from ``source``, then evaluate.

    Every evaluation (periodic ones when ``eval_every > 0``, those of ``eval_at``, and the
    final one) uses the same ``seed``, so two methods are compared on the same evaluation
    networks.

    Parameters
    ----------
    eval_at : iterable of int
        Further iterations ``0 <= i <= config.iterations`` to evaluate at (e.g. an early
        checkpoint that is no multiple of ``eval_every``).

    Returns
    -------
    DistillResult
        ``evaluations`` holds one entry per evaluated iteration, in order, and ends with the
        last iteration's: ``{"iteration": i, **EvalResult.to_dict()}`` (accuracies as fractions).
    """
    wanted = {int(i) for i in eval_at}
    if any(not 0 <= i <= config.iterations for i in wanted):
        raise ValueError(f"eval_at={sorted(wanted)}: expected iterations in [0, {config.iterations}]")
    # run_distillation calls back at multiples of one interval: the gcd of every wanted point,
    # skipping the multiples nobody asked for (their entries hold no accuracies, dropped below)
    every = math.gcd(*wanted, eval_every, config.iterations) if wanted else eval_every

    def evaluate(syn: SyntheticSet, iteration: int) -> dict[str, Any]:
        return evaluate_synthetic(syn, data, eval_config, seed, device=device, progress=False).to_dict()

    def due(iteration: int) -> bool:
        periodic = eval_every > 0 and iteration % eval_every == 0
        return periodic or iteration in wanted or iteration == config.iterations

    def evaluate_due(syn: SyntheticSet, iteration: int) -> dict[str, Any]:
        return evaluate(syn, iteration) if due(iteration) else {}

    net = build_expert_model(data, source.config)
    method = TrajectoryMatching(data, source, net, config, seed, device=device)
    result = run_distillation(method, config.iterations, checkpoint_path=checkpoint_path, evaluate=evaluate_due,
                              eval_every=every, progress=False, desc=f"ipc={config.ipc}")
    result.evaluations = [e for e in result.evaluations if "last" in e]
    if not result.evaluations or result.evaluations[-1]["iteration"] != result.iterations_done:
        result.evaluations.append({"iteration": result.iterations_done,
                                   **evaluate(result.synthetic, result.iterations_done)})
    return result


def convexified_variants(store: Any, folder: str | os.PathLike,
                         variants: dict[str, dict[str, Any]]) -> dict[str, ConvexifiedStore]:
    """Convexify ``store`` once per variant into ``folder/<store folder>-<variant>`` (resumed if present).

    ``variants`` maps a short name to :class:`~ddlib.trajectories.convexified.ConvexifyOptions` fields,
    e.g. ``{"path-2": {}, "uniform-2": {"lambda_mode": "uniform"}, "path-4": {"waypoints": 4}}``.
    The folder name ends with a hash of the resolved options, so a changed default (or
    option) makes a new store instead of clashing with an old one of the same name.
    """
    source = getattr(store, "source", store)  # convexify the whole store, even through a FirstExperts view
    stores = {}
    for name, options in variants.items():
        resolved = json.dumps(ConvexifyOptions.from_dict(options).to_dict(), sort_keys=True)
        tag = hashlib.sha256(resolved.encode()).hexdigest()[:8]
        stores[name] = convexify_store(source, Path(folder) / f"{Path(source.root).name}-{name}-{tag}", **options)
    return stores


def _convnet_counts(dataset: str, depth: int | None = None) -> tuple[int, int]:
    channel, num_classes, im_size, default_depth = PAPER_DATASETS[dataset]
    layout = ParamLayout.of(build_model("ConvNet", channel, num_classes, im_size, width=128,
                                        depth=depth or default_depth, norm="instance"))
    return layout.numel, len(layout.names)


def paper_storage(num_experts: int = 100, epochs: int = 50, waypoints: int = 4,
                  depths: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Buffer sizes of MTT's ConvNet experts on the paper's data sets, from the tensor sizes.

    Parameters
    ----------
    num_experts, epochs : int
        MTT's buffer: 100 experts of 50 epochs (float32).
    waypoints : int
        Stored models of the authors' code default (4).
    depths : dict, optional
        ConvNet depth per data set (default: MTT's, 3 for 32x32, 4 for Tiny ImageNet's 64x64).

    Returns
    -------
    list of dict
        One row per (data set, buffer): ``dataset``, ``depth``, ``num_params``, ``buffer``
        (``"full"``, ``"convexified"``, ``"waypoints"``), ``bytes``, ``mb`` (MiB, 2**20 bytes).
    """
    rows = []
    for dataset in PAPER_DATASETS:
        depth = (depths or {}).get(dataset, PAPER_DATASETS[dataset][3])
        num_params, num_layers = _convnet_counts(dataset, depth)
        for kind in ("full", "convexified", "waypoints"):
            size = storage_bytes(num_params, num_experts, kind=kind, epochs=epochs, waypoints=waypoints,
                                 num_layers=num_layers)
            rows.append({"dataset": dataset, "depth": depth, "num_params": num_params, "buffer": kind,
                         "bytes": size, "mb": size / 2**20})
    return rows


# ---------------------------------------------------------------------- TESLA vs exact gradient
def vector_agreement(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """How close two gradients are: ``cosine`` similarity and ``relative_difference``
    ``||a - b|| / ||b||`` (``b`` the reference), over all elements of same-shaped tensors."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    a, b = a.detach().flatten().double(), b.detach().flatten().double()
    if float(a.norm()) == 0.0 or float(b.norm()) == 0.0:
        raise ValueError("a zero gradient has no direction: cosine similarity undefined")
    return {"cosine": float(torch.dot(a, b) / (a.norm() * b.norm())),
            "relative_difference": float((a - b).norm() / b.norm())}


def gradient_agreement(data: ImageDataset, source: Any, config: MTTConfig, seed: int, *, iterations: int = 4,
                       start_from: SyntheticSet | None = None,
                       device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """Exact and TESLA gradients of the same distillation iterations, side by side.

    A distiller runs ``iterations`` iterations with ``config`` (whichever ``gradient`` it
    names). Before each, a second distiller is put in the same state (images, ``syn_lr``,
    optimisers, generator: so the same expert, start epoch, batches and augmentations) and
    takes the step with the *other* gradient; both gradients are compared.

    Parameters
    ----------
    start_from : SyntheticSet, optional
        Start from these images ``(N, C, H, W)`` and ``syn_lr`` (e.g. a distilled set)
        instead of the config's initialisation.

    Returns
    -------
    list of dict
        Per iteration: ``iteration``, ``expert``, ``start_epoch``, ``loss``; the image
        gradients' ``cosine`` and ``relative_difference`` (TESLA against exact, see
        :func:`vector_agreement`), their norms ``norm_exact`` and ``norm_tesla``, and the
        ``syn_lr`` gradients ``lr_grad_exact`` and ``lr_grad_tesla``.
    """
    if iterations < 1:
        raise ValueError(f"iterations={iterations}: expected >= 1")
    other = "exact" if config.gradient == "tesla" else "tesla"
    run, probe = (TrajectoryMatching(data, source, build_expert_model(data, source.config), c, seed, device=device)
                  for c in (config, config.replace(gradient=other)))
    if start_from is not None:
        with torch.no_grad():
            run.images.copy_(start_from.images_syn.to(run.images))
            run.syn_lr.fill_(float(start_from.syn_lr))
    rows = []
    for iteration in range(iterations):
        # deep copy: the optimiser state_dict holds the run's own momentum buffers, which the
        # probe's optimiser step would otherwise update in place
        probe.load_state_dict(copy.deepcopy(run.state_dict()))
        probe.step(iteration)
        info = run.step(iteration)  # the optimiser steps leave .grad as it was computed
        grads = {config.gradient: (run.images.grad, run.syn_lr.grad), other: (probe.images.grad, probe.syn_lr.grad)}
        rows.append({"iteration": iteration, "expert": info["expert"], "start_epoch": info["start_epoch"],
                     "loss": info["loss"], **vector_agreement(grads["tesla"][0], grads["exact"][0]),
                     **{f"norm_{g}": float(grads[g][0].norm()) for g in ("exact", "tesla")},
                     **{f"lr_grad_{g}": float(grads[g][1]) for g in ("exact", "tesla")}})
    return rows
