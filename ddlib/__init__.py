"""ddlib: reproducible trajectory-based dataset distillation.

The public API is flat: ``ddlib.load_dataset``, ``ddlib.build_model``, ... Modules are
layered data -> models -> functional core -> trajectories -> methods -> evaluation ->
results; notebooks sit on top and use only what is exported here.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .config import Config
from .runtime import derive_seed, make_generator, resolve_device
from .data import DATASET_NAMES, ImageDataset, load_dataset
from .data.augment import DSA, DSAConfig
from .data.zca import ZCA
from .models import MODEL_NAMES, build_model
from .functional import ParamLayout, flatten_params, functional_forward, load_flat_params
from .train import OptimizerConfig, accuracy, cross_entropy_hook, train_epoch
from .experts import ExpertConfig, Trajectory, build_expert_model, train_expert
from .trajectory_store import TrajectoryStore, generate_experts
from .synthetic import SyntheticSet
from .evaluation import EvalConfig, EvalResult, evaluate_cross_arch, evaluate_full_dataset, evaluate_synthetic
from .coresets import forgetting_coreset, herding_coreset, kcenter_coreset, random_coreset
from .ast_components import (SmoothExpertLoss, average_variation, balanced_loss_weight, intermediate_points,
                             perturb_weights, representative_init, step_sizes)
from .unroll import matching_loss, unroll_student
from .distill_loop import DistillResult, NonFiniteLoss, run_distillation
from .mtt import MTTConfig, TrajectoryMatching
from .dm import DMConfig, DistributionMatching
from .tgdd import TGDD, TGDDConfig
from .results import (Record, append_records, collect_provenance, paired_samples, paper_results, read_records,
                      side_by_side)
from .experiments import (SCALES, Recorder, ScaleSettings, cached_experts, expert_network, load_scaled_dataset, record_claim,
                          scale_settings)
from .verdicts import Verdict, paired_verdict, required_n, threshold_verdict, trend_verdict
from .seeded import compare_methods, method_values, record_evaluation
from .fileio import read_json, write_json
from .plots import image_grid, show_images
from .reporting import model_zoo_table

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
    "read_json", "write_json",
    "compare_methods", "method_values", "record_evaluation", "Verdict", "paired_samples", "paired_verdict", "required_n", "threshold_verdict", "trend_verdict",
]
