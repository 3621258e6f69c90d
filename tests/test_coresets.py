"""Tests of ddlib.methods.coresets against hand-computed selections on toy 2-D feature sets."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import ddlib
from ddlib.methods.coresets import (
    count_forgetting_events, feature_extractor, forgetting_coreset, forgetting_counts, herding_coreset,
    herding_select, kcenter_coreset, kcenter_select, random_coreset, select_most_forgotten,
)
from ddlib.data.dataset import ImageDataset


class IdentityNet(nn.Module):
    """A parameter-free "network" whose features are the (C=2, 1, 1) input itself."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


def points_dataset(points: list[tuple[float, float]], labels: list[int]) -> ImageDataset:
    images = torch.tensor(points, dtype=torch.float32).view(-1, 2, 1, 1)
    labels_t = torch.tensor(labels)
    k = max(labels) + 1
    return ImageDataset("points", images, labels_t, images, labels_t, tuple(map(str, range(k))), (0.0, 0.0), (1.0, 1.0))


# Class 0 of the herding example, x0..x3; mean mu = (1, 4) / 4 = (0.25, 1).
HERD = [(3.0, 0.0), (0.0, 3.0), (1.0, 1.0), (-3.0, 0.0)]


def test_herding_matches_hand_computation():
    # Squared distances ||mu - (s + x) / t||^2:
    # t=1: x0 8.5625, x1 4.0625, x2 0.5625, x3 11.5625            -> x2, s = (1, 1)
    # t=2: x0 (2, .5): 3.3125, x1 (.5, 2): 1.0625, x3 (-1, .5): 1.8125 -> x1, s = (1, 4)
    # t=3: x0 (4/3, 4/3): 1.2847, x3 (-2/3, 4/3): 0.9514          -> x3
    # (nearest-to-mean order would be x2, x1, x0: herding differs at step 3)
    assert herding_select(torch.tensor(HERD), 3) == [2, 1, 3]
    assert herding_select(torch.tensor(HERD), 4) == [2, 1, 3, 0]


def test_herding_coreset_maps_to_dataset_indices():
    # Classes interleaved: class 0 at even indices, class 1 (the same points shifted by
    # (10, 10); herding is translation invariant) at odd indices.
    points, labels = [], []
    for x, y in HERD:
        points += [(x, y), (x + 10, y + 10)]
        labels += [0, 1]
    data = points_dataset(points, labels)
    syn = herding_coreset(data, 3, IdentityNet(), batch_size=3)
    # class 0: x2, x1, x3 -> dataset indices 4, 2, 6; class 1: 5, 3, 7
    assert syn.provenance["indices"] == [4, 2, 6, 5, 3, 7]
    assert syn.labels_syn.tolist() == [0, 0, 0, 1, 1, 1] and syn.syn_lr is None
    assert syn.config["method"] == "herding"
    assert torch.equal(syn.images_syn, data.images_train[[4, 2, 6, 5, 3, 7]])


def test_kcenter_matches_hand_computation():
    pts = [(0.0, 0.0), (1.0, 0.0), (5.0, 0.0), (0.0, 3.0), (2.0, 1.0)]
    # mean (1.6, 0.8); squared distances to it: 3.2, 1.0, 12.2, 7.4, 0.2      -> first y4
    # squared distances to y4 = (2, 1): y0 5, y1 2, y2 10, y3 8                  -> y2
    # nearest-center sq. distances with y2 = (5, 0): y0 5, y1 2, y3 8           -> y3
    # with y3 = (0, 3): y0 min(5, 9) = 5, y1 min(2, 10) = 2                      -> y0
    assert kcenter_select(torch.tensor(pts), 4) == [4, 2, 3, 0]
    data = points_dataset(pts + [(p[0] + 20, p[1]) for p in pts], [0] * 5 + [1] * 5)
    syn = kcenter_coreset(data, 2, IdentityNet(), seed=0)
    assert syn.provenance["indices"] == [4, 2, 9, 7]


def test_kcenter_from_a_given_first_center():
    pts = torch.tensor([(0.0, 0.0), (1.0, 0.0), (5.0, 0.0), (0.0, 3.0), (2.0, 1.0)])
    # squared distances to y0: y1 1, y2 25, y3 9, y4 5                         -> y2
    # nearest-center with y2 = (5, 0): y1 min(1, 16) = 1, y3 min(9, 34) = 9, y4 min(5, 10) = 5 -> y3
    # with y3 = (0, 3): y1 min(1, 10) = 1, y4 min(5, 8) = 5                    -> y4
    assert kcenter_select(pts, 4, first=0) == [0, 2, 3, 4]
    with pytest.raises(ValueError, match=r"first=5: expected a row index in \[0, 5\)"):
        kcenter_select(pts, 2, first=5)


def test_kcenter_coreset_random_start_is_seeded_per_class():
    pts = [(float(i), float(i * i % 7)) for i in range(8)]
    data = points_dataset(pts + [(p[0] + 20, p[1]) for p in pts], [0] * 8 + [1] * 8)
    picks = {s: kcenter_coreset(data, 3, IdentityNet(), s, start="random").provenance["indices"] for s in range(6)}
    assert picks[2] == kcenter_coreset(data, 3, IdentityNet(), 2, start="random").provenance["indices"]
    for s, indices in picks.items():  # the first center of class c is the seeded draw
        for c in range(2):
            draw = int(torch.randint(8, (1,), generator=ddlib.make_generator(ddlib.derive_seed(s, "kcenter", c))))
            assert indices[3 * c] == 8 * c + draw
    assert len({tuple(v) for v in picks.values()}) > 1  # seeds change the start
    assert kcenter_coreset(data, 3, IdentityNet(), 0).provenance["start"] == "mean"  # the default
    with pytest.raises(ValueError, match="start='first'"):
        kcenter_coreset(data, 1, IdentityNet(), start="first")


def test_kcenter_never_repeats_duplicates():
    pts = torch.tensor([(0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (1.0, 0.0)])
    picks = kcenter_select(pts, 4)
    assert sorted(picks) == [0, 1, 2, 3] and picks[:2] == [0, 3]


def test_random_coreset_counts_and_determinism():
    data = ddlib.load_dataset("digits")
    a, b, c = random_coreset(data, 4, seed=0), random_coreset(data, 4, seed=0), random_coreset(data, 4, seed=1)
    assert a.class_counts().tolist() == [4] * 10 and a.ipc == 4 and a.dataset == "digits"
    assert a.provenance["indices"] == b.provenance["indices"] != c.provenance["indices"]
    idx = torch.tensor(a.provenance["indices"])
    assert len(set(idx.tolist())) == 40  # without replacement
    assert torch.equal(data.labels_train[idx], a.labels_syn) and torch.equal(data.images_train[idx], a.images_syn)
    with pytest.raises(ValueError, match="ipc=1000 exceeds"):
        random_coreset(data, 1000, seed=0)


def test_feature_extractor_batches_without_grad():
    from ddlib.models import build_model

    net = build_model("ConvNet", 1, 10, (8, 8), width=8, seed=0)
    x = torch.randn(7, 1, 8, 8)
    assert net.training
    features = feature_extractor(net, x, batch_size=3)
    assert features.shape == (7, 8) and features.dtype == torch.float64 and not features.requires_grad
    assert net.training  # the train/eval mode is restored
    net.eval()
    torch.testing.assert_close(features, net.embed(x).double().detach(), atol=1e-6, rtol=1e-5)


def test_count_forgetting_events_on_hand_written_matrix():
    correct = torch.tensor([
        # ex0 ex1 ex2 ex3 ex4  (rows: presentations)
        [1, 1, 0, 0, 0],
        [1, 0, 0, 1, 1],
        [1, 1, 0, 1, 0],
        [1, 0, 0, 0, 1],
        [1, 1, 0, 0, 0],
    ], dtype=torch.bool)
    counts = count_forgetting_events(correct)
    # ex0 always right: 0; ex1 alternates 1-0-1-0-1: 2; ex2 never learned: inf;
    # ex3 0-1-1-0-0: 1; ex4 0-1-0-1-0: 2
    assert counts.tolist() == [0.0, 2.0, math.inf, 1.0, 2.0]
    with pytest.raises(ValueError, match=r"\(T, N\)"):
        count_forgetting_events(torch.ones(3, dtype=torch.bool))


def test_select_most_forgotten_breaks_ties_by_lower_index():
    counts = torch.tensor([0.0, 2.0, math.inf, 1.0, 1.0, 2.0, 0.0])
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    chosen = select_most_forgotten(counts, labels, 2, 2)
    assert [c.tolist() for c in chosen] == [[2, 1], [5, 3]]


def test_forgetting_coreset_selects_most_forgotten_per_class():
    full = ddlib.load_dataset("digits")
    keep = torch.cat([idx[:30] for idx in full.class_indices])  # 300 images keep the test fast
    data = ImageDataset("digits300", full.images_train[keep], full.labels_train[keep], full.images_test,
                        full.labels_test, full.class_names, full.mean, full.std)
    kwargs = dict(epochs=4, seed=0, width=8, batch_size=32, lr=0.05)
    counts = forgetting_counts(data, **kwargs)
    assert counts.shape == (300,) and (counts > 0).any()
    syn = forgetting_coreset(data, 3, **kwargs)
    assert syn.class_counts().tolist() == [3] * 10 and syn.config["method"] == "forgetting"
    chosen = torch.tensor(syn.provenance["indices"])
    for c in range(10):
        members = (data.labels_train == c).nonzero().flatten()
        picked = chosen[c * 3 : (c + 1) * 3]
        rest = members[~torch.isin(members, picked)]
        assert counts[picked].min() >= counts[rest].max()
        assert counts[picked].tolist() == sorted(counts[picked].tolist(), reverse=True)


def test_forgetting_coreset_uses_given_counts_without_training():
    data = points_dataset([(float(i), 0.0) for i in range(6)], [0, 0, 0, 1, 1, 1])
    counts = torch.tensor([1.0, 3.0, 0.0, math.inf, 2.0, 2.0])
    # class 0: most forgotten 1 (3 events), then 0; class 1: 3 (never learned), then 4 (tie with 5: lower index)
    syn = forgetting_coreset(data, 2, epochs=7, seed=0, counts=counts)
    assert syn.provenance["indices"] == [1, 0, 3, 4] and syn.config["epochs"] == 7
    with pytest.raises(ValueError, match=r"counts has shape \(5,\): expected \(6,\)"):
        forgetting_coreset(data, 1, epochs=1, seed=0, counts=counts[:5])
