"""Tests of bf16 mixed precision (ddlib.core.precision) in experts, evaluation and the DM/TGDD embedding.

Tolerances: bfloat16 keeps 8 significant bits, a relative rounding of 2**-9 ~ 0.2% per value; a
width-8 ConvNet's forward pass sums ~100 such products per output, so its logits and losses move
by about 1%. The bounds below (2% on losses, 10% on one epoch's parameter update, 99% agreement of
predictions) are several times that and far below what a missing autocast would pass unnoticed
(the dtype checks) or what a wrong loss would give (tens of percent). DM's image gradient is the exception
that sets its own bound (see that test).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ddlib.core.precision import autocast, autocast_float32_output, check_precision
from ddlib.core.runtime import make_generator
from ddlib.core.train import accuracy, make_optimizer, OptimizerConfig, train_epoch
from ddlib.evaluation.protocols import EvalConfig
from ddlib.methods.dm import DMConfig, dm_loss
from ddlib.methods.tgdd import TGDDConfig
from ddlib.models import build_model
from ddlib.trajectories.experts import ExpertConfig, train_expert
from helpers import small_digits


@pytest.mark.parametrize("cls", [ExpertConfig, EvalConfig, DMConfig, TGDDConfig])
def test_invalid_precision_raises_value_error_naming_it(cls):
    with pytest.raises(ValueError, match=r"precision='fp16'.*\['fp32', 'bf16'\]"):
        cls(precision="fp16")
    assert cls(precision="bf16").precision == "bf16"


@pytest.mark.parametrize("cls", [ExpertConfig, EvalConfig, DMConfig, TGDDConfig])
def test_default_precision_leaves_cache_keys_unchanged(cls):
    # to_dict() feeds the cache keys and store manifests: fp32 must give the keys written before the field
    assert "precision" not in cls().to_dict()
    values = cls(precision="bf16").to_dict()
    assert values["precision"] == "bf16"
    assert cls.from_dict(values) == cls(precision="bf16") and cls.from_dict(cls().to_dict()) == cls()


def test_check_precision_and_autocast_contexts():
    check_precision("fp32")
    with pytest.raises(ValueError, match="'half'"):
        check_precision("half", "X.precision")
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with autocast("fp32", "cpu"):
        assert layer(x).dtype == torch.float32
    with autocast("bf16", torch.device("cpu")):
        assert layer(x).dtype == torch.bfloat16
    wrapped = autocast_float32_output(layer, "bf16", "cpu")
    out = wrapped(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, layer(x), rtol=0.02, atol=0.02)
    assert autocast_float32_output(layer, "fp32", "cpu") is layer


def test_train_epoch_bf16_runs_the_forward_in_bf16_and_the_loss_in_float32():
    seen = {}

    def hook(net, images, labels, *, epoch, raw_images):
        logits = net(images)
        seen["logits"] = logits.dtype
        loss = F.cross_entropy(logits, labels)
        seen["loss"] = loss.dtype
        return loss

    net = build_model("ConvNet", 1, 10, (8, 8), width=4, depth=1, seed=0)
    images, labels = torch.randn(6, 1, 8, 8), torch.arange(6)
    opt = make_optimizer(net.parameters(), OptimizerConfig())
    train_epoch(net, opt, images, labels, batch_size=6, generator=make_generator(0), loss_hook=hook,
                precision="bf16")
    assert seen == {"logits": torch.bfloat16, "loss": torch.float32}
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_bf16_expert_epoch_is_close_to_fp32():
    data = small_digits(60, 40)
    config = ExpertConfig(width=8, epochs=1, batch_size=30, dsa=False)
    fp32 = train_expert(data, config, seed=1)
    bf16 = train_expert(data, config.replace(precision="bf16"), seed=1)
    assert bf16.snapshots.dtype == torch.float32
    torch.testing.assert_close(bf16.snapshots[0], fp32.snapshots[0], rtol=0, atol=0)  # same initialisation
    step32, step16 = fp32.snapshots[1] - fp32.snapshots[0], bf16.snapshots[1] - bf16.snapshots[0]
    assert 0 < (step16 - step32).norm() / step32.norm() < 0.1
    assert abs(bf16.train_loss[0] - fp32.train_loss[0]) < 0.02 * fp32.train_loss[0]


def test_bf16_accuracy_agrees_with_fp32():
    data = small_digits(60, 200)
    net = build_model("ConvNet", data.channel, data.num_classes, data.im_size, width=8, seed=0)
    fp32 = accuracy(net, data.images_test, data.labels_test)
    bf16 = accuracy(net, data.images_test, data.labels_test, precision="bf16")
    assert abs(bf16 - fp32) <= 0.01  # at most 2 of 200 predictions flip on bf16 rounding


@pytest.mark.parametrize("batched", [False, True])
def test_bf16_evaluation_is_close_to_fp32(batched):
    from ddlib.evaluation.runner import evaluate_synthetic
    from ddlib.methods.synthetic import SyntheticSet

    data = small_digits(60, 100)
    syn = SyntheticSet(data.images_train[:20], data.labels_train[:20], 0.01, {}, {}, "digits", ipc=2)
    config = EvalConfig(epochs=4, width=8, num_eval=2, dsa=False, batch_size=10, batched=batched)
    fp32 = evaluate_synthetic(syn, data, config, seed=0, progress=False)
    bf16 = evaluate_synthetic(syn, data, config.replace(precision="bf16"), seed=0, progress=False)
    for a, b in zip(fp32.last, bf16.last):
        assert abs(a - b) <= 0.05  # 5 of 100 test images: the trained networks differ at bf16 rounding


def test_bf16_dm_loss_and_image_gradient_are_close_to_fp32():
    g = make_generator(0)
    net = build_model("ConvNet", 3, 2, (16, 16), width=16, seed=0)
    real = [torch.randn(8, 3, 16, 16, generator=g) + c for c in range(2)]
    syn_images = torch.randn(4, 3, 16, 16, generator=g).requires_grad_(True)

    def loss_and_grad(precision):
        embed = autocast_float32_output(net.embed, precision, "cpu")
        loss = dm_loss(embed, real, list(torch.split(syn_images, 2)))
        return loss.detach(), torch.autograd.grad(loss, syn_images)[0]

    l32, g32 = loss_and_grad("fp32")
    l16, g16 = loss_and_grad("bf16")
    assert l16.dtype == torch.float32
    assert abs(l16 - l32) < 0.02 * l32
    # the gradient is 2 (mean f(syn) - mean f(real)) J: the difference of means cancels most of the features'
    # size, so their bf16 rounding weighs ~10x more in it (measured 9.6% here); the direction survives
    assert (g16 - g32).norm() / g32.norm() < 0.15
    assert F.cosine_similarity(g16.flatten(), g32.flatten(), dim=0) > 0.99
