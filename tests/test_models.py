"""Tests of the model zoo (ddlib.models): shapes, sizes, seeding, error messages."""
from __future__ import annotations

import pytest
import torch

from ddlib.models import MODEL_NAMES, build_model, count_parameters, default_depth

# (channels, side) of MNIST, CIFAR, Tiny ImageNet and ImageNet-subset (MTT) inputs.
SHAPES = [(1, 28), (3, 32), (3, 64), (3, 128)]


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("channel,side", SHAPES)
def test_output_and_embed_shapes(name, channel, side):
    model = build_model(name, channel, 10, (side, side), seed=0).eval()
    # DenseNet-121 at 128x128 is the slowest forward here; one image is enough.
    batch = 1 if (name.startswith("DenseNet") and side == 128) else 2
    x = torch.randn(batch, channel, side, side)
    with torch.no_grad():
        logits = model(x)
        features = model.embed(x)
        assert logits.shape == (batch, 10)
        assert features.shape == (batch, model.classifier.in_features)
        assert isinstance(model.classifier, torch.nn.Linear)
        torch.testing.assert_close(model.classifier(features), logits)


def test_convnet3_cifar_parameter_count():
    assert count_parameters(build_model("ConvNet", 3, 10, (32, 32))) == 320_010
    assert count_parameters(build_model("ConvNetD3", 3, 10, 32)) == 320_010


@pytest.mark.parametrize("side,depth", [(8, 3), (28, 3), (32, 3), (64, 4), (128, 5)])
def test_default_depth_per_resolution(side, depth):
    assert default_depth(side) == depth
    assert build_model("ConvNet", 3, 10, (side, side)).depth == depth


def test_depth_aliases_and_explicit_depth():
    assert build_model("ConvNetD4", 3, 10, 32).depth == 4
    assert build_model("ConvNet", 3, 10, 128, depth=3).depth == 3
    with pytest.raises(ValueError, match="ConvNetD3 fixes depth=3"):
        build_model("ConvNetD3", 3, 10, 32, depth=4)


def test_8x8_convnet_gives_1x1_features():
    model = build_model("ConvNet", 1, 10, (8, 8))
    assert model.classifier.in_features == 128  # 128 channels x 1 x 1


def test_norm_variants_of_convnet():
    expected = {"instance": torch.nn.GroupNorm, "batch": torch.nn.BatchNorm2d, "layer": torch.nn.GroupNorm}
    for norm, layer in expected.items():
        net = build_model("ConvNet", 3, 10, 32, norm=norm)
        assert isinstance(net.features[1], layer)
    assert build_model("ConvNet", 3, 10, 32, norm="instance").features[1].num_groups == 128
    assert build_model("ConvNet", 3, 10, 32, norm="layer").features[1].num_groups == 1
    plain = build_model("ConvNet", 3, 10, 32, norm="none", pool="max")
    assert not any(isinstance(m, (torch.nn.GroupNorm, torch.nn.BatchNorm2d)) for m in plain.modules())
    assert any(isinstance(m, torch.nn.MaxPool2d) for m in plain.modules())


def test_bn_aliases_use_batch_norm():
    for name in ("AlexNetBN", "VGG11BN", "ResNet18BN", "ResNet10BN", "DenseNet121BN"):
        net = build_model(name, 3, 10, 32)
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()), name
        assert not any(isinstance(m, torch.nn.GroupNorm) for m in net.modules()), name
    resnet_batch = build_model("ResNet18", 3, 10, 32, norm="batch")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in resnet_batch.modules())
    with pytest.raises(ValueError, match="batch norm"):
        build_model("ResNet18BN", 3, 10, 32, norm="layer")


def test_same_seed_same_weights_different_seed_different():
    a = build_model("ConvNet", 3, 10, 32, seed=1)
    b = build_model("ConvNet", 3, 10, 32, seed=1)
    c = build_model("ConvNet", 3, 10, 32, seed=2)
    for (na, pa), (_, pb), (_, pc) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert torch.equal(pa, pb), na
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_seed_leaves_global_rng_untouched():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    build_model("ResNet10", 3, 10, 32, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    # Without a seed the global RNG drives the init, so a caller's manual_seed reproduces it.
    torch.manual_seed(7)
    a = build_model("AlexNet", 3, 10, 32)
    torch.manual_seed(7)
    b = build_model("AlexNet", 3, 10, 32)
    assert all(torch.equal(pa, pb) for pa, pb in zip(a.parameters(), b.parameters()))


def test_unknown_name_norm_act_pool_raise_with_choices():
    with pytest.raises(ValueError, match=r"unknown model 'ResNet99'.*ConvNet.*DenseNet121"):
        build_model("ResNet99", 3, 10, 32)
    with pytest.raises(ValueError, match=r"unknown norm 'group'.*instance.*batch.*layer.*none"):
        build_model("ConvNet", 3, 10, 32, norm="group")
    with pytest.raises(ValueError, match=r"unknown activation 'tanh'.*relu"):
        build_model("VGG11", 3, 10, 32, act="tanh")
    with pytest.raises(ValueError, match=r"unknown pool 'sum'.*avg.*max.*none"):
        build_model("ConvNet", 3, 10, 32, pool="sum")


def test_case_insensitive_names():
    assert type(build_model("resnet-18", 3, 10, 32)).__name__ == "ResNet"


def test_convnet_only_options_rejected_elsewhere():
    with pytest.raises(ValueError, match="width=64 only applies to ConvNet"):
        build_model("ResNet18", 3, 10, 32, width=64)
    with pytest.raises(ValueError, match="depth=4 only applies to ConvNet"):
        build_model("VGG11", 3, 10, 32, depth=4)


@pytest.mark.parametrize(
    "name,channel,side,minimum",
    [
        ("ConvNetD5", 3, 16, 32), ("ConvNet", 3, 4, 8), ("VGG11", 3, 28, 32), ("AlexNet", 3, 4, 8),
        ("ResNet18", 3, 8, 9), ("DenseNet121", 3, 8, 16), ("DenseNet121BN", 3, 4, 8),
    ],
)
def test_too_small_im_size_raises_naming_minimum(name, channel, side, minimum):
    with pytest.raises(ValueError, match=f"at least {minimum}x{minimum}"):
        build_model(name, channel, 10, (side, side))
    # The minimum itself is accepted, in training mode (batch statistics) too.
    model = build_model(name, channel, 10, (minimum, minimum))
    with torch.no_grad():
        assert model(torch.randn(2, channel, minimum, minimum)).shape == (2, 10)


def test_too_small_or_wrong_input_raises_at_forward():
    vgg = build_model("VGG11", 3, 10, 32)
    with pytest.raises(ValueError, match="at least 32x32"):
        vgg(torch.zeros(1, 3, 16, 16))
    convnet = build_model("ConvNet", 3, 10, 32)
    with pytest.raises(ValueError, match="built for 32x32"):
        convnet(torch.zeros(1, 3, 64, 64))
    resnet = build_model("ResNet18", 3, 10, 32)
    with pytest.raises(ValueError, match="at least 9x9"):  # instance norm needs 2x2 in stage 4
        resnet(torch.zeros(1, 3, 8, 8))
    resnet_bn = build_model("ResNet18BN", 3, 10, 32).eval()  # padded strided convs take any size
    assert resnet_bn(torch.zeros(1, 3, 5, 5)).shape == (1, 10)


def test_family_default_norms_follow_dc():
    """DC's AlexNet has no normalisation; the other families default to instance norm."""
    alex = build_model("AlexNet", 3, 10, 32, seed=0)
    assert not any(isinstance(m, (torch.nn.GroupNorm, torch.nn.BatchNorm2d)) for m in alex.modules())
    vgg = build_model("VGG11", 3, 10, 32, seed=0)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in vgg.modules())


# -- the 2x2 average pooling of ConvNet ----------------------------------------------------------
def test_avg_pool_2x2_equals_nn_avg_pool_with_gradients():
    from torch import nn

    from ddlib.models._common import AvgPool2x2

    pool, reference = AvgPool2x2(), nn.AvgPool2d(kernel_size=2, stride=2)
    for dtype, tol in ((torch.float64, 1e-14), (torch.float32, 1e-6)):
        x = torch.randn(3, 4, 8, 6, dtype=dtype, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        out = pool(x)
        assert out.shape == (3, 4, 4, 3) and out.is_contiguous()
        torch.testing.assert_close(out, reference(x), rtol=tol, atol=tol)
        g = torch.randn_like(out)
        (grad,) = torch.autograd.grad(out, x, g)
        (grad_ref,) = torch.autograd.grad(reference(x), x, g)
        torch.testing.assert_close(grad, grad_ref, rtol=tol, atol=tol)
    hand = torch.tensor([[1.0, 2.0, 5.0, 7.0], [3.0, 6.0, 9.0, 11.0]]).view(1, 1, 2, 4)
    assert pool(hand).flatten().tolist() == [3.0, 8.0]  # (1+2+3+6)/4, (5+7+9+11)/4


def test_avg_pool_2x2_odd_sides_and_3d_input_fall_back_to_nn_avg_pool():
    import torch.nn.functional as F

    from ddlib.models._common import AvgPool2x2

    for shape in ((2, 3, 7, 8), (2, 3, 8, 5), (3, 6, 6)):
        x = torch.randn(*shape)
        assert torch.equal(AvgPool2x2()(x), F.avg_pool2d(x, 2))


def test_avg_pool_2x2_under_vmap_and_second_order_gradients():
    from torch.func import grad, vmap

    from ddlib.models._common import AvgPool2x2

    pool = AvgPool2x2()
    x = torch.randn(5, 2, 3, 4, 4, dtype=torch.float64)
    batched = vmap(pool)(x)
    torch.testing.assert_close(batched, torch.stack([pool(xi) for xi in x]))
    # f = sum_w p_w^2 with p_w = (sum of window w) / 4: df/dx_i = p_w / 2, so sum_i df/dx_i = 2 sum_w p_w,
    # whose gradient is 2 / 4 = 0.5 at every pixel
    first = grad(lambda z: (pool(z) ** 2).sum())
    second = grad(lambda z: first(z).sum())(x[0])
    torch.testing.assert_close(second, torch.full_like(x[0], 0.5))


def test_convnet_pools_with_avg_pool_2x2_and_keeps_its_parameter_names():
    from torch import nn

    from ddlib.models._common import AvgPool2x2

    net = build_model("ConvNet", 3, 10, (32, 32), width=8, seed=0)
    pools = [m for m in net.features if isinstance(m, nn.AvgPool2d)]
    assert len(pools) == 3 and all(type(m) is AvgPool2x2 for m in pools)
    assert [k for k in net.state_dict()][:3] == ["features.0.weight", "features.0.bias", "features.1.weight"]
