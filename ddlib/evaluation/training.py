"""How the evaluation protocol trains its ``num_eval`` networks: one after another or together.

:func:`train_sequential` trains each network with :func:`ddlib.core.train.train_epoch` (as the
reference code does), optionally through ``torch.compile``; :func:`train_batched` trains
all of them at once with stacked parameters (:mod:`ddlib.evaluation.batched`). Both return the
last accuracy, the best accuracy over the test points and the epoch it was reached, per
network. :mod:`ddlib.evaluation.runner` picks the loop and builds the networks.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn

from ddlib.evaluation.batched import StackedSGD, batched_accuracy, batched_train_epoch, stack_params, unstack_params
from ddlib.core.compiled import maybe_compile
from ddlib.core.train import OptimizerConfig, ScheduledOptimizer, accuracy, train_epoch

if TYPE_CHECKING:  # the config is only annotated here
    from ddlib.evaluation.protocols import EvalConfig

__all__ = ["train_sequential", "train_batched"]

Accuracies = tuple[list[float], list[float], list[int]]


def train_sequential(nets: list[nn.Module], images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor,
                     test_labels: torch.Tensor, generators: list[torch.Generator], *,
                     augment: Callable | None, opt_config: OptimizerConfig, config: "EvalConfig", test_points: set[int],
                     device: torch.device, bar: Any, mix: Callable | None = None) -> Accuracies:
    """The protocol's training loop, one network after another.

    Parameters
    ----------
    nets : list of nn.Module
        Freshly initialised networks, trained in place.
    images, labels : Tensor (N, C, H, W), Tensor (N,)
        Training set on ``device``.
    test_images, test_labels : Tensor (N_test, C, H, W), Tensor (N_test,)
    generators : list of torch.Generator
        One per network: its batches and augmentations.
    augment : callable or None
        ``augment(batch, generator)`` (DSA, or TGDD's per-sample DiffAug).
    opt_config : OptimizerConfig
        Driven by :class:`ddlib.core.train.ScheduledOptimizer` (so AST's rebuild at the decay applies).
    config : EvalConfig
        Reads ``epochs``, ``batch_size``, ``precision`` and ``compile`` (each network's forward goes
        through ``torch.compile``; the compiled graphs are reused by the next network).
    test_points : set of int
        Numbers of finished epochs after which the networks are tested.
    device : torch.device
    bar : tqdm
        Advanced by one per network and epoch.
    mix : callable or None
        ``mix(batch, labels, generator)`` after ``augment`` (TGDD's CutMix), see
        :func:`ddlib.core.train.train_epoch`.

    Returns
    -------
    (list of float, list of float, list of int)
        Last accuracy, best accuracy and the epoch of the best, per network.
    """
    last, best, best_epoch = [], [], []
    for run, (net, generator) in enumerate(zip(nets, generators)):
        model = maybe_compile(net, config.compile, device)
        optimizer = ScheduledOptimizer(net.parameters(), opt_config)
        top, top_epoch = -1.0, 0
        for epoch in range(config.epochs):
            loss = train_epoch(model, optimizer.optimizer, images, labels, batch_size=config.batch_size,
                               generator=generator, augment=augment, epoch=epoch, mix=mix,
                               precision=config.precision)
            optimizer.epoch_done()  # may rebuild the optimizer (AST): read .optimizer afresh every epoch
            if epoch + 1 in test_points:
                acc = accuracy(model, test_images, test_labels, precision=config.precision)
                if acc > top:  # strict: the earliest epoch wins a tie
                    top, top_epoch = acc, epoch + 1
                bar.set_postfix(run=run, loss=f"{loss:.3f}", acc=f"{acc:.3f}")
            bar.update(1)
        last.append(acc)
        best.append(top)
        best_epoch.append(top_epoch)
    return last, best, best_epoch


def train_batched(nets: list[nn.Module], images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor,
                  test_labels: torch.Tensor, generators: list[torch.Generator], *,
                  augment: Callable | None, opt_config: OptimizerConfig, config: "EvalConfig", test_points: set[int],
                  device: torch.device, bar: Any, mix: Callable | None = None) -> Accuracies:
    """The same loop for all ``nets`` at once (stacked parameters, see :mod:`ddlib.evaluation.batched`).

    Takes the arguments of :func:`train_sequential` (``config.compile`` is not used) and
    leaves the trained weights in ``nets``; equal to it per network up to rounding.
    """
    template, params = nets[0], stack_params(nets)
    optimizer = StackedSGD(params, opt_config)
    num = len(nets)
    top, top_epoch, accs = [-1.0] * num, [0] * num, [0.0] * num
    for epoch in range(config.epochs):
        losses = batched_train_epoch(template, params, optimizer, images, labels, batch_size=config.batch_size,
                                     generators=generators, augment=augment, epoch=epoch, mix=mix,
                                     precision=config.precision)
        optimizer.epoch_done()
        if epoch + 1 in test_points:
            accs = batched_accuracy(template, params, test_images, test_labels, precision=config.precision)
            for r, acc in enumerate(accs):
                if acc > top[r]:  # strict: the earliest epoch wins a tie
                    top[r], top_epoch[r] = acc, epoch + 1
            bar.set_postfix(runs=num, loss=f"{np.mean(losses):.3f}", acc=f"{np.mean(accs):.3f}")
        bar.update(num)
    unstack_params(params, nets)  # leave the trained weights in the networks, as the sequential loop does
    return list(accs), top, top_epoch
