"""Expert trajectories: networks trained on the real data whose parameters are recorded.

Trajectory matching (MTT, AST, MCT) distils by matching a student's parameters to
those of *experts*: networks trained on the full training set whose flat parameter
vector ``(P,)`` is recorded at initialisation and after every epoch. One expert's
record is a tensor ``(epochs + 1, P)`` (snapshot 0 is the initialisation), which is
what MTT's ``buffer.py`` stores (one list of parameter tensors per epoch).

:func:`train_expert` trains one expert with :func:`ddlib.core.train.train_epoch` and
returns a :class:`Trajectory`. Everything random is derived from one seed (weights
from ``derive_seed(seed, "init")``, shuffling and DSA from ``derive_seed(seed, "data")``),
and training can be stopped after any epoch and resumed from an :class:`ExpertState`
(:mod:`ddlib.trajectories.expert_state`) with bit-identical results.
:mod:`ddlib.trajectories.trajectory_store` writes many experts to disk.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

import torch

from ddlib.core.config import Config
from ddlib.data.cutmix import training_augmentation
from ddlib.data.dataset import ImageDataset
from ddlib.data.zca import ZCA
from ddlib.core.functional import ParamLayout, flatten_params
from ddlib.models import build_model
from ddlib.core.precision import check_precision
from ddlib.core.runtime import derive_seed, make_generator, resolve_device
from ddlib.core.train import LossHook, OptimizerConfig, ScheduledOptimizer, accuracy, cross_entropy_hook, train_epoch
from ddlib.trajectories.expert_state import ExpertState, cpu_copy, scheduled_optimizer_state

__all__ = [
    "ExpertConfig", "Trajectory", "train_expert", "build_expert_model", "prepare_expert_data",
    "ZCA_REGULARIZATION", "check_training_zca",
]

#: ``eps`` of the ZCA whitening when ``ExpertConfig.zca`` is set (MTT: kornia ZCAWhitening(eps=0.1)).
ZCA_REGULARIZATION = 0.1


def _mtt_optimizer() -> OptimizerConfig:
    # MTT buffer.py: SGD(lr=lr_teacher=0.01, momentum=mom=0, weight_decay=l2=0), no lr decay.
    return OptimizerConfig(kind="sgd", lr=0.01, momentum=0.0, weight_decay=0.0, milestones=())


@dataclasses.dataclass(frozen=True)
class ExpertConfig(Config):
    """How one expert is trained. Defaults are MTT's (Cazenavette et al., CVPR 2022, Sec. 4 / ``buffer.py``).

    Attributes
    ----------
    arch : str
        Model name for :func:`ddlib.models.build_model` (MTT: ConvNet, depth from resolution).
    width, depth, norm : int, int or None, str
        Model options (MTT: width 128, instance norm).
    optimizer : OptimizerConfig
        MTT: plain SGD, lr 0.01, no momentum, no weight decay, no lr schedule.
    epochs : int
        Training epochs, i.e. snapshots ``1..epochs`` after the initial one (MTT: 50).
    batch_size : int
        Mini-batch size (MTT ``batch_train``: 256).
    dsa : bool
        Augment the training batches (MTT: on for every data set); which augmentation is
        ``augmentation``'s choice.
    zca : bool
        ZCA-whiten train and test images, fitted on train (MTT: on for CIFAR-10/100 in the
        paper's settings, off for Tiny ImageNet and ImageNet subsets).
    storage_dtype : {"float32", "float16"}
        Dtype the trajectories are stored in on disk (training always runs in float32).
    augmentation : {"dsa", "tgdd"}
        With ``dsa`` on: ``"dsa"`` is MTT's per-sample DSA (MTT, AST); ``"tgdd"`` is TGDD's
        ``pretrain.py``: per-sample colour+crop DiffAug, then CutMix (p 0.5, Beta(1, 1)) with
        the mixed-label loss (:func:`ddlib.data.cutmix.training_augmentation`).
    precision : {"fp32", "bf16"}
        ``"bf16"``: forward passes under bfloat16 autocast, parameters, optimizer and loss in
        float32 (:mod:`ddlib.core.precision`; ddlib's option, the papers train in float32).
        Part of the store's key only when not ``"fp32"``, so existing stores keep their keys.
    """

    _omit_when_default = ("precision",)  # keys of fp32 stores written before the field existed stay valid

    #: Model name for ``ddlib.models.build_model`` (MTT: ConvNet).
    arch: str = "ConvNet"
    #: Model width (MTT's ConvNet: 128).
    width: int = 128
    #: Model depth; ``None``: ConvNet's default for the resolution (MTT: 3 at 32x32, 4 at 64x64, 5 at 128x128).
    depth: int | None = None
    #: Normalisation layer (MTT's ConvNet: instance norm).
    norm: str = "instance"
    #: Optimizer and lr schedule (MTT's ``buffer.py``: plain SGD, lr 0.01, no momentum, no weight decay, no schedule).
    optimizer: OptimizerConfig = dataclasses.field(default_factory=_mtt_optimizer)
    #: Training epochs, i.e. snapshots ``1..epochs`` after the initial one (MTT: ``train_epochs`` 50).
    epochs: int = 50
    #: Mini-batch size (MTT: ``batch_train`` 256).
    batch_size: int = 256
    #: Augment the training batches (MTT: ``dsa`` True, for every data set); ``augmentation`` picks which.
    dsa: bool = True
    #: ZCA-whiten train and test images, fitted on train (MTT: on for CIFAR-10/100 only; pass it per data set).
    zca: bool = False
    #: Dtype of the trajectories on disk; parameters are always float32 (ddlib's choice: float32).
    storage_dtype: Literal["float32", "float16"] = "float32"
    #: With ``dsa`` on: ``"dsa"``, MTT's per-sample DSA (MTT, AST); ``"tgdd"``, TGDD's ``pretrain.py``
    #: per-sample colour+crop DiffAug, then CutMix (p 0.5, Beta(1, 1)) with the mixed-label loss.
    augmentation: Literal["dsa", "tgdd"] = "dsa"
    #: ``"fp32"`` (the papers' and default) or ``"bf16"``: forward passes under bfloat16 autocast (ddlib's option).
    precision: str = "fp32"

    def validate(self) -> None:
        check_precision(self.precision, "ExpertConfig.precision")
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs}: expected >= 1")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: expected >= 1")
        if self.width < 1:
            raise ValueError(f"width={self.width}: expected >= 1")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"depth={self.depth}: expected >= 1 or None")
        if self.storage_dtype not in ("float32", "float16"):
            raise ValueError(f"storage_dtype={self.storage_dtype!r}: expected 'float32' or 'float16'")

    @property
    def torch_storage_dtype(self) -> torch.dtype:
        """:attr:`storage_dtype` as a ``torch.dtype``."""
        return torch.float16 if self.storage_dtype == "float16" else torch.float32

    # ------------------------------------------------------------------ presets
    @classmethod
    def mtt(cls, **overrides: Any) -> "ExpertConfig":
        """MTT experts: SGD lr 0.01, no momentum/weight decay, 50 epochs, batch 256, DSA.

        Pass ``zca=True`` for CIFAR-10/100 as in the paper.
        """
        return cls().replace(**overrides)

    @classmethod
    def ast(cls, preset: Literal["code", "paper"] = "code", **overrides: Any) -> "ExpertConfig":
        """AST experts (SGD momentum 0.9, 50 epochs, DSA), as the authors' code or as the paper has them.

        Parameters
        ----------
        preset : {"code", "paper"}
            ``"code"`` (the default; ``buffer.py``'s defaults): lr 0.003, momentum 0.9, weight
            decay 1e-3; after epoch index ``epochs // 2 + 1`` (0-based, i.e. once
            ``epochs // 2 + 2`` epochs are finished: 27 of 50) the lr is multiplied by 0.6 and
            the SGD optimizer is rebuilt, so the momentum buffers restart from zero.
            ``"paper"``: the paper gives no lr; our reading is lr 0.01 halved after epoch 25 of
            50 (half-way at any length), no weight decay, the optimizer kept.
        **overrides
            ``ExpertConfig`` fields (``epochs`` also moves the milestone).
        """
        epochs = overrides.pop("epochs", 50)
        if preset == "code":
            optimizer = OptimizerConfig(kind="momentum", lr=0.003, momentum=0.9, weight_decay=1e-3,
                                        milestones=(epochs // 2 + 2,), lr_factor=0.6, restart_at_milestones=True)
        elif preset == "paper":
            optimizer = OptimizerConfig(kind="momentum", lr=0.01, momentum=0.9, weight_decay=0.0,
                                        milestones=(epochs // 2,), lr_factor=0.5)
        else:
            raise ValueError(f"preset={preset!r}: expected 'code' (the authors' buffer.py) or 'paper'")
        return cls(optimizer=optimizer, epochs=epochs).replace(**overrides)

    @classmethod
    def tgdd(cls, epochs: int = 60, **overrides: Any) -> "ExpertConfig":
        """TGDD experts: SGD momentum 0.9, weight decay 5e-4, batch 64, ``epochs`` (60) epochs,
        lr multiplied by 0.2 at 2/3 and 5/6 of the run (epochs 40 and 50 of 60); augmentation
        ``"tgdd"``: per-sample colour+crop DiffAug, then CutMix p 0.5 (TGDD ``pretrain.py``).
        """
        if not isinstance(epochs, int) or epochs < 6:
            raise ValueError(f"epochs={epochs!r}: the TGDD preset needs an int >= 6 (milestones at 2/3 and 5/6)")
        optimizer = OptimizerConfig(
            kind="momentum", lr=0.01, momentum=0.9, weight_decay=5e-4,
            milestones=(epochs * 2 // 3, epochs * 5 // 6), lr_factor=0.2,
        )
        return cls(optimizer=optimizer, epochs=epochs, batch_size=64, dsa=True,
                   augmentation="tgdd").replace(**overrides)


def build_expert_model(data: ImageDataset, config: ExpertConfig, seed: int | None = None) -> torch.nn.Module:
    """The (CPU) network an expert of ``config`` trains on ``data``, initialised from ``seed``."""
    return build_model(
        config.arch, data.channel, data.num_classes, data.im_size,
        width=config.width, depth=config.depth, norm=config.norm, seed=seed,
    )


@dataclasses.dataclass(eq=False)
class Trajectory:
    """One expert's recorded parameters and metrics.

    Attributes
    ----------
    snapshots : torch.Tensor
        ``(num_epochs + 1, P)`` flat parameters (row 0: initialisation, row ``k``: after
        epoch ``k``), in the storage dtype (float32 or float16), on the CPU.
    layout : ParamLayout
        Names and shapes of the ``P`` parameters.
    train_loss, test_accuracy : list of float
        Per epoch (length ``num_epochs``): mean training loss and test accuracy in ``[0, 1]``.
    seed : int or None
        The expert's seed.
    """

    snapshots: torch.Tensor
    layout: ParamLayout
    train_loss: list[float]
    test_accuracy: list[float]
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.snapshots.dim() != 2 or self.snapshots.shape[1] != self.layout.numel:
            raise ValueError(
                f"snapshots must have shape (epochs + 1, {self.layout.numel}); got {tuple(self.snapshots.shape)}"
            )
        epochs = self.snapshots.shape[0] - 1
        if len(self.train_loss) != epochs or len(self.test_accuracy) != epochs:
            raise ValueError(
                f"{epochs} epochs of snapshots but {len(self.train_loss)} train losses and "
                f"{len(self.test_accuracy)} test accuracies"
            )

    @property
    def num_epochs(self) -> int:
        """Number of training epochs (``snapshots`` has one more row)."""
        return int(self.snapshots.shape[0]) - 1

    @property
    def num_params(self) -> int:
        """``P``."""
        return int(self.snapshots.shape[1])

    def snapshot(self, epoch: int) -> torch.Tensor:
        """Flat parameters ``(P,)`` float32 after ``epoch`` epochs (0: initialisation).

        Raises
        ------
        IndexError
            If ``epoch`` is not in ``[0, num_epochs]``.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= self.num_epochs:
            raise IndexError(f"epoch={epoch!r} out of range: expected an int in [0, {self.num_epochs}]")
        return self.snapshots[epoch].to(torch.float32, copy=True)  # a copy: in-place edits cannot reach the record

    def __repr__(self) -> str:
        return (f"Trajectory(num_epochs={self.num_epochs}, num_params={self.num_params}, "
                f"dtype={self.snapshots.dtype}, seed={self.seed})")


def check_training_zca(zca: ZCA, images_train: torch.Tensor) -> None:
    """Raise unless ``zca`` is the experts' whitening of ``images_train`` ``(N, C, H, W)``.

    The checks are the cheap ones: the feature shape, the regularisation (``ZCA_REGULARIZATION``, 0.1)
    and the mean, which must equal the images' mean (a ZCA fit on other images has another mean).
    """
    if not isinstance(zca, ZCA):
        raise TypeError(f"zca must be a ddlib.ZCA; got {type(zca).__name__}")
    shape = tuple(images_train.shape[1:])
    if zca.feature_shape != shape:
        raise ValueError(f"zca was fit on images of shape {zca.feature_shape}; the training images are {shape}")
    if zca.regularization != ZCA_REGULARIZATION:
        raise ValueError(f"zca has regularization {zca.regularization}; experts use {ZCA_REGULARIZATION}")
    mean = images_train.detach().reshape(len(images_train), -1).to(torch.float64).mean(0)
    gap = float((mean - zca.mean.to(mean.device)).abs().max())
    if gap > 1e-6:
        raise ValueError(f"zca was not fit on these training images: its mean differs from theirs by up to {gap:.3g} "
                         "(expected ZCA.fit(data.images_train, regularization=0.1))")


def prepare_expert_data(data: ImageDataset, config: ExpertConfig, device: torch.device,
                        zca: ZCA | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train/test images and labels on ``device``, ZCA-whitened (fit on train) when ``config.zca``.

    ``zca``, when given, is that whitening already fitted (checked by :func:`check_training_zca`),
    so that several kinds of experts on one data set fit it once; ignored when not ``config.zca``.

    Returns
    -------
    tuple of Tensor
        ``images_train (N, C, H, W)``, ``labels_train (N,)``, ``images_test (M, C, H, W)``,
        ``labels_test (M,)``.
    """
    images_train = data.images_train.to(device)
    images_test = data.images_test.to(device)
    if config.zca:
        if zca is None:
            zca = ZCA.fit(images_train, regularization=ZCA_REGULARIZATION)
        else:
            check_training_zca(zca, images_train)
            zca = zca.to(device)
        images_train, images_test = zca.transform(images_train), zca.transform(images_test)
    return images_train, data.labels_train.to(device), images_test, data.labels_test.to(device)


def train_expert(
    data: ImageDataset,
    config: ExpertConfig,
    seed: int,
    *,
    loss_hook: LossHook = cross_entropy_hook,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[ExpertState], None] | None = None,
    start: ExpertState | None = None,
    zca: ZCA | None = None,
) -> Trajectory:
    """Train one expert and record its parameters after every epoch.

    Parameters
    ----------
    data : ImageDataset
        Training images ``(N, C, H, W)`` and test images for the per-epoch accuracy.
    config : ExpertConfig
    seed : int
        The expert's seed; weights are initialised from ``derive_seed(seed, "init")`` and
        a CPU generator seeded with ``derive_seed(seed, "data")`` drives shuffling and DSA.
    loss_hook : LossHook
        Loss of one mini-batch (default cross-entropy), see :class:`ddlib.core.train.LossHook`.
    device : str or torch.device
        Where to train (``"auto"``, ``"cpu"``, ``"cuda"``).
    on_epoch : callable, optional
        Called with the :class:`ExpertState` after every completed epoch (e.g. to write a
        checkpoint). Building the state copies the parameters and optimizer state to the CPU.
    start : ExpertState, optional
        Resume from this state (as passed to ``on_epoch``); the result is bit-identical to
        an uninterrupted run on the same machine and device.
    zca : ZCA, optional
        With ``config.zca``: the whitening fitted on ``data.images_train`` with regularisation
        0.1, reused instead of fitted again (checked: shape, regularisation, mean); ignored
        otherwise.

    Returns
    -------
    Trajectory
        ``snapshots`` ``(epochs + 1, P)`` float32 plus per-epoch train loss and test accuracy.
    """
    if not isinstance(config, ExpertConfig):
        raise TypeError(f"config must be an ExpertConfig; got {type(config).__name__}")
    device = resolve_device(device)
    net = build_expert_model(data, config, seed=derive_seed(seed, "init")).to(device)
    layout = ParamLayout.of(net)
    generator = make_generator(derive_seed(seed, "data"))
    optimizer = ScheduledOptimizer(net.parameters(), config.optimizer)  # rebuilt at milestones if the config says so
    augment, mix = training_augmentation(config.augmentation) if config.dsa else (None, None)
    images_train, labels_train, images_test, labels_test = prepare_expert_data(data, config, device, zca)

    snapshots = torch.empty(config.epochs + 1, layout.numel, dtype=torch.float32)
    if start is None:
        first, train_loss, test_accuracy = 0, [], []
        snapshots[0] = flatten_params(net).to("cpu", torch.float32)
    else:
        if not 0 <= start.epoch <= config.epochs:
            raise ValueError(f"start.epoch={start.epoch}: expected in [0, {config.epochs}]")
        if start.snapshots.shape != (start.epoch + 1, layout.numel):
            raise ValueError(
                f"start.snapshots has shape {tuple(start.snapshots.shape)}; expected ({start.epoch + 1}, "
                f"{layout.numel}) for {config.arch} at epoch {start.epoch}"
            )
        net.load_state_dict(start.model_state)
        optimizer.load_state_dict(scheduled_optimizer_state(start))
        generator.set_state(start.generator_state)
        first, train_loss, test_accuracy = start.epoch, list(start.train_loss), list(start.test_accuracy)
        snapshots[: first + 1] = start.snapshots.to(torch.float32)

    for epoch in range(first, config.epochs):
        loss = train_epoch(
            net, optimizer.optimizer, images_train, labels_train, batch_size=config.batch_size,
            generator=generator, augment=augment, loss_hook=loss_hook, epoch=epoch, mix=mix,
            precision=config.precision,
        )
        optimizer.epoch_done()
        snapshots[epoch + 1] = flatten_params(net).to("cpu", torch.float32)
        train_loss.append(float(loss))
        test_accuracy.append(float(accuracy(net, images_test, labels_test, precision=config.precision)))
        if on_epoch is not None:
            schedule = cpu_copy(optimizer.state_dict())
            on_epoch(ExpertState(
                epoch=epoch + 1,
                model_state=cpu_copy(net.state_dict()),
                optimizer_state=schedule.pop("optimizer"),
                scheduler_state=schedule,
                generator_state=generator.get_state(),
                snapshots=snapshots[: epoch + 2].clone(),
                train_loss=list(train_loss),
                test_accuracy=list(test_accuracy),
            ))
    return Trajectory(snapshots=snapshots, layout=layout, train_loss=train_loss,
                      test_accuracy=test_accuracy, seed=seed)
