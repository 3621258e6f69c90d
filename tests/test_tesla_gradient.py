"""MCT's code gradient (TESLA, per-step gradients at detached student weights) against hand derivations.

The hand case: one image ``x`` (d,), a bias-free linear student ``W`` (C, d), cross-entropy
``CE(W x, y)``. With ``p = softmax(W x)`` and ``S = diag(p) - p p^T`` everything has a closed form:
``g(W) = (p - y) x^T``, ``J^T A = A^T (p - y) + W^T S (A x)`` (d g / d x contracted with A) and
``H A = (S (A x)) x^T`` (the Hessian of CE in W applied to A). Two inner steps of size ``a``:
``W1 = W0 - a g(W0)``, ``W2 = W1 - a g(W1)``; loss ``L = ||W2 - T||^2 / D``, ``D = ||W0 - T||^2``,
``r = dL/dW2 = 2 (W2 - T) / D``.

TESLA:  dL/dx = -a (J0^T r + J1^T r),                dL/da = -<g0 + g1, r>
exact:  dL/dx = -a (J1^T r + J0^T (r - a H1 r)),     dL/da = -<g1, r> - <g0, r - a H1 r>
so they differ by the cross-step term ``a^2 J0^T H1 r`` (and ``a <g0, H1 r>``), which a single
step does not have.
"""
import pytest
import torch
from torch import nn

from ddlib.data.augment import DSA
from ddlib.core.functional import flatten_params
from ddlib.models import build_model
from ddlib.methods.mtt import TrajectoryMatching
from ddlib.methods.mtt_config import MTTConfig
from ddlib.core.runtime import make_generator
from ddlib.core.unroll import matching_loss, unroll_student
from ddlib.core.unroll_recompute import matching_gradients

C, D_IN, LR, LABEL = 3, 4, 0.7, 1


def linear_case():
    g = make_generator(5)
    net = nn.Sequential(nn.Flatten(), nn.Linear(D_IN, C, bias=False)).double()
    w0 = torch.randn(C, D_IN, generator=g, dtype=torch.float64)
    target = w0 + 0.5 * torch.randn(C, D_IN, generator=g, dtype=torch.float64)
    x = torch.randn(D_IN, generator=g, dtype=torch.float64)
    return net, w0, target, x


def closed_forms(w, x):
    p = torch.softmax(w @ x, 0)
    y = torch.nn.functional.one_hot(torch.tensor(LABEL), C).double()
    s = torch.diag(p) - torch.outer(p, p)
    grad = torch.outer(p - y, x)
    vjp_x = lambda a: a.T @ (p - y) + w.T @ (s @ (a @ x))
    hvp = lambda a: torch.outer(s @ (a @ x), x)
    return grad, vjp_x, hvp


def hand_gradients(w0, target, x, steps):
    """(dL/dx TESLA, dL/da TESLA, dL/dx exact, dL/da exact, loss) by the formulas of the module docstring."""
    g0, j0, _ = closed_forms(w0, x)
    w1 = w0 - LR * g0
    if steps == 1:
        r = 2 * (w1 - target) / (w0 - target).pow(2).sum()
        return -LR * j0(r), -(g0 * r).sum(), -LR * j0(r), -(g0 * r).sum(), float((w1 - target).pow(2).sum()
                                                                                 / (w0 - target).pow(2).sum())
    g1, j1, h1 = closed_forms(w1, x)
    w2 = w1 - LR * g1
    den = (w0 - target).pow(2).sum()
    r = 2 * (w2 - target) / den
    back = r - LR * h1(r)  # dL/dW1
    tesla_x, tesla_lr = -LR * (j0(r) + j1(r)), -((g0 + g1) * r).sum()
    exact_x, exact_lr = -LR * (j1(r) + j0(back)), -(g1 * r).sum() - (g0 * back).sum()
    return tesla_x, tesla_lr, exact_x, exact_lr, float((w2 - target).pow(2).sum() / den)


def library_gradients(gradient, steps):
    net, w0, target, x = linear_case()
    start, flat_target = w0.reshape(-1), target.reshape(-1)
    got = matching_gradients(net, start, x.reshape(1, 1, 1, D_IN), torch.tensor([LABEL]),
                             torch.tensor(LR, dtype=torch.float64), syn_steps=steps, generator=make_generator(0),
                             outer=lambda final, kept: matching_loss(final, start, flat_target), gradient=gradient)
    return got.images.reshape(D_IN), got.syn_lr, got.loss


def test_tesla_gradient_matches_the_hand_derivation_and_the_mct_code_formula():
    tesla_x, tesla_lr, _, _, loss = hand_gradients(*linear_case()[1:], steps=2)
    got_x, got_lr, got_loss = library_gradients("tesla", 2)
    torch.testing.assert_close(got_x, tesla_x, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_lr, tesla_lr, rtol=1e-10, atol=1e-12)
    assert got_loss == pytest.approx(loss, rel=1e-12)
    # MCT's distill_compressed.py writes it as 2 J^T (a (T - W0) + a^2 sum_k g_k) / D, summed over the steps
    _, w0, target, x = linear_case()
    g0, j0, _ = closed_forms(w0, x)
    g1, j1, _ = closed_forms(w0 - LR * g0, x)
    v = (LR * (target - w0) + LR**2 * (g0 + g1)) / (w0 - target).pow(2).sum()
    torch.testing.assert_close(got_x, 2 * (j0(v) + j1(v)), rtol=1e-10, atol=1e-12)


def test_exact_gradient_matches_the_hand_derivation_and_differs_by_the_cross_step_term():
    tesla_x, tesla_lr, exact_x, exact_lr, _ = hand_gradients(*linear_case()[1:], steps=2)
    got_x, got_lr, _ = library_gradients("exact", 2)
    torch.testing.assert_close(got_x, exact_x, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_lr, exact_lr, rtol=1e-10, atol=1e-12)
    # the dropped term a^2 J0^T H1 r is not negligible here, so the two gradients really differ
    assert (exact_x - tesla_x).norm() > 1e-2 * exact_x.norm()
    assert abs(float(exact_lr - tesla_lr)) > 1e-3 * abs(float(exact_lr))


def test_one_inner_step_tesla_equals_exact():
    tesla_x, tesla_lr, exact_x, exact_lr, _ = hand_gradients(*linear_case()[1:], steps=1)
    assert torch.equal(tesla_x, exact_x)
    for gradient in ("tesla", "exact"):
        got_x, got_lr, _ = library_gradients(gradient, 1)
        torch.testing.assert_close(got_x, tesla_x, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got_lr, tesla_lr, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_tesla_in_flat_memory_equals_the_detached_graph_unroll(momentum):
    """matching_gradients(gradient="tesla") equals backward through unroll_student(gradient="tesla"),
    on a ConvNet with DSA, mini-batches, momentum and intermediate matching."""
    net = build_model("ConvNet", 1, 3, (8, 8), width=4, seed=0).double()
    g = make_generator(1)
    start = flatten_params(net)
    target = start + 0.1 * torch.randn(start.shape, generator=g, dtype=torch.float64)
    middle = start + 0.04 * torch.randn(start.shape, generator=g, dtype=torch.float64)
    images = torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64)
    labels = torch.arange(3).repeat_interleave(2)

    def outer(final, kept):
        return matching_loss(final, start, target) + 0.5 * matching_loss(kept[2], start, middle)

    kwargs = dict(syn_steps=4, batch_syn=4, augment=DSA(), momentum=momentum, keep_steps=(2,), gradient="tesla")
    x, lr = images.clone().requires_grad_(True), torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    result = unroll_student(net, start, x, labels, lr, generator=make_generator(3), **kwargs)
    outer(result.final, result.kept).backward()
    got = matching_gradients(net, start, images, labels, lr.detach(), outer=outer, generator=make_generator(3),
                             **kwargs)
    torch.testing.assert_close(got.images, x.grad, rtol=1e-8, atol=1e-13)
    torch.testing.assert_close(got.syn_lr, lr.grad, rtol=1e-8, atol=1e-13)
    exact = matching_gradients(net, start, images, labels, lr.detach(), outer=outer, generator=make_generator(3),
                               **{**kwargs, "gradient": "exact"})
    assert not torch.allclose(exact.images, got.images, rtol=1e-3)


def test_unknown_gradient_is_rejected():
    net, w0, target, x = linear_case()
    with pytest.raises(ValueError, match=r"gradient='adjoint': expected one of \('exact', 'tesla'\)"):
        matching_gradients(net, w0.reshape(-1), x.reshape(1, 1, 1, D_IN), torch.tensor([LABEL]),
                           torch.tensor(LR), syn_steps=1, generator=make_generator(0),
                           outer=lambda final, kept: final.sum(), gradient="adjoint")
    with pytest.raises(ValueError, match="gradient='adjoint'"):
        unroll_student(net, w0.reshape(-1), x.reshape(1, 1, 1, D_IN), torch.tensor([LABEL]), torch.tensor(LR),
                       syn_steps=1, generator=make_generator(0), gradient="adjoint")
    with pytest.raises(TypeError, match="gradient"):
        MTTConfig(gradient="adjoint")


def test_distiller_tesla_graph_and_recompute_agree_and_differ_from_exact():
    from test_unroll_memory import Source, tiny_net, toy_dataset

    def images_after(**changes):
        cfg = MTTConfig(ipc=2, iterations=1, syn_steps=4, expert_epochs=2, max_start_epoch=2, lr_img=100.0,
                        lr_lr=1e-4, lr_teacher=0.05, dsa=False).replace(**changes)
        method = TrajectoryMatching(toy_dataset(), Source(), tiny_net(0, torch.float32), cfg, seed=0)
        before = method.images.detach().clone()
        method.step(0)
        return before, method.images.detach(), float(method.syn_lr.detach())

    before, graph, lr_graph = images_after(gradient="tesla", memory="graph")
    _, recompute, lr_recompute = images_after(gradient="tesla", memory="recompute")
    _, exact, _ = images_after(gradient="exact")
    assert (graph - before).abs().max() > 1e-4
    torch.testing.assert_close(recompute, graph, rtol=1e-5, atol=1e-6)
    assert lr_recompute == pytest.approx(lr_graph, rel=1e-6)
    assert not torch.allclose(exact, graph, rtol=1e-6, atol=1e-7)
