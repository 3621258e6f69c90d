"""The one-call front door: ``ddlib.distill(data, "mtt")`` and ``ddlib.evaluate(synthetic, data)``.

Without it, distilling a data set means chaining six calls (experts, their network, the
method's config, the distiller, the loop, the evaluation). :func:`distill` makes these
choices the way the book's chapters do, with every paper's defaults, and
:func:`evaluate` runs a paper's evaluation protocol::

    data = ddlib.load_dataset("mnist5k")
    syn = ddlib.distill(data, "mtt", ipc=1)          # trains and caches 5 experts first
    print(ddlib.evaluate(syn, data))                  # MTT's protocol

Every argument is checked before any compute (:mod:`ddlib.quickstart_checks`, which also
holds the defaults). The pieces stay public for those who need more control:
:func:`~ddlib.chapters.scales.cached_experts`, :class:`~ddlib.methods.mtt.TrajectoryMatching`,
:func:`~ddlib.methods.distill_loop.run_distillation`, :func:`~ddlib.evaluation.runner.evaluate_synthetic`.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from ddlib.chapters.ast_experiments import ast_changes, expert_variant, fit_zca, run_key
from ddlib.methods.coresets import forgetting_coreset, herding_coreset, kcenter_coreset, random_coreset
from ddlib.data.dataset import ImageDataset
from ddlib.methods.distill_loop import run_distillation
from ddlib.methods.dm import DistributionMatching, DMConfig
from ddlib.evaluation.protocols import PROTOCOLS, EvalConfig, EvalResult
from ddlib.evaluation.runner import evaluate_synthetic
from ddlib.chapters.scales import FirstExperts, ScaleSettings, cached_experts, expert_network
from ddlib.trajectories.experts import build_expert_model
from ddlib.trajectories.fingerprints import dataset_fingerprint
from ddlib.chapters.mct_experiments import MCT_CIFAR10, convexified_variants, mct_config
from ddlib.methods.mtt import TrajectoryMatching
from ddlib.methods.mtt_config import MTTConfig
from ddlib.core.provenance import expert_store_id
from ddlib.quickstart_checks import (CORESET_METHODS, check_eval_args, check_experts_fit, check_ipc, check_iterations,
                                check_method, check_schedule, check_seed, coreset_options, dataset_key,
                                default_cache_dir, mtt_base, network_of, open_experts, scale_for, split_overrides)
from ddlib.core.data_parallel import resolve_data_parallel
from ddlib.core.runtime import resolve_device
from ddlib.methods.synthetic import SyntheticSet
from ddlib.methods.tgdd import TGDD, TGDDConfig
from ddlib.core.train import cross_entropy_hook

__all__ = ["distill", "evaluate"]

logger = logging.getLogger(__name__)

# Experts trained when none are given: MTT's chapter-sized buffer (the papers train 5 to 100);
# herding and k-center need only the first expert's final network as their feature space.
DEFAULT_NUM_EXPERTS = 5
_FIELDS = {c: tuple(f.name for f in dataclasses.fields(c) if f.name not in ("ipc", "iterations"))
           for c in (MTTConfig, DMConfig, TGDDConfig)}


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Everything :func:`distill` decided before computing: the config and where the experts come from."""

    method: str
    config: Any                      # MTTConfig, DMConfig, TGDDConfig, or a coreset's options (dict)
    store: Any = None                # given experts (TrajectoryStore / FirstExperts), or None
    expert_config: Any = None        # ExpertConfig to train with when store is None
    loss_hook: Any = cross_entropy_hook
    num_experts: int | None = None
    expert_seed: int = 0


def _expert_defaults(method: str, settings: ScaleSettings, zca: bool, preset: str) -> tuple[Any, Any]:
    """(ExpertConfig, loss hook) a method's experts are trained with when none are given."""
    if method == "ast":  # AST's smooth experts: momentum, gradient penalty, clipped loss
        return expert_variant(settings, "momentum+GP+clip", zca=zca, preset=preset)
    return settings.expert_config("tgdd" if method == "tgdd" else "mtt", zca=zca), cross_entropy_hook


def _trajectory_config(method: str, data: ImageDataset, settings: ScaleSettings, ipc: int, preset: str) -> Any:
    """The method's paper config at ``ipc`` (before the caller's overrides)."""
    if method == "tgdd":
        return TGDDConfig(ipc=ipc, iterations=settings.tgdd_iterations)
    base = mtt_base(settings, data, ipc)
    if method == "ast":  # the whole distiller, as AST's code (default) or its paper has it
        return base.replace(**ast_changes(ipc, preset))
    if method == "mct":  # the run file's CIFAR-10 values where they exist; continuous sampling, TESLA gradient
        return mct_config(base, published=dataset_key(data) == "cifar10" and ipc in MCT_CIFAR10)
    return base


def _plan(data: ImageDataset, method: str, ipc: int, iterations: int | None, experts: Any,
          overrides: dict[str, Any]) -> _Plan:
    """Check every argument and resolve the config (no training, no distillation)."""
    if not isinstance(data, ImageDataset):
        raise TypeError(f"data must be a ddlib.ImageDataset (e.g. ddlib.load_dataset('mnist5k')); "
                        f"got {type(data).__name__}")
    check_method(method)
    check_ipc(data, ipc)
    check_iterations(method, iterations)
    settings = scale_for(data)
    store = open_experts(experts, method)
    if method in CORESET_METHODS:
        defaults = {"kcenter": {"start": "random"},  # a seeded first center, as the book's baselines
                    "forgetting": {"epochs": settings.expert_epochs_total, "width": settings.width}}.get(method, {})
        options, chosen = coreset_options(method, defaults, overrides)
        # herding/k-center share MTT's experts (and their cache folder): the book's baselines chapter does
        expert_config = chosen.get("expert_config") or settings.expert_config("mtt")
        plan = _Plan(method, options, store, expert_config, cross_entropy_hook, chosen.get("num_experts", 1),
                     chosen.get("expert_seed", 0))
    elif method == "dm":
        config_overrides, _ = split_overrides(method, overrides, _FIELDS[DMConfig])
        config = DMConfig(ipc=ipc, iterations=iterations or settings.dm_iterations, width=settings.width)
        return _Plan(method, config.replace(**config_overrides))
    else:
        fields = _FIELDS[TGDDConfig if method == "tgdd" else MTTConfig]
        config_overrides, chosen = split_overrides(method, overrides, fields)
        preset = chosen.get("preset", "code")
        config = _trajectory_config(method, data, settings, ipc, preset).replace(**config_overrides)
        config = config.replace(iterations=iterations) if iterations else config
        given_config = chosen.get("expert_config")
        zca_source = store.config if store is not None else given_config
        if zca_source is not None and "zca" not in config_overrides and method != "tgdd":
            config = config.replace(zca=bool(zca_source.zca))  # the student sees images as its experts did
        expert_config, hook = _expert_defaults(method, settings, bool(getattr(config, "zca", False)), preset)
        plan = _Plan(method, config, store, given_config or expert_config, hook,
                     chosen.get("num_experts", DEFAULT_NUM_EXPERTS if store is None else len(store)),
                     chosen.get("expert_seed", 0))
    if store is not None:
        check_experts_fit(store, data, plan.expert_config if "expert_config" in overrides else None)
        if plan.num_experts > len(store):
            raise ValueError(f"num_experts={plan.num_experts}: the store {str(store.root)!r} holds {len(store)} "
                             f"experts; pass num_experts <= {len(store)}")
    if isinstance(plan.config, MTTConfig):
        where = f"the experts ({'given' if store is not None else 'to be trained'})"
        trained = store.config if store is not None else plan.expert_config
        check_schedule(plan.config, trained.epochs, where)
        if bool(trained.zca) != plan.config.zca:  # found now, not by TrajectoryMatching after training them
            raise ValueError(f"zca={plan.config.zca}, but {where} see images with zca={bool(trained.zca)}: the "
                             "student would work in another space than its experts; omit zca= (it follows them)")
    return plan


def _experts(plan: _Plan, data: ImageDataset, cache: Path, device: torch.device, progress: bool) -> Any:
    """The plan's ``num_experts`` experts: the given store's first ones, or cached / trained under ``cache``."""
    if plan.store is not None:
        return plan.store if plan.num_experts == len(plan.store) else FirstExperts(plan.store, plan.num_experts)
    return cached_experts(cache, data, plan.expert_config, plan.num_experts, plan.expert_seed,
                          loss_hook=plan.loss_hook, device=device, progress=progress)


def _coreset(plan: _Plan, data: ImageDataset, ipc: int, seed: int, cache: Path, device: torch.device,
             progress: bool) -> SyntheticSet:
    """The coreset of the plan: a random pick, forgetting's training run, or herding/k-center on an expert."""
    options, method = dict(plan.config), plan.method
    if method == "random":
        return random_coreset(data, ipc, seed)
    if method == "forgetting":
        return forgetting_coreset(data, ipc, seed=seed, device=device, **options).with_provenance(
            network=network_of(options))
    store = _experts(plan, data, cache, device, progress)
    net = expert_network(store, data, device=device)  # the first expert's final network
    if method == "herding":
        syn = herding_coreset(data, ipc, net, **options)
    else:
        syn = kcenter_coreset(data, ipc, net, seed, **options)
    return syn.with_provenance(network=network_of(store.config))


def distill(data: ImageDataset, method: str = "mtt", *, ipc: int = 1, iterations: int | None = None,
            experts: Any = None, seed: int = 0, device: str | torch.device = "auto",
            checkpoint_dir: str | os.PathLike | None = None, progress: bool = True,
            data_parallel: bool = False, **overrides: Any) -> SyntheticSet:
    """Distil ``data`` to ``ipc`` images per class with ``method`` and its paper's defaults.

    Parameters
    ----------
    data : ImageDataset
        The real data set (normalised), e.g. ``ddlib.load_dataset("mnist5k")``.
    method : {"mtt", "ast", "mct", "dm", "tgdd", "random", "herding", "kcenter", "forgetting"}
        * ``"mtt"``: :meth:`MTTConfig.for_dataset <ddlib.methods.mtt_config.MTTConfig.for_dataset>` where MTT's table
          has the data set, else ``ScaleSettings.mtt_config``'s defaults; SGD experts.
        * ``"ast"``: MTT's settings plus AST's whole distiller (:func:`~ddlib.chapters.ast_experiments.ast_changes`)
          on AST's smooth experts (momentum, gradient penalty, clipped loss), as the authors' code has
          them (the book's main rows); ``preset="paper"`` selects the paper's reading of both.
        * ``"mct"``: :func:`~ddlib.chapters.mct_experiments.mct_config` (continuous sampling, the code's TESLA
          gradient; ``gradient="exact"`` is the paper's) on the experts convexified with 2 models
          (:func:`~ddlib.trajectories.convexified.convexify_store`); MCT's run-file values on CIFAR-10 IPC 1/10/50.
        * ``"dm"``: :class:`~ddlib.methods.dm.DMConfig` (no experts).
        * ``"tgdd"``: :class:`~ddlib.methods.tgdd.TGDDConfig` on TGDD's experts (``ExpertConfig.tgdd``).
        * ``"random"``, ``"herding"``, ``"kcenter"``, ``"forgetting"``: coresets of real images
          (:mod:`ddlib.methods.coresets`); herding and k-center in the feature space of the first expert's
          final network, k-center from a seeded random first center, forgetting from a training run
          as long as an expert's.
    ipc : int
        Images per class, ``1 <=`` ipc ``<=`` the smallest class's training images.
    iterations : int, optional
        Outer iterations; ``None``: the defaults' (5000 MTT/AST/MCT, 20,000 DM, 10,000 TGDD on
        data sets read from files; 150 on the embedded ``mnist5k``/``digits``). Coresets have none.
    experts : TrajectoryStore, path or None
        ``None``: trained when the method needs them (at most once: cached under ``checkpoint_dir``,
        or :func:`~ddlib.quickstart_checks.default_cache_dir` ``~/.cache/ddlib`` without one, by
        :func:`~ddlib.chapters.scales.cached_experts`): 5 experts (1 for herding/k-center) with seed 0 and
        the method's expert config at the data set's scale (ConvNet width 128 and 50 epochs, 60 for TGDD,
        for data sets read from files; width 16 and 15 epochs for the embedded ones). A store (or its
        folder) must hold experts trained on ``data``; it then defines the network (and ``zca``).
        Experts given to ``"dm"``, ``"random"`` or ``"forgetting"`` raise a ValueError.
    seed : int
        The distillation seed (initial images, sampling, augmentation); same seed, same set.
    device : {"auto", "cpu", "cuda"} or torch.device
    checkpoint_dir : path, optional
        Folder of a resumable checkpoint ``<method>-<data>-ipc<ipc>-seed<seed>-<key>.pt`` (the key
        hashes the config, seed, data and experts): a rerun resumes, or returns a finished run's set.
        ``None``: no checkpoint.
    progress : bool
        Show progress bars.
    data_parallel : bool
        Split each step among the ranks of the initialised ``torch.distributed`` process group
        (:mod:`ddlib.methods.data_parallel`: the synthetic mini-batch for MTT/AST/MCT, the classes for
        DM/TGDD); every rank calls ``distill`` with the same arguments and gets the same set, and
        only rank 0 writes the checkpoint. Without a process group it changes nothing. Coresets
        take no ``data_parallel``.
    **overrides
        Any field of the method's config (``MTTConfig``, ``DMConfig``, ``TGDDConfig``; a coreset
        function's keywords, e.g. ``epochs`` of forgetting). Methods with experts also take
        ``num_experts``, ``expert_config`` (an :class:`~ddlib.trajectories.experts.ExpertConfig`) and
        ``expert_seed``; ``"ast"`` takes ``preset``.

    Returns
    -------
    SyntheticSet
        ``images_syn`` ``(num_classes * ipc, C, H, W)``, labels ``ipc`` per class; its provenance
        records the ``network`` it was distilled for (read by :func:`evaluate`).

    Raises
    ------
    ValueError
        Before any compute: unknown method or keyword, bad ``ipc``/``iterations``, experts trained on
        another data set or network, experts for a method that uses none.
    FileNotFoundError
        ``experts`` names a folder without a trajectory store.
    """
    check_seed(seed)
    device = resolve_device(device)
    plan = _plan(data, method, ipc, iterations, experts, dict(overrides))
    if not isinstance(data_parallel, bool):
        raise ValueError(f"data_parallel={data_parallel!r}: expected True or False")
    if data_parallel and method in CORESET_METHODS:
        raise ValueError(f"data_parallel=True with method={method!r}: coresets run in one process")
    shard = resolve_data_parallel(data_parallel)
    if shard is not None:
        logger.info("distill %s data-parallel: rank %d of %d", method, shard.rank, shard.world)
    cache = Path(checkpoint_dir) if checkpoint_dir is not None else default_cache_dir()
    if method in CORESET_METHODS:
        return _coreset(plan, data, ipc, seed, cache, device, progress)
    if method == "dm":
        network, source = network_of(plan.config), None
        distiller = DistributionMatching(data, plan.config, seed, device=device, data_parallel=data_parallel)
    else:
        if shard is not None and shard.rank != 0:
            shard.barrier()  # rank 0 trains (or finds) and convexifies the experts; the others then read its files
        source = _experts(plan, data, cache, device, progress)
        if method == "mct":
            folder = cache / "convexified" / expert_store_id(source)["manifest_sha256"][:12]
            source = FirstExperts(convexified_variants(source, folder, {"path-2": {}})["path-2"], len(source))
        if shard is not None and shard.rank == 0:
            shard.barrier()
        network, net = network_of(source.config), build_expert_model(data, source.config)
        if method == "tgdd":
            distiller = TGDD(data, source, net, plan.config, seed, device=device, data_parallel=data_parallel)
        else:
            zca = fit_zca(data) if plan.config.zca else None
            distiller = TrajectoryMatching(data, source, net, plan.config, seed, zca=zca, device=device,
                                           data_parallel=data_parallel)
    path = None
    if checkpoint_dir is not None:
        key = run_key(method, plan.config.to_dict(), seed, dataset_fingerprint(data), expert_store_id(source))
        path = Path(checkpoint_dir) / f"{method}-{data.name}-ipc{ipc}-seed{seed}-{key}.pt"
    result = run_distillation(distiller, checkpoint_path=path, progress=progress, desc=method)
    if result.stopped:
        warnings.warn(f"ddlib.distill({method!r}) stopped early: {result.stopped_reason}", RuntimeWarning,
                      stacklevel=2)
    return result.synthetic.with_provenance(network=network)


def evaluate(synthetic: SyntheticSet, data: ImageDataset, protocol: str = "mtt", *, num_eval: int | None = None,
             epochs: int | None = None, seed: int = 0, device: str | torch.device = "auto", progress: bool = True,
             **overrides: Any) -> EvalResult:
    """Train fresh networks on ``synthetic`` with a paper's protocol and test them on ``data``.

    Parameters
    ----------
    synthetic : SyntheticSet
        Images ``(N, C, H, W)`` of ``data``'s shape and classes (ZCA-whitened sets are evaluated
        in the whitened space, the ZCA refitted on ``data`` as the distiller fitted it).
    data : ImageDataset
        Supplies the real test split.
    protocol : {"mtt", "ast", "tgdd"}
        :meth:`EvalConfig.preset <ddlib.evaluation.protocols.EvalConfig.preset>`: MTT's reports the last
        epoch, AST's and TGDD's the best test point (the one
        :attr:`EvalResult.mean <ddlib.evaluation.protocols.EvalResult.mean>` averages).
    num_eval, epochs : int, optional
        Networks and their training epochs; ``None``: the protocol at the data set's scale (5 networks,
        1000 epochs (TGDD 1500) for data sets read from files; 3 and 300 (450) for the embedded ones).
    seed : int
        Network ``i`` is initialised and fed from seeds derived from ``seed`` and ``i``.
    device, progress
        As for :func:`distill`.
    **overrides
        Any other :class:`~ddlib.evaluation.protocols.EvalConfig` field. ``arch``, ``width``, ``depth`` and
        ``norm`` default to the network the set was distilled for where it records one
        (``provenance["network"]``, else its config's), else ConvNet of the data set's scale's width;
        with ``arch`` given, the others take :class:`~ddlib.evaluation.protocols.EvalConfig`'s defaults.

    Returns
    -------
    EvalResult
        ``mean``, ``std`` and per-network ``values`` of the protocol's statistic, plus ``last``/``best``.

    Raises
    ------
    ValueError
        Before any training: unknown protocol or keyword, ``num_eval``/``epochs < 1``, a set with
        another image shape or class count than ``data`` (naming both).
    """
    check_seed(seed)
    check_eval_args(synthetic, data, protocol, num_eval, epochs, PROTOCOLS)
    device = resolve_device(device)
    fixed = ("protocol", "num_eval", "epochs")
    valid = sorted(f.name for f in dataclasses.fields(EvalConfig) if f.name not in fixed)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown keyword(s) {unknown} for evaluate; valid keywords are {valid} (besides "
                         "protocol, num_eval, epochs, seed, device, progress)")
    settings = scale_for(data)
    recorded = synthetic.provenance.get("network") or synthetic.config
    # Another arch: the recorded ConvNet's width, depth and norm do not apply to it.
    network = {} if "arch" in overrides else {k: recorded[k] for k in ("arch", "width", "depth", "norm")
                                               if k in recorded}
    length = {"epochs": epochs} if epochs is not None else {}
    config = settings.eval_config(protocol, **length, **{"num_eval": num_eval or settings.num_eval, **network,
                                                         **overrides})
    zca = fit_zca(data) if synthetic.zca else None
    return evaluate_synthetic(synthetic, data, config, seed, device=device, zca=zca,
                              progress=progress)
