"""The TGDD chapter's set-up and bookkeeping around its runs (Ran et al., AAAI 2026).

:func:`~ddlib.chapters.session.start_chapter` gives every chapter its settings, data and
recorder; this module adds what only the TGDD chapter needs, so that the notebook's cells stay
one call each:

* :func:`chapter_setup`: the chapter's knobs, the paper's published numbers and the
  checkpoint folder (:class:`ChapterSetup`), with the run's settings written to ``config.json``;
* :func:`chapter_experts`: the TGDD and MTT experts, their pre-training cost (Figure 1) and
  their records (:class:`ChapterExperts`);
* :func:`record_analysis`: the rows of :func:`~ddlib.chapters.tgdd_experiments.analysis_metrics`
  recorded under Figures 2, 4 and 5;
* :func:`imagenet_subsets`: the paper-scale runs on the ImageNet subsets, one recorder each.

The distillations and evaluations themselves are in :mod:`ddlib.chapters.tgdd_experiments`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ddlib.chapters.scales import ScaleSettings, cached_experts
from ddlib.chapters.session import ChapterRun
from ddlib.chapters.run_cost import RunCost
from ddlib.chapters.tgdd_experiments import CHAPTER_KNOBS, ChapterKnobs, TGDDChapter, pretraining_costs
from ddlib.core.fileio import write_json
from ddlib.data import load_dataset
from ddlib.data.dataset import ImageDataset
from ddlib.results.recorder import Recorder
from ddlib.results.records import paper_results, read_records
from ddlib.trajectories.experts import ExpertConfig

__all__ = ["ChapterSetup", "chapter_setup", "ChapterExperts", "chapter_experts", "ANALYSIS_FIGURES",
           "record_analysis", "IMAGENET_TABLE", "imagenet_subsets"]

#: The experiment each analysis metric is recorded under (every other metric: ``"Figure 4"``).
ANALYSIS_FIGURES: Mapping[str, str] = {"silhouette": "Figure 2", "coverage_distance": "Figure 5"}
#: The published table of the ImageNet-subset runs.
IMAGENET_TABLE = "ImageNet subsets"


@dataclasses.dataclass(frozen=True)
class ChapterSetup:
    """What the TGDD chapter adds to :class:`~ddlib.chapters.session.ChapterRun`.

    Attributes
    ----------
    knobs : ChapterKnobs
        The chapter's own settings at the run's scale (:data:`~ddlib.chapters.tgdd_experiments.CHAPTER_KNOBS`).
    published : pandas.DataFrame
        The paper's published numbers (:func:`~ddlib.results.records.paper_results`, TGDD's rows).
    run_dir : Path
        Where the distillations' checkpoints go: ``artifacts_dir/tgdd-runs``.
    """

    knobs: ChapterKnobs
    published: Any
    run_dir: Path


def chapter_setup(run: ChapterRun) -> ChapterSetup:
    """The chapter's knobs, published numbers and checkpoint folder; writes ``out_dir/config.json``.

    ``config.json`` holds ``{"settings": ..., "knobs": ...}``, every setting the run used.

    Raises
    ------
    ValueError
        ``run.params.scale`` has no knobs (naming the scales that have).
    """
    scale = run.params.scale
    if scale not in CHAPTER_KNOBS:
        raise ValueError(f"scale={scale!r}: the TGDD chapter has knobs for {sorted(CHAPTER_KNOBS)}")
    knobs = CHAPTER_KNOBS[scale]
    if getattr(run.params, "dry_run", False):
        # The paper's knobs, with MTT's cost probe as short as the dry run's distillations and the analysis
        # at the run's largest IPC when the run leaves the paper's out (a dry run at IPC 1 keeps 1).
        ipcs = run.settings.ipcs
        analysis_ipc = knobs.analysis_ipc if knobs.analysis_ipc in ipcs else max(ipcs)
        knobs = knobs.replace(cost_probe_iterations=run.settings.iterations, analysis_ipc=analysis_ipc)
    published = paper_results().query("paper == 'TGDD'")
    write_json(Path(run.params.out_dir, "config.json"), {"settings": run.settings.to_dict(), "knobs": knobs.to_dict()})
    return ChapterSetup(knobs=knobs, published=published, run_dir=Path(run.params.artifacts_dir) / "tgdd-runs")


@dataclasses.dataclass(frozen=True)
class ChapterExperts:
    """The chapter's experts per distiller (``"TGDD"``, ``"MTT"``).

    Attributes
    ----------
    configs : mapping of str to ExpertConfig
        Each distiller's expert recipe (TGDD: the authors' code; MTT: plain SGD).
    stores : mapping
        Each distiller's expert trajectories (:func:`~ddlib.chapters.scales.cached_experts`).
    pretrain : mapping of str to RunCost
        Figure 1's pre-training cost of ``settings.num_experts`` experts per method, DM included
        (:func:`~ddlib.chapters.tgdd_experiments.pretraining_costs`).
    """

    configs: Mapping[str, ExpertConfig]
    stores: Mapping[str, Any]
    pretrain: Mapping[str, RunCost]


def chapter_experts(data: ImageDataset, settings: ScaleSettings, knobs: ChapterKnobs, recorder: Recorder,
                    artifacts_dir: str | Path, seed: int, *, device: str | torch.device = "cpu") -> ChapterExperts:
    """Train (or load) the TGDD and MTT experts, measure their pre-training cost, record both.

    TGDD gets ``settings.num_experts`` experts of ``settings.expert_config("tgdd")``; MTT as many of
    ``expert_config("mtt")`` where ``knobs.mtt_accuracy``, else one (it drives MTT's cost probe
    and is the held-out network of Figures 2, 4 and 5). Recorded: every expert's last test
    accuracy (percent, experiment ``"experts"``, method ``"<name> expert"``) and each method's
    pre-training time and peak memory (experiment ``"Figure 1"``).
    """
    configs = {"TGDD": settings.expert_config("tgdd"), "MTT": settings.expert_config("mtt")}
    counts = {"TGDD": settings.num_experts, "MTT": settings.num_experts if knobs.mtt_accuracy else 1}
    stores = {name: cached_experts(artifacts_dir, data, config, counts[name], seed, device=device, progress=False)
              for name, config in configs.items()}
    pretrain = pretraining_costs(data, configs, settings.num_experts, seed, device=device)
    for name, store in stores.items():
        for k, expert in enumerate(store.experts):
            config = {**configs[name].to_dict(), "expert_seed": expert["seed"]}
            recorder.add("experts", f"{name} expert", "expert_acc", 100 * expert["test_accuracy"][-1],
                         config=config, expert=k)
    for name, cost in pretrain.items():
        recorder.add("Figure 1", name, "pretrain_time_s", cost.wall_time_s, memory_method=cost.memory_method)
        recorder.add("Figure 1", name, "pretrain_peak_memory_mb", cost.peak_memory_mb,
                     memory_method=cost.memory_method)
    return ChapterExperts(configs=configs, stores=stores, pretrain=pretrain)


def record_analysis(recorder: Recorder, rows: Sequence[Mapping[str, Any]], *, ipc: int, seed: int) -> None:
    """Record :func:`~ddlib.chapters.tgdd_experiments.analysis_metrics` rows under their figure.

    ``silhouette`` goes to Figure 2, ``coverage_distance`` to Figure 5, the other measures to
    Figure 4 (:data:`ANALYSIS_FIGURES`); each record carries ``ipc``, ``distill_seed=seed`` and
    the snapshot's ``epoch`` (also in its config, which :func:`~ddlib.chapters.tgdd_page.analysis_records`
    reads back).
    """
    for row in rows:
        figure = ANALYSIS_FIGURES.get(row["metric"], "Figure 4")
        recorder.add(figure, row["method"], row["metric"], row["value"], ipc=ipc, distill_seed=seed,
                     config={"epoch": row["epoch"]}, epoch=row["epoch"])


def imagenet_subsets(chapter: TGDDChapter, published: Any, *, scale: str, seed: int, out_dir: str | Path,
                     artifacts_dir: str | Path, data_root: str = "", expert_epochs: int = 80, ipc: int = 10,
                     lr_img_per_ipc: float = 0.1,
                     load: Callable[..., ImageDataset] = load_dataset):
    """Distil and evaluate TGDD on every data set of the published ImageNet-subset table; their records.

    As the paper: per subset ``settings.num_experts`` experts of ``ExpertConfig.tgdd(epochs=80)``
    (at the config's own width), one set at IPC 10 with a pixel learning rate of 0.1 x IPC,
    from the run seed, evaluated by ``chapter``'s protocol. Each subset gets its own recorder
    under ``out_dir/imagenet/<data set>``; ``chapter`` supplies the settings, knobs,
    pre-training costs, checkpoint folder and device.

    Parameters
    ----------
    load : callable
        ``load(label, data_root=...)`` -> ImageDataset (default :func:`~ddlib.data.load_dataset`;
        ``data_root=None`` when empty).

    Returns
    -------
    pandas.DataFrame
        Every record under ``out_dir/imagenet``.

    Raises
    ------
    ValueError
        ``published`` has no row of the ImageNet-subset table.
    """
    labels = list(dict.fromkeys(published.loc[published["table"] == IMAGENET_TABLE, "dataset"]))
    if not labels:
        raise ValueError(f"no published rows of {IMAGENET_TABLE!r}: expected the paper's results (paper_results())")
    device = chapter.device
    for label in labels:
        sub = load(label, data_root=data_root or None).to(device)
        sub_recorder = Recorder(Path(out_dir) / "imagenet" / sub.name, "TGDD", scale, sub.name, device,
                                params={"seed": seed})
        store = cached_experts(artifacts_dir, sub, ExpertConfig.tgdd(epochs=expert_epochs),
                               chapter.settings.num_experts, seed, device=device, progress=False)
        sub_chapter = dataclasses.replace(chapter, data=sub, stores={"TGDD": store}, recorder=sub_recorder)
        syn, _ = sub_chapter.distill("TGDD", ipc, seed, lr_img_per_ipc=lr_img_per_ipc)
        sub_chapter.evaluate(IMAGENET_TABLE, "TGDD", syn, seed, ipc=ipc)
        sub_recorder.finish()
    return read_records(Path(out_dir) / "imagenet")
