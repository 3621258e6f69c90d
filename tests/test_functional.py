"""Tests of the flat-parameter helpers (ddlib.core.functional)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ddlib.core.functional import ParamLayout, flatten_params, functional_forward, load_flat_params
from ddlib.models import build_model


def _convnet():
    return build_model("ConvNet", 3, 10, (16, 16), width=16, depth=2, seed=0)


def test_layout_matches_named_parameters():
    net = _convnet()
    layout = ParamLayout.of(net)
    names = [n for n, _ in net.named_parameters()]
    assert list(layout.names) == names
    assert layout.numel == sum(p.numel() for p in net.parameters())
    assert layout.offsets[0] == 0 and layout.offsets[-1] + layout.numels[-1] == layout.numel


def test_layout_skips_frozen_parameters():
    net = _convnet()
    net.classifier.bias.requires_grad_(False)
    layout = ParamLayout.of(net)
    assert "classifier.bias" not in layout.names
    assert flatten_params(net).numel() == layout.numel


def test_flatten_unflatten_round_trip():
    net = _convnet()
    layout = ParamLayout.of(net)
    params = dict(net.named_parameters())
    flat = layout.flatten(params)
    assert flat.shape == (layout.numel,)
    torch.testing.assert_close(flat, flatten_params(net))
    back = layout.unflatten(flat)
    assert list(back) == list(layout.names)
    for name, tensor in back.items():
        assert torch.equal(tensor, params[name])


def test_unflatten_returns_views_in_the_graph():
    layout = ParamLayout.of(_convnet())
    flat = torch.randn(layout.numel, requires_grad=True)
    pieces = layout.unflatten(flat)
    sum(t.sum() for t in pieces.values()).backward()
    torch.testing.assert_close(flat.grad, torch.ones_like(flat))
    for tensor in pieces.values():  # views: same storage as the flat vector, no copies
        assert tensor.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()


def test_length_mismatch_raises():
    net = _convnet()
    layout = ParamLayout.of(net)
    wrong = torch.zeros(layout.numel + 1)
    with pytest.raises(ValueError, match=rf"\({layout.numel},\).*{layout.numel + 1} elements"):
        layout.unflatten(wrong)
    with pytest.raises(ValueError, match=str(layout.numel)):
        functional_forward(net, wrong, torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError):
        load_flat_params(net, torch.zeros(3))
    with pytest.raises(ValueError, match="missing parameter"):
        layout.flatten({})


def test_flatten_params_is_a_detached_copy_and_load_round_trips():
    net = _convnet()
    flat = flatten_params(net)
    assert not flat.requires_grad
    flat += 1.0  # must not touch the module
    assert not torch.equal(flat, flatten_params(net))
    load_flat_params(net, flat)
    torch.testing.assert_close(flatten_params(net), flat)


@pytest.mark.parametrize(
    "name,kwargs,side",
    [("ConvNet", dict(width=16, depth=2), 16), ("AlexNet", {}, 16), ("AlexNetBN", {}, 16)],
)
def test_functional_forward_equals_module_call(name, kwargs, side):
    net = build_model(name, 3, 10, (side, side), seed=0, **kwargs)
    x = torch.randn(4, 3, side, side)
    flat = flatten_params(net)
    torch.testing.assert_close(functional_forward(net, flat, x), net(x))


@pytest.mark.parametrize("train", [True, False])
def test_functional_forward_resnet18_batchnorm(train):
    net = build_model("ResNet18BN", 3, 10, (8, 8), seed=0)
    x = torch.randn(4, 3, 8, 8)
    net.train()  # give the running statistics non-trivial values first
    with torch.no_grad():
        net(torch.randn(4, 3, 8, 8) * 2 + 1)
    net.train(train)
    flat = flatten_params(net)
    buffers_before = {n: b.clone() for n, b in net.named_buffers()}
    expected = net(x)
    after_module = {n: b.clone() for n, b in net.named_buffers()}
    for n, b in net.named_buffers():  # replay from the same statistics
        b.copy_(buffers_before[n])
    got = functional_forward(net, flat, x)
    torch.testing.assert_close(got, expected)
    for n, b in net.named_buffers():  # same running-stat update (train) or none (eval)
        torch.testing.assert_close(b, after_module[n])
    # Explicit buffers are used instead of the module's (and updated in their place).
    given = {n: b.clone() for n, b in buffers_before.items()}
    torch.testing.assert_close(functional_forward(net, flat, x, buffers=given), expected)


def test_functional_forward_does_not_modify_module_parameters():
    net = _convnet()
    before = flatten_params(net)
    functional_forward(net, torch.randn_like(before), torch.randn(2, 3, 16, 16))
    assert torch.equal(flatten_params(net), before)


@pytest.mark.parametrize("name", ["ConvNet", "ResNet18BN"])
def test_gradients_match_module_backward(name):
    kwargs = dict(width=16, depth=2) if name == "ConvNet" else {}
    net = build_model(name, 3, 10, (16, 16) if name == "ConvNet" else (8, 8), seed=0, **kwargs)
    side = 16 if name == "ConvNet" else 8
    x = torch.randn(4, 3, side, side)
    y = torch.tensor([0, 1, 2, 3])
    buffers = {n: b.clone() for n, b in net.named_buffers()}

    F.cross_entropy(net(x), y).backward()
    expected = torch.cat([p.grad.reshape(-1) for p in net.parameters()])

    flat = flatten_params(net).requires_grad_(True)
    x_leaf = x.clone().requires_grad_(True)
    loss = F.cross_entropy(functional_forward(net, flat, x_leaf, buffers=buffers), y)
    grad_flat, grad_x = torch.autograd.grad(loss, (flat, x_leaf))
    torch.testing.assert_close(grad_flat, expected, rtol=1e-4, atol=1e-6)
    assert grad_x.shape == x.shape and grad_x.abs().sum() > 0


def test_second_order_gradient_through_an_unrolled_step():
    # The pattern of MTT: one SGD step on flat params, loss at the new params, grad w.r.t. x.
    net = _convnet()
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3])
    flat = flatten_params(net).requires_grad_(True)
    inner = F.cross_entropy(functional_forward(net, flat, x), y)
    (g,) = torch.autograd.grad(inner, flat, create_graph=True)
    stepped = flat - 0.1 * g
    outer = (stepped - flat.detach()).pow(2).sum()
    (gx,) = torch.autograd.grad(outer, x)
    assert torch.isfinite(gx).all() and gx.abs().sum() > 0
