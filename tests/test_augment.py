"""Tests of ddlib.data.augment (Differentiable Siamese Augmentation)."""
from __future__ import annotations

import math

import pytest
import torch

from ddlib.data.augment import DSA
from ddlib.data.dsa_params import DSAConfig, DSAParams, GROUPS
from ddlib.core.runtime import make_generator


def single(group: str, **overrides) -> DSA:
    return DSA(DSAConfig(strategy=group, **overrides))


def images(n: int = 4, c: int = 3, h: int = 8, w: int = 8, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=make_generator(seed), dtype=dtype)


# ---------------------------------------------------------------- config / strategy
def test_unknown_op_raises_naming_it_and_valid_ops():
    with pytest.raises(ValueError, match="'blur'") as info:
        DSAConfig(strategy="color_blur_flip")
    assert "rotate" in str(info.value) and "cutout" in str(info.value)


@pytest.mark.parametrize(
    "bad", [{"flip_prob": 1.5}, {"scale_ratio": 0.9}, {"rotate_degrees": -1.0}, {"crop_ratio": 1.0},
            {"cutout_ratio": 2.0}, {"brightness": -0.1}, {"strategy": "flip_flip"}],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        DSAConfig(**bad)


def test_config_rejects_unknown_key():
    with pytest.raises(ValueError, match="unknown key"):
        DSAConfig.from_dict({"strategy": "flip", "prob_flip": 0.5})


def test_default_config_matches_dsa():
    cfg = DSAConfig()
    assert cfg.groups == ("color", "crop", "cutout", "flip", "scale", "rotate")
    assert cfg.one_group_per_call
    assert (cfg.flip_prob, cfg.scale_ratio, cfg.rotate_degrees) == (0.5, 1.2, 15.0)
    assert (cfg.crop_ratio, cfg.cutout_ratio) == (0.125, 0.5)
    assert (cfg.brightness, cfg.saturation, cfg.contrast) == (1.0, 2.0, 0.5)


def test_none_strategy_is_identity():
    x = images()
    assert torch.equal(DSA(DSAConfig(strategy="none"))(x, make_generator(0)), x)


# ---------------------------------------------------------------- sampling
def test_one_group_per_call_picks_each_group_about_uniformly():
    dsa, g = DSA(), make_generator(1)
    counts = dict.fromkeys(GROUPS, 0)
    for _ in range(600):
        params = dsa.sample(2, (8, 8), g)
        assert len(params.groups) == 1
        counts[params.groups[0]] += 1
    assert all(60 <= c <= 140 for c in counts.values()), counts


def test_all_groups_mode_applies_every_group_in_order():
    params = DSA(DSAConfig(one_group_per_call=False)).sample(3, (8, 8), make_generator(0))
    assert params.groups == GROUPS
    assert params.batch_size == 3


def test_parameter_ranges():
    p = DSA(DSAConfig(one_group_per_call=False)).sample(4000, (32, 32), make_generator(2))
    assert -0.5 <= p.brightness.min() and p.brightness.max() < 0.5
    assert 0.0 <= p.saturation.min() and p.saturation.max() < 2.0
    assert 0.5 <= p.contrast.min() and p.contrast.max() < 1.5
    assert p.crop.min() == -4 and p.crop.max() == 4  # round(0.125 * 32) = 4, both ends reached
    assert 1 / 1.2 <= p.scale.min() and p.scale.max() <= 1.2
    assert p.rotate.abs().max() <= math.radians(15.0) and p.rotate.abs().max() > math.radians(14.5)
    assert 0.4 < p.flip.double().mean() < 0.6
    side = p.cutout[:, 2:] - p.cutout[:, :2]
    assert side.max() == 16 and side.min() >= 8  # clipped at the border to at least half


def test_siamese_sample_has_one_row():
    p = DSA(DSAConfig(one_group_per_call=False)).sample(50, (8, 8), make_generator(0), siamese=True)
    assert p.siamese and p.batch_size == 1


def test_same_seed_same_output_and_different_seed_differs():
    x, dsa = images(), DSA(DSAConfig(one_group_per_call=False))
    a = dsa(x, make_generator(5))
    assert torch.equal(a, dsa(x, make_generator(5)))
    assert not torch.allclose(a, dsa(x, make_generator(6)))


def test_global_rng_is_neither_used_nor_changed():
    x, dsa = images(), DSA(DSAConfig(one_group_per_call=False))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = dsa(x, make_generator(3))
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(12345)
    assert torch.equal(a, dsa(x, make_generator(3)))


def test_sample_rejects_bad_inputs():
    dsa = DSA()
    with pytest.raises(ValueError, match="4x4"):
        dsa.sample(2, (3, 8), make_generator(0))
    with pytest.raises(ValueError, match="batch_size"):
        dsa.sample(0, (8, 8), make_generator(0))


# ---------------------------------------------------------------- siamese vs per-sample
@pytest.mark.parametrize("group", GROUPS)
def test_siamese_params_broadcast_and_concatenation_equals_separate(group):
    dsa = single(group)
    params = dsa.sample(1, (8, 8), make_generator(7), siamese=True)
    a, b = images(5, seed=1), images(3, seed=2)
    joint = dsa.apply(torch.cat([a, b]), params)
    torch.testing.assert_close(joint, torch.cat([dsa.apply(a, params), dsa.apply(b, params)]))


def test_siamese_transforms_identical_images_identically_across_batch_sizes():
    dsa = DSA(DSAConfig(one_group_per_call=False))
    x = images(1)
    real, syn = dsa.siamese(x.expand(256, -1, -1, -1), x.expand(10, -1, -1, -1), generator=make_generator(4))
    assert real.shape == (256, 3, 8, 8) and syn.shape == (10, 3, 8, 8)
    torch.testing.assert_close(real, real[:1].expand_as(real))
    torch.testing.assert_close(syn, real[:10])


def test_siamese_call_equals_sample_then_apply():
    dsa, x = DSA(), images()
    out = dsa(x, make_generator(9), siamese=True)
    assert torch.equal(out, dsa.apply(x, dsa.sample(1, (8, 8), make_generator(9), siamese=True)))


@pytest.mark.parametrize("group", GROUPS)
def test_per_sample_mode_differs_across_samples(group):
    x = images(1, h=12, w=12).expand(16, -1, -1, -1)
    out = single(group)(x, make_generator(3))
    assert not torch.allclose(out, out[:1].expand_as(out))


def test_per_sample_params_need_matching_batch_size():
    dsa = DSA()
    params = dsa.sample(4, (8, 8), make_generator(0))
    with pytest.raises(ValueError, match="4 parameter rows"):
        dsa.apply(images(3), params)


def test_apply_rejects_other_image_size_and_bad_images():
    dsa = DSA()
    params = dsa.sample(1, (8, 8), make_generator(0), siamese=True)
    with pytest.raises(ValueError, match="im_size"):
        dsa.apply(images(h=10), params)
    with pytest.raises(ValueError, match="float"):
        dsa.apply(torch.zeros(2, 3, 8, 8, dtype=torch.long), params)
    with pytest.raises(ValueError, match="one image size"):
        dsa.siamese(images(h=8), images(h=10), generator=make_generator(0))


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("siamese", [False, True])
def test_gradcheck_each_group(group, siamese):
    dsa = single(group)
    x = images(2, c=2, h=5, w=5, dtype=torch.float64).requires_grad_(True)
    params = dsa.sample(2, (5, 5), make_generator(11), siamese=siamese)
    assert torch.autograd.gradcheck(lambda t: dsa.apply(t, params), (x,))


def test_gradient_reaches_images():
    x = images(6, c=1).requires_grad_(True)
    out = DSA(DSAConfig(one_group_per_call=False))(x, make_generator(0))
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_dtype_and_shape_preserved_for_one_channel_non_square():
    x = images(3, c=1, h=6, w=10, dtype=torch.float64)
    out = DSA(DSAConfig(one_group_per_call=False))(x, make_generator(0))
    assert out.shape == x.shape and out.dtype == torch.float64


# ---------------------------------------------------------------- each op by hand
def params_for(x: torch.Tensor, group: str, siamese: bool = False, **fields) -> DSAParams:
    return DSAParams(groups=(group,), im_size=tuple(x.shape[-2:]), siamese=siamese, **fields)


def test_flip_reverses_width_only_where_drawn():
    x = images(2)
    out = DSA().apply(x, params_for(x, "flip", flip=torch.tensor([True, False])))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])


def test_brightness_adds_a_constant_per_image():
    x = images(2)
    shift = torch.tensor([0.3, -0.2], dtype=torch.float64)
    out = DSA().apply(x, params_for(x, "color", brightness=shift))
    torch.testing.assert_close(out - x, shift.float().view(2, 1, 1, 1).expand_as(x))


def test_saturation_and_contrast_formulas():
    x = images(2)
    s, c = torch.tensor([0.0, 1.5]), torch.tensor([0.5, 1.25])
    sat = DSA().apply(x, params_for(x, "color", saturation=s))
    gray = x.mean(1, keepdim=True)
    torch.testing.assert_close(sat[0], gray[0].expand_as(x[0]))  # factor 0: grey image
    torch.testing.assert_close(sat[1], (x[1] - gray[1]) * 1.5 + gray[1])
    con = DSA().apply(x, params_for(x, "color", contrast=c))
    m = x.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(con, (x - m) * c.view(2, 1, 1, 1) + m)
    torch.testing.assert_close(con.mean((1, 2, 3)), x.mean((1, 2, 3)))
    # One channel: saturation has nothing to act on.
    y = images(2, c=1)
    torch.testing.assert_close(DSA().apply(y, params_for(y, "color", saturation=s)), y)


def test_cutout_zeroes_a_square_of_the_expected_size():
    x = torch.ones(64, 1, 8, 8)
    dsa = single("cutout")
    params = dsa.sample(64, (8, 8), make_generator(0))
    out = dsa.apply(x, params)
    box = params.cutout
    for i in range(64):
        zero = out[i, 0] == 0
        t, l, b, r = box[i].tolist()
        assert zero.sum() == (b - t) * (r - l)
        assert zero[t:b, l:r].all()
    inner = ((box[:, 2] - box[:, 0]) == 4) & ((box[:, 3] - box[:, 1]) == 4)
    assert inner.any()  # an unclipped box is round(0.5 * 8) = 4 pixels square
    full = out[inner.nonzero()[0, 0], 0]
    assert (full == 0).sum() == 16


def test_crop_shifts_content_by_the_drawn_offset_with_zero_fill():
    x = images(1, c=2)
    out = DSA().apply(x, params_for(x, "crop", crop=torch.tensor([[2, -1]])))
    # Output (i, j) reads input (i + 2, j - 1): content moves up 2 and right 1.
    torch.testing.assert_close(out[..., :6, 1:], x[..., 2:, :7])
    assert (out[..., 6:, :] == 0).all() and (out[..., :, :1] == 0).all()


def test_one_channel_crop_is_contiguous_with_unchanged_values():
    """An MNIST batch (C = 1) comes back in NCHW memory order (not channels-last strides, which
    ``.contiguous()`` would have left in place) and holds the crop of each channel of a wider batch."""
    x3 = images(4, c=3, h=8, w=8)
    params = params_for(x3, "crop", crop=torch.tensor([[1, -2], [0, 3], [-1, 0], [2, 2]]))
    out1, out3 = DSA().apply(x3[:, :1].contiguous(), params), DSA().apply(x3, params)
    assert out1.is_contiguous() and out1.stride() == (64, 64, 8, 1)
    torch.testing.assert_close(out1, out3[:, :1], rtol=0, atol=0)


def test_drawn_crop_matches_shifted_content():
    dsa = single("crop")
    x = images(8, h=16, w=16)
    params = dsa.sample(8, (16, 16), make_generator(3))
    out = dsa.apply(x, params)
    for i, (dy, dx) in enumerate(params.crop.tolist()):
        ref = torch.zeros_like(x[i])
        src = x[i][:, max(dy, 0):16 + min(dy, 0), max(dx, 0):16 + min(dx, 0)]
        ref[:, max(-dy, 0):16 + min(-dy, 0), max(-dx, 0):16 + min(-dx, 0)] = src
        torch.testing.assert_close(out[i], ref)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("group", GROUPS)
def test_every_group_returns_standard_nchw_strides(group, channels):
    """A channels-last batch would make the ConvNet run its slower channels-last kernels
    (and make a compiled network recompile): every op returns the standard NCHW strides. With one
    channel (MNIST) ``is_contiguous()`` holds for channels-last strides too, so compare the strides."""
    x = images(4, c=channels, h=8, w=8)
    out = single(group)(x, make_generator(0))
    assert out.shape == x.shape and out.stride() == torch.empty(x.shape).stride()


def test_rotation_by_zero_and_unit_scale_are_identity():
    x = images(2, h=7, w=9, dtype=torch.float64)
    rot = DSA().apply(x, params_for(x, "rotate", rotate=torch.zeros(2)))
    sc = DSA().apply(x, params_for(x, "scale", scale=torch.ones(1, 2), siamese=True))
    torch.testing.assert_close(rot, x)
    torch.testing.assert_close(sc, x)


def test_rotation_by_90_degrees_is_rot90():
    x = images(1, h=6, w=6, dtype=torch.float64)
    out = DSA().apply(x, params_for(x, "rotate", rotate=torch.tensor([math.pi / 2], dtype=torch.float64)))
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(2, 3)))


def test_scale_two_shrinks_content_about_the_centre():
    # Sampling matrix diag(2, 2): output (i, j) samples input at twice the distance
    # from the centre, so the centre pixel is kept and the border falls outside.
    x = images(1, c=1, h=5, w=5, dtype=torch.float64)
    out = DSA().apply(x, params_for(x, "scale", scale=torch.tensor([[2.0, 2.0]])))
    assert out[0, 0, 2, 2] == pytest.approx(float(x[0, 0, 2, 2]))
    assert out[0, 0, 1, 1] == pytest.approx(float(x[0, 0, 0, 0]))
    assert out[0, 0, 0, 0] == 0


def test_params_validation():
    with pytest.raises(ValueError, match="none of its fields"):
        DSAParams(groups=("flip",), im_size=(8, 8), siamese=False)
    with pytest.raises(ValueError, match="shape"):
        DSAParams(groups=("crop",), im_size=(8, 8), siamese=False, crop=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="one parameter row"):
        DSAParams(groups=("flip",), im_size=(8, 8), siamese=True, flip=torch.ones(2, dtype=torch.bool))
