"""Tests of batched evaluation (ddlib.evaluation.batched): equal per network to sequential training."""
from __future__ import annotations

import logging
import time

import pytest
import torch

import ddlib
import ddlib.evaluation.training as eval_training
import ddlib.evaluation.runner as evaluation
from ddlib.evaluation.batched import (StackedSGD, batched_accuracy, batched_train_epoch, batching_unsupported,
                                 stack_params, unstack_params)
from ddlib.methods.coresets import random_coreset
from ddlib.data.augment import DSA
from ddlib.evaluation.runner import EvalConfig, evaluate_synthetic
from ddlib.models import build_model
from ddlib.core.runtime import derive_seed, make_generator
from ddlib.core.train import OptimizerConfig, accuracy, make_optimizer, make_scheduler, train_epoch

# The tiny float64 problem: ConvNet width 4 on 1x8x8, 3 classes, 6 images, batch 4 (an uneven last batch).
TINY = EvalConfig(epochs=5, num_eval=3, width=4, batch_size=4, dsa=True, test_every=2, lr=0.05, batched=True)


def _tiny_data(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(6, 1, 8, 8, generator=g, dtype=dtype)
    test_images = torch.randn(60, 1, 8, 8, generator=g, dtype=dtype)
    return images, torch.arange(3).repeat(2), test_images, torch.randint(0, 3, (60,), generator=g)


def _run(monkeypatch, config, data, built):
    """``_run_protocol`` on tensors, recording the networks it builds (trained in place) in ``built``."""
    build = evaluation._build_net

    def recording_build(*args, **kwargs):
        built.append(build(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(evaluation, "_build_net", recording_build)
    images, labels, test_images, test_labels = data
    return evaluation._run_protocol(images, labels, test_images, test_labels, num_classes=3, lr=config.lr,
                                    config=config, seed=7, device=torch.device("cpu"), progress=False, desc="")


def test_stacked_sgd_matches_torch_sgd_and_multistep_lr():
    g = torch.Generator().manual_seed(0)
    config = OptimizerConfig(kind="momentum", lr=0.1, momentum=0.9, weight_decay=5e-4, milestones=(0, 2, 2),
                             lr_factor=0.5)
    stacked = {"w": torch.randn(3, 4, 5, generator=g, dtype=torch.float64)}
    singles = [torch.nn.Parameter(stacked["w"][r].clone()) for r in range(3)]
    opts = [make_optimizer([p], config) for p in singles]
    scheds = [make_scheduler(o, config) for o in opts]
    sgd = StackedSGD(stacked, config)
    for epoch in range(4):
        for _ in range(2):
            grad = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
            for r, (p, o) in enumerate(zip(singles, opts)):
                p.grad = grad[r].clone()
                o.step()
            sgd.step({"w": grad})
        for s in scheds:
            s.step()
        sgd.epoch_done()
        assert sgd.lr == opts[0].param_groups[0]["lr"]
        for r, p in enumerate(singles):
            assert torch.equal(stacked["w"][r], p.detach())
    with pytest.raises(ValueError, match="adam"):
        StackedSGD(stacked, config.replace(kind="adam"))


def test_batched_epoch_matches_train_epoch_float64():
    images, labels, test_images, test_labels = _tiny_data()
    nets = [build_model("ConvNet", 1, 3, (8, 8), width=4, seed=s).double() for s in range(3)]
    config = OptimizerConfig(kind="momentum", lr=0.05, weight_decay=5e-4, milestones=(1,))
    augment, epochs = DSA(), 3
    params = stack_params(nets)
    sgd, gens = StackedSGD(params, config), [make_generator(10 + r) for r in range(3)]
    batched_losses = []
    for epoch in range(epochs):
        batched_losses.append(batched_train_epoch(nets[0], params, sgd, images, labels, batch_size=4,
                                                  generators=gens, augment=augment, epoch=epoch))
        sgd.epoch_done()
    for r, net in enumerate(nets):  # now the same networks one by one, as ddlib.core.train does it
        opt, gen = make_optimizer(net.parameters(), config), make_generator(10 + r)
        sched = make_scheduler(opt, config)
        for epoch in range(epochs):
            loss = train_epoch(net, opt, images, labels, batch_size=4, generator=gen, augment=augment, epoch=epoch)
            sched.step()
            assert batched_losses[epoch][r] == pytest.approx(loss, abs=1e-12)
    assert batched_accuracy(nets[0], params, test_images, test_labels, batch_size=7) == [
        accuracy(net, test_images, test_labels) for net in nets]
    for r, net in enumerate(nets):
        for name, p in net.named_parameters():
            torch.testing.assert_close(params[name][r], p.detach(), rtol=0, atol=1e-12, msg=name)
    unstack_params(params, nets[::-1])  # rows go to the given modules
    assert torch.equal(nets[-1].classifier.weight, params["classifier.weight"][0])


def test_protocol_batched_equals_sequential_float64(monkeypatch):
    data = _tiny_data()
    calls = []
    monkeypatch.setattr(eval_training, "train_epoch", lambda *a, **k: calls.append(1) or train_epoch(*a, **k))
    batched_nets, sequential_nets = [], []
    batched = _run(monkeypatch, TINY, data, batched_nets)
    assert not calls  # the batched trainer ran
    sequential = _run(monkeypatch, TINY.replace(batched=False), data, sequential_nets)
    assert len(calls) == TINY.num_eval * TINY.epochs
    assert batched == sequential  # last, best, best_epoch, seeds, ... all identical
    assert batched.seeds == tuple(derive_seed(7, "eval", i, "init") for i in range(3))
    assert all(e in (2, 4, 5) for e in batched.best_epoch)
    for a, b in zip(batched_nets, sequential_nets):
        assert next(a.parameters()).dtype == torch.float64
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-10, msg=name)
    # training moved the weights away from their initialisation
    fresh = evaluation._build_net(TINY, 1, 3, (8, 8), batched.seeds[0]).double()
    assert not torch.allclose(next(fresh.parameters()), next(batched_nets[0].parameters()))


def test_float32_digits_agrees_within_tolerance(monkeypatch):
    digits = ddlib.load_dataset("digits")
    syn = random_coreset(digits, 5, seed=0)
    config = EvalConfig(epochs=10, num_eval=3, width=8, batch_size=32, test_every=5)
    runs = {}
    for batched in (True, False):
        nets = []
        build = evaluation._build_net
        monkeypatch.setattr(evaluation, "_build_net", lambda *a, **k: nets.append(build(*a, **k)) or nets[-1])
        runs[batched] = (evaluate_synthetic(syn, digits, config.replace(batched=batched), seed=3, progress=False),
                         nets)
        monkeypatch.setattr(evaluation, "_build_net", build)
    (a, nets_a), (b, nets_b) = runs[True], runs[False]
    assert a.seeds == b.seeds and a.num_eval == b.num_eval == 3
    for x, y in zip(a.last + a.best, b.last + b.best):
        assert abs(x - y) <= 0.01  # a handful of the ~360 test images at most
    for na, nb in zip(nets_a, nets_b):
        for p, q in zip(na.parameters(), nb.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4)


def test_batch_norm_model_falls_back_to_sequential(monkeypatch, caplog):
    bn = build_model("ConvNet", 1, 3, (8, 8), width=4, norm="batch", seed=0)
    assert "batch norm" in batching_unsupported(bn)
    assert batching_unsupported(build_model("ConvNet", 1, 3, (8, 8), width=4, seed=0)) is None
    data = _tiny_data(torch.float32)
    config = TINY.replace(norm="batch", epochs=2)
    with caplog.at_level(logging.INFO, logger="ddlib.evaluation.runner"):
        fallback = _run(monkeypatch, config, data, [])
    assert "batched evaluation not applicable" in caplog.text and "BatchNorm2d" in caplog.text
    assert fallback == _run(monkeypatch, config.replace(batched=False), data, [])


def test_default_batches_on_cuda_only(monkeypatch):
    """batched=None: sequential on CPU (where vmapped grouped convolutions are slower)."""
    data = _tiny_data()
    calls = []
    monkeypatch.setattr(eval_training, "train_epoch", lambda *a, **k: calls.append(1) or train_epoch(*a, **k))
    _run(monkeypatch, TINY.replace(batched=None), data, [])
    assert len(calls) == TINY.num_eval * TINY.epochs


def test_stacked_sgd_restart_matches_scheduled_optimizer():
    """AST's rebuild at the decay: fresh momentum buffers, lr x0.5, momentum 0.8 -- stacked and one by one."""
    from ddlib.core.train import ScheduledOptimizer

    g = torch.Generator().manual_seed(1)
    config = OptimizerConfig(kind="momentum", lr=0.1, momentum=0.9, weight_decay=1e-3, milestones=(2,),
                             lr_factor=0.5, restart_at_milestones=True, momentum_after_restart=0.8)
    stacked = {"w": torch.randn(2, 3, generator=g, dtype=torch.float64)}
    singles = [torch.nn.Parameter(stacked["w"][r].clone()) for r in range(2)]
    opts = [ScheduledOptimizer([p], config) for p in singles]
    sgd = StackedSGD(stacked, config)
    for epoch in range(4):
        for _ in range(2):
            grad = torch.randn(2, 3, generator=g, dtype=torch.float64)
            for r, (p, o) in enumerate(zip(singles, opts)):
                p.grad = grad[r].clone()
                o.optimizer.step()
            sgd.step({"w": grad})
        for o in opts:
            o.epoch_done()
        sgd.epoch_done()
        assert (sgd.lr, sgd.momentum) == (opts[0].lr, opts[0].optimizer.param_groups[0]["momentum"])
        assert (not sgd.buffers) == (epoch + 1 == 2)  # dropped exactly at the milestone
        for r, p in enumerate(singles):
            torch.testing.assert_close(stacked["w"][r], p.detach(), rtol=0, atol=1e-15)
    assert sgd.lr == 0.05 and sgd.momentum == 0.8


@pytest.mark.parametrize("protocol", ["ast", "tgdd"])
def test_protocol_batched_equals_sequential_with_restart_and_cutmix(monkeypatch, protocol):
    config = evaluation.EvalConfig.preset(protocol, epochs=6).replace(num_eval=3, width=4, batch_size=4, lr=0.05,
                                                                      batched=True)
    assert config.restart_at_decay == (protocol == "ast") and (config.augmentation == "tgdd") == (protocol == "tgdd")
    data = _tiny_data()
    batched_nets, sequential_nets = [], []
    batched = _run(monkeypatch, config, data, batched_nets)
    sequential = _run(monkeypatch, config.replace(batched=False), data, sequential_nets)
    assert batched == sequential and batched.statistic == "best"
    for a, b in zip(batched_nets, sequential_nets):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-10, msg=name)
