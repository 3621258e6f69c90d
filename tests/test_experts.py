"""Expert training (ddlib.trajectories.experts): presets, equality with a hand-written loop, exact resume, loss hooks."""
from __future__ import annotations

import copy
import dataclasses
import io

import pytest
import torch
import torch.nn.functional as F

import ddlib
from ddlib.core.config import Config
from ddlib.data.augment import DSA
from ddlib.data.dsa_params import DSAConfig
from ddlib.data.zca import ZCA
from ddlib.trajectories.expert_state import ExpertState
from ddlib.trajectories.experts import ExpertConfig, Trajectory, train_expert
from ddlib.core.functional import ParamLayout, flatten_params
from ddlib.models import build_model
from ddlib.core.runtime import derive_seed, make_generator
from ddlib.core.train import OptimizerConfig, ScheduledOptimizer, accuracy, make_optimizer, make_scheduler, train_epoch

SEED = 7


@pytest.fixture(scope="module")
def data():
    """60 train / 40 test images of the 8x8 digits, enough for a width-8 ConvNet."""
    full = ddlib.load_dataset("digits")
    return dataclasses.replace(
        full, images_train=full.images_train[:60], labels_train=full.labels_train[:60],
        images_test=full.images_test[:40], labels_test=full.labels_test[:40],
    )


def tiny(**overrides) -> ExpertConfig:
    return ExpertConfig(width=8, epochs=3, batch_size=16).replace(**overrides)


# ---------------------------------------------------------------------- presets
def test_mtt_defaults():
    cfg = ExpertConfig.mtt()
    assert cfg == ExpertConfig()
    assert (cfg.arch, cfg.width, cfg.norm, cfg.epochs, cfg.batch_size, cfg.dsa, cfg.zca) == (
        "ConvNet", 128, "instance", 50, 256, True, False)
    opt = cfg.optimizer
    assert (opt.kind, opt.lr, opt.weight_decay, opt.milestones) == ("sgd", 0.01, 0.0, ())
    sgd = make_optimizer(torch.nn.Linear(2, 2).parameters(), opt)
    assert sgd.param_groups[0]["momentum"] == 0.0
    assert ExpertConfig.mtt(zca=True).zca


def test_ast_paper_preset_momentum_and_halving_at_25():
    cfg = ExpertConfig.ast("paper")
    assert cfg.optimizer.kind == "momentum" and cfg.optimizer.momentum == 0.9
    assert cfg.optimizer.milestones == (25,) and cfg.optimizer.lr_factor == 0.5
    assert cfg.epochs == 50 and cfg.optimizer.weight_decay == 0.0 and not cfg.optimizer.restart_at_milestones
    # the schedule really halves the lr after 25 of 50 epochs
    scheduled = ScheduledOptimizer(torch.nn.Linear(2, 2).parameters(), cfg.optimizer)
    lrs = []
    for _ in range(50):
        lrs.append(scheduled.lr)
        scheduled.optimizer.step()
        scheduled.epoch_done()
    assert lrs[24] == pytest.approx(0.01) and lrs[25] == pytest.approx(0.005) and lrs[49] == pytest.approx(0.005)


def test_ast_code_preset_is_buffer_py():
    cfg = ExpertConfig.ast()
    assert cfg == ExpertConfig.ast("code")  # the code is the default
    opt = cfg.optimizer
    assert (opt.kind, opt.lr, opt.momentum, opt.weight_decay, opt.lr_factor) == ("momentum", 0.003, 0.9, 1e-3, 0.6)
    # buffer.py: "if e in [train_epochs // 2 + 1]: lr *= 0.6" after 0-based epoch e, i.e. 27 finished epochs of 50
    assert opt.milestones == (27,) and opt.restart_at_milestones and opt.momentum_after_restart is None
    assert ExpertConfig.ast(epochs=10).optimizer.milestones == (7,)
    scheduled = ScheduledOptimizer(torch.nn.Linear(2, 2).parameters(), opt)
    lrs = []
    for _ in range(50):
        lrs.append(scheduled.lr)
        scheduled.epoch_done()
    assert lrs[26] == pytest.approx(0.003) and lrs[27] == pytest.approx(0.0018) and lrs[49] == pytest.approx(0.0018)
    assert ExpertConfig.ast(batch_size=64).batch_size == 64
    with pytest.raises(ValueError, match="preset='both'"):
        ExpertConfig.ast("both")


# ---------------------------------------------------------------------- ScheduledOptimizer
def _one_weight(value=0.0):
    return torch.nn.Parameter(torch.tensor([value], dtype=torch.float64))


def _constant_gradient_step(scheduled, weight):
    """One optimizer step on loss = weight (gradient exactly 1)."""
    scheduled.optimizer.zero_grad()
    weight.sum().backward()
    scheduled.optimizer.step()


@pytest.mark.parametrize("restart", [False, True])
def test_scheduled_optimizer_lr_per_epoch(restart):
    config = OptimizerConfig(kind="momentum", lr=0.1, milestones=(2, 4), lr_factor=0.5, restart_at_milestones=restart)
    weight = _one_weight()
    scheduled = ScheduledOptimizer([weight], config)
    lrs = []
    for _ in range(6):
        lrs.append(scheduled.lr)
        _constant_gradient_step(scheduled, weight)
        scheduled.epoch_done()
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert config.lr_after(3) == pytest.approx(0.05) and config.lr_after(3, lr=1.0) == pytest.approx(0.5)


def test_scheduled_optimizer_restart_resets_momentum():
    """w0 = 0, gradient 1, lr 0.1, momentum 0.9, milestone 1 (lr -> 0.05):
    step 1: buffer 1, w = -0.1. Step 2 with a restart: buffer 1 again, w = -0.1 - 0.05 * 1 = -0.15;
    without: buffer 0.9 * 1 + 1 = 1.9, w = -0.1 - 0.05 * 1.9 = -0.195."""
    for restart, expected in ((True, -0.15), (False, -0.195)):
        weight = _one_weight()
        config = OptimizerConfig(kind="momentum", lr=0.1, momentum=0.9, milestones=(1,), lr_factor=0.5,
                                 restart_at_milestones=restart)
        scheduled = ScheduledOptimizer([weight], config)
        _constant_gradient_step(scheduled, weight)
        first = scheduled.optimizer
        scheduled.epoch_done()
        assert (scheduled.optimizer is not first) == restart
        assert (len(scheduled.optimizer.state) == 0) == restart  # a rebuilt optimizer has no momentum buffer
        _constant_gradient_step(scheduled, weight)
        assert weight.item() == pytest.approx(expected, rel=1e-12)


def test_scheduled_optimizer_momentum_after_restart():
    config = OptimizerConfig(kind="momentum", lr=0.1, momentum=0.9, milestones=(1,), lr_factor=0.5,
                             restart_at_milestones=True, momentum_after_restart=0.8)
    weight = _one_weight()
    scheduled = ScheduledOptimizer([weight], config)
    assert scheduled.optimizer.param_groups[0]["momentum"] == 0.9
    _constant_gradient_step(scheduled, weight)
    scheduled.epoch_done()
    assert scheduled.optimizer.param_groups[0]["momentum"] == 0.8 and scheduled.lr == pytest.approx(0.05)
    _constant_gradient_step(scheduled, weight)  # buffer 1: w = -0.1 - 0.05
    _constant_gradient_step(scheduled, weight)  # buffer 0.8 * 1 + 1 = 1.8: w = -0.15 - 0.05 * 1.8
    assert weight.item() == pytest.approx(-0.24, rel=1e-12)
    with pytest.raises(ValueError, match="needs restart_at_milestones=True"):
        OptimizerConfig(momentum_after_restart=0.8)


@pytest.mark.parametrize("restart", [False, True])
@pytest.mark.parametrize("stop", [1, 2, 3])
def test_scheduled_optimizer_state_round_trip_mid_run(restart, stop):
    """Stopping after ``stop`` epochs (before, at and after the milestone 2), saving, and continuing in a
    fresh ScheduledOptimizer gives bit-identical weights to the uninterrupted run."""
    config = OptimizerConfig(kind="momentum", lr=0.1, momentum=0.9, milestones=(2,), lr_factor=0.5,
                             restart_at_milestones=restart, momentum_after_restart=0.8 if restart else None)

    def epochs(scheduled, weight, count):
        for _ in range(count):
            for _ in range(2):  # two mini-batches per epoch, loss = w^2 / 2 + w
                scheduled.optimizer.zero_grad()
                (weight.pow(2).sum() / 2 + weight.sum()).backward()
                scheduled.optimizer.step()
            scheduled.epoch_done()

    weight = _one_weight(1.0)
    straight = ScheduledOptimizer([weight], config)
    epochs(straight, weight, 4)
    weight_a = _one_weight(1.0)
    first = ScheduledOptimizer([weight_a], config)
    epochs(first, weight_a, stop)
    state = copy.deepcopy(first.state_dict())
    weight_b = weight_a.detach().clone().requires_grad_(True)
    resumed = ScheduledOptimizer([weight_b], config)
    resumed.load_state_dict(state)
    assert resumed.finished_epochs == stop and resumed.lr == first.lr
    assert resumed.optimizer.param_groups[0]["momentum"] == first.optimizer.param_groups[0]["momentum"]
    epochs(resumed, weight_b, 4 - stop)
    assert torch.equal(weight_b.detach(), weight.detach())


def test_tgdd_preset():
    cfg = ExpertConfig.tgdd()
    opt = cfg.optimizer
    assert (cfg.epochs, cfg.batch_size, cfg.dsa) == (60, 64, True)
    assert (opt.kind, opt.momentum, opt.weight_decay, opt.milestones, opt.lr_factor) == (
        "momentum", 0.9, 5e-4, (40, 50), 0.2)
    assert ExpertConfig.tgdd(epochs=30).optimizer.milestones == (20, 25)


def test_config_validation():
    with pytest.raises(ValueError, match="unknown key"):
        ExpertConfig.from_dict({"epoch": 3})
    with pytest.raises(TypeError, match="storage_dtype"):
        ExpertConfig(storage_dtype="bfloat16")
    with pytest.raises(ValueError, match="epochs=0"):
        ExpertConfig(epochs=0)
    cfg = ExpertConfig.from_dict({"optimizer": {"kind": "momentum", "lr": 0.1}, "epochs": 2})
    assert isinstance(cfg.optimizer, OptimizerConfig) and cfg.optimizer.lr == 0.1
    assert ExpertConfig.from_dict(cfg.to_dict()) == cfg


# ---------------------------------------------------------------------- training
def hand_written_run(data, config: ExpertConfig, seed: int, epochs: int) -> list[torch.Tensor]:
    """The plain training loop an expert is documented to be: same seeds, same calls."""
    net = build_model(config.arch, data.channel, data.num_classes, data.im_size, width=config.width,
                      depth=config.depth, norm=config.norm, seed=derive_seed(seed, "init"))
    generator = make_generator(derive_seed(seed, "data"))
    restart = config.optimizer.restart_at_milestones
    optimizer = make_optimizer(net.parameters(), config.optimizer)
    scheduler = None if restart else make_scheduler(optimizer, config.optimizer)
    lr = config.optimizer.lr
    images = data.images_train
    if config.zca:
        images = ZCA.fit(images, regularization=0.1).transform(images)
    augment = DSA(DSAConfig()) if config.dsa else None
    params = [flatten_params(net)]
    for epoch in range(epochs):
        train_epoch(net, optimizer, images, data.labels_train, batch_size=config.batch_size,
                    generator=generator, augment=augment, epoch=epoch)
        if restart and epoch + 1 in config.optimizer.milestones:  # the AST code: a fresh SGD at the decayed lr
            lr *= config.optimizer.lr_factor
            optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=config.optimizer.momentum,
                                        weight_decay=config.optimizer.weight_decay)
        elif not restart:
            scheduler.step()
        params.append(flatten_params(net))
    return params


@pytest.mark.parametrize("config", [
    tiny(),
    tiny(zca=True, optimizer={"kind": "momentum", "momentum": 0.9, "weight_decay": 1e-3,
                              "milestones": (1,), "lr_factor": 0.5}),
    ExpertConfig.ast("code", epochs=4, width=8, batch_size=16),  # milestone 4 // 2 + 2 = 4: never reached
    ExpertConfig.ast("code", epochs=3, width=8, batch_size=16).replace(
        optimizer=ExpertConfig.ast("code").optimizer.replace(milestones=(1,))),
], ids=["mtt", "momentum-zca-milestone", "ast-code", "ast-code-restart"])
def test_snapshots_equal_hand_written_loop(data, config):
    trajectory = train_expert(data, config, SEED)
    reference = hand_written_run(data, config, SEED, config.epochs)
    assert trajectory.snapshots.shape == (config.epochs + 1, trajectory.layout.numel)
    for k, expected in enumerate(reference):
        assert torch.equal(trajectory.snapshot(k), expected), f"epoch {k}"
    assert trajectory.snapshot(0).dtype == torch.float32
    assert len(trajectory.train_loss) == len(trajectory.test_accuracy) == config.epochs
    assert all(0.0 <= a <= 1.0 for a in trajectory.test_accuracy)


def test_a_given_zca_trains_the_same_expert_as_fitting_it(data):
    """Fitting the whitening once and passing it on changes nothing: bit-identical snapshots."""
    config = tiny(zca=True, epochs=2)
    zca = ZCA.fit(data.images_train, regularization=0.1)
    assert torch.equal(train_expert(data, config, SEED, zca=zca).snapshots, train_expert(data, config, SEED).snapshots)
    plain = tiny(epochs=1)  # without config.zca the whitening is not used
    assert torch.equal(train_expert(data, plain, SEED, zca=zca).snapshots, train_expert(data, plain, SEED).snapshots)


def test_a_zca_of_other_images_or_settings_is_refused_before_training(data):
    config = tiny(zca=True, epochs=1)
    with pytest.raises(ValueError, match="not fit on these training images: its mean differs"):
        train_expert(data, config, SEED, zca=ZCA.fit(data.images_train[:30], regularization=0.1))
    with pytest.raises(ValueError, match="zca has regularization 0.5; experts use 0.1"):
        train_expert(data, config, SEED, zca=ZCA.fit(data.images_train, regularization=0.5))
    with pytest.raises(ValueError, match=r"zca was fit on images of shape \(1, 4, 4\); the training images are "
                                         r"\(1, 8, 8\)"):
        train_expert(data, config, SEED, zca=ZCA.fit(data.images_train[:, :, :4, :4], regularization=0.1))
    with pytest.raises(TypeError, match="zca must be a ddlib.ZCA; got Tensor"):
        train_expert(data, config, SEED, zca=data.images_train)


def test_test_accuracy_and_layout(data):
    config = tiny(epochs=1)
    trajectory = train_expert(data, config, SEED)
    net = build_model("ConvNet", 1, 10, (8, 8), width=8)
    assert trajectory.layout == ParamLayout.of(net)
    ddlib.core.functional.load_flat_params(net, trajectory.snapshot(1))
    assert trajectory.test_accuracy[0] == accuracy(net, data.images_test, data.labels_test)


@pytest.mark.parametrize("restart", [False, True])
def test_resume_is_bit_identical(data, restart):
    config = tiny(epochs=4, optimizer={"kind": "momentum", "milestones": (2,), "lr_factor": 0.5,
                                       "restart_at_milestones": restart})
    states: list[ExpertState] = []
    full = train_expert(data, config, SEED, on_epoch=states.append)
    assert [s.epoch for s in states] == [1, 2, 3, 4]
    for state in (states[0], states[1], states[2]):  # before, at and after the milestone
        resumed = train_expert(data, config, SEED, start=state)
        assert torch.equal(resumed.snapshots, full.snapshots)
        assert resumed.train_loss == full.train_loss and resumed.test_accuracy == full.test_accuracy
    # a state survives a round trip through its dict form
    again = ExpertState.from_dict(states[2].to_dict())
    assert torch.equal(train_expert(data, config, SEED, start=again).snapshots, full.snapshots)
    # ... and through a checkpoint file read back with weights_only (what trajectory_store does)
    buffer = io.BytesIO()
    torch.save(states[1].to_dict(), buffer)
    buffer.seek(0)
    loaded = ExpertState.from_dict(torch.load(buffer, weights_only=True))
    assert loaded.scheduler_state["finished_epochs"] == 2
    assert (loaded.scheduler_state["scheduler"] is None) == restart  # a restarting optimizer has no MultiStepLR
    assert torch.equal(train_expert(data, config, SEED, start=loaded).snapshots, full.snapshots)
    if not restart:  # a state written before ScheduledOptimizer held the bare MultiStepLR state
        legacy = dataclasses.replace(states[1], scheduler_state=states[1].scheduler_state["scheduler"])
        assert torch.equal(train_expert(data, config, SEED, start=legacy).snapshots, full.snapshots)
    with pytest.raises(ValueError, match="missing"):
        ExpertState.from_dict({"epoch": 1})


def test_seed_changes_trajectory(data):
    a, b = train_expert(data, tiny(epochs=1), 0), train_expert(data, tiny(epochs=1), 1)
    assert not torch.equal(a.snapshot(0), b.snapshot(0))


@dataclasses.dataclass(frozen=True)
class ScaledCE(Config):
    """A loss hook that is also a Config: cross-entropy times ``scale``; counts its calls."""

    scale: float = 3.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "calls", [])

    def __call__(self, net, images, labels, *, epoch, raw_images):
        self.calls.append((epoch, images.shape[0], raw_images.shape[0]))
        return self.scale * F.cross_entropy(net(images), labels)


def test_loss_hook_is_called_and_changes_trajectory(data):
    config = tiny(epochs=2)
    hook = ScaledCE()
    scaled = train_expert(data, config, SEED, loss_hook=hook)
    plain = train_expert(data, config, SEED)
    batches = -(-60 // config.batch_size)
    assert len(hook.calls) == config.epochs * batches
    assert [c[0] for c in hook.calls] == [0] * batches + [1] * batches
    assert torch.equal(scaled.snapshot(0), plain.snapshot(0))
    assert not torch.allclose(scaled.snapshot(2), plain.snapshot(2))


def test_trajectory_snapshot_range():
    layout = ParamLayout(("w",), ((3,),))
    trajectory = Trajectory(torch.zeros(4, 3, dtype=torch.float16), layout, [1.0] * 3, [0.5] * 3)
    assert trajectory.num_epochs == 3 and trajectory.snapshot(3).dtype == torch.float32
    for bad in (-1, 4, 1.5):
        with pytest.raises(IndexError, match=r"\[0, 3\]"):
            trajectory.snapshot(bad)
    with pytest.raises(ValueError, match="shape"):
        Trajectory(torch.zeros(4, 5), layout, [1.0] * 3, [0.5] * 3)
    with pytest.raises(ValueError, match="train losses"):
        Trajectory(torch.zeros(4, 3), layout, [1.0], [0.5] * 3)
