"""MTT/AST distiller: matching loss, unroll, determinism, resume, NaN guard, AST switches."""
import dataclasses

import pytest
import torch

from ddlib.data import load_dataset
from ddlib.methods.distill_loop import NonFiniteLoss, run_distillation
from ddlib.trajectories.experts import ExpertConfig
from ddlib.core.functional import ParamLayout, flatten_params, functional_forward
from ddlib.models import build_model
from ddlib.methods.mtt import TrajectoryMatching
from ddlib.methods.mtt_config import MTTConfig
from ddlib.core.runtime import make_generator
from ddlib.core.train import OptimizerConfig, make_optimizer, train_epoch
from ddlib.core.unroll import batch_schedule, matching_loss, unroll_student


@dataclasses.dataclass
class MemoryTrajectory:
    snapshots: torch.Tensor

    @property
    def num_epochs(self):
        return len(self.snapshots) - 1

    def snapshot(self, epoch):
        return self.snapshots[epoch]


class MemorySource:
    def __init__(self, trajectories):
        self.trajectories = trajectories
        self.loads = 0

    def __len__(self):
        return len(self.trajectories)

    def trajectory(self, k):
        self.loads += 1
        return self.trajectories[k]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def tiny_net(data, seed=0):
    return build_model("ConvNet", data.channel, data.num_classes, data.im_size, width=8, seed=seed)


@pytest.fixture(scope="module")
def source(digits):
    trajectories = []
    for k in range(2):
        net = tiny_net(digits, seed=k)
        opt = make_optimizer(net.parameters(), OptimizerConfig(lr=0.01))
        g = make_generator(k)
        snaps = [flatten_params(net)]
        for epoch in range(4):
            train_epoch(net, opt, digits.images_train[:400], digits.labels_train[:400], batch_size=64,
                        generator=g, epoch=epoch)
            snaps.append(flatten_params(net))
        trajectories.append(MemoryTrajectory(torch.stack(snaps)))
    return MemorySource(trajectories)


def config(**changes):
    base = MTTConfig(ipc=2, iterations=3, syn_steps=4, expert_epochs=2, max_start_epoch=2, lr_img=10.0,
                     lr_lr=1e-5, lr_teacher=0.01, dsa=True)
    return base.replace(**changes)


def test_matching_loss_zero_on_target_one_when_not_moving():
    start, target = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([3.0, 4.0, 1.0])
    assert matching_loss(target.clone(), start, target).item() == 0.0
    assert matching_loss(start.clone(), start, target).item() == 1.0
    # halfway: ||(1.5, 2)||^2 / 25 = 6.25 / 25
    assert matching_loss(torch.tensor([1.5, 2.0, 1.0]), start, target).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="identical"):
        matching_loss(start, start, start)


def test_batch_schedule_covers_each_pass():
    schedule = batch_schedule(10, 4, 6, make_generator(0))
    assert [len(i) for i in schedule] == [4, 4, 2, 4, 4, 2]
    assert sorted(torch.cat(schedule[:3]).tolist()) == list(range(10))


def test_unroll_equals_hand_written_sgd(digits):
    net = tiny_net(digits)
    layout = ParamLayout.of(net)
    start = flatten_params(net)
    images, labels = digits.images_train[:6], digits.labels_train[:6]
    lr = torch.tensor(0.05)
    result = unroll_student(net, start, images, labels, lr, syn_steps=2, generator=make_generator(0),
                            keep_steps=(1,))
    params = start.clone()
    for _ in range(2):  # full batch, no augmentation: order does not matter
        p = params.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(functional_forward(net, p, images), labels)
        params = params - 0.05 * torch.autograd.grad(loss, p)[0]
    assert torch.allclose(result.final.detach(), params, atol=1e-6)
    assert set(result.kept) == {1} and len(result.inner_losses) == 2
    assert layout.numel == start.numel()


def test_gradients_reach_images_and_syn_lr(digits):
    net = tiny_net(digits)
    images = digits.images_train[:6].clone().requires_grad_(True)
    lr = torch.tensor(0.01, requires_grad=True)
    start = flatten_params(net)
    result = unroll_student(net, start, images, digits.labels_train[:6], lr, syn_steps=3,
                            generator=make_generator(0))
    matching_loss(result.final, start, start + 0.1).backward()
    assert images.grad.abs().sum() > 0 and lr.grad.abs() > 0


def run(digits, source, cfg, seed=0, **kwargs):
    method = TrajectoryMatching(digits, source, tiny_net(digits), cfg, seed)
    return run_distillation(method, cfg.iterations, progress=False, **kwargs)


def test_same_seed_same_synthetic_set_after_three_iterations(digits, source):
    a, b = run(digits, source, config()), run(digits, source, config())
    c = run(digits, source, config(), seed=1)
    assert torch.equal(a.synthetic.images_syn, b.synthetic.images_syn)
    assert a.synthetic.syn_lr == b.synthetic.syn_lr
    assert not torch.equal(a.synthetic.images_syn, c.synthetic.images_syn)
    assert a.iterations_done == 3 and a.stopped_reason == "completed"
    assert [h["iteration"] for h in a.history] == [0, 1, 2]


def test_resume_after_interruption_is_identical(digits, source, tmp_path):
    straight = run(digits, source, config(iterations=4))
    ckpt = tmp_path / "ckpt.pt"
    run(digits, source, config(iterations=2), checkpoint_path=ckpt, checkpoint_every=1)
    # a new process would rebuild the method from scratch and find the checkpoint
    method = TrajectoryMatching(digits, source, tiny_net(digits), config(iterations=4), 0)
    # the fingerprint includes the config (iterations differ): continue with the same one
    with pytest.raises(ValueError, match="different run"):
        run_distillation(method, 4, checkpoint_path=ckpt, progress=False)
    first = run(digits, source, config(iterations=4), checkpoint_path=tmp_path / "b.pt", checkpoint_every=1)
    assert torch.equal(first.synthetic.images_syn, straight.synthetic.images_syn)


def test_resume_from_checkpoint_written_mid_run(digits, source, tmp_path, monkeypatch):
    straight = run(digits, source, config(iterations=4))
    ckpt = tmp_path / "ckpt.pt"
    method = TrajectoryMatching(digits, source, tiny_net(digits), config(iterations=4), 0)
    calls = {"n": 0}
    original = method.step

    def interrupt(iteration):
        calls["n"] += 1
        if iteration == 2:
            raise KeyboardInterrupt
        return original(iteration)

    monkeypatch.setattr(method, "step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_distillation(method, 4, checkpoint_path=ckpt, checkpoint_every=100, progress=False)
    resumed = run(digits, source, config(iterations=4), checkpoint_path=ckpt)
    assert [h["iteration"] for h in resumed.history] == [0, 1, 2, 3]
    assert torch.equal(resumed.synthetic.images_syn, straight.synthetic.images_syn)
    assert resumed.synthetic.syn_lr == straight.synthetic.syn_lr


def test_non_finite_loss_stops_and_keeps_last_good_set(digits, source, monkeypatch):
    import ddlib.methods.mtt as mtt_module

    method = TrajectoryMatching(digits, source, tiny_net(digits), config(iterations=5), 0)
    original_step, original_loss = method.step, mtt_module.matching_loss
    snapshot = {}

    def flaky(iteration):
        if iteration == 2:
            snapshot["images"] = method.images.detach().clone()
            monkeypatch.setattr(mtt_module, "matching_loss", lambda *a: original_loss(*a) * float("nan"))
        return original_step(iteration)

    monkeypatch.setattr(method, "step", flaky)
    result = run_distillation(method, 5, progress=False)
    assert result.iterations_done == 2 and "iteration 2" in result.stopped_reason
    assert torch.equal(result.synthetic.images_syn, snapshot["images"])


class InterpolatedTrajectory(MemoryTrajectory):
    def at(self, epoch):
        low = min(int(epoch), self.num_epochs - 1)
        frac = epoch - low
        return (1 - frac) * self.snapshots[low] + frac * self.snapshots[low + 1]


def test_start_epochs_in_range_and_continuous_sampling(digits, source):
    result = run(digits, source, config(iterations=6))
    assert all(h["start_epoch"] in (0.0, 1.0) for h in result.history)
    smooth = MemorySource([InterpolatedTrajectory(t.snapshots) for t in source.trajectories])
    cont = run(digits, smooth, config(iterations=6, sampling="continuous", dsa=False))
    starts = [h["start_epoch"] for h in cont.history]
    assert all(0 <= s < 2 for s in starts) and any(s != int(s) for s in starts)


def test_integer_only_trajectory_rejects_continuous_sampling(digits, source):
    with pytest.raises(ValueError, match="integer epochs only"):
        run(digits, source, config(iterations=1, sampling="continuous"))


def test_config_validation_happens_before_compute(digits, source):
    with pytest.raises(ValueError, match="exceeds the experts' 4 epochs"):
        TrajectoryMatching(digits, source, tiny_net(digits), config(max_start_epoch=3), 0)
    with pytest.raises(ValueError, match="syn_steps=0"):
        config(syn_steps=0)
    with pytest.raises(ValueError, match="unknown key"):
        MTTConfig.from_dict({"syn_step": 3})
    assert MTTConfig.for_dataset("CIFAR-10", 1).syn_steps == 50
    with pytest.raises(ValueError, match="no MTT settings"):
        MTTConfig.for_dataset("mnist", 10)


@pytest.mark.parametrize("switch", [
    {"balanced_inner_loss": True}, {"intermediate_matching": True}, {"perturbation": "paper"},
    {"perturbation": "code"}, {"init": "representative"}, {"init": "noise"}, {"inner_momentum": 0.9},
])
def test_each_ast_switch_runs_and_changes_the_result(digits, source, switch):
    base = run(digits, source, config(iterations=2))
    changed = run(digits, source, config(iterations=2, **switch))
    assert changed.iterations_done == 2
    assert not torch.equal(base.synthetic.images_syn, changed.synthetic.images_syn)


@pytest.mark.parametrize("features", ["embed", "logits"])
def test_representative_init_features(digits, source, features):
    """Paper: K-Means on the expert's penultimate features; AST code: on its logits."""
    from ddlib.methods.ast_components import class_features, representative_init
    from ddlib.core.functional import load_flat_params
    from ddlib.core.runtime import derive_seed

    cfg = config(init="representative", representative_features=features)
    method = TrajectoryMatching(digits, source, tiny_net(digits), cfg, 5)
    encoder = tiny_net(digits)
    load_flat_params(encoder, source.trajectories[0].snapshot(4))
    for c in (0, 7):
        index = digits.class_indices[c]
        feats = class_features(encoder, digits.images_train[index], use_logits=features == "logits")
        assert feats.shape[1] == (digits.num_classes if features == "logits" else 8)  # width 8 x a 1x1 map
        chosen = representative_init(feats, cfg.ipc, derive_seed(5, "representative", c))
        expected = digits.images_train[index[chosen]]
        assert torch.equal(method.images.detach()[c * cfg.ipc:(c + 1) * cfg.ipc], expected)


def test_ast_preset_code_and_paper():
    for variant in ("code", "paper"):
        cfg = config().with_ast(variant)
        assert cfg.init == "representative" and cfg.balanced_inner_loss and cfg.intermediate_matching
    code, paper = config().with_ast(), config().with_ast("paper")
    assert code == config().with_ast("code")  # the code is the default
    assert (code.perturbation, code.perturbation_alpha, code.balance_log_base, code.inner_momentum,
            code.representative_features) == ("code", None, 5.0, 0.9, "logits")
    assert (paper.perturbation, paper.perturbation_alpha, paper.balance_log_base, paper.inner_momentum,
            paper.representative_features) == ("paper", None, None, 0.0, "embed")
    assert config().with_ast("paper", perturbation_alpha=0.2).perturbation_alpha == 0.2  # overrides win
    with pytest.raises(ValueError, match="variant='both'"):
        config().with_ast("both")


def test_perturbation_config_validation():
    with pytest.raises(ValueError, match="perturbation_alpha=0.1 is set but perturbation='none'"):
        config(perturbation_alpha=0.1)
    with pytest.raises(ValueError, match="perturbation_alpha=0.0: expected > 0"):
        config(perturbation="code", perturbation_alpha=0.0)
    with pytest.raises(TypeError, match="perturbation"):
        config(perturbation="filter")
    with pytest.raises(ValueError, match="unknown key"):
        config(weight_perturbation=0.1)  # the old switch is gone


@pytest.mark.parametrize("memory", ["recompute", "graph"])
@pytest.mark.parametrize("variant", ["paper", "code"])
def test_matching_denominators_use_the_perturbed_start(digits, source, monkeypatch, variant, memory):
    """A student that cannot move (syn_lr 1e-30) stays at the perturbed start theta*_t, so every matching
    term ||theta*_t - theta_e||^2 / ||theta*_t - theta_e||^2 is exactly 1: 1 for the final term, 2 with one
    intermediate point. A denominator from the unperturbed theta_t would give another value."""
    import ddlib.methods.ast_components as ast_module

    original, starts = ast_module.perturb_weights, []

    def recording(flat, *args, **kwargs):
        starts.append((flat.clone(), original(flat, *args, **kwargs)))
        return starts[-1][1]

    monkeypatch.setattr(ast_module, "perturb_weights", recording)
    for intermediate, expected in ((False, 1.0), (True, 2.0)):
        cfg = config(iterations=1, lr_teacher=1e-30, perturbation=variant, intermediate_matching=intermediate,
                     memory=memory, dsa=False)
        step = TrajectoryMatching(digits, source, tiny_net(digits), cfg, 0).step(0)
        assert step["loss"] == pytest.approx(expected, rel=1e-5)
        theta, perturbed = starts[-1]
        target = source.trajectories[step["expert"]].snapshot(int(step["start_epoch"]) + cfg.expert_epochs)
        unperturbed_ratio = float((perturbed - target).pow(2).sum() / (theta - target).pow(2).sum())
        assert abs(unperturbed_ratio - 1.0) > 1e-4  # the test can tell the two denominators apart


def test_zca_mismatch_between_experts_and_config_raises_before_compute(digits, source):
    class StoreLike(MemorySource):
        def __init__(self, trajectories, zca):
            super().__init__(trajectories)
            self.config = ExpertConfig(zca=zca)

    for expert_zca, cfg_zca in ((True, False), (False, True)):
        store = StoreLike(source.trajectories, expert_zca)
        message = (rf"experts were trained with zca={expert_zca} .* MTTConfig.zca={cfg_zca}.*"
                   rf"Pass MTTConfig\(zca={expert_zca}\)")
        with pytest.raises(ValueError, match=message):
            TrajectoryMatching(digits, store, tiny_net(digits), config(zca=cfg_zca), 0)
        assert store.loads == 0  # nothing loaded or computed
    matching = StoreLike(source.trajectories, False)
    assert TrajectoryMatching(digits, matching, tiny_net(digits), config(), 0).config.zca is False


def test_balanced_weight_recorded(digits, source):
    result = run(digits, source, config(iterations=4, balanced_inner_loss=True))
    import math
    for h in result.history:  # max_start 2: middle 1; start 0 -> 1/log(9); start 1 -> log(8)
        expected = 1 / math.log(9) if h["start_epoch"] == 0 else math.log(8)
        assert h["inner_weight"] == pytest.approx(expected)


def test_syn_lr_is_clamped_at_its_floor(digits, source):
    """A floor above the learned step size holds it there (the floor guards against syn_lr <= 0)."""
    free = run(digits, source, config(iterations=3))
    assert not any(h["syn_lr_clamped"] for h in free.history)
    result = run(digits, source, config(iterations=3, min_syn_lr=0.5))
    assert all(h["syn_lr_clamped"] and h["syn_lr"] == 0.5 for h in result.history)
    assert result.synthetic.syn_lr == 0.5
    with pytest.raises(ValueError, match="min_syn_lr=0"):
        config(min_syn_lr=0.0)


def test_loaded_state_does_not_share_optimizer_buffers(digits, source):
    # A state loaded into a second distiller must be a copy: stepping the second one
    # must leave the first one's image-momentum buffer untouched.
    first = TrajectoryMatching(digits, source, tiny_net(digits), config(), seed=0)
    first.step(0)
    second = TrajectoryMatching(digits, source, tiny_net(digits), config(), seed=0)
    second.load_state_dict(first.state_dict())
    before = first.opt_img.state[first.images]["momentum_buffer"].clone()
    second.step(1)
    assert torch.equal(first.opt_img.state[first.images]["momentum_buffer"], before)
