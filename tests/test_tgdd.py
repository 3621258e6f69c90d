"""TGDD: snapshot sampling, the two losses, pixel space, IPC rules, determinism, NaN guard, resume."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import ddlib
import ddlib.methods.tgdd as tgdd_module
from ddlib.methods.distill_loop import run_distillation
from ddlib.methods.dm import dm_loss, sample_real_by_class
from ddlib.core.functional import flatten_params
from ddlib.models import build_model
from ddlib.methods.tgdd import TGDD, TGDDConfig, default_alpha, sample_snapshot_epochs, sdc_loss
from ddlib.core.train import OptimizerConfig, make_optimizer, train_epoch
from helpers import Interrupting, check_nan_loss_guard

LOOP = dict(progress=False)
EPOCHS = 3


@pytest.fixture(scope="module")
def digits():
    return ddlib.load_dataset("digits")


def make_net() -> torch.nn.Module:
    return build_model("ConvNet", 1, 10, (8, 8), width=8, seed=0)


class StandInTrajectory:
    def __init__(self, snapshots: list[torch.Tensor]) -> None:
        self.snapshots = snapshots
        self.num_epochs = len(snapshots) - 1

    def snapshot(self, epoch: int) -> torch.Tensor:
        return self.snapshots[epoch].clone()


class StandInStore:
    """In-memory stand-in for ``TrajectoryStore``: ``len`` and lazy ``trajectory(m)``."""

    def __init__(self, experts: list[list[torch.Tensor]]) -> None:
        self.experts, self.loads = experts, []

    def __len__(self) -> int:
        return len(self.experts)

    def trajectory(self, m: int) -> StandInTrajectory:
        self.loads.append(m)
        return StandInTrajectory(self.experts[m])


@pytest.fixture(scope="module")
def experts(digits):
    """Two experts of a width-8 ConvNet trained for EPOCHS epochs on 300 digits (snapshots 0..EPOCHS)."""
    images, labels = digits.images_train[:300], digits.labels_train[:300]
    out = []
    for e in range(2):
        net = build_model("ConvNet", 1, 10, (8, 8), width=8, seed=100 + e)
        opt = make_optimizer(net.parameters(), OptimizerConfig(kind="momentum", lr=0.05))
        g = torch.Generator().manual_seed(e)
        snaps = [flatten_params(net)]
        for epoch in range(EPOCHS):
            train_epoch(net, opt, images, labels, batch_size=64, generator=g, epoch=epoch)
            snaps.append(flatten_params(net))
        out.append(snaps)
    return out


def small_config(**overrides) -> TGDDConfig:
    return TGDDConfig(ipc=2, batch_real=16).replace(**overrides)


def make_tgdd(digits, experts, seed=0, **overrides) -> TGDD:
    return TGDD(digits, StandInStore(experts), make_net(), small_config(**overrides), seed=seed)


# -- snapshot sampling ---------------------------------------------------------------------------
@pytest.mark.parametrize("num_epochs", [0, 1, 6, 7, 100])
@pytest.mark.parametrize("region_length", [1, 2, 7])
def test_snapshot_sampling_stays_in_range(num_epochs, region_length):
    g = torch.Generator().manual_seed(num_epochs * 10 + region_length)
    draws = [sample_snapshot_epochs(num_epochs, region_length, g) for _ in range(1500)]
    for j, k in draws:
        assert 0 <= j <= num_epochs and j <= k <= min(j + region_length - 1, num_epochs)
    if num_epochs <= 7:  # small ranges: every encoder epoch and both region ends are hit
        assert {j for j, _ in draws} == set(range(num_epochs + 1))
        assert any(k == j for j, k in draws)
        assert any(k == min(j + region_length - 1, num_epochs) for j, k in draws)
    if region_length == 1:
        assert all(j == k for j, k in draws)


def test_snapshot_sampling_rejects_bad_arguments():
    with pytest.raises(ValueError):
        sample_snapshot_epochs(-1, 7, torch.Generator())
    with pytest.raises(ValueError):
        sample_snapshot_epochs(5, 0, torch.Generator())


# -- losses and rules ----------------------------------------------------------------------------
def test_sdc_loss_equals_cross_entropy():
    net = make_net()
    images, labels = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 3, 4, 9])
    assert torch.equal(sdc_loss(net, images, labels), F.cross_entropy(net(images), labels))


def test_alpha_and_lr_img_ipc_rules():
    assert [default_alpha(i) for i in (1, 10, 50)] == [2.5, 2.5, 0.5]
    assert [TGDDConfig(ipc=i).effective_alpha for i in (1, 10, 50)] == [2.5, 2.5, 0.5]
    assert TGDDConfig(ipc=50, alpha=1.0).effective_alpha == 1.0  # the code's default
    assert [TGDDConfig(ipc=i).effective_lr_img for i in (1, 10, 50)] == pytest.approx([0.01, 0.1, 0.5])
    assert TGDDConfig(ipc=10, lr_img_per_ipc=0.1).effective_lr_img == pytest.approx(1.0)
    assert TGDDConfig(ipc=10, lr_img=3.0).effective_lr_img == 3.0
    cfg = TGDDConfig()
    assert (cfg.iterations, cfg.region_length, cfg.batch_real, cfg.init, cfg.clamp) == (10000, 7, 128, "real", True)
    assert (cfg.dsa, cfg.augmentation) == (True, "idc")  # the authors' code: IDC DiffAug, batch_real 128
    with pytest.raises(ValueError, match="no loss"):
        TGDDConfig(use_mmd=False, use_sdc=False)
    with pytest.raises(ValueError, match="unknown key"):
        TGDDConfig.from_dict({"region_len": 7})


def test_optimizer_uses_the_effective_lr(digits, experts):
    method = make_tgdd(digits, experts, ipc=2)
    assert method.opt_img.param_groups[0]["lr"] == pytest.approx(0.02)
    assert method.opt_img.param_groups[0]["momentum"] == 0.5


def test_matching_augmentation_is_idc_diffaug_by_default(digits, experts, monkeypatch):
    from ddlib.data.augment import DSA
    from ddlib.data.diffaug import DiffAug

    method = make_tgdd(digits, experts)
    assert isinstance(method.augment, DiffAug)
    assert (method.augment.config.strategy, method.augment.config.batch) == ("color_crop_cutout", True)
    assert type(make_tgdd(digits, experts, augmentation="dsa").augment) is DSA
    assert make_tgdd(digits, experts, dsa=False).augment is None
    with pytest.raises(TypeError, match="augmentation"):
        TGDDConfig(augmentation="flip")
    # one shared draw per class for the class's real and synthetic batch, every op applied
    shared = []
    original = DiffAug.siamese

    def recording(self, *batches, generator):
        shared.append(len(batches))
        return original(self, *batches, generator=generator)

    monkeypatch.setattr(DiffAug, "siamese", recording)
    method.step(0)
    assert shared == [2] * digits.num_classes


# -- the distiller -------------------------------------------------------------------------------
def test_step_loss_decomposes_and_loads_snapshots(digits, experts):
    method = make_tgdd(digits, experts, dsa=False)
    pixels = method.pixels.detach().clone()
    g = torch.Generator()
    g.set_state(method.generator.get_state())
    log = method.step(0)
    # replay the draws of the step
    m = int(torch.randint(2, (1,), generator=g))
    j, k = sample_snapshot_epochs(EPOCHS, 7, g)
    real = sample_real_by_class(digits, 16, g, torch.device("cpu"))
    assert (log["m"], log["j"], log["k"]) == (m, j, k)
    assert torch.equal(flatten_params(method.encoder), experts[m][j])
    assert torch.equal(flatten_params(method.region_net), experts[m][k])
    assert method.encoder is not method.region_net
    syn = list(torch.split(digits.normalize(pixels), 2))
    with torch.no_grad():
        mmd = dm_loss(method.encoder.embed, real, syn)
        sdc = 10 * F.cross_entropy(method.region_net(torch.cat(syn)), method.labels)  # summed over 10 classes
    assert log["mmd"] == pytest.approx(float(mmd), rel=1e-5)
    assert log["sdc"] == pytest.approx(float(sdc), rel=1e-5)
    assert log["loss"] == pytest.approx(log["mmd"] + 2.5 * log["sdc"], rel=1e-5)


def test_pixels_stay_in_unit_range_and_synthetic_set_is_normalised(digits, experts):
    method = make_tgdd(digits, experts, lr_img=50.0)
    assert 0.0 <= float(method.pixels.detach().min()) and float(method.pixels.detach().max()) <= 1.0
    for i in range(3):
        method.step(i)
        assert 0.0 <= float(method.pixels.detach().min()) and float(method.pixels.detach().max()) <= 1.0
    pixels = method.pixels.detach()
    assert bool(((pixels == 0) | (pixels == 1)).any())  # the large lr pushed some pixels onto the bounds
    synthetic = method.synthetic_set()
    assert torch.allclose(synthetic.images_syn, digits.normalize(pixels))
    assert synthetic.config["method"] == "TGDD" and synthetic.config["effective_alpha"] == 2.5


def test_real_init_matches_real_images(digits, experts):
    method = make_tgdd(digits, experts)
    images = method.synthetic_set().images_syn
    for image, label in zip(images, method.labels):
        distance = (digits.images_train - image).flatten(1).abs().amax(1)
        nearest = int(distance.argmin())
        assert float(distance[nearest]) < 1e-5 and int(digits.labels_train[nearest]) == int(label)


def test_unclamped_pixels_may_leave_the_range(digits, experts):
    method = make_tgdd(digits, experts, lr_img=50.0, clamp=False)
    for i in range(3):
        method.step(i)
    assert float(method.pixels.detach().min()) < 0.0 or float(method.pixels.detach().max()) > 1.0


@pytest.mark.parametrize("switches", [dict(use_mmd=False), dict(use_sdc=False), dict(dsa=False), dict(init="noise")])
def test_ablation_switches(digits, experts, switches):
    method = make_tgdd(digits, experts, **switches)
    before = method.pixels.detach().clone()
    log = method.step(0)
    assert not torch.equal(before, method.pixels.detach())
    if not switches.get("use_mmd", True):
        assert log["mmd"] == 0.0 and log["sdc"] > 0
    if not switches.get("use_sdc", True):
        assert log["sdc"] == 0.0 and method.region_net is None and log["mmd"] > 0


def test_determinism_per_seed(digits, experts):
    def images(seed):
        method = make_tgdd(digits, experts, seed=seed)
        logs = [method.step(i) for i in range(3)]
        return method.pixels.detach().clone(), logs

    (a, log_a), (b, log_b), (c, _) = images(0), images(0), images(1)
    assert torch.equal(a, b) and log_a == log_b
    assert not torch.equal(a, c)


def test_nan_loss_raises_before_updating(digits, experts, monkeypatch):
    check_nan_loss_guard(make_tgdd(digits, experts), monkeypatch, tgdd_module, "sdc_loss", "pixels")


def test_resume_after_interruption_matches_straight_run(digits, experts, tmp_path):
    straight = run_distillation(make_tgdd(digits, experts, seed=4, iterations=4), **LOOP)
    path = tmp_path / "tgdd.pt"
    with pytest.raises(KeyboardInterrupt):
        run_distillation(Interrupting(make_tgdd(digits, experts, seed=4, iterations=4), 2), checkpoint_path=path,
                         **LOOP)
    resumed = run_distillation(make_tgdd(digits, experts, seed=4, iterations=4), checkpoint_path=path, **LOOP)
    assert resumed.iterations_done == 4
    assert torch.equal(resumed.synthetic.images_syn, straight.synthetic.images_syn)
    assert resumed.history == straight.history


def test_compiled_encoder_matches_eager_across_snapshots(digits, experts):
    """The compiled encoder must read the snapshot loaded in each iteration."""
    runs = {}
    for compiled in (False, True):
        method = make_tgdd(digits, experts, compile=compiled)
        steps = [method.step(i) for i in range(3)]
        runs[compiled] = ([s["mmd"] for s in steps], [(s["m"], s["j"]) for s in steps], method.pixels.detach().clone())
    assert runs[True][1] == runs[False][1]
    assert len(set(runs[False][1])) > 1  # the encoder's weights changed between iterations
    assert runs[True][0] == pytest.approx(runs[False][0], rel=1e-4)
    assert torch.allclose(runs[True][2], runs[False][2], atol=1e-4)


def test_chunked_real_pass_matches_one_pass(digits, experts):
    runs = {}
    for chunk in (0, 3):
        method = make_tgdd(digits, experts, real_chunk=chunk)
        assert method.real_chunk == chunk
        steps = [method.step(i) for i in range(3)]
        runs[chunk] = ([s["mmd"] for s in steps], method.pixels.detach().clone())
    assert runs[3][0] == pytest.approx(runs[0][0], rel=1e-5)
    assert torch.allclose(runs[3][1], runs[0][1], atol=1e-5)
    with pytest.raises(ValueError, match="real_chunk=-2"):
        TGDDConfig(real_chunk=-2)
