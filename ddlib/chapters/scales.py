"""Plumbing the notebooks share: scale presets, cached experts and the result recorder.

A notebook states *what* it measures; this module decides *how big* (one
:class:`ScaleSettings` per scale, the only thing that changes between ``smoke``, ``mini``
and ``paper``), caches expert trajectories under ``artifacts_dir`` keyed by their config so
no two notebooks train the same experts, and writes every printed number as a
:class:`~ddlib.results.records.Record` with its provenance (:class:`~ddlib.results.recorder.Recorder`, re-exported here).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Literal, Mapping

import torch

from ddlib.core.config import Config
from ddlib.data import ImageDataset, load_dataset
from ddlib.data.zca import ZCA
from ddlib.evaluation.protocols import DEFAULT_LR, EvalConfig, protocol_epochs
from ddlib.trajectories.experts import ExpertConfig
from ddlib.methods.mtt_config import MTT_TABLE, MTTConfig
from ddlib.results.recorder import Recorder, claim_anchor, claim_text, record_claim  # noqa: F401 (re-exported here)
from ddlib.core.train import LossHook, cross_entropy_hook
from ddlib.trajectories.fingerprints import dataset_fingerprint, describe_loss_hook
from ddlib.trajectories.trajectory_manifest import store_differences
from ddlib.trajectories.trajectory_store import TrajectoryStore, generate_experts

# Recorder, record_claim, claim_text and claim_anchor live in ddlib.results.recorder (imported above for older callers).
__all__ = ["ScaleSettings", "scale_settings", "load_scaled_dataset", "cached_experts", "subset_per_class",
           "SCALES", "expert_network", "FirstExperts", "experts_folder"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ScaleSettings(Config):
    """How big a notebook run is. ``paper`` holds the papers' settings (CIFAR-10, GPU);
    ``mini`` shrinks them to fit 2 CPU cores in minutes; ``smoke`` only proves the code runs.

    Every field is printed at the top of each chapter, so the reader sees what was shrunk.
    """

    #: Data set of the chapters (the papers' CIFAR-10).
    dataset: str = "cifar10"
    #: Training images per class; ``None``: the whole training split.
    train_per_class: int | None = None
    #: Test images per class; ``None``: the whole test split.
    test_per_class: int | None = None
    #: ConvNet width (MTT: 128).
    width: int = 128
    #: Experts trained per kind of expert (MTT trains 100, AST/TGDD 5-50).
    num_experts: int = 5
    #: Epochs per expert (MTT: 50).
    expert_epochs_total: int = 50
    #: Mini-batch size of expert training (MTT's ``batch_train``: 256).
    expert_batch: int = 256
    #: IPCs the chapters distil (the papers' 1, 10 and 50).
    ipcs: tuple[int, ...] = (1, 10, 50)
    #: Distillation iterations (MTT: 5000).
    iterations: int = 5000
    #: Iterations of the ablation rows; ``None``: ``iterations``.
    ablation_iterations: int | None = None
    #: Student steps ``N``; ``None``: MTT's published table per IPC.
    syn_steps: int | None = None
    #: Expert epochs ``M`` per match; ``None``: the MTT table.
    expert_epochs: int | None = None
    #: Upper bound of the start epoch; ``None``: the MTT table.
    max_start_epoch: int | None = None
    #: Synthetic images per inner step; ``None``: the MTT table.
    batch_syn: int | None = None
    #: Learning rate of the images; ``None``: the MTT table.
    lr_img: float | None = None
    #: Learning rate of ``syn_lr``; ``None``: the MTT table.
    lr_lr: float | None = None
    #: Initial ``syn_lr``; ``None``: the MTT table.
    lr_teacher: float | None = None
    #: Epochs of MTT's evaluation protocol (MTT: 1000); the other protocols keep their ratio to it.
    eval_epochs: int = 1000
    #: Evaluation networks per set (MTT: 5).
    num_eval: int = 5
    #: Best-of-tests protocols test at most this often per run; ``None``: the paper's test interval.
    eval_max_tests: int | None = None
    #: Distillation seeds per compared setting, paired across methods (ours: the papers report one run's
    #: networks; three seeds are the fewest that give a verdict its t-interval).
    seeds: tuple[int, ...] = (0, 1, 2)
    #: Distillation iterations between evaluations of a convergence curve (ours; MTT's code tests every 100,
    #: DM's every 2,000: fewer points keep a paper-scale curve affordable).
    eval_every: int = 500
    #: DM's distillation iterations (DM: 20,000).
    dm_iterations: int = 20000
    #: TGDD's distillation iterations (TGDD: 10,000).
    tgdd_iterations: int = 10000
    #: Epochs per TGDD expert (TGDD: 60 at low resolution).
    tgdd_expert_epochs_total: int = 60

    @property
    def ablation_length(self) -> int:
        """Distillation iterations of an ablation row (``ablation_iterations``, else ``iterations``)."""
        return self.iterations if self.ablation_iterations is None else self.ablation_iterations

    def validate(self) -> None:
        if self.eval_max_tests is not None and self.eval_max_tests < 1:
            raise ValueError(f"eval_max_tests={self.eval_max_tests}: expected >= 1 or None")
        if self.ablation_iterations is not None and self.ablation_iterations < 1:
            raise ValueError(f"ablation_iterations={self.ablation_iterations}: expected >= 1 or None")
        seeds = tuple(self.seeds)
        if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(x, int) and x >= 0 for x in seeds):
            raise ValueError(f"seeds={self.seeds!r}: expected a non-empty tuple of distinct non-negative ints")

    def eval_config(self, protocol: str = "mtt", *, full_dataset: bool = False, **overrides: Any) -> EvalConfig:
        """The evaluation protocol of a paper at this scale; the one definition per scale and protocol.

        :meth:`~ddlib.evaluation.protocols.EvalConfig.preset` of ``protocol`` with this scale's ``num_eval`` and
        ``width``. ``eval_epochs`` is the length of MTT's protocol at this scale; the other
        protocols keep their ratio to it (TGDD: 1.5x, :func:`~ddlib.evaluation.protocols.protocol_epochs`)
        and their test interval shrinks with the length, but a run tests at most ``eval_max_tests``
        times (the interval grows to ``ceil(epochs / eval_max_tests)``; testing dominates a short run's cost).

        Parameters
        ----------
        protocol : {"mtt", "ast", "tgdd"}
        full_dataset : bool
            The "Full dataset" row (:func:`~ddlib.evaluation.runner.evaluate_full_dataset`): lr 0.01
            and ``expert_epochs_total`` epochs (an expert's length).
        **overrides
            Any :class:`~ddlib.evaluation.protocols.EvalConfig` field; ``epochs`` also rescales the test interval.
        """
        if full_dataset:
            epochs, fixed = self.expert_epochs_total, {"lr": DEFAULT_LR}
        else:
            epochs, fixed = protocol_epochs(self.eval_epochs, protocol), {}
        epochs = overrides.pop("epochs", epochs)
        config = EvalConfig.preset(protocol, epochs=epochs, **{"num_eval": self.num_eval, "width": self.width,
                                                                **fixed, **overrides})
        if self.eval_max_tests is None or not config.test_every or "test_every" in overrides:
            return config
        return config.replace(test_every=max(config.test_every, -(-config.epochs // self.eval_max_tests)))

    def expert_config(self, preset: str = "mtt", **overrides: Any) -> ExpertConfig:
        """Expert config of ``preset`` (``mtt``, ``ast``, ``tgdd``) at this scale's width/epochs/batch."""
        if preset == "tgdd":
            epochs = overrides.pop("epochs", self.tgdd_expert_epochs_total)
            return ExpertConfig.tgdd(epochs=epochs).replace(**{"width": self.width, **overrides})
        if preset not in ("mtt", "ast"):
            raise ValueError(f"preset={preset!r}: expected 'mtt', 'ast' or 'tgdd'")
        maker = ExpertConfig.mtt if preset == "mtt" else ExpertConfig.ast
        scaled = {"epochs": self.expert_epochs_total, "width": self.width, "batch_size": self.expert_batch}
        return maker(**{**scaled, **overrides})

    def mtt_config(self, ipc: int, **overrides: Any) -> MTTConfig:
        """MTT settings at ``ipc``: the MTT table (paper scale) or this scale's values where set."""
        from ddlib.data import canonical_name

        key = (canonical_name(self.dataset), ipc)
        base = MTTConfig.for_dataset(*key) if key in MTT_TABLE else MTTConfig(ipc=ipc, lr_img=100.0, lr_teacher=0.01)
        chosen = {name: getattr(self, name) for name in ("syn_steps", "expert_epochs", "max_start_epoch",
                                                          "batch_syn", "lr_img", "lr_lr", "lr_teacher")
                  if getattr(self, name) is not None}
        return base.replace(iterations=self.iterations, **{**chosen, **overrides})


SCALES: Mapping[str, ScaleSettings] = {
    "paper": ScaleSettings(),
    # mini: the embedded mnist5k on one CPU thread per chapter. Sized so that the claims every paper relies
    # on (each distiller beats random real images at IPC 1) hold with confidence: 3 distillation seeds x
    # 3 evaluation networks per compared setting (the seed is the unit of a verdict, so more networks
    # narrow little); the ablations run shorter (ablation_iterations).
    "mini": ScaleSettings(dataset="mnist5k", width=16, num_experts=4, expert_epochs_total=15, ipcs=(1,),
                          iterations=150, ablation_iterations=60, syn_steps=20, expert_epochs=2, max_start_epoch=8,
                          batch_syn=None, eval_epochs=300, num_eval=3, eval_max_tests=15, seeds=(0, 1, 2),
                          eval_every=50, dm_iterations=150, tgdd_iterations=150, tgdd_expert_epochs_total=15),
    "smoke": ScaleSettings(dataset="mnist5k", train_per_class=20, test_per_class=10, width=8, num_experts=1,
                           expert_epochs_total=3, expert_batch=64, ipcs=(1, 2), iterations=2, syn_steps=2,
                           expert_epochs=1, max_start_epoch=1, eval_epochs=3, num_eval=1, eval_every=1,
                           dm_iterations=2, tgdd_iterations=2, tgdd_expert_epochs_total=6, seeds=(0, 1),
                           ablation_iterations=2),
}


def scale_settings(scale: str, **overrides: Any) -> ScaleSettings:
    """The preset of ``scale`` (``smoke``, ``mini``, ``paper``) with ``overrides`` applied."""
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r}: expected one of {list(SCALES)}")
    return SCALES[scale].replace(**overrides)


def subset_per_class(data: ImageDataset, train: int | None, test: int | None) -> ImageDataset:
    """The first ``train``/``test`` images of every class (deterministic), or ``data`` unchanged."""
    def pick(labels: torch.Tensor, n: int | None) -> torch.Tensor:
        if n is None:
            return torch.arange(len(labels))
        return torch.cat([torch.nonzero(labels == c).flatten()[:n] for c in range(data.num_classes)])

    tr, te = pick(data.labels_train, train), pick(data.labels_test, test)
    if train is None and test is None:
        return data
    return dataclasses.replace(data, images_train=data.images_train[tr], labels_train=data.labels_train[tr],
                               images_test=data.images_test[te], labels_test=data.labels_test[te])


def load_scaled_dataset(settings: ScaleSettings, data_root: str | None = None,
                        device: str | torch.device = "cpu") -> ImageDataset:
    """Load the scale's data set (subset per class where the scale says) onto ``device``."""
    data = load_dataset(settings.dataset, data_root=data_root or None)
    return subset_per_class(data, settings.train_per_class, settings.test_per_class).to(device)


def _key(data: ImageDataset, config: ExpertConfig, num_experts: int, seed: int, hook: LossHook) -> str:
    # The data's content hash, not its name and size: a flipped or re-normalised copy gets its own experts.
    text = json.dumps({"dataset": dataset_fingerprint(data), "config": config.to_dict(),
                       "seed": seed, "hook": describe_loss_hook(hook)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class FirstExperts:
    """The first ``n`` experts of a trajectory source (``TrajectoryStore`` or ``ConvexifiedStore``).

    A cached store may hold more experts than a chapter asks for (another chapter extended
    it); distilling from exactly the first ``n`` keeps the run independent of that.
    Everything except ``len``, ``trajectory`` and ``experts`` is passed through to the store.
    """

    def __init__(self, source: Any, n: int) -> None:
        if not 1 <= n <= len(source):
            raise ValueError(f"n={n}: expected 1 <= n <= {len(source)} (the experts in {source!r})")
        self.source, self.n = source, int(n)

    def __len__(self) -> int:
        return self.n

    def __getattr__(self, name: str) -> Any:
        if name == "source":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.source, name)

    @property
    def experts(self) -> list[dict[str, Any]]:
        """Manifest entries of the first ``n`` experts (``nbytes``, ``seed``, ...)."""
        return self.source.experts[: self.n]

    def trajectory(self, k: int) -> Any:
        """Expert ``k < n`` (``IndexError`` otherwise)."""
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < self.n:
            raise IndexError(f"expert index {k!r} out of range: this view holds experts 0..{self.n - 1}")
        return self.source.trajectory(k)


def experts_folder(artifacts_dir: str | Path, data: ImageDataset, config: ExpertConfig, seed: int, *,
                   loss_hook: LossHook = cross_entropy_hook, tag: str = "experts") -> Path:
    """The folder :func:`cached_experts` keeps these experts in: ``artifacts_dir/<tag>-<data>-<key>``.

    The command line (``python -m ddlib experts``) writes there too, so a notebook finds what a
    cluster run trained.
    """
    return Path(artifacts_dir) / f"{tag}-{data.name}-{_key(data, config, 0, seed, loss_hook)}"


def cached_experts(artifacts_dir: str | Path, data: ImageDataset, config: ExpertConfig, num_experts: int,
                   seed: int, *, loss_hook: LossHook = cross_entropy_hook, device: str | torch.device = "cpu",
                   progress: bool = True, tag: str = "experts",
                   on_mismatch: Literal["raise", "recompute"] = "raise",
                   zca: ZCA | None = None) -> TrajectoryStore | FirstExperts:
    """Expert trajectories under ``artifacts_dir/<tag>-<data>-<key>``, trained only when missing.

    The key hashes the data set's contents (:func:`~ddlib.trajectories.fingerprints.dataset_fingerprint`,
    a sha256 of its tensors), the expert config, the seed and the loss hook (not the number
    of experts: asking for more extends the store). Interrupted generation resumes; a second
    process asking for the same experts waits for the first and reuses its experts.
    Exactly ``num_experts`` experts are returned (a :class:`FirstExperts` view when another
    chapter extended the store), so a chapter's result does not depend on which ran first.

    Parameters
    ----------
    on_mismatch : {"raise", "recompute"}
        What to do when the folder's manifest records another data fingerprint, config,
        seed or loss hook than requested (a key collision, or a folder copied or edited by
        hand): ``"raise"`` a ValueError naming both values, or delete the folder and
        ``"recompute"`` the experts.
    zca : ZCA, optional
        With ``config.zca``: the whitening of ``data``'s training images, fitted once by the
        caller and reused for training (see :func:`~ddlib.trajectories.experts.train_expert`).

    Raises
    ------
    ValueError
        ``on_mismatch="raise"`` and the cached store was made for another request.
    """
    if on_mismatch not in ("raise", "recompute"):
        raise ValueError(f"on_mismatch={on_mismatch!r}: expected 'raise' or 'recompute'")
    folder = experts_folder(artifacts_dir, data, config, seed, loss_hook=loss_hook, tag=tag)
    if (folder / "manifest.json").exists():
        store = TrajectoryStore.open(folder)
        if diffs := store_differences(store.manifest, data, config, seed, loss_hook):
            if on_mismatch == "raise":
                raise ValueError(f"cached experts {str(folder)!r} were made for another request: "
                                 f"{'; '.join(diffs)}. Delete the folder, or pass on_mismatch='recompute'")
            logger.warning("cached experts %s were made for another request (%s); recomputing them", folder,
                           "; ".join(diffs))
            shutil.rmtree(folder)
        elif len(store) >= num_experts:
            return store if len(store) == num_experts else FirstExperts(store, num_experts)
    return generate_experts(folder, data, config, num_experts, seed, loss_hook=loss_hook, device=device,
                            progress=progress, zca=zca)


def expert_network(store: TrajectoryStore, data: ImageDataset, k: int = 0, epoch: int | None = None,
                   device: str | torch.device = "cpu") -> torch.nn.Module:
    """Expert ``k`` of ``store`` as a ready network (eval mode) at ``epoch`` (default: its last).

    Used as the trained feature extractor of herding, k-center and representative init.
    """
    from ddlib.trajectories.experts import build_expert_model
    from ddlib.core.functional import load_flat_params

    trajectory = store.trajectory(k)
    net = build_expert_model(data, store.config, seed=0)
    load_flat_params(net, trajectory.snapshot(trajectory.num_epochs if epoch is None else epoch))
    return net.to(device).eval()
