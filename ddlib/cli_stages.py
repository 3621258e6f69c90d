"""The stages behind ``python -m ddlib`` (:mod:`ddlib.cli`), one process or one rank of a ``torchrun`` group.

* ``experts``: the ids ``0 .. num_experts-1`` are split among the ranks (:func:`~ddlib.core.distributed.shard`);
  expert ``k`` seeds from the run seed and ``k``, never the rank, so the store is the same for any
  number of processes. Rank 0 creates the store before a barrier and folds every rank's records into
  its manifest after the next (:func:`~ddlib.trajectories.trajectory_store.generate_experts` with ``ids``
  and ``write_manifest``). A rerun after a crash trains only the experts that are missing.
* ``evaluate``: the ``num_eval`` networks are split the same way; each is seeded from the run seed and
  its index as in one process; every rank writes each network's accuracies atomically to a parts
  folder (a rerun skips those), rank 0 gathers them and writes the result JSON.
* ``distill``: data-parallel under ``torchrun`` (:mod:`ddlib.methods.data_parallel`; the experts first,
  sharded as above); coresets on rank 0 while the others wait.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable

import torch

from ddlib.chapters.ast_experts import expert_variant
from ddlib.chapters.ast_experiments import fit_zca
from ddlib.chapters.scales import ScaleSettings, experts_folder, load_scaled_dataset
from ddlib.cli_config import RunConfig
from ddlib.core.distributed import RankInfo, barrier, gather_objects, process_group, rank_info, shard
from ddlib.core.fileio import read_json, write_json
from ddlib.core.runtime import resolve_device
from ddlib.core.train import LossHook, cross_entropy_hook
from ddlib.data.dataset import ImageDataset
from ddlib.evaluation.protocols import EvalResult
from ddlib.evaluation.runner import evaluate_synthetic
from ddlib.methods.synthetic import SyntheticSet
from ddlib.quickstart import distill
from ddlib.quickstart_checks import CORESET_METHODS
from ddlib.trajectories.expert_state import ExpertState
from ddlib.trajectories.experts import ExpertConfig
from ddlib.trajectories.trajectory_store import TrajectoryStore, generate_experts

__all__ = ["run_stage", "run_experts", "run_distill", "run_evaluate", "expert_request", "synthetic_folder"]

logger = logging.getLogger(__name__)

# The experts each method distils from (the chapters': MCT convexifies MTT's, herding/k-center embed with them).
_METHOD_KIND = {"mtt": "mtt", "mct": "mtt", "herding": "mtt", "kcenter": "mtt", "ast": "ast", "tgdd": "tgdd"}
# The scale's MTT fields a trajectory method's config takes from the CLI's scale.
_MTT_FIELDS = ("syn_steps", "expert_epochs", "max_start_epoch", "batch_syn", "lr_img", "lr_lr", "lr_teacher")


def expert_request(settings: ScaleSettings, kind: str) -> tuple[ExpertConfig, LossHook]:
    """The expert config and loss hook of ``kind`` at this scale, as the chapters train them."""
    if kind == "ast":  # AST's chapter: momentum, gradient penalty and clipped loss, as AST's code
        return expert_variant(settings, "momentum+GP+clip")
    return settings.expert_config(kind), cross_entropy_hook


def run_experts(config: RunConfig, info: RankInfo, device: torch.device, data: ImageDataset | None = None, *,
                on_epoch: Callable[[int, ExpertState], None] | None = None) -> TrajectoryStore | None:
    """Train this rank's share of the scale's experts into the notebooks' cache folder.

    Returns
    -------
    TrajectoryStore or None
        The finished store on rank 0 (every expert folded into its manifest); ``None`` on the others.
    """
    settings = config.scale_settings
    data = load_scaled_dataset(settings, config.data_root) if data is None else data
    expert_config, hook = expert_request(settings, config.kind)
    folder = experts_folder(config.artifacts, data, expert_config, config.seed, loss_hook=hook)
    n = settings.num_experts
    common = dict(loss_hook=hook, device=device, progress=False)
    if info.is_main:  # create or check the store (and fold in records a crashed run left) before anyone trains
        generate_experts(folder, data, expert_config, n, config.seed, ids=(), **common)
    barrier(info)
    mine = shard(range(n), info.rank, info.world_size)
    logger.info("rank %d of %d: experts %s of %d into %s", info.rank, info.world_size, mine, n, folder)
    generate_experts(folder, data, expert_config, n, config.seed, ids=mine, write_manifest=False,
                     on_epoch=on_epoch, **common)
    barrier(info)
    if not info.is_main:
        return None
    store = generate_experts(folder, data, expert_config, n, config.seed, ids=(), **common)
    if len(store) < n:
        raise RuntimeError(f"the store {str(folder)!r} holds {len(store)} of {n} experts after every rank "
                           "finished; rerun the command to train the missing ones")
    print(f"experts: {len(store)} {config.kind} experts in {folder}")
    return store


def synthetic_folder(config: RunConfig, data_name: str) -> Path:
    """Where ``distill`` writes its set: ``--out``, else ``<artifacts>/distilled/<method>-<data>-ipc<i>-seed<s>``."""
    if config.out is not None:
        return Path(config.out)
    return config.artifacts / "distilled" / f"{config.method}-{data_name}-ipc{config.run_ipc}-seed{config.seed}"


def _distill_arguments(config: RunConfig, settings: ScaleSettings) -> dict[str, Any]:
    """:func:`ddlib.distill`'s keywords for the CLI's scale (the quickstart would pick the data set's)."""
    method = config.method
    iterations = {"dm": settings.dm_iterations, "tgdd": settings.tgdd_iterations}.get(method, settings.iterations)
    kwargs: dict[str, Any] = {} if method in CORESET_METHODS else {"iterations": config.iterations or iterations}
    if method in ("mtt", "ast", "mct"):
        kwargs.update({name: getattr(settings, name) for name in _MTT_FIELDS if getattr(settings, name) is not None})
    elif method == "dm":
        kwargs["width"] = settings.width
    elif method == "forgetting":
        kwargs.update(epochs=settings.expert_epochs_total, width=settings.width)
    return kwargs


def run_distill(config: RunConfig, info: RankInfo, device: torch.device) -> Path | None:
    """Distil one set and save it; the folder written, on rank 0.

    Under ``torchrun`` a distiller runs data-parallel (:mod:`ddlib.methods.data_parallel`): the experts
    are first trained sharded (:func:`run_experts`), then every rank runs the same distillation on its
    share of each step and rank 0 saves the set. Coresets run on rank 0 while the others wait.
    """
    settings = config.scale_settings
    data = load_scaled_dataset(settings, config.data_root)
    kwargs = _distill_arguments(config, settings)
    parallel = info.distributed and config.method not in CORESET_METHODS
    if info.distributed and not parallel:
        logger.info("distill %s runs in one process: rank 0 works, rank %d waits", config.method, info.rank)
    folder = None
    if parallel or info.is_main:
        if config.method in _METHOD_KIND:
            kind_config = dataclasses.replace(config, kind=_METHOD_KIND[config.method])
            run_experts(kind_config, info if parallel else RankInfo(), device, data)
            if parallel:
                barrier(info)  # rank 0 has folded every rank's experts into the manifest the others open next
            expert_config, hook = expert_request(settings, kind_config.kind)
            kwargs["experts"] = experts_folder(config.artifacts, data, expert_config, config.seed, loss_hook=hook)
        if parallel:
            kwargs["data_parallel"] = True
        syn = distill(data, config.method, ipc=config.run_ipc, seed=config.seed, device=device,
                      checkpoint_dir=config.artifacts / "distill", progress=False, **kwargs)
        if info.is_main:
            folder = syn.save(synthetic_folder(config, data.name))
            print(f"distill: {config.method} ipc={config.run_ipc} seed={config.seed} saved to {folder}")
    barrier(info)
    return folder


def _eval_config(config: RunConfig, settings: ScaleSettings, syn: SyntheticSet):
    """The protocol at the CLI's scale, on the network the set was distilled for (as :func:`ddlib.evaluate`)."""
    recorded = syn.provenance.get("network") or syn.config
    network = {k: recorded[k] for k in ("arch", "width", "depth", "norm") if k in recorded}
    length = {"epochs": config.epochs} if config.epochs is not None else {}
    return settings.eval_config(config.protocol, **length, **{"num_eval": config.num_eval or settings.num_eval,
                                                              **network})


def run_evaluate(config: RunConfig, info: RankInfo, device: torch.device) -> dict[str, Any] | None:
    """Train this rank's share of the evaluation networks; rank 0 writes and returns the result."""
    settings = config.scale_settings
    data = load_scaled_dataset(settings, config.data_root)
    source = Path(config.synthetic) if config.synthetic is not None else synthetic_folder(
        dataclasses.replace(config, out=None), data.name)
    syn = SyntheticSet.load(source, expect_shape=(data.channel, *data.im_size))
    eval_config = _eval_config(config, settings, syn)
    out = Path(config.out) if config.out is not None else source / f"eval-{config.protocol}-seed{config.seed}.json"
    # The parts folder is keyed by the set, protocol and seed: parts of another request are never reused.
    key = hashlib.sha256(json.dumps([eval_config.to_dict(), config.seed, _tensor_sha(syn.images_syn),
                                     str(source.resolve())], sort_keys=True).encode()).hexdigest()[:12]
    parts = out.parent / f"{out.stem}.parts-{key}"
    parts.mkdir(parents=True, exist_ok=True)
    mine = shard(range(eval_config.num_eval), info.rank, info.world_size)
    todo = [i for i in mine if not (parts / f"net_{i:03d}.json").exists()]
    logger.info("rank %d of %d: evaluation networks %s (%d to train)", info.rank, info.world_size, mine, len(todo))
    zca = fit_zca(data) if syn.zca else None
    for i in todo:  # one network per call, written as soon as it is done: a crash loses at most one
        result = evaluate_synthetic(syn, data, eval_config, config.seed, device=device, zca=zca, progress=False,
                                    runs=[i])
        write_json(parts / f"net_{i:03d}.json", {"index": i, "last": result.last[0], "best": result.best[0],
                                                 "best_epoch": result.best_epoch[0], "seed": result.seeds[0],
                                                 "lr": result.lr})
    gathered = gather_objects([read_json(parts / f"net_{i:03d}.json", "evaluation part") for i in mine], info)
    if not info.is_main:
        return None
    nets = sorted((net for rank_nets in gathered for net in rank_nets), key=lambda net: net["index"])
    merged = EvalResult(last=tuple(n["last"] for n in nets), best=tuple(n["best"] for n in nets),
                        best_epoch=tuple(n["best_epoch"] for n in nets), seeds=tuple(n["seed"] for n in nets),
                        arch=eval_config.arch, lr=nets[0]["lr"], epochs=eval_config.epochs,
                        protocol=eval_config.protocol, statistic=eval_config.statistic)
    summary = {"synthetic": str(source), "seed": config.seed, "config": eval_config.to_dict(),
               **dataclasses.asdict(merged), "mean": merged.mean, "std": merged.std}
    write_json(out, summary)
    print(f"evaluate: {config.protocol} protocol, {merged.num_eval} networks: "
          f"{100 * merged.mean:.2f} +/- {100 * merged.std:.2f} % -> {out}")
    return summary


def _tensor_sha(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


_STAGES = {"experts": run_experts, "distill": run_distill, "evaluate": run_evaluate}


def run_stage(stage: str, config: RunConfig, environ: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """Run ``stage`` as this process's rank (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, else one process).

    ``kwargs`` go to the stage function (``on_epoch`` of ``experts``). On the CPU each process uses
    ``config.threads`` intra-op threads (1 by default): PyTorch's CPU reductions depend on the thread
    count, and one count for every run keeps a store bit-identical for any number of processes.
    """
    if stage not in _STAGES:
        raise ValueError(f"stage={stage!r}: expected one of {list(_STAGES)}")
    info = rank_info(environ)
    with process_group(info, resolve_device(config.device)) as device:
        if device.type == "cpu" or config.threads is not None:
            torch.set_num_threads(config.threads or 1)  # the same count in every process: the same sums
        return _STAGES[stage](config, info, device, **kwargs)
