"""Helpers shared by several test modules.

Imported as ``from helpers import ...``: the folder ``tests`` has no ``__init__.py``, so pytest
puts it on ``sys.path`` when it collects the tests.
"""
from __future__ import annotations

import dataclasses
import os

import pytest
import torch

import ddlib
from ddlib.data.dataset import ImageDataset
from ddlib.methods.distill_loop import NonFiniteLoss, run_distillation
from ddlib.trajectories.experts import ExpertConfig
from ddlib.trajectories.trajectory_store import TrajectoryStore, generate_experts

# Experts that train in a blink: width-8 ConvNet, 4 epochs of two 30-image batches, no DSA.
TINY_EXPERTS = ExpertConfig(width=8, epochs=4, batch_size=30, dsa=False)


def small_digits(num_train: int = 60, num_test: int = 40) -> ImageDataset:
    """The digits data set cut to its first ``num_train`` training and ``num_test`` test images.

    Parameters
    ----------
    num_train, num_test : int
        How many training and test images to keep.

    Returns
    -------
    ImageDataset
        A copy of ``ddlib.load_dataset("digits")`` with the shortened splits.
    """
    full = ddlib.load_dataset("digits")
    return dataclasses.replace(full, images_train=full.images_train[:num_train],
                               labels_train=full.labels_train[:num_train],
                               images_test=full.images_test[:num_test], labels_test=full.labels_test[:num_test])


def tiny_store(root: str | os.PathLike, data: ImageDataset, num_experts: int) -> TrajectoryStore:
    """Train ``num_experts`` :data:`TINY_EXPERTS` experts (seed 3) on ``data`` into a store at ``root``.

    Parameters
    ----------
    root : path-like
        Folder of the new trajectory store.
    data : ImageDataset
        Training data (small, e.g. :func:`small_digits`).
    num_experts : int
        How many experts to train.

    Returns
    -------
    TrajectoryStore
        The store :func:`ddlib.trajectories.trajectory_store.generate_experts` wrote.
    """
    return generate_experts(root, data, TINY_EXPERTS, num_experts, 3, progress=False)


class Interrupting:
    """Delegates to a distiller and raises KeyboardInterrupt at ``stop_at``.

    Parameters
    ----------
    method
        The distiller whose ``step`` and attributes are passed through.
    stop_at : int
        The iteration whose ``step`` raises ``KeyboardInterrupt`` instead of running.
    """

    def __init__(self, method, stop_at: int) -> None:
        self.method, self.stop_at = method, stop_at

    def step(self, iteration):
        if iteration == self.stop_at:
            raise KeyboardInterrupt
        return self.method.step(iteration)

    def __getattr__(self, name):
        return getattr(self.method, name)


def check_nan_loss_guard(method, monkeypatch, module, loss: str, param: str):
    """Check that a NaN loss raises before ``method`` updates its images, and stops the loop.

    Steps ``method`` once, then makes ``module.<loss>`` return NaN: the next step must raise
    :class:`~ddlib.methods.distill_loop.NonFiniteLoss` leaving ``method.<param>`` and its momentum
    buffer in ``method.opt_img`` untouched, and a distillation loop must stop at once.

    Parameters
    ----------
    method
        A fresh distiller with ``step``, ``opt_img`` (SGD with momentum) and ``param``.
    monkeypatch : pytest.MonkeyPatch
        The test's ``monkeypatch`` fixture.
    module : module
        The module whose loss function ``step`` looks up.
    loss : str
        Name of that loss function in ``module``.
    param : str
        Attribute of ``method`` holding the optimised images.

    Returns
    -------
    before : torch.Tensor
        ``method.<param>`` after the first step.
    result : ddlib.methods.distill_loop.DistillResult
        What :func:`~ddlib.methods.distill_loop.run_distillation` returned after the failure.
    """
    method.step(0)
    before = getattr(method, param).detach().clone()
    momentum = method.opt_img.state[getattr(method, param)]["momentum_buffer"].clone()
    monkeypatch.setattr(module, loss, lambda *a, **k: torch.tensor(float("nan")))
    with pytest.raises(NonFiniteLoss):
        method.step(1)
    assert torch.equal(getattr(method, param).detach(), before)
    assert torch.equal(method.opt_img.state[getattr(method, param)]["momentum_buffer"], momentum)
    result = run_distillation(method, progress=False)  # the config's iterations; the first step stops it
    assert result.iterations_done == 0 and "stopped" in result.stopped_reason
    return before, result
