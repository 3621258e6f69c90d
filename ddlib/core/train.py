"""The one training loop: expert training and the evaluation protocol both use it.

A network is trained for one epoch on in-memory tensors with mini-batches drawn from an
explicit ``torch.Generator``, optional per-sample DSA augmentation and a pluggable loss
(``loss_hook``) so AST's clipped loss and gradient penalty plug in without copying the
loop.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ddlib.core.config import Config
from ddlib.core.precision import autocast

__all__ = [
    "OptimizerConfig", "LossHook", "cross_entropy_hook", "make_optimizer", "make_scheduler", "ScheduledOptimizer",
    "train_epoch", "accuracy",
]


class LossHook(Protocol):
    """Computes the training loss of one mini-batch.

    Parameters
    ----------
    net : nn.Module
        The network being trained (call it on ``images``).
    images : torch.Tensor
        Augmented mini-batch ``(B, C, H, W)``.
    labels : torch.Tensor
        ``(B,)`` int64.
    epoch : int
        Zero-based epoch being trained (for loss schedules).
    raw_images : torch.Tensor
        The same mini-batch before augmentation (for input-gradient penalties).
    """

    def __call__(self, net: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epoch: int,
                 raw_images: torch.Tensor) -> torch.Tensor: ...


def cross_entropy_hook(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epoch: int,
                       raw_images: torch.Tensor) -> torch.Tensor:
    """Plain cross-entropy, the default loss of experts and evaluation."""
    return F.cross_entropy(net(images), labels)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig(Config):
    """Optimizer and step schedule of a training run.

    ``kind``: ``"sgd"`` (plain, MTT's experts), ``"momentum"`` (SGD with momentum,
    AST's experts and the evaluation protocol), ``"adam"``. ``milestones`` are numbers of
    finished epochs after which the lr is multiplied by ``lr_factor``.

    ``restart_at_milestones=True`` rebuilds the optimizer at each milestone instead of
    scaling the lr of the running one, so the momentum buffers start from zero again (the
    AST code rebuilds its SGD after the lr decay, for experts and for evaluation);
    ``momentum_after_restart`` is the rebuilt optimizer's momentum (AST evaluation: 0.8;
    ``None``: unchanged). Use :class:`ScheduledOptimizer` to drive either kind.
    """

    #: ``"sgd"`` (plain, MTT's experts; default), ``"momentum"`` (AST's experts, the evaluation protocol) or ``"adam"``.
    kind: Literal["sgd", "momentum", "adam"] = "sgd"
    #: Initial learning rate (MTT's experts: 0.01).
    lr: float = 0.01
    #: Momentum, used by ``kind="momentum"`` only (AST's experts and the evaluation protocols: 0.9).
    momentum: float = 0.9
    #: Weight decay (MTT's experts: none).
    weight_decay: float = 0.0
    #: Numbers of finished epochs after which the lr is multiplied by ``lr_factor`` (MTT's experts: none).
    milestones: tuple[int, ...] = ()
    #: Factor applied to the lr at each milestone (the evaluation protocols of DC/MTT/AST code and AST's experts: 0.1).
    lr_factor: float = 0.1
    #: Rebuild the optimizer at each milestone, momentum buffers from zero (AST code: SGD rebuilt at the decay).
    restart_at_milestones: bool = False
    #: Momentum of the rebuilt optimizer; ``None``: unchanged (AST evaluation code: 0.8 after the decay).
    momentum_after_restart: float | None = None

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr}: expected > 0")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum={self.momentum}: expected in [0, 1)")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay}: expected >= 0")
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones={self.milestones}: expected increasing epochs")
        if self.momentum_after_restart is not None:
            if not self.restart_at_milestones:
                raise ValueError(f"momentum_after_restart={self.momentum_after_restart} needs "
                                 "restart_at_milestones=True (only a rebuilt optimizer changes its momentum)")
            if not 0 <= self.momentum_after_restart < 1:
                raise ValueError(f"momentum_after_restart={self.momentum_after_restart}: expected in [0, 1)")

    def lr_after(self, finished_epochs: int, lr: float | None = None) -> float:
        """The lr in force once ``finished_epochs`` epochs are done (``lr`` overrides ``self.lr``)."""
        base = self.lr if lr is None else float(lr)
        return base * self.lr_factor ** sum(1 for m in self.milestones if m <= finished_epochs)


def make_optimizer(params, config: OptimizerConfig, lr: float | None = None,
                   momentum: float | None = None) -> torch.optim.Optimizer:
    """Build the optimizer ``config`` describes (``lr``/``momentum`` override ``config``'s)."""
    lr = config.lr if lr is None else float(lr)
    if config.kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=config.weight_decay)
    if momentum is None:
        momentum = config.momentum if config.kind == "momentum" else 0.0
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: OptimizerConfig):
    """Per-epoch multi-step schedule (call ``step()`` once after every epoch)."""
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones), gamma=config.lr_factor)


class ScheduledOptimizer:
    """An optimizer with its per-epoch lr schedule, rebuilt at milestones when the config says so.

    Call :meth:`epoch_done` once after every epoch. Without ``restart_at_milestones`` this
    is ``make_optimizer`` + ``MultiStepLR``; with it, the optimizer is rebuilt after each
    milestone with the decayed lr (and ``momentum_after_restart``), as the AST code does.
    Read the ``optimizer`` attribute afresh every epoch: it is replaced at a restart.

    Parameters
    ----------
    params : iterable of Tensor
        The parameters (kept, so the optimizer can be rebuilt).
    config : OptimizerConfig
    lr : float, optional
        Overrides ``config.lr`` (the evaluation protocol's learned ``syn_lr``).
    """

    def __init__(self, params, config: OptimizerConfig, lr: float | None = None) -> None:
        self.params, self.config = list(params), config
        self.base_lr = config.lr if lr is None else float(lr)
        self.finished_epochs = 0
        self.optimizer = make_optimizer(self.params, config, self.base_lr)
        self._scheduler = None if config.restart_at_milestones else make_scheduler(self.optimizer, config)

    def epoch_done(self) -> None:
        """Advance the schedule by one finished epoch (rebuild at a milestone when restarting)."""
        self.finished_epochs += 1
        if self._scheduler is not None:
            self._scheduler.step()
        elif self.finished_epochs in self.config.milestones:
            momentum = self.config.momentum_after_restart
            self.optimizer = make_optimizer(self.params, self.config,
                                            self.config.lr_after(self.finished_epochs, self.base_lr), momentum)

    @property
    def lr(self) -> float:
        """The lr of the running optimizer."""
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        """Optimizer and schedule state (plain dict of tensors and numbers)."""
        return {"finished_epochs": self.finished_epochs, "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self._scheduler is None else self._scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (rebuilding the optimizer of the saved phase first)."""
        self.finished_epochs = int(state["finished_epochs"])
        if self._scheduler is None:
            passed = [m for m in self.config.milestones if m <= self.finished_epochs]
            momentum = self.config.momentum_after_restart if passed else None
            self.optimizer = make_optimizer(self.params, self.config,
                                            self.config.lr_after(self.finished_epochs, self.base_lr), momentum)
        self.optimizer.load_state_dict(state["optimizer"])
        if self._scheduler is not None:
            self._scheduler.load_state_dict(state["scheduler"])


def train_epoch(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    loss_hook: LossHook = cross_entropy_hook,
    epoch: int = 0,
    mix: Callable[[torch.Tensor, torch.Tensor, torch.Generator],
                  tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]] | None = None,
    precision: str = "fp32",
) -> float:
    """Train ``net`` for one epoch over ``images`` in shuffled mini-batches.

    Parameters
    ----------
    images : torch.Tensor
        ``(N, C, H, W)``, on the network's device.
    labels : torch.Tensor
        ``(N,)`` int64.
    generator : torch.Generator
        CPU generator for the shuffle and the augmentation parameters.
    augment : callable, optional
        ``augment(batch, generator) -> batch`` (per-sample DSA), or ``None``.
    mix : callable, optional
        Label mixing after the augmentation (TGDD's CutMix, :class:`ddlib.data.cutmix.CutMix`):
        ``mix(batch, labels, generator) -> (images, labels_a, labels_b, lam)``; the loss is
        ``lam * CE(net(images), labels_a) + (1 - lam) * CE(net(images), labels_b)``, and
        ``loss_hook`` when the batch is left unmixed (``lam == 1``). Only with the default
        cross-entropy ``loss_hook``.
    precision : {"fp32", "bf16"}
        ``"bf16"``: the loss (forward pass) runs under bfloat16 autocast
        (:func:`ddlib.core.precision.autocast`); autocast computes the cross-entropy in
        float32 and the parameters, gradients and optimizer stay float32.

    Returns
    -------
    float
        Mean training loss over the epoch's samples.

    Raises
    ------
    ValueError
        If ``mix`` is combined with another ``loss_hook`` (a mixed loss needs both label sets).
    FloatingPointError
        If the loss becomes non-finite.
    """
    if mix is not None and loss_hook is not cross_entropy_hook:
        raise ValueError(f"mix={mix!r} needs the cross-entropy loss; got loss_hook={loss_hook!r} "
                         "(pass mix=None, or the default loss_hook)")
    net.train()
    order = torch.randperm(len(images), generator=generator).to(images.device)
    total, count = 0.0, 0
    for start in range(0, len(images), batch_size):
        index = order[start : start + batch_size]
        raw, target = images[index], labels[index]
        batch = augment(raw, generator) if augment is not None else raw
        lam = 1.0
        if mix is not None:
            batch, target, target_b, lam = mix(batch, target, generator)
        with autocast(precision, images.device):
            if lam == 1.0:  # unmixed: exactly the plain loss
                loss = loss_hook(net, batch, target, epoch=epoch, raw_images=raw)
            else:
                logits = net(batch)
                loss = lam * F.cross_entropy(logits, target) + (1.0 - lam) * F.cross_entropy(logits, target_b)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at epoch {epoch}, batch starting at {start}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(index)
        count += len(index)
    return total / max(count, 1)


@torch.no_grad()
def accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256,
             precision: str = "fp32") -> float:
    """Top-1 accuracy of ``net`` (eval mode) on ``images`` ``(N, C, H, W)``, in ``[0, 1]``.

    ``precision="bf16"`` runs the forward passes under bfloat16 autocast (:mod:`ddlib.core.precision`).
    """
    # 256 rather than 1024: on the CPU the activations of 1024 images overflow the cache and a test pass
    # of the mini-scale ConvNet takes 3x as long (0.31 s vs 0.10 s on 1,000 MNIST images, one thread).
    was_training = net.training
    net.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        with autocast(precision, images.device):
            logits = net(images[start : start + batch_size])
        correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    net.train(was_training)
    return correct / max(len(images), 1)
