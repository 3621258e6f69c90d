"""Experiment helpers of the AST chapter (``notebooks/ast.py``): the pieces too long for a notebook cell.

The chapter reproduces Shen et al. (2023), "Efficient Dataset Distillation through
Alignment with Smooth and High-Quality Expert Trajectories". This module names the
paper's expert variants (Tables 1 and 6, Fig. 4) and ablation rows (Tables 2 and 7) with
the method names of ``resources/paper_results.csv``, runs one trajectory-matching
distillation with a checkpoint and a cached final evaluation (:func:`distill`), times
distillation iterations (Table 8), selects the initial images of Fig. 6, records figure
series in one write (:func:`record_series`) and lays our records beside the published
numbers (:func:`beside_paper`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .ast_components import SmoothExpertLoss, average_variation, class_features, representative_init, step_sizes
from .coresets import forgetting_counts, select_most_forgotten
from .data.dataset import ImageDataset
from .data.zca import ZCA
from .distill_loop import DistillResult, run_distillation
from .evaluation import EvalConfig, evaluate_synthetic
from .experiments import SCALES, Recorder, ScaleSettings, cached_experts
from .experts import ZCA_REGULARIZATION, ExpertConfig, build_expert_model
from .functional import load_flat_params
from .mtt import MTTConfig, TrajectoryMatching
from .results import Record, append_records, collect_provenance, paper_results
from .runtime import derive_seed, make_generator
from .synthetic import SyntheticSet
from .train import LossHook, cross_entropy_hook
from .trajectory_store import TrajectoryStore

__all__ = [
    "EXPERT_VARIANTS", "TABLE1_NAMES", "TABLE6_NAMES", "TABLE2_ROWS", "ABLATION_STEPS", "expert_variant",
    "ast_changes", "cumulative_ablation", "first_experts", "expert_summary", "input_gradient_norm",
    "trajectory_curves", "fit_zca", "expert_network", "RunOutcome", "run_key", "display_images", "distill",
    "IMAGENET_SUBSETS", "imagenet_subset_config", "run_subset", "seconds_per_iteration", "forgetting_sets",
    "init_picks", "coverage_distance", "pca_2d", "best_so_far", "first_reaching", "coefficient_of_variation",
    "relative_jitter", "record_series", "beside_paper", "settings_table",
]

#: Expert-training variants: Table 1's optimizers and Table 6's smoothness ablation.
EXPERT_VARIANTS = ("SGD", "SGD+momentum", "Adam", "momentum+GP", "momentum+GP+clip")
#: Method names of the paper's Table 1 rows (paper_results.csv).
TABLE1_NAMES = {"SGD": "expert optimizer: SGD", "SGD+momentum": "expert optimizer: SGD+momentum",
                "Adam": "expert optimizer: Adam"}
#: Method names of Table 6 rows; "expert: Adam" is ours only (the paper shows Adam in Table 1 and Fig. 4).
TABLE6_NAMES = {"SGD": "expert: none", "SGD+momentum": "expert: momentum", "Adam": "expert: Adam",
                "momentum+GP": "expert: momentum+GP", "momentum+GP+clip": "expert: momentum+GP+clip"}
#: Table 2 rows: method name -> MTTConfig changes (all on the plain SGD experts).
TABLE2_ROWS = {"init=random; start epoch=random": {},
               "init=representative; start epoch=random": {"init": "representative"},
               "init=random; start epoch=balanced": {"balanced_inner_loss": True}}
#: Table 7, cumulative: row name -> the component it adds (all on the smooth experts).
ABLATION_STEPS = (("base (smooth experts)", {}), ("+ representative init", {"init": "representative"}),
                  ("+ balanced inner-loop loss", {"balanced_inner_loss": True}),
                  ("+ intermediate matching loss", {"intermediate_matching": True}),
                  ("+ weight perturbation", {"weight_perturbation": 0.1}))


def expert_variant(settings: ScaleSettings, name: str, *, zca: bool = False) -> tuple[ExpertConfig, LossHook]:
    """Expert config and loss hook of variant ``name`` (one of ``EXPERT_VARIANTS``).

    ``SGD`` is MTT's expert (``settings.expert_config("mtt")``, shared with the other
    chapters). The others use AST's schedule (SGD momentum 0.9, lr 0.01 halved half-way):
    ``SGD+momentum`` with plain cross-entropy; ``Adam`` the same schedule with Adam at the
    same lr 0.01 (the paper does not state Adam's lr); ``momentum+GP`` adds the gradient
    penalty of Eq. 1; ``momentum+GP+clip`` is AST's smooth expert (penalty and clipped loss,
    :class:`~ddlib.ast_components.SmoothExpertLoss` with the paper's defaults).
    """
    if name not in EXPERT_VARIANTS:
        raise ValueError(f"expert variant {name!r}: expected one of {EXPERT_VARIANTS}")
    if name == "SGD":
        return settings.expert_config("mtt", zca=zca), cross_entropy_hook
    config = settings.expert_config("ast", zca=zca)
    if name == "Adam":
        config = config.replace(optimizer=config.optimizer.replace(kind="adam"))
    hooks = {"SGD+momentum": cross_entropy_hook, "Adam": cross_entropy_hook,
             "momentum+GP": SmoothExpertLoss(use_clip=False), "momentum+GP+clip": SmoothExpertLoss()}
    return config, hooks[name]


def ast_changes(ipc: int) -> dict[str, Any]:
    """MTTConfig changes of the full AST method at ``ipc`` (as :meth:`ddlib.mtt.MTTConfig.with_ast`), with
    the paper's IPC-50 representative initialisation (10 clusters x 5 nearest, Sec. 4.1)."""
    changes: dict[str, Any] = {}
    for _, step in ABLATION_STEPS:
        changes.update(step)
    if ipc == 50:
        changes["representative_clusters"] = 10
    return changes


def cumulative_ablation(ipc: int) -> dict[str, dict[str, Any]]:
    """Table 7's rows -> cumulative MTTConfig changes; the last row equals :func:`ast_changes`."""
    rows, changes = {}, {}
    for name, step in ABLATION_STEPS:
        changes = {**changes, **step}
        if changes.get("init") == "representative" and ipc == 50:
            changes["representative_clusters"] = 10
        rows[name] = dict(changes)
    return rows


def first_experts(store: TrajectoryStore, n: int) -> TrajectoryStore:
    """The same store restricted to its first ``n`` experts, as a :class:`TrajectoryStore`.

    :func:`~ddlib.experiments.cached_experts` returns ``n`` experts, but as a ``FirstExperts`` view
    (``len`` and ``trajectory`` only) when another chapter extended the shared store; this store
    also iterates, and its ``manifest`` and ``nbytes`` cover just the ``n`` experts.
    """
    if len(store) < n:
        raise ValueError(f"the store {str(store.root)!r} holds {len(store)} experts; {n} were requested")
    return TrajectoryStore(store.root, {**store.manifest, "experts": store.manifest["experts"][:n]},
                           verify=store.verify)


def expert_summary(store: TrajectoryStore) -> dict[str, float]:
    """``avg_var`` (AST's Avg Var, mean over experts of mean_t ||theta_t - theta_{t+1}||^2) and the
    experts' final test accuracy (``expert_acc``, percent, mean and std over experts)."""
    variations = [average_variation(trajectory.snapshots) for trajectory in store]
    finals = [100 * float(e["test_accuracy"][-1]) for e in store.experts]
    return {"avg_var": float(np.mean(variations)), "expert_acc": float(np.mean(finals)),
            "expert_acc_std": float(np.std(finals))}


def input_gradient_norm(net: nn.Module, images: torch.Tensor) -> float:
    """Mean over ``images`` ``(N, C, H, W)`` of ``||d sum(net(x)) / d x||_2``: the quantity AST's gradient
    penalty (Eq. 1) pulls towards ``K`` from either side (so it only smooths an expert whose norm exceeds K)."""
    inputs = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(inputs).sum(), inputs)
    return float(grad.flatten(1).norm(dim=1).mean())


def trajectory_curves(store: TrajectoryStore) -> dict[str, np.ndarray]:
    """Fig. 4's curves, averaged over experts: ``epoch`` (1..E), ``step_size``
    ``||theta_{t-1} - theta_t||^2`` ending at that epoch and ``test_acc`` (percent) after it."""
    steps = np.mean([step_sizes(trajectory.snapshots).numpy() for trajectory in store], axis=0)
    accuracy = 100 * np.mean([e["test_accuracy"] for e in store.experts], axis=0)
    return {"epoch": np.arange(1, len(steps) + 1), "step_size": steps, "test_acc": accuracy}


def fit_zca(data: ImageDataset) -> ZCA:
    """The ZCA whitening the experts use (fit on the training split, regularisation 0.1 as in MTT)."""
    return ZCA.fit(data.images_train, regularization=ZCA_REGULARIZATION)


def expert_network(store: TrajectoryStore, data: ImageDataset, k: int = 0) -> nn.Module:
    """A network holding expert ``k``'s final parameters, on the data's device (herding, Fig. 6)."""
    trajectory = store.trajectory(k)
    net = build_expert_model(data, store.config).to(data.images_train.device)
    load_flat_params(net, trajectory.snapshot(trajectory.num_epochs).to(data.images_train.device))
    return net


def run_key(*values: Any) -> str:
    """Short hash of ``values`` (JSON), to name checkpoints by the settings that made them."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]


def display_images(syn: SyntheticSet, data: ImageDataset, zca: ZCA | None = None) -> torch.Tensor:
    """Synthetic images ``(N, C, H, W)`` as raw pixels for display (un-whitened, de-normalised, CPU)."""
    images = syn.images_syn.detach()
    if syn.zca:
        images = zca.inverse(images.to(zca.device)).cpu()
    return data.denormalize(images.cpu()).clamp(0, 1)


@dataclasses.dataclass
class RunOutcome:
    """One distillation: its :class:`DistillResult`, the final evaluation (``EvalResult.to_dict()``
    plus ``iteration``), the config and the experts' folder."""

    result: DistillResult
    final: dict[str, Any]
    config: MTTConfig
    experts: str

    def record_config(self, **extra: Any) -> dict[str, Any]:
        """What a record of this run stores as its ``config``."""
        return {"mtt": self.config.to_dict(), "experts": self.experts, "iterations_done": self.result.iterations_done,
                "stopped_reason": self.result.stopped_reason, **extra}


def distill(data: ImageDataset, store: TrajectoryStore, config: MTTConfig, seed: int, *, eval_config: EvalConfig,
            folder: str | Path, name: str, zca: ZCA | None = None, device: str | torch.device = "cpu",
            eval_every: int = 0) -> RunOutcome:
    """Run (or resume) one MTT/AST distillation and evaluate its final synthetic set.

    The checkpoint is ``folder/<name>-<key>.pt``, the key hashing the config, seed,
    experts, evaluation protocol and ``eval_every``, so a rerun resumes (or finds the run
    finished) and a changed setting starts afresh. ``eval_every > 0`` evaluates at
    iteration 0, every ``eval_every`` iterations and at the end (Fig. 7); otherwise the
    final set is evaluated once and the result cached beside the checkpoint as JSON.
    """
    net = build_expert_model(data, store.config)
    method = TrajectoryMatching(data, store, net, config, seed, zca=zca, device=device)
    key = run_key(config.to_dict(), seed, store.root.name, len(store), eval_config.to_dict(), eval_every)
    checkpoint = Path(folder) / f"{name}-{key}.pt"

    def evaluate(syn: SyntheticSet, iteration: int) -> dict[str, Any]:
        return evaluate_synthetic(syn, data, eval_config, seed, device=device, zca=zca, progress=False).to_dict()

    result = run_distillation(method, config.iterations, checkpoint_path=checkpoint, evaluate=evaluate,
                              eval_every=eval_every, progress=False, desc=name)
    final = next((e for e in result.evaluations if e["iteration"] == result.iterations_done), None)
    cache = checkpoint.with_suffix(".eval.json")
    if final is None and cache.exists() and json.loads(cache.read_text())["iteration"] == result.iterations_done:
        final = json.loads(cache.read_text())
    if final is None:
        final = {"iteration": result.iterations_done, **evaluate(result.synthetic, result.iterations_done)}
        cache.write_text(json.dumps(final))
    return RunOutcome(result, final, config, store.root.name)


#: Table 5's data sets (128x128, ConvNet-5).
IMAGENET_SUBSETS = ("imagenette", "imagewoof", "imagefruit", "imagemeow")


def imagenet_subset_config(ipc: int, iterations: int) -> MTTConfig:
    """MTT settings for the ImageNet subsets as we read MTT's appendix (syn_steps 20, expert_epochs 2,
    max_start_epoch 2 / 10, lr_img 1e4, lr_lr 1e-4, lr_teacher 0.01, no ZCA). NOT in FACTS.md: unverified."""
    if ipc not in (1, 10):
        raise ValueError(f"ipc={ipc}: the paper's Table 5 has IPC 1 and 10 only")
    return MTTConfig(ipc=ipc, iterations=iterations, syn_steps=20, expert_epochs=2,
                     max_start_epoch=2 if ipc == 1 else 10, lr_img=1e4, lr_lr=1e-4, lr_teacher=0.01, zca=False)


def run_subset(data: ImageDataset, settings: ScaleSettings, ipc: int, seed: int, *, artifacts_dir: str | Path,
               eval_config: EvalConfig, folder: str | Path,
               device: str | torch.device = "cpu") -> dict[str, RunOutcome]:
    """Table 5 on one ImageNet subset at ``ipc``: MTT (SGD experts) and AST (smooth experts, all components)."""
    outcomes = {}
    for method, variant, changes in (("MTT", "SGD", {}), ("AST", "momentum+GP+clip", ast_changes(ipc))):
        expert_config, hook = expert_variant(settings, variant)
        store = cached_experts(artifacts_dir, data, expert_config, settings.num_experts, seed, loss_hook=hook,
                               device=device, progress=False)
        config = imagenet_subset_config(ipc, settings.iterations).replace(**changes)
        outcomes[method] = distill(data, store, config, seed, eval_config=eval_config, folder=folder,
                                   name=f"{data.name}-{method}-ipc{ipc}", device=device)
    return outcomes


def seconds_per_iteration(data: ImageDataset, store: TrajectoryStore, config: MTTConfig, seed: int, *,
                          steps: int = 3, zca: ZCA | None = None, device: str | torch.device = "cpu") -> float:
    """Wall seconds of one outer iteration of a fresh distiller (Table 8), after one warm-up step.

    Initialisation (e.g. representative K-Means) is not timed, as in the paper's per-iteration figure.
    """
    method = TrajectoryMatching(data, store, build_expert_model(data, store.config), config, seed, zca=zca,
                                device=device)
    method.step(0)
    start = time.perf_counter()
    for iteration in range(1, steps + 1):
        method.step(iteration)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def forgetting_sets(data: ImageDataset, ipcs: Iterable[int], *, epochs: int, seed: int, width: int,
                    device: str | torch.device = "cpu") -> dict[int, SyntheticSet]:
    """Forgetting coresets at every IPC from ONE training run (the counts do not depend on the IPC)."""
    counts = forgetting_counts(data, epochs=epochs, seed=seed, width=width, device=device)
    sets = {}
    for ipc in ipcs:
        flat = torch.cat(select_most_forgotten(counts, data.labels_train, ipc, data.num_classes))
        sets[ipc] = SyntheticSet(
            images_syn=data.images_train[flat.to(data.images_train.device)].cpu(),
            labels_syn=torch.arange(data.num_classes).repeat_interleave(ipc), syn_lr=None,
            config={"method": "forgetting", "ipc": ipc, "epochs": epochs, "width": width},
            provenance={"indices": flat.tolist(), "seed": seed}, dataset=data.name, ipc=ipc, zca=False)
    return sets


def init_picks(encoder: nn.Module, data: ImageDataset, ipc: int, classes: Sequence[int], seed: int,
               images: torch.Tensor | None = None) -> dict[int, dict[str, torch.Tensor]]:
    """Per class: its features ``(N_c, D)`` under ``encoder`` and the ``ipc`` indices chosen by
    representative initialisation (K-Means, seeded as in the distiller) and by random initialisation.

    ``images`` (default: ``data.images_train``) are the images the distiller starts from (ZCA space
    when the run whitens).
    """
    images = data.images_train if images is None else images
    picks = {}
    for c in classes:
        features = class_features(encoder, images[data.class_indices[c].to(images.device)])
        representative = representative_init(features, ipc, derive_seed(seed, "representative", c))
        random = torch.randperm(len(features), generator=make_generator(derive_seed(seed, "random init", c)))[:ipc]
        picks[c] = {"features": features, "representative": representative, "random": random}
    return picks


def coverage_distance(features: torch.Tensor, chosen: torch.Tensor) -> float:
    """Mean distance from each sample ``(N, D)`` to its nearest chosen sample: lower means the chosen
    samples cover the class (no outliers, no clumping), the property Fig. 6 illustrates."""
    features = features.to(torch.float64)
    return float(torch.cdist(features, features[chosen]).min(dim=1).values.mean())


def pca_2d(features: torch.Tensor) -> np.ndarray:
    """Two principal components ``(N, 2)`` of ``features`` (scikit-learn PCA, as Fig. 6)."""
    from sklearn.decomposition import PCA

    return PCA(n_components=2, svd_solver="full").fit_transform(features.to(torch.float64).numpy())


def best_so_far(evaluations: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[float]]:
    """Fig. 7's curve: iterations and the best mean last-epoch accuracy (percent) reached so far."""
    iterations = [int(e["iteration"]) for e in evaluations]
    best = np.maximum.accumulate([100 * float(e["last_mean"]) for e in evaluations])
    return iterations, [float(b) for b in best]


def first_reaching(iterations: Sequence[int], values: Sequence[float], level: float) -> int | None:
    """The first iteration whose value is at least ``level``, or ``None``."""
    return next((int(i) for i, v in zip(iterations, values) if v >= level), None)


def coefficient_of_variation(values: Sequence[float]) -> float:
    """``std / mean`` of ``values`` (Fig. 2: how much the inner-loop loss fluctuates)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std() / abs(values.mean()))


def relative_jitter(values: Sequence[float]) -> float:
    """Std of successive differences over the mean magnitude (Fig. 9: syn_lr fluctuation).
    ``nan`` values (a collapsed run) make the result ``inf``."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        return float("inf")
    return float(np.diff(values).std() / np.abs(values).mean()) if len(values) > 1 else 0.0


def record_series(recorder: Recorder, experiment: str, method: str, metric: str, xs: Iterable[Any],
                  ys: Iterable[float], *, x_name: str, ipc: int | None = None, seed: int = 0,
                  config: Mapping[str, Any] | None = None, wall_time_s: float = 0.0) -> list[float]:
    """Record a figure's series (``x_name`` goes into each record's config) in ONE write, with one
    provenance; returns the values recorded. :meth:`ddlib.experiments.Recorder.add` rewrites the file per number."""
    provenance = collect_provenance(recorder.device, wall_time_s)
    records = [Record(paper=recorder.paper, experiment=experiment, method=method, dataset=recorder.dataset,
                      ipc=ipc, arch="ConvNet", seed=seed, metric=metric, value=float(y), scale=recorder.scale,
                      config={**dict(config or {}), x_name: x}, provenance=provenance) for x, y in zip(xs, ys)]
    append_records(recorder.path, records)
    return [r.value for r in records]


def _text(value: Any) -> str:
    """Key as text: 10.0 -> "10" (pandas turns int columns with gaps into floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _mean_std(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return ""
    return f"{values.mean():.4g}" if len(values) == 1 else f"{values.mean():.4g} ± {values.std():.2g}"


def beside_paper(ours, experiment: str, metrics: Sequence[str], keys: Sequence[str] = ("method",),
                 paper: str = "AST"):
    """Our records (mean ± std over records) beside the published cells of ``experiment``.

    Rows are the ``keys`` groups of ``ours`` (a :func:`~ddlib.results.read_records` frame); a
    published cell matches on every key that is a column of the results file (method, arch, ipc).
    Columns: the keys, ``ours: <metric>`` per metric, ``n``, ``scale``, ``dataset``, then
    ``paper <dataset>: <metric>`` for every published data set ("" where the paper has no cell).
    """
    import pandas as pd

    published = paper_results()
    published = published[(published["paper"] == paper) & (published["table"] == experiment)]
    rows = []
    for key, group in ours.groupby(list(keys), sort=False, dropna=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for metric in metrics:
            row[f"ours: {metric}"] = _mean_std(group.loc[group["metric"] == metric, "value"])
        row.update(n=int((group["metric"] == metrics[0]).sum()), scale=", ".join(sorted(group["scale"].unique())),
                   dataset=", ".join(sorted(group["dataset"].unique())))
        for name, cells in published.groupby("dataset", sort=False):
            for k in (k for k in keys if k in ("method", "arch", "ipc")):
                cells = cells[cells[k].astype(str) == _text(row[k])]
            for metric in metrics:
                cell = cells[cells["metric"] == metric]
                row[f"paper {name}: {metric}"] = "" if cell.empty else f"{cell['value'].iloc[0]:g}" + (
                    f" ± {cell['std'].iloc[0]:g}" if pd.notna(cell["std"].iloc[0]) else "")
        rows.append(row)
    return pd.DataFrame(rows)


def settings_table(settings: ScaleSettings, extra: Mapping[str, tuple[Any, Any]] | None = None):
    """Every setting of this run beside the paper scale's, with a ``shrunk`` flag.

    ``extra`` adds rows ``name -> (this run, paper)`` (e.g. the chapter's own choices).
    """
    import pandas as pd

    paper = SCALES["paper"]
    rows = [(f.name, getattr(settings, f.name), getattr(paper, f.name)) for f in dataclasses.fields(settings)]
    rows += [(name, ours, theirs) for name, (ours, theirs) in (extra or {}).items()]
    return pd.DataFrame([{"setting": name, "this run": str(ours), "paper": str(theirs),
                          "changed": "yes" if str(ours) != str(theirs) else ""} for name, ours, theirs in rows])
