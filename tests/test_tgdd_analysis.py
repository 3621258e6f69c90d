"""TGDD analysis measurements against values computed by hand on tiny tensors."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

import ddlib
from ddlib.chapters import run_cost
from ddlib.chapters import tgdd_analysis as tga
from ddlib.methods.dm import DistributionMatching, DMConfig


def test_correlation_matrix_by_hand():
    # Column 0: 0, 1, 2; column 1 = -column 0; column 2 constant.
    x = torch.tensor([[0.0, 0.0, 5.0], [1.0, -1.0, 5.0], [2.0, -2.0, 5.0]])
    expected = torch.tensor([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(tga.correlation_matrix(x), expected)


def test_correlation_matrix_partial_correlation():
    # x = (1, 2, 3), y = (1, 3, 2): centred (-1, 0, 1), (-1, 1, 0) -> r = 1 / (sqrt 2 * sqrt 2) = 0.5
    x = torch.tensor([[1.0, 1.0], [2.0, 3.0], [3.0, 2.0]])
    assert tga.correlation_matrix(x)[0, 1].item() == pytest.approx(0.5)


def test_feature_correlation_similarity_by_hand():
    same = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])        # r = +1
    opposite = torch.tensor([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0]])    # r = -1
    partial = torch.tensor([[1.0, 1.0], [2.0, 3.0], [3.0, 2.0]])     # r = +0.5
    assert tga.feature_correlation_similarity(same, opposite) == pytest.approx(-1.0)
    assert tga.feature_correlation_similarity(same, partial) == pytest.approx(1.0)  # 0.5 * 1 / (0.5 * 1)
    assert tga.feature_correlation_similarity(same, same * 3 + 1) == pytest.approx(1.0)
    constant = torch.ones(3, 2)
    assert tga.feature_correlation_similarity(same, constant) == 0.0


def test_feature_correlation_similarity_three_features():
    # Real: off-diagonal correlations (r01, r02, r12) = (1, -1, -1); synthetic: (1, 0, 0).
    real = torch.tensor([[0.0, 0.0, 2.0], [1.0, 1.0, 1.0], [2.0, 2.0, 0.0]])
    syn = torch.tensor([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [2.0, 2.0, 1.0]])
    # cosine over the 6 off-diagonal entries: (2 * 1) / (sqrt 6 * sqrt 2) = 1 / sqrt 3
    assert tga.feature_correlation_similarity(real, syn) == pytest.approx(1 / math.sqrt(3), abs=1e-6)
    with pytest.raises(ValueError, match="same D"):
        tga.feature_correlation_similarity(real, syn[:, :2])


def test_activation_ratios_by_hand():
    feats = torch.tensor([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 3.0], [0.5, 0.0, 0.0, 0.0]])
    per_image, per_set = tga.activation_ratios(feats)
    torch.testing.assert_close(per_image, torch.tensor([0.5, 0.25, 0.25]))
    assert per_set == pytest.approx(0.75)  # neurons 0, 1, 3 fire for some image; neuron 2 never
    per_image, per_set = tga.activation_ratios(feats, threshold=1.0)
    torch.testing.assert_close(per_image, torch.tensor([0.25, 0.25, 0.0]))
    assert per_set == pytest.approx(0.25)
    # One threshold per neuron: neuron 0 > 0.4 (image 2), neuron 1 > 2 (none), neuron 2 > -1 (all),
    # neuron 3 > 2.5 (image 1).
    per_image, per_set = tga.activation_ratios(feats, threshold=torch.tensor([0.4, 2.0, -1.0, 2.5]))
    torch.testing.assert_close(per_image, torch.tensor([0.25, 0.5, 0.5]))
    assert per_set == pytest.approx(0.75)
    with pytest.raises(ValueError, match="one value per neuron"):
        tga.activation_ratios(feats, threshold=torch.zeros(3))


def test_coverage_distance_by_hand():
    real = torch.tensor([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    real_labels = torch.tensor([0, 0, 1])
    syn = torch.tensor([[0.0, 0.0], [10.0, 1.0], [0.0, 100.0]])
    syn_labels = torch.tensor([0, 1, 1])
    # class 0: distances 0 and 5; class 1: nearest is (10, 1) at distance 1 -> (0 + 5 + 1) / 3
    assert tga.coverage_distance(real, real_labels, syn, syn_labels) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="class 1"):
        tga.coverage_distance(real, real_labels, syn[:1], syn_labels[:1])


def test_pca_embedding_axes_and_signs():
    reference = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 0.5], [0.0, -0.5]]) + torch.tensor([5.0, 5.0])
    ref, other = tga.pca_embedding(reference, torch.tensor([[7.0, 8.0]]))
    # Mean (5, 5); first axis x (variance 0.5), second y (0.125); signs positive.
    np.testing.assert_allclose(ref, [[-1, 0], [1, 0], [0, 0.5], [0, -0.5]], atol=1e-12)
    np.testing.assert_allclose(other, [[2.0, 3.0]], atol=1e-12)


def test_stage_epochs_and_zoo_names():
    assert tga.stage_epochs(10, 3) == [0, 5, 10]
    assert tga.stage_epochs(6, 4) == [0, 2, 4, 6]
    assert tga.stage_epochs(2, 5) == [0, 1, 2]
    with pytest.raises(ValueError):
        tga.stage_epochs(3, 0)
    assert tga.zoo_name("ConvNet-3") == "ConvNetD3"
    assert tga.zoo_name("ResNet-10") == "ResNet10"
    assert tga.zoo_name("DenseNet-121") == "DenseNet121"
    assert tga.zoo_name("ViT-B") is None
    assert all(tga.zoo_name(name) == name for name in ddlib.MODEL_NAMES)


def test_class_silhouette_by_hand():
    # Two classes, two points each, on a line: a(i) = 1, b(i) = mean distance to the other class.
    feats = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
    labels = torch.tensor([0, 0, 1, 1])
    b = torch.tensor([10.5, 9.5, 9.5, 10.5])
    assert tga.class_silhouette(feats, labels) == pytest.approx(float(((b - 1) / b).mean()))
    assert math.isnan(tga.class_silhouette(feats, torch.tensor([0, 1, 2, 3])))


def test_tsne_embedding_shape_and_determinism():
    feats = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
    first = tga.tsne_embedding(feats, seed=0)
    assert first.shape == (12, 2)
    np.testing.assert_allclose(first, tga.tsne_embedding(feats, seed=0))
    with pytest.raises(ValueError, match="at least 4"):
        tga.tsne_embedding(feats[:3], seed=0)


def _tiny_net() -> torch.nn.Module:
    return ddlib.build_model("ConvNet", 1, 2, (4, 4), width=2, depth=1, seed=0)


class _Trajectory:
    def __init__(self, snapshots):
        self.snapshots = snapshots

    def snapshot(self, epoch):
        return self.snapshots[epoch].clone()


def test_snapshot_features_and_accuracies():
    net = _tiny_net()
    images = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    flat = ddlib.flatten_params(net)
    features = tga.snapshot_features(net, None, images, batch_size=4)
    torch.testing.assert_close(features, net.embed(images).detach())
    # Zero parameters: every feature is 0, every logit 0, argmax picks class 0.
    zeros = torch.zeros_like(flat)
    assert tga.snapshot_features(net, zeros, images).abs().sum() == 0
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    trajectory = _Trajectory([zeros, flat])
    accs = tga.snapshot_accuracies(net, trajectory, [0], images, labels)
    assert accs == [0.5]
    torch.testing.assert_close(ddlib.flatten_params(net), zeros)


def test_measure_run_counts_time_and_memory():
    def work():
        block = torch.ones(40 * 2**20 // 4)  # 40 MB, touched
        time.sleep(0.05)
        return float(block[-1])

    value, cost = run_cost.measure_run(work)
    assert value == 1.0
    assert cost.wall_time_s >= 0.05
    if "VmHWM" in cost.memory_method:
        assert 35 <= cost.peak_memory_mb <= 200
    combined = cost.plus(run_cost.RunCost(1.0, 1.0, "x"))
    assert combined.wall_time_s == pytest.approx(cost.wall_time_s + 1.0)
    assert combined.peak_memory_mb == max(cost.peak_memory_mb, 1.0)


def test_timed_distillation_keeps_the_original_cost(tmp_path):
    data = ddlib.load_dataset("digits")
    config = DMConfig(ipc=1, iterations=2, width=4, batch_real=4)
    first, cost = tga.timed_distillation(DistributionMatching(data, config, 0), 2, tmp_path)
    assert first.iterations_done == 2 and cost.wall_time_s > 0
    again, cost_again = tga.timed_distillation(DistributionMatching(data, config, 0), 2, tmp_path)
    assert cost_again == cost  # loaded from the checkpoint: the stored cost, not the load time
    torch.testing.assert_close(again.synthetic.images_syn, first.synthetic.images_syn)
    assert len(list(tmp_path.glob("*.pt"))) == 1 and len(list(tmp_path.glob("*.cost.json"))) == 1


def test_expert_cost_scales_the_probe():
    data = ddlib.load_dataset("digits")
    config = ddlib.ExpertConfig.tgdd(epochs=6, width=4)
    cost = tga.expert_cost(data, config, num_experts=2, seed=0)
    assert cost.wall_time_s > 0 and "x 12" in cost.memory_method
