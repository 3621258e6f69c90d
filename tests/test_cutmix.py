"""Tests of ddlib.data.cutmix, the mixed-label loss of train_epoch and TGDD's expert augmentation."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ddlib.data.augment import DSA
from ddlib.data.cutmix import CutMix, CutMixConfig, CutMixParams, training_augmentation
from ddlib.data.diffaug import DiffAug
from ddlib.trajectories.experts import ExpertConfig, train_expert
from ddlib.core.functional import flatten_params
from ddlib.models import build_model
from ddlib.core.runtime import derive_seed, make_generator
from ddlib.core.train import ScheduledOptimizer, cross_entropy_hook, train_epoch
from helpers import small_digits


def constant_images(n: int = 4, size: int = 4) -> torch.Tensor:
    """Image ``i`` is filled with the value ``i``, so every pixel says where it came from."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, size, size).clone()


def test_apply_pastes_the_partner_box_and_weights_labels_by_area():
    x, labels = constant_images(), torch.tensor([5, 6, 7, 8])
    params = CutMixParams(index=torch.tensor([1, 0, 3, 2]), box=(0, 1, 2, 4), im_size=(4, 4))
    mixed, labels_a, labels_b, lam = CutMix.apply(x, labels, params)
    assert lam == 1 - (2 * 3) / 16 == 0.625  # a 2 x 3 box of a 4 x 4 image
    assert labels_a.tolist() == [5, 6, 7, 8] and labels_b.tolist() == [6, 5, 8, 7]
    box = torch.zeros(4, 4, dtype=torch.bool)
    box[0:2, 1:4] = True
    for i, partner in enumerate([1, 0, 3, 2]):
        assert (mixed[i, 0][box] == partner).all() and (mixed[i, 0][~box] == i).all()


def test_sample_follows_the_reference_rand_bbox():
    g, mirror = make_generator(11), make_generator(11)
    cutmix = CutMix(CutMixConfig(p=1.0))
    for _ in range(20):
        params = cutmix.sample(6, (8, 10), g)
        # the same draws by hand: u (mix or not), lam ~ U(0, 1), the partners, the centre row and column
        torch.rand((), generator=mirror, dtype=torch.float64)
        lam = float(torch.rand((), generator=mirror, dtype=torch.float64))
        index = torch.randperm(6, generator=mirror)
        cy, cx = (int(torch.randint(0, n, (1,), generator=mirror)) for n in (8, 10))
        cut_h, cut_w = int(8 * math.sqrt(1 - lam)), int(10 * math.sqrt(1 - lam))
        clip = lambda v, n: min(max(v, 0), n)  # noqa: E731
        expected = (clip(cy - cut_h // 2, 8), clip(cx - cut_w // 2, 10),
                    clip(cy + cut_h // 2, 8), clip(cx + cut_w // 2, 10))
        assert params.box == expected and torch.equal(params.index, index)
        top, left, bottom, right = expected
        assert params.lam == pytest.approx(1 - (bottom - top) * (right - left) / 80)


def test_p_zero_is_identity_and_p_one_always_mixes():
    x, labels, g = constant_images(6, 8), torch.arange(6), make_generator(0)
    for _ in range(20):
        out, a, b, lam = CutMix(CutMixConfig(p=0.0))(x, labels, g)
        assert out is x and a is labels and b is labels and lam == 1.0
    always = CutMix(CutMixConfig(p=1.0))
    assert all(always.sample(6, (8, 8), g) is not None for _ in range(50))
    half = CutMix()  # TGDD: p = 0.5
    mixed = sum(half.sample(6, (8, 8), g) is not None for _ in range(400))
    assert 150 < mixed < 250


def test_general_beta_is_seeded_and_config_is_checked():
    draws = [CutMix(CutMixConfig(p=1.0, beta=0.5)).sample(4, (8, 8), make_generator(s)) for s in (1, 1, 2)]
    assert draws[0].box == draws[1].box and torch.equal(draws[0].index, draws[1].index)
    with pytest.raises(ValueError, match="p=1.5"):
        CutMixConfig(p=1.5)
    with pytest.raises(ValueError, match="beta=0"):
        CutMixConfig(beta=0)


def test_gradients_reach_the_pasted_pixels():
    x = constant_images().requires_grad_(True)
    params = CutMixParams(index=torch.tensor([1, 2, 3, 0]), box=(0, 0, 4, 2), im_size=(4, 4))
    mixed, *_ = CutMix.apply(x, torch.arange(4), params)
    mixed.sum().backward()
    assert (x.grad == 1).all()  # each pixel is used once: in its own image or pasted into another


def test_train_epoch_mixed_loss_by_hand():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x, labels = torch.randn(4, 1, 4, 4, generator=make_generator(0)), torch.tensor([0, 1, 2, 0])
    partner = torch.tensor([2, 0, 1, 1])

    def fixed_mix(batch, target, generator):
        return batch, target, partner[: len(target)], 0.25

    with torch.no_grad():
        logits = net(x)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)  # lr 0: the loss is of the untouched net
    g = make_generator(0)
    loss = train_epoch(net, optimizer, x, labels, batch_size=4, generator=g, mix=fixed_mix)
    # one batch of the 4 images in the epoch's shuffled order; fixed_mix's partner labels are in that order
    order = torch.randperm(4, generator=make_generator(0))
    expected = 0.25 * F.cross_entropy(logits[order], labels[order]) + 0.75 * F.cross_entropy(logits[order], partner)
    assert loss == pytest.approx(float(expected), rel=1e-6)
    assert loss != pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-3)  # not the unmixed loss

    def other_hook(net, images, labels, *, epoch, raw_images):
        return cross_entropy_hook(net, images, labels, epoch=epoch, raw_images=raw_images)

    with pytest.raises(ValueError, match="needs the cross-entropy loss"):
        train_epoch(net, optimizer, x, labels, batch_size=4, generator=g, mix=fixed_mix, loss_hook=other_hook)


def test_training_augmentation_names():
    augment, mix = training_augmentation("tgdd")
    assert isinstance(augment, DiffAug) and not augment.config.batch and augment.config.strategy == "color_crop"
    assert isinstance(mix, CutMix) and (mix.config.p, mix.config.beta) == (0.5, 1.0)
    augment, mix = training_augmentation("dsa")
    assert isinstance(augment, DSA) and mix is None
    with pytest.raises(ValueError, match="'idc'"):
        training_augmentation("idc")


@pytest.fixture(scope="module")
def data():
    return small_digits(num_train=40, num_test=20)


def tgdd_experts(epochs: int = 6) -> ExpertConfig:
    return ExpertConfig.tgdd(epochs=epochs, width=4, batch_size=16)


def test_tgdd_expert_preset_trains_with_diffaug_and_cutmix(data):
    config = tgdd_experts()
    assert (config.augmentation, config.dsa) == ("tgdd", True)
    assert ExpertConfig.mtt().augmentation == ExpertConfig.ast().augmentation == "dsa"
    trajectory = train_expert(data, config, seed=3)
    # the loop it is documented to be: per-sample colour+crop DiffAug, then CutMix, from one generator
    net = build_model("ConvNet", 1, 10, (8, 8), width=4, seed=derive_seed(3, "init"))
    optimizer = ScheduledOptimizer(net.parameters(), config.optimizer)
    generator = make_generator(derive_seed(3, "data"))
    augment, mix = training_augmentation("tgdd")
    for epoch in range(config.epochs):
        train_epoch(net, optimizer.optimizer, data.images_train, data.labels_train, batch_size=16,
                    generator=generator, augment=augment, mix=mix, epoch=epoch)
        optimizer.epoch_done()
        assert torch.equal(trajectory.snapshot(epoch + 1), flatten_params(net)), f"epoch {epoch + 1}"
    # without CutMix the trajectory differs (the mixing is really in the loop)
    plain = train_expert(data, config.replace(augmentation="dsa"), seed=3)
    assert not torch.equal(plain.snapshot(config.epochs), trajectory.snapshot(config.epochs))


def test_tgdd_expert_resume_is_bit_identical(data):
    config = tgdd_experts()
    states = []
    full = train_expert(data, config, seed=5, on_epoch=states.append)
    for state in (states[1], states[4]):  # before and after the first milestone (epoch 4)
        resumed = train_expert(data, config, seed=5, start=state)
        assert torch.equal(resumed.snapshots, full.snapshots) and resumed.train_loss == full.train_loss
