"""Train ``R`` networks of one architecture together, with stacked parameters and ``torch.func``.

The evaluation protocol trains ``num_eval`` fresh networks on the same (small) set. Here
they are trained as one: every parameter is stored once as a stacked tensor ``(R, ...)``
(network ``r`` in row ``r``), and one ``vmap(grad_and_value(loss))`` over
``torch.func.functional_call`` computes the ``R`` losses and gradients of a step in a
single forward/backward.

The result equals :func:`ddlib.core.train.train_epoch` run on each network separately, up to
floating-point rounding (the batched convolutions sum in another order):

* network ``r`` draws its shuffle and its DSA parameters from its own generator, with the
  same calls in the same order as ``train_epoch`` (one ``randperm`` per epoch, then one
  ``augment(batch, generator)`` per mini-batch), so every generator yields the same
  sequence as in a sequential run;
* :class:`StackedSGD` is PyTorch's ``SGD`` (momentum, weight decay, no dampening or
  Nesterov) applied to the stacked tensors, with ``MultiStepLR``'s per-epoch decay, or
  :class:`ddlib.core.train.ScheduledOptimizer`'s rebuild at milestones (AST's evaluation);
* with a ``mix`` (TGDD's CutMix) each network mixes its own batch from its own generator
  and the loss is ``lam * CE(a) + (1 - lam) * CE(b)`` with that network's ``lam``.

Only networks whose forward pass is a pure function of parameters and input can be
stacked: modules with buffers (batch norm running statistics), batch norm itself, dropout
or frozen parameters are rejected by :func:`batching_unsupported`, and callers fall back
to sequential training.

Speed: the vmapped convolutions become grouped convolutions and the batching rules of
group norm and pooling add layout copies and elementwise passes. On a 2-core CPU this
made a step 1.5-2.5x *slower* than training the networks one by one (ConvNet widths
16-128, 5 networks); the gain is expected where per-step launch overhead dominates,
i.e. on GPUs (not measured here).
"""
from __future__ import annotations

import collections
import math
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from ddlib.core.precision import autocast
from ddlib.core.train import OptimizerConfig

__all__ = [
    "batching_unsupported", "stack_params", "unstack_params", "StackedSGD", "batched_train_epoch",
    "batched_accuracy",
]


def batching_unsupported(module: nn.Module) -> str | None:
    """Why ``module`` cannot be trained in batched mode, or ``None`` if it can.

    Batched training needs a forward pass that depends only on the parameters and the
    input: no batch norm (running statistics, batch-coupled training), no dropout (it
    would draw from the global RNG), no other buffers and no frozen parameters.

    Returns
    -------
    str or None
        A human-readable reason naming the offending submodule or tensor.
    """
    for name, sub in module.named_modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            return f"{name or 'the model'} is {type(sub).__name__} (batch norm keeps running statistics)"
        if isinstance(sub, nn.modules.dropout._DropoutNd):
            return f"{name or 'the model'} is {type(sub).__name__} (dropout draws from the global RNG)"
    buffers = [name for name, _ in module.named_buffers()]
    if buffers:
        return f"the model has buffers {buffers}"
    frozen = [name for name, p in module.named_parameters() if not p.requires_grad]
    if frozen:
        return f"the model has frozen parameters {frozen}"
    return None


def stack_params(modules: Sequence[nn.Module]) -> dict[str, Tensor]:
    """Stack the parameters of ``R`` modules of one architecture.

    Parameters
    ----------
    modules : sequence of nn.Module
        ``R >= 1`` modules with the same parameter names and shapes.

    Returns
    -------
    dict of str to Tensor
        One fresh tensor ``(R, *shape)`` per parameter name, in ``named_parameters()``
        order, detached (it shares no storage with the modules).

    Raises
    ------
    ValueError
        If ``modules`` is empty or the modules differ in parameter names or shapes.
    """
    if not modules:
        raise ValueError("stack_params needs at least one module")
    per_module = [dict(m.named_parameters()) for m in modules]
    reference = {name: tuple(p.shape) for name, p in per_module[0].items()}
    for r, params in enumerate(per_module[1:], start=1):
        shapes = {name: tuple(p.shape) for name, p in params.items()}
        if shapes != reference:
            raise ValueError(f"module {r} has parameters {shapes}; module 0 has {reference}")
    return {name: torch.stack([params[name].detach() for params in per_module]) for name in reference}


@torch.no_grad()
def unstack_params(params: Mapping[str, Tensor], modules: Sequence[nn.Module]) -> None:
    """Copy row ``r`` of every stacked tensor ``(R, ...)`` into ``modules[r]`` in place."""
    for r, module in enumerate(modules):
        own = dict(module.named_parameters())
        for name, value in params.items():
            own[name].copy_(value[r])


class StackedSGD:
    """PyTorch ``SGD`` + ``MultiStepLR`` on stacked parameters ``(R, ...)``, updated in place.

    Per tensor, as ``torch.optim.SGD`` (no dampening, no Nesterov): ``d = g + wd * p``;
    ``buf = d`` at the first step, then ``buf = momentum * buf + d``; ``p -= lr * buf``.
    :meth:`epoch_done` is ``MultiStepLR.step()``: after finished epoch ``e`` listed ``k``
    times in ``milestones``, ``lr *= lr_factor ** k``. With ``restart_at_milestones`` it is
    :class:`ddlib.core.train.ScheduledOptimizer`'s rebuild instead: at a milestone the momentum
    buffers are dropped, the lr becomes ``config.lr_after(e)`` and the momentum
    ``momentum_after_restart`` (when set).

    Parameters
    ----------
    params : dict of str to Tensor
        Stacked parameters ``(R, ...)``, updated in place by :meth:`step`.
    config : OptimizerConfig
        ``kind`` ``"sgd"`` (momentum ignored) or ``"momentum"``; ``"adam"`` is not supported.
    """

    def __init__(self, params: dict[str, Tensor], config: OptimizerConfig) -> None:
        if config.kind not in ("sgd", "momentum"):
            raise ValueError(f"StackedSGD supports kind 'sgd' or 'momentum'; got {config.kind!r}")
        self.params, self.config = params, config
        self.momentum = config.momentum if config.kind == "momentum" else 0.0
        self.weight_decay = config.weight_decay
        self.gamma = config.lr_factor
        self.milestones = collections.Counter(config.milestones)
        self.buffers: dict[str, Tensor] = {}
        self.epochs_done = 0
        self.lr = float(config.lr)
        if 0 in self.milestones and not config.restart_at_milestones:  # MultiStepLR's construction step
            self.lr = self.lr * self.gamma ** self.milestones[0]

    @torch.no_grad()
    def step(self, grads: Mapping[str, Tensor]) -> None:
        """Apply one update with gradients ``grads`` (same names and shapes ``(R, ...)``)."""
        for name, p in self.params.items():
            d = grads[name]
            if self.weight_decay != 0:
                d = d.add(p, alpha=self.weight_decay)
            if self.momentum != 0:
                buf = self.buffers.get(name)
                if buf is None:
                    buf = self.buffers[name] = d.detach().clone()
                else:
                    buf.mul_(self.momentum).add_(d)
                d = buf
            p.add_(d, alpha=-self.lr)

    def epoch_done(self) -> None:
        """Advance the schedule by one epoch (``MultiStepLR.step()``, or the rebuild at a milestone)."""
        self.epochs_done += 1
        if self.epochs_done not in self.milestones:
            return
        if self.config.restart_at_milestones:  # as ScheduledOptimizer: a fresh SGD, momentum buffers at zero
            self.buffers.clear()
            self.lr = self.config.lr_after(self.epochs_done)
            if self.config.momentum_after_restart is not None:
                self.momentum = self.config.momentum_after_restart
        else:
            self.lr = self.lr * self.gamma ** self.milestones[self.epochs_done]


def _grad_fn(module: nn.Module) -> Callable[[dict[str, Tensor], Tensor, Tensor], tuple[dict[str, Tensor], Tensor]]:
    """``(params (R, ...), x (R, B, C, H, W), y (R, B)) -> (grads (R, ...), losses (R,))``."""

    def loss(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(module, params, (x,)), y)

    return vmap(grad_and_value(loss))


def _mixed_grad_fn(module: nn.Module) -> Callable[..., tuple[dict[str, Tensor], Tensor]]:
    """``(params, x, y_a (R, B), y_b (R, B), lam (R,)) -> (grads, losses)`` of the CutMix loss."""

    def loss(params: dict[str, Tensor], x: Tensor, y_a: Tensor, y_b: Tensor, lam: Tensor) -> Tensor:
        logits = functional_call(module, params, (x,))
        return lam * F.cross_entropy(logits, y_a) + (1.0 - lam) * F.cross_entropy(logits, y_b)

    return vmap(grad_and_value(loss))


def batched_train_epoch(
    module: nn.Module,
    params: dict[str, Tensor],
    optimizer: StackedSGD,
    images: Tensor,
    labels: Tensor,
    *,
    batch_size: int,
    generators: Sequence[torch.Generator],
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    epoch: int = 0,
    mix: Callable[[Tensor, Tensor, torch.Generator], tuple[Tensor, Tensor, Tensor, float]] | None = None,
    precision: str = "fp32",
) -> list[float]:
    """Train ``R`` stacked networks for one epoch, each as :func:`ddlib.core.train.train_epoch` would.

    Parameters
    ----------
    module : nn.Module
        Template of the architecture (its own parameter values are not used); put in
        training mode. Must pass :func:`batching_unsupported`.
    params : dict of str to Tensor
        Stacked parameters ``(R, ...)`` (see :func:`stack_params`), updated in place.
    optimizer : StackedSGD
        Optimizer over ``params``. Its schedule is not advanced: call
        :meth:`StackedSGD.epoch_done` after the epoch, like ``scheduler.step()``.
    images : Tensor
        ``(N, C, H, W)``, shared by all networks, on the parameters' device.
    labels : Tensor
        ``(N,)`` int64.
    batch_size : int
        Mini-batch size of every network (the last batch may be smaller).
    generators : sequence of torch.Generator
        ``R`` CPU generators, network ``r`` drawing its shuffle and augmentation from
        ``generators[r]``.
    augment : callable, optional
        ``augment(batch, generator) -> batch`` (per-sample DSA), or ``None``.
    epoch : int
        Zero-based epoch, for error messages.
    mix : callable, optional
        ``mix(batch, labels, generator) -> (images, labels_a, labels_b, lam)`` after the
        augmentation, per network (see :func:`ddlib.core.train.train_epoch`).
    precision : {"fp32", "bf16"}
        ``"bf16"``: forward and backward under bfloat16 autocast (cross-entropy and the
        stacked parameters stay float32), as :func:`ddlib.core.train.train_epoch`.

    Returns
    -------
    list of float
        Mean training loss over the epoch's samples, per network (length ``R``).

    Raises
    ------
    FloatingPointError
        If a network's loss becomes non-finite (naming the network).
    """
    num = len(generators)
    rows = {int(p.shape[0]) for p in params.values()}
    if rows != {num}:
        raise ValueError(f"{len(generators)} generators for stacked parameters with {sorted(rows)} rows")
    module.train()
    step = _grad_fn(module) if mix is None else _mixed_grad_fn(module)
    orders = [torch.randperm(len(images), generator=g).to(images.device) for g in generators]
    totals, count = [0.0] * num, 0
    for start in range(0, len(images), batch_size):
        batches, targets, targets_b, lams = [], [], [], []
        for order, generator in zip(orders, generators):
            index = order[start : start + batch_size]
            raw, target = images[index], labels[index]
            batch = augment(raw, generator) if augment is not None else raw
            if mix is not None:  # same draws, same order as train_epoch
                batch, target, target_b, lam = mix(batch, target, generator)
                targets_b.append(target_b)
                lams.append(lam)
            batches.append(batch)
            targets.append(target)
        with autocast(precision, images.device):
            if mix is None:
                grads, losses = step(params, torch.stack(batches), torch.stack(targets))
            else:
                lam = torch.tensor(lams, dtype=images.dtype, device=images.device)
                grads, losses = step(params, torch.stack(batches), torch.stack(targets), torch.stack(targets_b), lam)
        values = losses.tolist()
        bad = [r for r, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(f"training loss of network {bad[0]} became {values[bad[0]]} at epoch {epoch}, "
                                     f"batch starting at {start}")
        optimizer.step(grads)
        size = len(targets[0])
        totals = [t + v * size for t, v in zip(totals, values)]
        count += size
    return [t / max(count, 1) for t in totals]


@torch.no_grad()
def batched_accuracy(
    module: nn.Module, params: Mapping[str, Tensor], images: Tensor, labels: Tensor, batch_size: int = 1024,
    precision: str = "fp32",
) -> list[float]:
    """Top-1 accuracy of each stacked network (eval mode), as :func:`ddlib.core.train.accuracy`.

    Parameters
    ----------
    module : nn.Module
        Template of the architecture (its training mode is restored afterwards).
    params : mapping of str to Tensor
        Stacked parameters ``(R, ...)``.
    images : Tensor
        ``(N, C, H, W)`` test images, shared by all networks.
    labels : Tensor
        ``(N,)`` int64.
    batch_size : int
        Images per forward summed over the networks: chunks of ``max(1, batch_size // R)``
        images go through all ``R`` networks at once, bounding memory as in ``accuracy``.
    precision : {"fp32", "bf16"}
        ``"bf16"``: the forward passes under bfloat16 autocast (:mod:`ddlib.core.precision`).

    Returns
    -------
    list of float
        Accuracy in ``[0, 1]`` per network (length ``R``).
    """
    num = int(next(iter(params.values())).shape[0])
    chunk = max(1, batch_size // num)
    predict = vmap(lambda p, x: functional_call(module, p, (x,)).argmax(-1), in_dims=(0, None))
    was_training = module.training
    module.eval()
    try:
        correct = torch.zeros(num, dtype=torch.int64, device=labels.device)
        for start in range(0, len(images), chunk):
            with autocast(precision, images.device):
                predicted = predict(dict(params), images[start : start + chunk])  # (R, chunk)
            correct += (predicted == labels[start : start + chunk]).sum(1)
    finally:
        module.train(was_training)
    return [c / max(len(images), 1) for c in correct.tolist()]
