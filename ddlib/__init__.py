"""ddlib: reproducible trajectory-based dataset distillation.

The public API is flat: ``ddlib.load_dataset``, ``ddlib.build_model``, ... Modules are
layered data -> models -> functional core -> trajectories -> methods -> evaluation ->
results; notebooks sit on top and use only what is exported here.
"""
from __future__ import annotations

from ddlib.core.version import __version__

from ddlib.core.config import Config
from ddlib.core.runtime import derive_seed, make_generator, resolve_device
from ddlib.data import DATASET_NAMES, ImageDataset, load_dataset
from ddlib.data.augment import DSA
from ddlib.data.dsa_params import DSAConfig
from ddlib.data.zca import ZCA
from ddlib.models import MODEL_NAMES, build_model
from ddlib.core.functional import ParamLayout, flatten_params, functional_forward, load_flat_params
from ddlib.core.train import OptimizerConfig, accuracy, cross_entropy_hook, train_epoch
from ddlib.trajectories.experts import ExpertConfig, Trajectory, build_expert_model, train_expert
from ddlib.trajectories.trajectory_store import TrajectoryStore, generate_experts
from ddlib.methods.synthetic import SyntheticSet
from ddlib.evaluation.runner import EvalConfig, EvalResult, evaluate_cross_arch, evaluate_full_dataset, evaluate_synthetic
from ddlib.methods.coresets import forgetting_coreset, herding_coreset, kcenter_coreset, random_coreset
from ddlib.methods.ast_components import (SmoothExpertLoss, average_variation, balanced_loss_weight, intermediate_points,
                             perturb_weights, representative_init, step_sizes)
from ddlib.core.unroll import matching_loss, unroll_student
from ddlib.methods.distill_loop import DistillResult, NonFiniteLoss, run_distillation
from ddlib.methods.mtt import TrajectoryMatching
from ddlib.methods.mtt_config import MTTConfig
from ddlib.methods.dm import DMConfig, DistributionMatching
from ddlib.methods.tgdd import TGDD, TGDDConfig
from ddlib.results.measurement import collect_provenance
from ddlib.results.records import (Record, append_records, paired_samples, paper_results, read_records,
                      side_by_side)
from ddlib.chapters.scales import (SCALES, Recorder, ScaleSettings, cached_experts, expert_network, load_scaled_dataset, record_claim,
                          scale_settings)
from ddlib.chapters.notebook_params import ChapterParams, chapter_params, show_markdown
from ddlib.chapters.session import ChapterRun, start_chapter
from ddlib.quickstart import distill, evaluate
from ddlib.results.verdicts import Verdict, paired_verdict, required_n, threshold_verdict, trend_verdict
from ddlib.results.seeded import compare_methods, method_values, record_evaluation
from ddlib.core.fileio import read_json, write_json
from ddlib.results.plots import image_grid, show_images
from ddlib.chapters.reporting import model_zoo_table

__all__ = [
    "__version__", "Config", "derive_seed", "make_generator", "resolve_device",
    "DATASET_NAMES", "ImageDataset", "load_dataset", "DSA", "DSAConfig", "ZCA",
    "MODEL_NAMES", "build_model", "ParamLayout", "flatten_params", "functional_forward", "load_flat_params",
    "OptimizerConfig", "accuracy", "cross_entropy_hook", "train_epoch",
    "ExpertConfig", "Trajectory", "build_expert_model", "train_expert", "TrajectoryStore", "generate_experts",
    "SyntheticSet", "EvalConfig", "EvalResult", "evaluate_cross_arch", "evaluate_full_dataset",
    "evaluate_synthetic", "forgetting_coreset", "herding_coreset", "kcenter_coreset", "random_coreset",
    "SmoothExpertLoss", "average_variation", "balanced_loss_weight", "intermediate_points", "perturb_weights",
    "representative_init", "step_sizes", "matching_loss", "unroll_student",
    "DistillResult", "NonFiniteLoss", "run_distillation", "MTTConfig", "TrajectoryMatching",
    "DMConfig", "DistributionMatching", "TGDD", "TGDDConfig",
    "Record", "append_records", "collect_provenance", "paper_results", "read_records", "side_by_side",
    "image_grid", "show_images", "model_zoo_table", "SCALES", "Recorder", "ScaleSettings", "cached_experts",
    "load_scaled_dataset", "record_claim", "scale_settings", "expert_network",
    "read_json", "write_json", "ChapterParams", "chapter_params", "show_markdown", "ChapterRun", "start_chapter",
    "distill", "evaluate",
    "compare_methods", "method_values", "record_evaluation", "Verdict", "paired_samples", "paired_verdict", "required_n", "threshold_verdict", "trend_verdict",
]
