import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch import nn

from ddlib.methods.ast_components import (
    SmoothExpertLoss, _nearest_distinct, average_variation, balanced_loss_weight, class_features,
    clip_factor, gradient_penalty, input_gradient_norms, intermediate_points, intermediate_weights, perturb_weights,
    representative_init, step_sizes,
)
from ddlib.methods.ast_perturbation import perturbation_directions, perturbed_names
from ddlib.core.functional import ParamLayout, flatten_params
from ddlib.core.train import train_epoch


# ----------------------------------------------------------------- clipping and gradient penalty
@pytest.mark.parametrize("epoch, paper, code", [
    (0, 0.5, 0.5), (1, 0.6, 0.55), (4, 0.9, 0.7), (5, 1.0, 0.75), (9, 1.0, 0.95), (10, 1.0, 1.0), (30, 1.0, 1.0),
])
def test_clip_schedule_both_variants(epoch, paper, code):
    assert clip_factor(epoch) == pytest.approx(paper)
    assert SmoothExpertLoss().clip(epoch) == pytest.approx(paper)
    assert clip_factor(epoch, 0.5, 10) == pytest.approx(code)
    assert SmoothExpertLoss.code().clip(epoch) == pytest.approx(code)
    assert SmoothExpertLoss(use_clip=False).clip(epoch) == 1.0


def test_clip_schedule_errors_and_config():
    with pytest.raises(ValueError):
        clip_factor(-1)
    with pytest.raises(ValueError):
        SmoothExpertLoss(clip_start=0.0)
    with pytest.raises(ValueError):
        SmoothExpertLoss(gp_weight=-1.0)
    with pytest.raises(TypeError):
        SmoothExpertLoss(clip_epochs=2.5)
    with pytest.raises(TypeError, match="gp_norm"):
        SmoothExpertLoss(gp_norm="channel")
    code = SmoothExpertLoss.code()
    assert (code.clip_epochs, code.gp_weight, code.gp_norm, code.clip_start) == (10, 2.0, "pixel", 0.5)
    assert SmoothExpertLoss.code(gp_weight=1.0).gp_weight == 1.0  # overrides win
    paper = SmoothExpertLoss.paper()
    assert paper == SmoothExpertLoss() and (paper.clip_epochs, paper.gp_weight, paper.gp_norm) == (5, 1.0, "sample")


def _linear(in_features=4, classes=3, seed=0):
    torch.manual_seed(seed)  # test-only: model init
    net = nn.Linear(in_features, classes).double()
    return net


def test_gradient_penalty_linear_model_exact():
    net = _linear()
    x = torch.randn(5, 4, dtype=torch.float64)
    w_sum = net.weight.detach().sum(0)  # d sum(logits) / d x_b for every sample b
    for target in (1.0, 0.3):
        expected = (w_sum.norm() - target) ** 2
        assert torch.allclose(gradient_penalty(net, x, target), expected, rtol=1e-12, atol=0)
    assert not x.requires_grad  # input untouched


def test_gradient_penalty_is_trainable():
    net = _linear()
    x = torch.randn(5, 4, dtype=torch.float64)
    gradient_penalty(net, x).backward()
    w_sum = net.weight.detach().sum(0)
    row_grad = 2 * (w_sum.norm() - 1) * w_sum / w_sum.norm()  # d/dW_c of (||sum_c W_c|| - 1)^2
    assert torch.allclose(net.weight.grad, row_grad.expand(3, 4), rtol=1e-10)
    assert net.bias.grad is None or torch.all(net.bias.grad == 0)  # the bias does not enter d logits / d x


@pytest.mark.parametrize("variant", ["paper", "code"])
@pytest.mark.parametrize("epoch", [0, 3, 12])
def test_hook_loss_is_clipped_ce_plus_gp(variant, epoch):
    hook = SmoothExpertLoss.paper() if variant == "paper" else SmoothExpertLoss.code()
    net = _linear()
    raw = torch.randn(6, 4, dtype=torch.float64)
    images = raw + 0.1  # "augmented"
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    loss = hook(net, images, labels, epoch=epoch, raw_images=raw)
    ce = F.cross_entropy(net(images), labels)
    gp = (net.weight.detach().sum(0).norm() - 1) ** 2
    lam = clip_factor(epoch, 0.5, 5 if variant == "paper" else 10)
    weight = 1.0 if variant == "paper" else 2.0
    assert torch.allclose(loss, lam * ce + weight * gp, rtol=1e-12)
    no_gp = SmoothExpertLoss(use_gp=False)(net, images, labels, epoch=epoch, raw_images=raw)
    assert torch.allclose(no_gp, clip_factor(epoch) * ce, rtol=1e-12)
    plain = SmoothExpertLoss(use_gp=False, use_clip=False)(net, images, labels, epoch=epoch, raw_images=raw)
    assert torch.allclose(plain, ce, rtol=1e-12)


def _pixel_net():
    """Flatten + Linear(4 -> 2) on (B, C=2, H=1, W=2) inputs, with hand-picked weights.

    d sum(logits) / d x = the column sums of the weight, reshaped to (C, H, W):
    [[3, 0], [4, 1]] for channels 0 and 1, i.e. pixel 0 has channel values (3, 4) and pixel 1 (0, 1).
    """
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).double()
    with torch.no_grad():  # flat index c * 2 + w
        net[1].weight.copy_(torch.tensor([[1.0, 0.0, 4.0, 1.0], [2.0, 0.0, 0.0, 0.0]]))
        net[1].bias.zero_()
    return net


def test_input_gradient_norms_pixel_and_sample_by_hand():
    grad = torch.tensor([[[[3.0, 0.0]], [[4.0, 1.0]]]])  # (B=1, C=2, H=1, W=2)
    assert torch.equal(input_gradient_norms(grad, "pixel"), torch.tensor([[[5.0, 1.0]]]))  # (B, H, W)
    assert torch.allclose(input_gradient_norms(grad, "sample"), torch.tensor([math.sqrt(26.0)]))
    with pytest.raises(ValueError, match="'sample'.*'pixel'"):
        input_gradient_norms(grad, "channel")


def test_gradient_penalty_pixel_norm_by_hand():
    net = _pixel_net()
    x = torch.randn(3, 2, 1, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # pixel norms 5 and 1, the same for every sample: ((5 - 1)^2 + (1 - 1)^2) / 2 = 8
    assert gradient_penalty(net, x, 1.0, norm="pixel").item() == pytest.approx(8.0, rel=1e-12)
    # K = 2: ((5 - 2)^2 + (1 - 2)^2) / 2 = 5
    assert gradient_penalty(net, x, 2.0, norm="pixel").item() == pytest.approx(5.0, rel=1e-12)
    # the paper's per-sample norm over C*H*W: (sqrt(9 + 0 + 16 + 1) - 1)^2
    assert gradient_penalty(net, x, 1.0).item() == pytest.approx((math.sqrt(26.0) - 1) ** 2, rel=1e-12)
    hook = SmoothExpertLoss.code()
    labels = torch.tensor([0, 1, 0])
    loss = hook(net, x, labels, epoch=20, raw_images=x)
    assert loss.item() == pytest.approx(F.cross_entropy(net(x), labels).item() + 2 * 8.0, rel=1e-12)


def test_hook_plugs_into_train_epoch():
    torch.manual_seed(0)  # test-only: model init
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    images, labels = torch.randn(10, 3, 2, 2), torch.arange(10) % 3
    before = flatten_params(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = train_epoch(net, opt, images, labels, batch_size=4, generator=torch.Generator().manual_seed(0),
                       loss_hook=SmoothExpertLoss(), epoch=1)
    assert math.isfinite(loss) and not torch.equal(before, flatten_params(net))


# ----------------------------------------------------------------- smoothness metric
def test_average_variation_hand_made():
    snaps = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
    assert torch.allclose(step_sizes(snaps), torch.tensor([1.0, 4.0], dtype=torch.float64))
    assert average_variation(snaps) == pytest.approx(2.5)
    assert average_variation(list(snaps)) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        average_variation(snaps[:1])


# ----------------------------------------------------------------- balanced inner-loop loss
@pytest.mark.parametrize("start, expected", [
    (10, math.log(8)), (15, math.log(13)), (20, math.log(18)), (2, 1 / math.log(16)), (0, 1 / math.log(18)),
    (9.5, 1 / math.log(8.5)),
])
def test_balanced_loss_weight_natural_log(start, expected):
    assert balanced_loss_weight(start, 20) == pytest.approx(expected, rel=1e-12)


def test_balanced_loss_weight_base5_and_errors():
    assert balanced_loss_weight(15, 20, log_base=5) == pytest.approx(math.log(13) / math.log(5))
    assert balanced_loss_weight(2, 20, log_base=5) == pytest.approx(math.log(5) / math.log(16))
    assert balanced_loss_weight(1, 2, theta=4.0) == pytest.approx(math.log(4))
    for kwargs in ({"max_start_epoch": 0}, {"theta": 1.0}, {"log_base": 1}):
        with pytest.raises(ValueError):
            balanced_loss_weight(**{"start_epoch": 1, "max_start_epoch": 20, **kwargs})


# ----------------------------------------------------------------- intermediate matching
def test_intermediate_points_and_weights():
    assert intermediate_points(20, 2) == [10]
    assert intermediate_points(30, 3) == [10, 20]
    assert intermediate_points(50, 3) == [16, 33]
    assert intermediate_points(10, 1) == []
    with pytest.raises(ValueError):
        intermediate_points(2, 3)
    assert intermediate_weights(3) == [1.0, 1.0]
    assert intermediate_weights(3, "adaptive") == pytest.approx([1 / 3, 2 / 3])
    assert intermediate_weights(2, "adaptive") == pytest.approx([0.5])
    assert intermediate_weights(1) == []
    with pytest.raises(ValueError):
        intermediate_weights(3, "other")


# ----------------------------------------------------------------- weight perturbation
def _small_net():
    torch.manual_seed(0)  # test-only: model init
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.GroupNorm(1, 3), nn.Flatten(), nn.Linear(12, 4))


def test_perturb_weights_filter_norms_and_1d_unchanged():
    net = _small_net()
    layout, flat = ParamLayout.of(net), flatten_params(net)
    rng_before = torch.get_rng_state()
    out = perturb_weights(flat, layout, 0.1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), rng_before)  # global RNG untouched
    assert out.shape == flat.shape and not torch.equal(out, flat)
    old, new = layout.unflatten(flat), layout.unflatten(out)
    for name, shape in zip(layout.names, layout.shapes):
        if len(shape) == 1:
            assert torch.equal(old[name], new[name]), name
        else:
            delta = (new[name] - old[name]).reshape(shape[0], -1).norm(dim=1)
            assert torch.allclose(delta, 0.1 * old[name].reshape(shape[0], -1).norm(dim=1), rtol=1e-5)


def test_perturb_weights_same_generator_same_result_and_directions_reproduce_it():
    net = _small_net()
    layout, flat = ParamLayout.of(net), flatten_params(net)
    for variant in ("paper", "code"):
        a = perturb_weights(flat, layout, variant=variant, generator=torch.Generator().manual_seed(1))
        b = perturb_weights(flat, layout, variant=variant, generator=torch.Generator().manual_seed(1))
        c = perturb_weights(flat, layout, variant=variant, generator=torch.Generator().manual_seed(2))
        assert torch.equal(a, b) and not torch.equal(a, c)
        d = perturbation_directions(layout, variant, generator=torch.Generator().manual_seed(1))
        assert torch.equal(perturb_weights(flat, layout, variant=variant, directions=d), a)
    assert perturbed_names(layout, "paper") == ["0.weight", "3.weight"]
    assert perturbed_names(layout, "code") == ["0.weight"]


def _hand_layout():
    """conv (2, 1, 1, 2), linear (1, 2), bias (1,): small enough to perturb by hand."""
    layout = ParamLayout(("conv", "linear", "bias"), ((2, 1, 1, 2), (1, 2), (1,)))
    flat = torch.tensor([3.0, 4.0, 1.0, 0.0,  # conv filters [3, 4] (norm 5) and [1, 0] (norm 1)
                         6.0, 8.0,  # linear row, norm 10
                         7.0], dtype=torch.float64)
    return layout, flat


def test_perturb_weights_paper_formula_by_hand():
    layout, flat = _hand_layout()
    d = {"conv": torch.tensor([[[[1.0, 0.0]]], [[[0.0, 2.0]]]]), "linear": torch.tensor([[3.0, 4.0]])}
    out = perturb_weights(flat, layout, variant="paper", directions=d)  # alpha 0.1 by default
    # filter j: theta_j + 0.1 * d_j / ||d_j|| * ||theta_j||
    expected = [3.0 + 0.1 * 1 / 1 * 5, 4.0,  # d_0 = (1, 0), ||d_0|| = 1, ||theta_0|| = 5
                1.0, 0.0 + 0.1 * 2 / 2 * 1,  # d_1 = (0, 2), ||d_1|| = 2, ||theta_1|| = 1
                6.0 + 0.1 * 3 / 5 * 10, 8.0 + 0.1 * 4 / 5 * 10,  # linear row: ||d|| = 5, ||theta|| = 10
                7.0]  # bias unchanged
    assert torch.allclose(out, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    assert not torch.equal(out, flat) and flat[0] == 3.0  # a new tensor; the input is untouched


@pytest.mark.parametrize("alpha", [None, 0.5])
def test_perturb_weights_code_formula_by_hand(alpha):
    layout, flat = _hand_layout()
    d = {"conv": torch.tensor([[[[1.0, 0.0]]], [[[2.0, 0.0]]]])}  # ||d||_F over the whole tensor = sqrt(5)
    out = perturb_weights(flat, layout, alpha, variant="code", directions=d)
    a = 1.0 if alpha is None else alpha  # the code calls weightPerturb(..., alpha=1)
    root5 = math.sqrt(5.0)
    # W* = W + a * (d / ||d||_F) * W elementwise; linear weight and bias unchanged
    expected = [3.0 + a * (1 / root5) * 3.0, 4.0, 1.0 + a * (2 / root5) * 1.0, 0.0, 6.0, 8.0, 7.0]
    assert torch.allclose(out, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)


def test_perturb_weights_code_moves_each_conv_element_relative_to_itself():
    net = _small_net()
    layout, flat = ParamLayout.of(net), flatten_params(net)
    d = perturbation_directions(layout, "code", generator=torch.Generator().manual_seed(4))
    out = perturb_weights(flat, layout, 1.0, variant="code", directions=d)
    old, new = layout.unflatten(flat), layout.unflatten(out)
    for name in layout.names:
        if name != "0.weight":
            assert torch.equal(old[name], new[name]), name  # linear weight, biases, norm affine untouched
    ratio = (new["0.weight"] - old["0.weight"]) / old["0.weight"]
    assert torch.allclose(ratio, d["0.weight"] / d["0.weight"].norm(), rtol=1e-4, atol=1e-6)


def test_perturb_weights_errors():
    layout, flat = _hand_layout()
    g = torch.Generator().manual_seed(0)
    d = {"conv": torch.ones(2, 1, 1, 2)}
    with pytest.raises(ValueError, match="exactly one of generator"):
        perturb_weights(flat, layout, variant="code")
    with pytest.raises(ValueError, match="exactly one of generator"):
        perturb_weights(flat, layout, variant="code", generator=g, directions=d)
    with pytest.raises(ValueError, match=r"expected the perturbed parameters \['conv', 'linear'\]"):
        perturb_weights(flat, layout, variant="paper", directions=d)
    with pytest.raises(ValueError, match=r"has shape \(4,\); expected \(2, 1, 1, 2\)"):
        perturb_weights(flat, layout, variant="code", directions={"conv": torch.ones(4)})
    with pytest.raises(ValueError, match="all zeros"):
        perturb_weights(flat, layout, variant="code", directions={"conv": torch.zeros(2, 1, 1, 2)})
    with pytest.raises(ValueError, match="zero filter"):
        perturb_weights(flat, layout, variant="paper",
                        directions={"conv": torch.tensor([[[[1.0, 0.0]]], [[[0.0, 0.0]]]]), "linear": torch.ones(1, 2)})
    with pytest.raises(ValueError, match="variant='filter'"):
        perturb_weights(flat, layout, variant="filter", generator=g)
    with pytest.raises(ValueError, match="alpha=-1.0"):
        perturb_weights(flat, layout, -1.0, variant="code", directions=d)


# ----------------------------------------------------------------- representative initialisation
def _blobs(seed=0, per=6, centers=((0, 0), (10, 0), (0, 10))):
    g = np.random.default_rng(seed)
    return torch.tensor(np.concatenate([np.array(c) + g.normal(size=(per, 2)) for c in centers]))


def _sq_dist(x, c):
    return ((x[:, None, :] - c[None]) ** 2).sum(-1)


def test_representative_init_nearest_to_kmeans_centroids():
    feats = _blobs()
    idx = representative_init(feats, 3, seed=7)
    assert idx.dtype == torch.int64 and idx.shape == (3,) and len(set(idx.tolist())) == 3
    centers = KMeans(n_clusters=3, n_init=10, random_state=7).fit(feats.numpy()).cluster_centers_
    nearest = _sq_dist(feats.numpy(), centers).argmin(0)
    assert idx.tolist() == nearest.tolist()
    assert torch.equal(idx, representative_init(feats, 3, seed=7))


def test_representative_init_ipc1_is_nearest_to_mean():
    feats = _blobs()
    idx = representative_init(feats, 1, seed=0)
    expected = _sq_dist(feats.numpy(), feats.numpy().mean(0, keepdims=True))[:, 0].argmin()
    assert idx.tolist() == [int(expected)]


def test_representative_init_clusters_variant():
    feats = _blobs()
    idx = representative_init(feats, 6, seed=1, clusters=3)
    assert idx.shape == (6,) and len(set(idx.tolist())) == 6
    centers = KMeans(n_clusters=3, n_init=10, random_state=1).fit(feats.numpy()).cluster_centers_
    order = np.argsort(_sq_dist(feats.numpy(), centers), axis=0, kind="stable")
    assert idx.tolist() == order[:2].T.reshape(-1).tolist()


def test_nearest_distinct_resolves_shared_nearest():
    x = np.array([[0.0], [1.0], [10.0]])
    assert _nearest_distinct(x, np.array([[0.1], [0.2]]), 1) == [0, 1]
    assert _nearest_distinct(x, np.array([[0.1], [9.0]]), 1) == [0, 2]
    assert _nearest_distinct(x, np.array([[0.1]]), 3) == [0, 1, 2]


def test_representative_init_errors():
    feats = _blobs(per=2)
    with pytest.raises(ValueError, match="ipc"):
        representative_init(feats, 7, seed=0)
    with pytest.raises(ValueError, match="ipc"):
        representative_init(feats, 0, seed=0)
    with pytest.raises(ValueError, match="clusters"):
        representative_init(feats, 5, seed=0, clusters=2)


class _Embedder(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Dropout(0.5))
        self.classifier = nn.Linear(3, 2)

    def embed(self, x):
        return self.body(x)

    def forward(self, x):
        return self.classifier(self.embed(x))


def test_class_features_eval_mode_no_grad():
    torch.manual_seed(0)  # test-only: model init
    net = _Embedder().train()
    images = torch.randn(7, 1, 2, 2)
    feats = class_features(net, images, batch_size=3)
    assert net.training and feats.shape == (7, 3) and not feats.requires_grad
    net.eval()
    with torch.no_grad():
        assert torch.allclose(feats, net.embed(images))
        assert torch.allclose(class_features(net, images, use_logits=True), net(images))
    assert not net.training
