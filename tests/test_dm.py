"""DM: the class-mean loss, batching, per-iteration re-initialisation, determinism, NaN guard, resume."""
from __future__ import annotations

import pytest
import torch

import ddlib
import ddlib.methods.dm as dm_module
import ddlib.methods.dm_embedding as dm_embedding
from ddlib.data.augment import DSA
from ddlib.methods.distill_loop import run_distillation
from ddlib.methods.dm import DistributionMatching, DMConfig, augment_by_class, dm_loss
from ddlib.core.functional import flatten_params
from ddlib.models import build_model
from helpers import Interrupting, check_nan_loss_guard


@pytest.fixture(scope="module")
def digits():
    return ddlib.load_dataset("digits")


LOOP = dict(progress=False)


def small_config(**overrides) -> DMConfig:
    return DMConfig(ipc=2, width=8, batch_real=16).replace(**overrides)


def flat(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1)


# -- the loss ------------------------------------------------------------------------------------
def test_dm_loss_hand_computed_identity_embed():
    real = [torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(2, 1, 1, 2),        # mean (2, 3)
            torch.tensor([[0.0, 0.0], [2.0, 2.0], [4.0, -2.0]]).view(3, 1, 1, 2)]  # mean (2, 0)
    syn = [torch.tensor([[0.0, 1.0]]).view(1, 1, 1, 2),                      # mean (0, 1)
           torch.tensor([[2.0, 1.0], [2.0, 1.0]]).view(2, 1, 1, 2)]          # mean (2, 1)
    expected = (2.0 ** 2 + 2.0 ** 2) + (0.0 ** 2 + 1.0 ** 2)
    for batched in (True, False):
        assert float(dm_loss(flat, real, syn, batched=batched)) == pytest.approx(expected)


def test_dm_loss_real_side_has_no_gradient():
    real = [torch.randn(4, 1, 2, 2, requires_grad=True)]
    syn = [torch.randn(2, 1, 2, 2, requires_grad=True)]
    loss = dm_loss(flat, real, syn)
    loss.backward()
    assert real[0].grad is None
    # d/ds ||mean(s) - mean(r)||^2 = 2 (mean(s) - mean(r)) / |S| per image
    diff = syn[0].detach().flatten(1).mean(0) - real[0].detach().flatten(1).mean(0)
    assert torch.allclose(syn[0].grad.flatten(1), (2 * diff / 2).expand(2, -1))


def test_dm_loss_rejects_mismatched_classes():
    with pytest.raises(ValueError, match="one real and one synthetic"):
        dm_loss(flat, [torch.zeros(1, 1, 2, 2)], [])


def test_batched_pass_equals_per_class_loop():
    net = build_model("ConvNet", 1, 3, (8, 8), width=8, seed=0)
    real = [torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(n)) for n in (5, 7, 6)]
    syn_leaf = torch.randn(3 * 2, 1, 8, 8, generator=torch.Generator().manual_seed(9)).requires_grad_(True)
    dsa = DSA()

    real_aug, syn_aug = augment_by_class(dsa, real, list(torch.split(syn_leaf, 2)),
                                         torch.Generator().manual_seed(1))
    batched = dm_loss(net.embed, real_aug, syn_aug)
    (grad_batched,) = torch.autograd.grad(batched, [syn_leaf])

    # The DM code's loop, written out by hand with the same augmentation draws.
    g = torch.Generator().manual_seed(1)
    loop = 0.0
    for c, syn_c in enumerate(torch.split(syn_leaf, 2)):
        r, s = dsa.siamese(real[c], syn_c, generator=g)
        with torch.no_grad():
            target = net.embed(r).mean(0)
        loop = loop + ((net.embed(s).mean(0) - target) ** 2).sum()
    (grad_loop,) = torch.autograd.grad(loop, [syn_leaf])
    assert torch.allclose(batched, loop, rtol=1e-5, atol=1e-6)
    assert torch.allclose(grad_batched, grad_loop, rtol=1e-4, atol=1e-6)
    assert torch.allclose(dm_loss(net.embed, real_aug, syn_aug, batched=False), batched, rtol=1e-5, atol=1e-6)


def test_augment_by_class_is_siamese_per_class():
    real = [torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)]
    real_aug, syn_aug = augment_by_class(DSA(), real, [x.clone() for x in real], torch.Generator().manual_seed(3))
    for r, s in zip(real_aug, syn_aug):
        assert torch.equal(r, s)  # identical inputs, one draw per class -> identical outputs
    assert augment_by_class(None, real, real, torch.Generator())[0] is not None


# -- re-initialisation ---------------------------------------------------------------------------
def test_network_reinitialised_every_iteration_without_new_module(digits, monkeypatch):
    calls = []
    original = dm_module.build_model

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(dm_module, "build_model", counting)
    method = DistributionMatching(digits, small_config(), seed=0)
    net, params = method.net, [id(p) for p in method.net.parameters()]
    seen = []
    for i in range(3):
        log = method.step(i)
        seen.append(flatten_params(method.net))
        expected = original("ConvNet", 1, 10, (8, 8), width=8, seed=log["net_seed"])
        assert torch.equal(seen[-1], flatten_params(expected))
    assert len(calls) == 1
    assert method.net is net and [id(p) for p in method.net.parameters()] == params
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2])
    assert all(p.grad is None for p in method.net.parameters())


# -- the distiller -------------------------------------------------------------------------------
def run_images(data, seed: int, iterations: int = 3, **overrides) -> torch.Tensor:
    method = DistributionMatching(data, small_config(**overrides), seed=seed)
    for i in range(iterations):
        method.step(i)
    return method.images.detach().clone()


def test_determinism_per_seed(digits):
    a, b, c = run_images(digits, 0), run_images(digits, 0), run_images(digits, 1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_a_class_shorter_than_batch_real_is_embedded_once_per_image(digits, monkeypatch):
    """As DM's get_images: batch_real caps at the class's own images, none drawn twice."""
    import dataclasses

    from ddlib.core.runtime import make_generator

    keep = torch.cat([digits.class_indices[c][:3] for c in range(digits.num_classes)])
    short = dataclasses.replace(digits, images_train=digits.images_train[keep], labels_train=digits.labels_train[keep])
    real = dm_module.sample_real_by_class(short, 16, make_generator(0), torch.device("cpu"))
    assert [len(x) for x in real] == [3] * 10
    assert all(len(torch.unique(x.flatten(1), dim=0)) == len(torch.unique(short.images_of_class(c).flatten(1), dim=0))
               for c, x in enumerate(real))
    seen = []
    real_embed = dm_embedding.embed_without_grad
    monkeypatch.setattr(dm_module, "embed_without_grad", lambda f, x, chunk: seen.append(len(x)) or real_embed(f, x, chunk))
    DistributionMatching(short, small_config(dsa=False), seed=0).step(0)
    assert seen == [30]  # one batched pass over 10 classes x 3 images, not 10 x 16


def test_step_moves_images_and_synthetic_set(digits):
    method = DistributionMatching(digits, small_config(init="noise", dsa=False), seed=0)
    before = method.images.detach().clone()
    log = method.step(0)
    assert log["loss"] > 0 and not torch.equal(before, method.images.detach())
    synthetic = method.synthetic_set()
    assert synthetic.images_syn.shape == (20, 1, 8, 8) and synthetic.syn_lr is None
    assert synthetic.class_counts().tolist() == [2] * 10 and synthetic.config["method"] == "DM"
    assert method.opt_img.param_groups[0]["lr"] == 1.0 and method.opt_img.param_groups[0]["momentum"] == 0.5


def test_real_init_takes_images_of_the_class(digits):
    method = DistributionMatching(digits, small_config(), seed=0)
    for image, label in zip(method.images.detach(), method.labels):
        same = (digits.images_train == image).flatten(1).all(1)
        assert same.any() and bool((digits.labels_train[same] == label).all())


def test_config_defaults_and_validation():
    cfg = DMConfig()
    assert (cfg.iterations, cfg.lr_img, cfg.batch_real, cfg.dsa, cfg.init) == (20000, 1.0, 256, True, "real")
    with pytest.raises(ValueError, match="unknown key"):
        DMConfig.from_dict({"lr_image": 1.0})
    with pytest.raises(ValueError, match="lr_img"):
        DMConfig(lr_img=0.0)
    with pytest.raises(TypeError):
        DMConfig(init="zeros")


def test_nan_loss_raises_before_updating(digits, monkeypatch):
    method = DistributionMatching(digits, small_config(), seed=0)
    before, result = check_nan_loss_guard(method, monkeypatch, dm_module, "dm_loss", "images")
    assert torch.equal(result.synthetic.images_syn, before)


def test_resume_after_interruption_matches_straight_run(digits, tmp_path):
    straight = run_distillation(DistributionMatching(digits, small_config(iterations=4), seed=3), **LOOP)
    path = tmp_path / "dm.pt"
    with pytest.raises(KeyboardInterrupt):
        run_distillation(Interrupting(DistributionMatching(digits, small_config(iterations=4), seed=3), 2),
                         checkpoint_path=path, checkpoint_every=100, **LOOP)
    resumed = run_distillation(DistributionMatching(digits, small_config(iterations=4), seed=3), checkpoint_path=path,
                               **LOOP)
    assert resumed.iterations_done == 4 and len(resumed.history) == 4
    assert torch.equal(resumed.synthetic.images_syn, straight.synthetic.images_syn)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]


def test_compiled_embedding_matches_eager_across_reinitialisations(digits):
    """The compiled net must read the re-drawn weights of every iteration, not the first ones."""
    runs = {}
    for compiled in (False, True):
        method = DistributionMatching(digits, small_config(compile=compiled), seed=0)
        history = [method.step(i)["loss"] for i in range(3)]
        runs[compiled] = (history, method.images.detach().clone())
    assert runs[True][0] == pytest.approx(runs[False][0], rel=1e-4)
    assert torch.allclose(runs[True][1], runs[False][1], atol=1e-4)
    assert not torch.equal(runs[False][1], DistributionMatching(digits, small_config(), seed=0).images.detach())


# -- chunked real embedding ----------------------------------------------------------------------
def test_chunked_real_embedding_equals_one_pass():
    net = build_model("ConvNet", 1, 3, (8, 8), width=8, seed=0).double()
    images = torch.randn(11, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    one_pass = dm_embedding.embed_without_grad(net.embed, images, 0)
    assert one_pass.shape == (11, net.embed(images[:1]).shape[1]) and not one_pass.requires_grad
    for chunk in (1, 4, 11, 50):  # 11 = 4 + 4 + 3 exercises an uneven last chunk
        assert torch.allclose(dm_embedding.embed_without_grad(net.embed, images, chunk), one_pass, rtol=1e-12,
                              atol=1e-12)


def test_chunked_real_embedding_sees_every_image_in_passes_of_chunk():
    sizes = []

    def embed(x):
        sizes.append(len(x))
        return x.flatten(1) * 2

    images = torch.arange(10.0).view(10, 1, 1, 1)
    out = dm_embedding.embed_without_grad(embed, images, 4)
    assert sizes == [4, 4, 2]
    assert torch.equal(out, images.flatten(1) * 2)


def test_dm_loss_with_real_chunk_equals_one_pass():
    net = build_model("ConvNet", 1, 3, (8, 8), width=8, seed=0).double()
    g = torch.Generator().manual_seed(0)
    real = [torch.randn(n, 1, 8, 8, dtype=torch.float64, generator=g) for n in (5, 7, 6)]
    syn = torch.randn(6, 1, 8, 8, dtype=torch.float64, generator=g).requires_grad_(True)
    losses, grads = [], []
    for chunk in (0, 3):
        loss = dm_loss(net.embed, real, list(torch.split(syn, 2)), real_chunk=chunk)
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, [syn])[0])
    assert torch.allclose(losses[0], losses[1], rtol=1e-12) and torch.allclose(grads[0], grads[1], rtol=1e-10)


def test_resolve_real_chunk_rule_and_batch_norm_guard():
    instance = build_model("ConvNet", 1, 3, (8, 8), width=8, seed=0)
    batch = build_model("ConvNet", 1, 3, (8, 8), width=8, norm="batch", seed=0)
    assert dm_embedding.resolve_real_chunk(None, instance, "cpu") == dm_embedding.CPU_REAL_CHUNK
    assert dm_embedding.resolve_real_chunk(None, instance, "cuda") == 0  # only the device type is read
    assert dm_embedding.resolve_real_chunk(None, batch, "cpu") == 0
    assert dm_embedding.resolve_real_chunk(0, batch, "cpu") == 0
    assert dm_embedding.resolve_real_chunk(7, instance, "cuda") == 7
    with pytest.raises(ValueError, match=r"real_chunk=8 .*'features\.1'.*batch norm"):
        dm_embedding.resolve_real_chunk(8, batch, "cpu")


def test_config_rejects_bad_real_chunk():
    with pytest.raises(ValueError, match=r"real_chunk=-1: expected None \(automatic\), 0 \(one pass\)"):
        DMConfig(real_chunk=-1)
    for bad in (2.5, True, "16"):
        with pytest.raises(TypeError, match="real_chunk"):
            DMConfig(real_chunk=bad)
    with pytest.raises(ValueError, match="real_chunk=-3"):
        dm_embedding.resolve_real_chunk(-3, build_model("ConvNet", 1, 3, (8, 8), width=8, seed=0), "cpu")


def test_batch_norm_with_explicit_chunk_fails_before_any_compute(digits):
    with pytest.raises(ValueError, match="real_chunk=4"):
        DistributionMatching(digits, small_config(norm="batch", real_chunk=4), seed=0)


def test_run_with_chunked_real_pass_matches_one_pass(digits):
    runs = {}
    for chunk in (0, 5):
        method = DistributionMatching(digits, small_config(real_chunk=chunk), seed=0)
        assert method.real_chunk == chunk
        runs[chunk] = ([method.step(i)["loss"] for i in range(3)], method.images.detach().clone())
    assert runs[5][0] == pytest.approx(runs[0][0], rel=1e-5)
    assert torch.allclose(runs[5][1], runs[0][1], atol=1e-5)
