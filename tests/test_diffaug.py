"""Tests of ddlib.data.diffaug: IDC's DiffAug as TGDD's code uses it."""
from __future__ import annotations

import pytest
import torch

from ddlib.data.augment import DSA
from ddlib.data.dsa_params import DSAConfig, DSAParams
from ddlib.data.diffaug import DiffAug, DiffAugConfig
from ddlib.core.runtime import make_generator


def images(n: int = 4, c: int = 3, h: int = 8, w: int = 8, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=make_generator(seed), dtype=dtype)


def test_every_op_runs_on_every_call(monkeypatch):
    calls = {"color": 0, "crop": 0, "cutout": 0}
    for group in calls:
        original = getattr(DSA, f"_apply_{group}")

        def counting(self, x, p, group=group, original=original):
            calls[group] += 1
            return original(self, x, p)

        monkeypatch.setattr(DSA, f"_apply_{group}", counting)
    aug, g = DiffAug(), make_generator(0)
    for _ in range(10):
        aug(images(), g)
    assert calls == {"color": 10, "crop": 10, "cutout": 10}
    for _ in range(20):  # ... and each draw holds brightness, saturation, contrast, crop and cutout
        params = aug.sample(4, (8, 8), g)
        assert params.groups == ("color", "crop", "cutout")
        assert all(getattr(params, f) is not None for f in ("brightness", "saturation", "contrast", "crop", "cutout"))
    # MTT's DSA applies one group per call instead
    dsa_groups = {DSA(DSAConfig(strategy="color_crop_cutout")).sample(4, (8, 8), g).groups for _ in range(30)}
    assert dsa_groups == {("color",), ("crop",), ("cutout",)}


def test_apply_matches_the_ops_by_hand():
    x = torch.arange(2 * 4 * 4, dtype=torch.float64).view(1, 2, 4, 4) / 10
    params = DSAParams(groups=("color", "crop", "cutout"), im_size=(4, 4), siamese=True,
                       brightness=torch.tensor([0.5]), saturation=torch.tensor([1.5]), contrast=torch.tensor([2.0]),
                       crop=torch.tensor([[1, 0]]), cutout=torch.tensor([[0, 0, 2, 2]]))
    y = x + 0.5
    y = (y - y.mean(1, keepdim=True)) * 1.5 + y.mean(1, keepdim=True)
    y = (y - y.mean()) * 2.0 + y.mean()
    y = torch.cat([y[:, :, 1:], torch.zeros(1, 2, 1, 4, dtype=y.dtype)], dim=2)  # output row i reads row i + 1
    y[:, :, :2, :2] = 0
    torch.testing.assert_close(DiffAug().apply(x, params), y, rtol=0, atol=1e-12)


def test_batch_mode_is_one_draw_and_per_sample_mode_is_not():
    same = images(n=1).repeat(6, 1, 1, 1)
    shared = DiffAug()(same, make_generator(3))
    assert all(torch.equal(shared[0], shared[i]) for i in range(6))
    per_sample = DiffAug(DiffAugConfig(strategy="color_crop", batch=False))
    params = per_sample.sample(6, (8, 8), make_generator(3))
    assert not params.siamese and params.batch_size == 6 and params.groups == ("color", "crop")
    out = per_sample(same, make_generator(3))
    assert not all(torch.equal(out[0], out[i]) for i in range(1, 6))


def test_real_and_synthetic_share_the_draw():
    real, aug = images(n=5), DiffAug()
    syn = real[:2].clone()
    out_real, out_syn = aug.siamese(real, syn, generator=make_generator(7))
    torch.testing.assert_close(out_syn, out_real[:2], rtol=0, atol=0)
    params = aug.sample(1, (8, 8), make_generator(7))  # the same generator state draws the same parameters
    torch.testing.assert_close(out_real, aug.apply(real, params), rtol=0, atol=0)
    with pytest.raises(ValueError, match="batch=True"):
        DiffAug(DiffAugConfig(batch=False)).siamese(real, syn, generator=make_generator(0))
    with pytest.raises(ValueError, match="one image size"):
        aug.siamese(real, images(h=6, w=6), generator=make_generator(0))


def test_gradients_flow_to_the_images():
    x = images(n=2, c=2, h=5, w=5, dtype=torch.float64).requires_grad_(True)
    aug = DiffAug()
    params = aug.sample(2, (5, 5), make_generator(2))
    assert torch.autograd.gradcheck(lambda t: aug.apply(t, params), (x,))
    out = aug(x, make_generator(4))
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_idc_order_and_one_geometric_group_per_call():
    aug = DiffAug(DiffAugConfig(strategy="crop_color_cutout_scale_rotate_flip"))
    g, chosen = make_generator(5), set()
    for _ in range(60):
        groups = aug.sample(3, (8, 8), g).groups
        assert groups[:2] == ("flip", "color") and groups[3] == "cutout" and len(groups) == 4
        chosen.add(groups[2])
    assert chosen == {"crop", "scale", "rotate"}


def test_same_seed_same_output_and_config_errors():
    x = images()
    assert torch.equal(DiffAug()(x, make_generator(9)), DiffAug()(x, make_generator(9)))
    with pytest.raises(ValueError, match="'blur'"):
        DiffAugConfig(strategy="color_blur")
    with pytest.raises(ValueError, match="unknown key"):
        DiffAugConfig.from_dict({"strategy": "color", "single": True})
