"""Tests of ddlib.evaluation: the evaluation protocol on tiny networks and data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ddlib
import ddlib.eval_training as eval_training
import ddlib.evaluation as evaluation
from ddlib.coresets import random_coreset
from ddlib.data.dataset import ImageDataset
from ddlib.data.zca import ZCA
from ddlib.evaluation import EvalConfig, EvalResult, evaluate_cross_arch, evaluate_full_dataset, evaluate_synthetic
from ddlib.runtime import derive_seed
from ddlib.synthetic import SyntheticSet

# Tiny protocol: width-8 ConvNet on 8x8 digits, a few epochs.
TINY = EvalConfig(epochs=6, num_eval=2, width=8, batch_size=64)  # lr None -> 0.01 for coresets


@pytest.fixture(scope="module")
def digits():
    return ddlib.load_dataset("digits")


@pytest.fixture(scope="module")
def coreset(digits):
    return random_coreset(digits, 5, seed=0)


def quadrant_data(n_per_class: int = 30, seed: int = 0) -> ImageDataset:
    """Four classes, each a bright 4x4 quadrant of an 8x8 image plus small noise: perfectly separable."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        labels = torch.arange(4).repeat_interleave(n)
        images = 0.1 * torch.randn(len(labels), 1, 8, 8, generator=g)
        for i, c in enumerate(labels.tolist()):
            r, col = divmod(c, 2)
            images[i, 0, 4 * r : 4 * r + 4, 4 * col : 4 * col + 4] += 1.0
        return images, labels

    (xtr, ytr), (xte, yte) = split(n_per_class), split(n_per_class)
    return ImageDataset("quadrants", xtr, ytr, xte, yte, ("a", "b", "c", "d"), (0.0,), (1.0,))


def test_config_presets_and_validation():
    assert EvalConfig().epochs == 1000 and EvalConfig().num_eval == 5 and EvalConfig().lr is None
    assert EvalConfig().decay_epoch == 500
    smoke = EvalConfig.for_scale("smoke", epochs=7)
    assert smoke.epochs == 7 and smoke.lr is None
    full = EvalConfig.for_scale("paper", full_dataset=True)
    assert full.lr == 0.01 and full.epochs < EvalConfig().epochs
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        EvalConfig.for_scale("huge")
    with pytest.raises(ValueError, match="lr_decay_at=1.5"):
        EvalConfig(lr_decay_at=1.5)
    with pytest.raises(ValueError, match="unknown key"):
        EvalConfig.for_scale("smoke", epoch=3)


def test_result_statistics_use_population_std():
    result = EvalResult(last=(0.5, 0.7), best=(0.6, 0.8), best_epoch=(4, 6), seeds=(1, 2), arch="ConvNet",
                        lr=0.01, epochs=6)
    assert result.last_mean == pytest.approx(0.6) and result.last_std == pytest.approx(0.1)  # ddof=0
    assert result.best_std == pytest.approx(np.std([0.6, 0.8]))
    record = result.to_dict()
    assert record["last"] == [0.5, 0.7] and record["num_eval"] == 2 and record["best_mean"] == pytest.approx(0.7)


def test_same_seed_reproduces_and_seeds_differ(digits, coreset):
    a = evaluate_synthetic(coreset, digits, TINY, seed=1, progress=False)
    b = evaluate_synthetic(coreset, digits, TINY, seed=1, progress=False)
    c = evaluate_synthetic(coreset, digits, TINY, seed=2, progress=False)
    assert a.last == b.last and a.best == b.best
    assert a.seeds == tuple(derive_seed(1, "eval", i, "init") for i in range(2))
    assert len(set(a.seeds)) == 2 and set(a.seeds).isdisjoint(c.seeds)
    assert a.last != c.last
    assert a.lr == 0.01  # coresets learn no lr


def test_best_is_at_least_last_and_lr_choice(digits, coreset):
    syn = SyntheticSet(coreset.images_syn, coreset.labels_syn, syn_lr=0.02, config={}, provenance={},
                       dataset="digits", ipc=5)
    result = evaluate_synthetic(syn, digits, TINY.replace(test_every=2, num_eval=3), seed=0, progress=False)
    assert result.num_eval == 3 and result.lr == 0.02  # the learned lr is used when config.lr is None
    assert all(b >= l for b, l in zip(result.best, result.last))
    assert all(e in (2, 4, 6) for e in result.best_epoch)
    fixed = evaluate_synthetic(syn, digits, TINY.replace(lr=0.05, num_eval=1), seed=0, progress=False)
    assert fixed.lr == 0.05


def test_mismatch_raises_before_training(monkeypatch, digits):
    def fail(*args, **kwargs):
        raise AssertionError("train_epoch must not be called")

    monkeypatch.setattr(eval_training, "train_epoch", fail)
    small = SyntheticSet(torch.zeros(10, 1, 4, 4), torch.arange(10), None, {}, {}, "x", ipc=1)
    with pytest.raises(ValueError, match=r"images \(1, 4, 4\).*data set 'digits' has images \(1, 8, 8\)"):
        evaluate_synthetic(small, digits, TINY, seed=0, progress=False)
    few = SyntheticSet(torch.zeros(3, 1, 8, 8), torch.arange(3), None, {}, {}, "x", ipc=1)
    with pytest.raises(ValueError, match="3 classes.*10 classes"):
        evaluate_synthetic(few, digits, TINY, seed=0, progress=False)
    zca_set = SyntheticSet(torch.zeros(10, 1, 8, 8), torch.arange(10), None, {}, {}, "x", ipc=1, zca=True)
    with pytest.raises(ValueError, match="ZCA space"):
        evaluate_synthetic(zca_set, digits, TINY, seed=0, progress=False)
    with pytest.raises(ValueError, match="unknown model 'NoSuchNet'"):
        evaluate_cross_arch(zca_set.__class__(torch.zeros(10, 1, 8, 8), torch.arange(10), None, {}, {}, "x", ipc=1),
                            digits, ["ConvNet", "NoSuchNet"], TINY, seed=0, progress=False)


def test_separable_toy_set_reaches_high_accuracy():
    data = quadrant_data()
    syn = random_coreset(data, 2, seed=0)
    config = EvalConfig(epochs=20, num_eval=2, width=8, dsa=False, batch_size=8, lr=0.1)
    result = evaluate_synthetic(syn, data, config, seed=0, progress=False)
    assert result.last_mean >= 0.95 and result.lr == 0.1


def test_zca_space_evaluation_and_full_dataset():
    data = quadrant_data()
    zca = ZCA.fit(data.images_train, regularization=0.1)
    base = random_coreset(data, 2, seed=0)
    syn = SyntheticSet(zca.transform(base.images_syn), base.labels_syn, None, {}, {}, "quadrants", ipc=2, zca=True)
    config = EvalConfig(epochs=20, num_eval=1, width=8, dsa=False, batch_size=8, lr=0.1)
    assert evaluate_synthetic(syn, data, config, seed=0, zca=zca, progress=False).last_mean >= 0.9
    full = evaluate_full_dataset(data, config.replace(epochs=10, lr=None), seed=0, progress=False)
    assert full.lr == 0.01 and full.num_eval == 1 and full.last_mean >= 0.9


def test_cross_arch_returns_one_result_per_arch(digits, coreset):
    results = evaluate_cross_arch(coreset, digits, ["ConvNet", "ConvNetD3"], TINY.replace(num_eval=1, epochs=2),
                                  seed=0, progress=False)
    assert list(results) == ["ConvNet", "ConvNetD3"]
    assert all(r.arch == a for a, r in results.items())
    # ConvNet on 8x8 is ConvNet-3, so both rows are the same protocol with the same seeds
    assert results["ConvNet"].last == results["ConvNetD3"].last
