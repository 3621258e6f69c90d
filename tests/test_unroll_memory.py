"""Constant-memory trajectory matching: exact recomputation equals the plain graph unroll."""
import weakref

import pytest
import torch

import ddlib.methods.mtt as mtt_module
from ddlib.data.augment import DSA
from ddlib.data.dsa_params import DSAConfig
from ddlib.data.dataset import ImageDataset
from ddlib.methods.distill_loop import run_distillation
from ddlib.core.functional import flatten_params
from ddlib.models import build_model
from ddlib.methods.mtt import TrajectoryMatching
from ddlib.methods.mtt_config import MTTConfig
from ddlib.core.runtime import make_generator
from ddlib.core.unroll import matching_loss, unroll_student
from ddlib.core.unroll_recompute import matching_gradients

NUM_CLASSES, IPC, SIDE = 3, 2, 8


def tiny_net(seed=0, dtype=torch.float64):
    net = build_model("ConvNet", 1, NUM_CLASSES, (SIDE, SIDE), width=4, seed=seed)
    return net.to(dtype)


def problem(seed=0):
    """Start/target/middle parameters, images (N, 1, 8, 8) and labels of a float64 toy problem."""
    g = make_generator(seed)
    net = tiny_net(seed)
    start = flatten_params(net)
    images = torch.randn(NUM_CLASSES * IPC, 1, SIDE, SIDE, generator=g, dtype=torch.float64)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(IPC)
    direction = torch.randn(start.shape, generator=g, dtype=torch.float64)
    middles = {s: start + 0.02 * s * direction for s in range(1, 41)}
    target = start + 0.1 * direction + 0.01 * torch.randn(start.shape, generator=g, dtype=torch.float64)
    return net, start, target, middles, images, labels


def make_outer(start, target, middles, betas=(0.7, 0.3)):
    def outer(final, kept):
        loss = matching_loss(final, start, target)
        for beta, step in zip(betas, sorted(kept)):
            loss = loss + beta * matching_loss(kept[step], start, middles[step])
        return loss
    return outer


AUGMENTS = {"none": None, "dsa": DSA(), "dsa_all_groups": DSA(DSAConfig(one_group_per_call=False))}


def graph_gradients(net, start, images, labels, lr, outer, **kwargs):
    """Reference: the plain unroll with the whole graph, then backward."""
    x = images.clone().requires_grad_(True)
    eta = lr.clone().requires_grad_(True)
    result = unroll_student(net, start, x, labels, eta, **kwargs)
    loss = outer(result.final, result.kept)
    loss.backward()
    return float(loss.detach()), x.grad, eta.grad, result.inner_losses


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("keep", [(), (2, 5)])
@pytest.mark.parametrize("augment", list(AUGMENTS))
def test_recompute_gradients_equal_graph_unroll(augment, keep, momentum):
    net, start, target, middles, images, labels = problem()
    outer = make_outer(start, target, middles)
    lr = torch.tensor(0.05, dtype=torch.float64)
    kwargs = dict(syn_steps=5, batch_syn=4, augment=AUGMENTS[augment], loss_weight=1.7, keep_steps=keep,
                  momentum=momentum)
    g_graph, g_rec = make_generator(3), make_generator(3)
    loss, d_x, d_lr, inner = graph_gradients(net, start, images, labels, lr, outer, generator=g_graph, **kwargs)
    x = images.clone().requires_grad_(True)
    eta = lr.clone().requires_grad_(True)
    got = matching_gradients(net, start, x, labels, eta, outer=outer, generator=g_rec, **kwargs)
    assert x.grad is None and eta.grad is None  # only returned, never accumulated into .grad
    assert d_x.abs().sum() > 0 and d_lr.abs() > 0
    assert got.images.shape == images.shape and got.syn_lr.shape == ()
    assert torch.allclose(got.images, d_x, rtol=1e-8, atol=1e-14)
    assert torch.allclose(got.syn_lr, d_lr, rtol=1e-8, atol=1e-14)
    assert got.loss == pytest.approx(loss, rel=1e-12)
    assert got.inner_losses == pytest.approx(inner, rel=1e-12)
    # the same draws were consumed, so whatever follows the unroll is unchanged
    assert torch.equal(g_graph.get_state(), g_rec.get_state())


def test_non_finite_outer_loss_skips_the_backward_sweep():
    net, start, target, middles, images, labels = problem()
    lr = torch.tensor(0.05, dtype=torch.float64)
    got = matching_gradients(net, start, images, labels, lr, outer=lambda final, kept: final.sum() * float("nan"),
                             syn_steps=3, generator=make_generator(0))
    assert got.loss != got.loss and torch.isnan(got.images).all() and torch.isnan(got.syn_lr)


def test_momentum_outside_unit_interval_raises_before_compute():
    with pytest.raises(ValueError, match="inner_momentum=1.0: expected 0 <= inner_momentum < 1"):
        MTTConfig(inner_momentum=1.0)
    net, start, target, middles, images, labels = problem()
    g = make_generator(0)
    before = g.get_state()
    calls = []
    with pytest.raises(ValueError, match="momentum=-0.5: expected 0 <= momentum < 1"):
        matching_gradients(net, start, images, labels, torch.tensor(0.05, dtype=torch.float64),
                           outer=lambda *a: calls.append(a), syn_steps=3, generator=g, momentum=-0.5)
    assert torch.equal(g.get_state(), before) and not calls


# -- the distiller ------------------------------------------------------------------------------------
class RandomWalk:
    """An expert trajectory of ``epochs + 1`` float32 snapshots."""

    def __init__(self, seed, epochs=4):
        g = make_generator(100 + seed)
        first = flatten_params(tiny_net(seed, torch.float32))
        steps = 0.05 * torch.randn(epochs, first.numel(), generator=g)
        self.snapshots = torch.cat([first[None], first + steps.cumsum(0)])
        self.num_epochs = epochs

    def snapshot(self, epoch):
        return self.snapshots[epoch]


class Source:
    def __init__(self, n=2):
        self.trajectories = [RandomWalk(k) for k in range(n)]

    def __len__(self):
        return len(self.trajectories)

    def trajectory(self, k):
        return self.trajectories[k]


def toy_dataset():
    g = make_generator(7)
    train = torch.randn(30, 1, SIDE, SIDE, generator=g)
    test = torch.randn(6, 1, SIDE, SIDE, generator=g)
    return ImageDataset(name="toy", images_train=train, labels_train=torch.arange(NUM_CLASSES).repeat(10),
                        images_test=test, labels_test=torch.arange(NUM_CLASSES).repeat(2),
                        class_names=("a", "b", "c"), mean=(0.0,), std=(1.0,))


def distill(memory, iterations=2, **changes):
    cfg = MTTConfig(ipc=IPC, iterations=iterations, syn_steps=5, expert_epochs=2, max_start_epoch=2, lr_img=10.0,
                    lr_lr=1e-4, lr_teacher=0.05, batch_syn=4, dsa=True, balanced_inner_loss=True,
                    intermediate_matching=True, perturbation="paper", memory=memory).replace(**changes)
    method = TrajectoryMatching(toy_dataset(), Source(), tiny_net(0, torch.float32), cfg, seed=0)
    initial = method.images.detach().clone()
    return method, initial, run_distillation(method, iterations, progress=False)


def test_distiller_recompute_matches_graph_after_two_iterations():
    _, initial, graph = distill("graph")
    _, _, recompute = distill("recompute")
    assert recompute.iterations_done == 2 and recompute.stopped_reason == "completed"
    assert (graph.synthetic.images_syn - initial).abs().max() > 1e-3  # the images did move
    assert torch.allclose(recompute.synthetic.images_syn, graph.synthetic.images_syn, rtol=1e-5, atol=1e-5)
    assert recompute.synthetic.syn_lr == pytest.approx(graph.synthetic.syn_lr, rel=1e-5)
    for a, b in zip(graph.history, recompute.history):
        assert (a["expert"], a["start_epoch"]) == (b["expert"], b["start_epoch"])
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["inner_loss"] == pytest.approx(a["inner_loss"], rel=1e-5)


def test_distiller_recompute_keeps_the_nan_guard(monkeypatch):
    original = mtt_module.matching_loss
    method, _, _ = distill("recompute", iterations=1)
    before = method.images.detach().clone()
    lr_before = float(method.syn_lr.detach())
    monkeypatch.setattr(mtt_module, "matching_loss", lambda *a: original(*a) * float("nan"))
    with pytest.raises(mtt_module.NonFiniteLoss, match="matching loss is nan"):
        method.step(1)
    assert torch.equal(method.images.detach(), before) and float(method.syn_lr.detach()) == lr_before


# -- memory --------------------------------------------------------------------------------------------
class SavedBytes:
    """Live and peak bytes of the tensors autograd saves for backward (graph memory)."""

    def __init__(self):
        self.live = self.peak = 0

    def _release(self, nbytes):
        self.live -= nbytes

    def pack(self, tensor):
        holder = _Held(tensor)
        nbytes = tensor.numel() * tensor.element_size()
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        weakref.finalize(holder, self._release, nbytes)
        return holder

    @staticmethod
    def unpack(holder):
        return holder.tensor


class _Held:
    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor):
        self.tensor = tensor


def peak_saved_bytes(memory, syn_steps):
    net, start, target, middles, images, labels = problem()
    outer = make_outer(start, target, middles)
    lr = torch.tensor(0.05, dtype=torch.float64)
    kwargs = dict(syn_steps=syn_steps, generator=make_generator(0), batch_syn=4, augment=AUGMENTS["dsa"],
                  loss_weight=1.7, keep_steps=(syn_steps // 2,))
    counter = SavedBytes()
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
        if memory == "graph":
            graph_gradients(net, start, images, labels, lr, outer, **kwargs)
        else:
            matching_gradients(net, start, images.clone().requires_grad_(True), labels, lr.clone().requires_grad_(True),
                               outer=outer, **kwargs)
    assert counter.live == 0  # every saved tensor was released by the end
    return counter.peak


def test_recompute_peak_memory_does_not_grow_with_syn_steps():
    peaks = {mode: {n: peak_saved_bytes(mode, n) for n in (10, 20, 40)} for mode in ("graph", "recompute")}
    print("peak autograd-saved bytes:", peaks)
    assert peaks["recompute"][40] <= 1.2 * peaks["recompute"][10]
    assert peaks["graph"][40] > 2 * peaks["graph"][10]
    assert peaks["recompute"][40] < peaks["graph"][40] / 4


# -- memory="auto" --------------------------------------------------------------------------------
def test_choose_memory_keeps_the_graph_only_when_it_fits():
    from ddlib.core.unroll_memory import choose_memory

    assert choose_memory(10, 50, 1000) == "graph"  # 500 bytes <= half of 1000
    assert choose_memory(11, 50, 1000) == "recompute"  # 550 > 500
    assert choose_memory(11, 50, 1000, share=0.6) == "graph"
    assert choose_memory(1, 1, None) == "recompute"  # free memory unknown: the safe mode
    with pytest.raises(ValueError, match=r"syn_steps=0.*expected bytes >= 0, steps >= 1"):
        choose_memory(10, 0, 1000)


def test_one_steps_graph_is_measured_and_grows_with_the_batch():
    from ddlib.core.unroll_memory import graph_bytes_per_step

    net, start, _, _, images, labels = problem()
    lr = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    images = images.clone().requires_grad_(True)
    small = graph_bytes_per_step(net, start, images, labels, lr, batch_syn=2, seed=0)
    large = graph_bytes_per_step(net, start, images, labels, lr, batch_syn=6, seed=0)
    # the first conv's input batch alone is saved: at least batch x 1 x 8 x 8 float64 values
    assert small >= 2 * SIDE * SIDE * 8 and large > small
    assert images.grad is None and lr.grad is None  # a probe, no backward pass


def test_auto_picks_by_free_memory_and_leaves_the_distillation_unchanged(monkeypatch):
    import ddlib.core.unroll_memory as um

    method, initial, auto = distill("auto")
    assert method.memory == "graph"  # a toy graph fits in any machine's free memory
    _, _, graph = distill("graph")
    assert torch.equal(auto.synthetic.images_syn, graph.synthetic.images_syn)  # the probe drew its own numbers
    monkeypatch.setattr(mtt_module, "available_memory_bytes", lambda device: 1024)
    method, _, squeezed = distill("auto")
    assert method.memory == "recompute"
    _, _, recompute = distill("recompute")
    assert torch.equal(squeezed.synthetic.images_syn, recompute.synthetic.images_syn)
    assert um.AUTO_MEMORY_SHARE == 0.5
