"""The MCT chapter's seeded runs: MTT and MCT per distillation seed, recorded for paired verdicts.

Every compared method is distilled once per distillation seed ``s`` (``ScaleSettings.seeds``)
from the same experts (trained once, from the notebook's run seed), and every set of seed
``s`` is evaluated with ``seed=s``, so all methods of one seed meet the same evaluation
networks and :func:`~ddlib.results.seeded.compare_methods` pairs them seed by seed. The helpers here:

* :func:`chapter_config`: MTT's settings at a scale, plus MCT's code choices for MCT;
* :func:`early_iteration`: the early checkpoint of the convergence claims;
* :func:`distill_seeds`: one run per (method, seed), evaluated at the early checkpoint and at the end;
* :func:`initial_set`: the random real images a run of seed ``s`` starts from (the "Random" row);
* :func:`record_runs`, :func:`record_initial_sets`, :func:`convergence_frame`, :func:`accuracy_table`:
  records of the runs, and the tables read back from them;
* :func:`record_paths`, :func:`smoothness_verdicts`, :func:`storage_verdict`: Figure (a) and Table (b).

Accuracies in records are percent (``ddlib.record_evaluation``).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from ddlib.data.dataset import ImageDataset
from ddlib.methods.distill_loop import DistillResult
from ddlib.evaluation.runner import EvalConfig, evaluate_synthetic
from ddlib.chapters.scales import ScaleSettings
from ddlib.trajectories.experts import build_expert_model
from ddlib.chapters.mct_experiments import checkpoint_file, distill_and_evaluate, mct_config, oscillation, path_accuracies
from ddlib.methods.mtt import TrajectoryMatching
from ddlib.methods.mtt_config import MTTConfig
from ddlib.results.recorder import Recorder
from ddlib.results.seeded import mean_text, method_values, record_evaluation
from ddlib.methods.synthetic import SyntheticSet
from ddlib.results.verdicts import Verdict, paired_verdict, threshold_verdict

__all__ = ["chapter_config", "early_iteration", "initial_set", "record_initial_sets", "distill_seeds",
           "evaluation_at", "checkpoint_label", "record_runs", "convergence_frame", "accuracy_table",
           "describe_methods", "record_paths", "smoothness_verdicts", "storage_verdict"]


def chapter_config(settings: ScaleSettings, ipc: int, *, mct: bool, scale: str, **changes: Any) -> MTTConfig:
    """The distiller settings of one chapter row: MTT's at this scale, or MCT's.

    MCT adds its code's choices (:func:`~ddlib.chapters.mct_experiments.mct_config`: continuous
    sampling, TESLA gradient) and, at ``scale="paper"``, its run file's CIFAR-10 values.
    Below paper scale the unroll keeps its whole graph (``memory="graph"``, MTT's code): the
    same gradients as the default recomputation up to rounding, about a third faster on the
    CPU, and the graph of 20 inner steps of a width-16 ConvNet is a few MB.
    """
    base = settings.mtt_config(ipc, zca=False, **({} if scale == "paper" else {"memory": "graph"}))
    return mct_config(base, published=scale == "paper", **changes) if mct else base.replace(**changes)


def early_iteration(settings: ScaleSettings) -> int:
    """The early checkpoint of the convergence claims (and the length of the ablation rows' reference).

    ``settings.ablation_length`` when it is shorter than the main runs (so MCT's main run
    at that point is the ablations' reference), else ``settings.eval_every`` (at most the
    main runs' length).
    """
    if settings.ablation_length < settings.iterations:
        return settings.ablation_length
    return max(1, min(settings.eval_every, settings.iterations))


def initial_set(data: ImageDataset, source: Any, config: MTTConfig, seed: int, *,
                device: str | torch.device = "cpu") -> SyntheticSet:
    """The ``ipc`` real images per class a distillation with ``seed`` starts from.

    They are drawn at random (``config.init="real"``) from the distiller's generator of
    ``seed``, before any iteration; MTT and MCT of one seed start from the same images.

    Returns
    -------
    SyntheticSet
        Images ``(ipc * num_classes, C, H, W)``, class by class, without a learned step size
        (``syn_lr=None``): the evaluation trains at the protocol's default lr 0.01, as for any
        coreset of real images.

    Raises
    ------
    ValueError
        ``config.init`` is not ``"real"``.
    """
    if config.init != "real":
        raise ValueError(f"config.init={config.init!r}: the initial set is random real images only with 'real'")
    method = TrajectoryMatching(data, source, build_expert_model(data, source.config), config, seed, device=device)
    syn = method.synthetic_set()
    return dataclasses.replace(syn, syn_lr=None, config={"method": "random (initial images)", "ipc": config.ipc},
                               provenance={"seed": seed, "init": "real"})


def record_initial_sets(recorder: Recorder, experiments: Iterable[str], data: ImageDataset, source: Any,
                        config: MTTConfig, seeds: Iterable[int], *, eval_config: EvalConfig, method: str = "Random",
                        device: str | torch.device = "cpu") -> None:
    """Evaluate the :func:`initial_set` of every seed once, record it under each of ``experiments``.

    Records as :func:`record_runs` does (``config["iteration"] = 0``), with the seed as the
    evaluation seed, so the set meets the networks of the distilled sets of that seed.
    """
    experiments = list(experiments)
    for seed in seeds:
        syn = initial_set(data, source, config, seed, device=device)
        result = evaluate_synthetic(syn, data, eval_config, seed, device=device, progress=False)
        for experiment in experiments:
            record_evaluation(recorder, experiment, method, result, distill_seed=seed, ipc=config.ipc,
                              config={"method": method, "iteration": 0})


def distill_seeds(data: ImageDataset, methods: Mapping[str, tuple[Any, MTTConfig]], seeds: Iterable[int], *,
                  eval_config: EvalConfig, folder: str | os.PathLike, eval_at: Iterable[int] = (),
                  device: str | torch.device = "cpu") -> dict[tuple[str, int], DistillResult]:
    """Distil every method with every seed; evaluate at ``eval_at`` and at the end.

    Parameters
    ----------
    methods : mapping
        ``name -> (source, config)``: the trajectories (SGD or convexified) and the distiller settings.
    seeds : iterable of int
        Distillation seeds; each is also the evaluation seed of its sets (paired design).
    folder : path
        Checkpoints, one file per (method, config, seed, source, evaluation) (resumed when present).
    eval_at : iterable of int
        Iterations before the end to evaluate at (:func:`early_iteration`).

    Returns
    -------
    dict
        ``(name, seed) -> DistillResult``, in the order seed by seed, then method by method.
    """
    runs, eval_at = {}, tuple(sorted({int(i) for i in eval_at}))
    # the evaluation points are part of the checkpoint's name: a finished run resumed from a
    # checkpoint that was evaluated elsewhere would lack them
    at = f" eval at {' '.join(map(str, eval_at))}" if eval_at else ""
    for seed in seeds:
        for name, (source, config) in methods.items():
            path = checkpoint_file(Path(folder), name + at, config, seed, source, eval_config)
            runs[name, seed] = distill_and_evaluate(data, source, config, seed, eval_config=eval_config,
                                                    checkpoint_path=path, eval_at=eval_at, device=device)
    return runs


def evaluation_at(result: DistillResult, iteration: int | None = None) -> dict[str, Any]:
    """The evaluation entry of ``result`` at ``iteration`` (``None``: the last one).

    A run that stopped early (non-finite loss) before ``iteration`` kept its last good set:
    its final entry stands for every later iteration.

    Raises
    ------
    ValueError
        The run went past ``iteration`` but was not evaluated there.
    """
    if not result.evaluations:
        raise ValueError("the run holds no evaluation; use mct_experiments.distill_and_evaluate")
    if iteration is None:
        return result.evaluations[-1]
    for entry in result.evaluations:
        if entry["iteration"] == iteration:
            return entry
    if result.stopped and result.iterations_done < iteration:
        return result.evaluations[-1]
    raise ValueError(f"no evaluation at iteration {iteration}; evaluated at "
                     f"{[e['iteration'] for e in result.evaluations]} (pass it in eval_at)")


def checkpoint_label(method: str, iteration: int) -> str:
    """``"MCT, 60 iterations"``: the method name of a set taken at ``iteration``."""
    return f"{method}, {iteration} iterations"


def record_runs(recorder: Recorder, experiment: str, runs: Mapping[tuple[str, int], DistillResult], *, ipc: int,
                iteration: int | None = None, at_label: bool = False) -> None:
    """Record every network's last and best accuracy of every run's set at ``iteration``.

    Parameters
    ----------
    runs : mapping
        ``(method, seed) -> DistillResult`` (:func:`distill_seeds`).
    iteration : int, optional
        Which evaluation (``None``: the last; see :func:`evaluation_at`).
    at_label : bool
        Name the records' method :func:`checkpoint_label` (``"MCT, 60 iterations"``) instead
        of ``"MCT"``, so sets of one method at several iterations can be paired apart.
    """
    for (method, seed), result in runs.items():
        entry = evaluation_at(result, iteration)
        name = checkpoint_label(method, entry["iteration"] if iteration is None else iteration) if at_label else method
        record_evaluation(recorder, experiment, name, entry, distill_seed=seed, ipc=ipc,
                          config={"method": method, "iteration": int(entry["iteration"]),
                                  "stopped": result.stopped_reason, "syn_lr": result.synthetic.syn_lr,
                                  "distill_wall_s": result.wall_time_s})


def convergence_frame(records: Any, experiment: str, metric: str = "test_acc", *, start: str | None = None):
    """One row per (method, seed, iteration) of ``experiment``: the mean over the evaluation networks.

    Reads records written by :func:`record_runs` (``config["method"]``, ``config["iteration"]``).
    ``start`` names a method (e.g. ``"Random"``, the initial images) whose rows are the
    iteration-0 point of every other method's curve (and are not a curve of their own).

    Returns
    -------
    pandas.DataFrame
        Columns ``method``, ``distill_seed``, ``iteration``, ``value`` (percent), sorted.
    """
    import pandas as pd

    rows = records[(records["experiment"] == experiment) & (records["metric"] == metric)]
    frame = rows.assign(method=rows["config"].str["method"], iteration=rows["config"].str["iteration"])
    keys = ["method", "distill_seed", "iteration"]
    frame = frame.groupby(keys, as_index=False)["value"].mean()
    if start is not None:
        first, others = frame[frame["method"] == start], frame[frame["method"] != start]
        if first.empty:
            raise ValueError(f"start={start!r}: no records of that method in {experiment!r}")
        frame = pd.concat([others] + [first.assign(method=m) for m in others["method"].unique()])
    return frame.sort_values(keys).reset_index(drop=True)


def _mean_sd(values: np.ndarray) -> str:
    spread = f" ± {values.std(ddof=1):.1f}" if len(values) > 1 else ""
    return f"{values.mean():.1f}{spread}"


def accuracy_table(records: Any, experiment: str, *, published: Mapping[tuple[str, int], str] | None = None,
                   paper_column: str = "paper", missing: str = "not in the paper"):
    """Accuracy (percent) per (method, IPC): mean ± standard deviation over distillation seeds.

    Each seed's value is the mean over its evaluation networks (the seed is the unit), for
    the last epoch (metric ``test_acc``) and the best test point (``test_acc_best``).

    Parameters
    ----------
    published : mapping, optional
        ``(method, ipc) -> text`` of a published number, shown in column ``paper_column``.
    missing : str
        The ``paper_column`` cell of a row the paper gives no number for.

    Returns
    -------
    pandas.DataFrame
        Index (method, ipc); columns ``ours: last epoch``, ``ours: best test point``, ``seeds``,
        ``networks per seed`` (and ``paper_column``), in the order the methods were recorded.
    """
    import pandas as pd

    rows = records[records["experiment"] == experiment]
    table = {}
    for (method, ipc), group in rows.groupby(["method", "ipc"], sort=False):
        per_seed = {metric: group[group["metric"] == metric].groupby("distill_seed")["value"].mean().to_numpy()
                    for metric in ("test_acc", "test_acc_best")}
        if not len(per_seed["test_acc"]):
            continue
        networks = group[group["metric"] == "test_acc"].groupby("distill_seed").size()
        table[method, int(ipc)] = {"ours: last epoch": _mean_sd(per_seed["test_acc"]),
                                   "ours: best test point": _mean_sd(per_seed["test_acc_best"]),
                                   "seeds": len(per_seed["test_acc"]), "networks per seed": int(networks.max())}
        if published is not None:
            table[method, int(ipc)][paper_column] = published.get((method, int(ipc)), missing)
    frame = pd.DataFrame.from_dict(table, orient="index")
    frame.index.names = ["method", "ipc"]
    return frame


def describe_methods(recorder: Recorder, experiment: str, methods: Iterable[str], *, metric: str = "test_acc",
                     **match: Any) -> str:
    """``"MCT 72.0 % ± 2.0 (3 seeds), MTT ..."``: each method's mean and sd over its seeds' means."""
    return ", ".join(f"{m} {mean_text(method_values(recorder, experiment, m, metric=metric, **match))}"
                     for m in methods)


def record_paths(recorder: Recorder, experiment: str, paths: Mapping[str, Any], net: torch.nn.Module,
                 data: ImageDataset, epochs: Sequence[float]) -> None:
    """Record test accuracy (percent) at every epoch of every expert of every path, and its oscillation.

    ``paths`` maps a name to an expert source (``len``, ``trajectory(k)``, ``experts``). Per
    expert: metric ``test_acc`` per epoch (``config["epoch"]``) and the
    :func:`~ddlib.chapters.mct_experiments.oscillation` statistics (``drops``, ``total_drop``, ...,
    in points); ``config["expert"]`` is the expert's index, ``config["expert_seed"]`` its seed.
    """
    for method, source in paths.items():
        for k in range(len(source)):
            accs = [100 * a for a in path_accuracies(source.trajectory(k), net, data, epochs)]
            where = {"expert": k, "expert_seed": source.experts[k].get("seed")}
            for epoch, acc in zip(epochs, accs):
                recorder.add(experiment, method, "test_acc", acc, config={"epoch": epoch, **where})
            for metric, value in oscillation(accs).items():
                recorder.add(experiment, method, metric, value, config=where)


def smoothness_verdicts(sgd_drops: Sequence[float], convex_drops: Sequence[float], resolution: float, *,
                        names: tuple[str, str] = ("convexified", "SGD")) -> dict[str, Verdict]:
    """The two verdicts of Figure (a), with the experts as the independent units.

    Parameters
    ----------
    sgd_drops, convex_drops : sequence of float, shape (experts,)
        Each expert's total accuracy drop (points) along its SGD and its convexified path,
        in the same expert order.
    resolution : float
        The smallest accuracy step the test set can show (points; 100 / number of test images).

    Returns
    -------
    dict
        ``"smoother"``: paired, convexified total drop less than SGD's; ``"monotone"``:
        threshold, the convexified total drop per expert below ``resolution`` (a path with
        no drop of even one test image).
    """
    if not resolution > 0:
        raise ValueError(f"resolution={resolution}: expected > 0 (100 / number of test images)")
    smoother = paired_verdict("the convexified trajectory oscillates less than the SGD one", convex_drops,
                              sgd_drops, direction="less", names=(f"total drop: {names[0]}", names[1]),
                              unit="points")
    monotone = threshold_verdict("accuracy rises monotonically along the convexified trajectory", convex_drops,
                                 resolution, direction="less", name=f"total drop per expert: {names[0]}",
                                 unit="points")
    return {"smoother": smoother, "monotone": monotone}


def storage_verdict(full_bytes: Sequence[float], convex_bytes: Sequence[float], epochs: int, *,
                    share: float = 0.9) -> Verdict:
    """Verdict on "storing 2 models shrinks the buffer about (K+1)/2-fold", over experts.

    Parameters
    ----------
    full_bytes, convex_bytes : sequence of float, shape (experts,)
        Bytes on disk of each expert as MTT stores it (``K + 1`` snapshots) and convexified.
    epochs : int
        ``K``; the ideal ratio is ``(K + 1) / 2``.
    share : float
        The claim holds when the ratio's interval lies above ``share`` of the ideal (log scale).
    """
    full, convex = np.asarray(full_bytes, dtype=np.float64), np.asarray(convex_bytes, dtype=np.float64)
    if full.shape != convex.shape or not len(full):
        raise ValueError(f"expected one full and one convexified size per expert; got {full.shape}, {convex.shape}")
    if not 0 < share <= 1:
        raise ValueError(f"share={share}: expected a fraction in (0, 1]")
    return threshold_verdict("storing 2 models instead of the whole trajectory shrinks the buffer about "
                             "(K+1)/2-fold", full / convex, share * (epochs + 1) / 2, direction="greater",
                             scale="log", name="size ratio full / 2 models", unit="x")
