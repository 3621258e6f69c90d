"""Tests of ddlib.evaluation.runner: the evaluation protocol on tiny networks and data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ddlib
import ddlib.evaluation.training as eval_training
import ddlib.evaluation.runner as evaluation
from ddlib.methods.coresets import random_coreset
from ddlib.data.dataset import ImageDataset
from ddlib.data.zca import ZCA
from ddlib.evaluation.runner import EvalConfig, EvalResult, evaluate_cross_arch, evaluate_full_dataset, evaluate_synthetic
from ddlib.core.runtime import derive_seed
from ddlib.methods.synthetic import SyntheticSet

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
    smoke = eval_for_scale("smoke", epochs=7)
    assert smoke.epochs == 7 and smoke.lr is None
    full = eval_for_scale("paper", full_dataset=True)
    assert full.lr == 0.01 and full.epochs < EvalConfig().epochs
    with pytest.raises(ValueError, match="scale='huge'"):
        eval_for_scale("huge")
    with pytest.raises(ValueError, match="lr_decay_at=1.5"):
        EvalConfig(lr_decay_at=1.5)
    with pytest.raises(ValueError, match="unknown key"):
        eval_for_scale("smoke", epoch=3)


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


# -- the papers' protocols ------------------------------------------------------------------------
def test_protocol_presets_hold_each_papers_settings():
    mtt, ast, tgdd = (EvalConfig.preset(p) for p in ("mtt", "ast", "tgdd"))
    assert mtt == EvalConfig() and mtt.milestones == (500,) and mtt.statistic == "last" and mtt.test_every == 0
    assert (ast.epochs, ast.lr, ast.momentum, ast.weight_decay, ast.lr_factor, ast.batch_size) == (
        1000, None, 0.9, 1e-3, 0.5, 256)
    assert ast.milestones == (502,)  # the AST code decays after epoch index E // 2 + 1 of 0..E
    assert (ast.restart_at_decay, ast.momentum_after_decay, ast.test_every, ast.statistic) == (True, 0.8, 20, "best")
    assert (tgdd.epochs, tgdd.lr, tgdd.batch_size, tgdd.weight_decay, tgdd.lr_factor) == (1500, 0.01, 64, 5e-4, 0.2)
    assert tgdd.milestones == (1000, 1250)  # 2E // 3 and 5E // 6, not 999 from 1500 * (2 / 3) in floats
    assert (tgdd.augmentation, tgdd.test_every, tgdd.statistic) == ("tgdd", 250, "best")
    # the test interval shrinks with the length, at least 1
    assert EvalConfig.preset("ast", epochs=150).test_every == 3 and EvalConfig.preset("ast", epochs=10).test_every == 1
    assert EvalConfig.preset("tgdd", epochs=225).test_every == 38
    assert EvalConfig.preset("tgdd", epochs=12).milestones == (8, 10)


def test_one_definition_per_scale_and_protocol():
    from ddlib.chapters.scales import SCALES, scale_settings

    for scale, settings in SCALES.items():
        for protocol in ddlib.evaluation.runner.PROTOCOLS:
            config = eval_for_scale(scale, protocol=protocol)
            assert config == scale_settings(scale).eval_config(protocol) == settings.eval_config(protocol)
            assert (config.num_eval, config.width, config.protocol) == (settings.num_eval, settings.width, protocol)
        assert eval_for_scale(scale).epochs == settings.eval_epochs
        assert eval_for_scale(scale, "tgdd").epochs == round(1.5 * settings.eval_epochs)  # 1500 / 1000
    # an epochs override rescales the tests (40 * 20 / 1000 -> 1) ...
    assert eval_for_scale("smoke", "ast", epochs=40).test_every == 1
    # ... but a scale's eval_max_tests caps how often a run tests: at most 15 tests -> every ceil(40 / 15) = 3
    assert SCALES["mini"].eval_max_tests == 15
    assert eval_for_scale("mini", "ast", epochs=40).test_every == 3
    assert eval_for_scale("mini", "ast").test_every == 20  # 300 epochs: 15 tests, not 300 / 50
    assert eval_for_scale("mini", "tgdd").test_every == 75  # 450 epochs: 6 tests, under the cap
    assert eval_for_scale("mini", "ast", test_every=1).test_every == 1  # an explicit interval wins
    assert eval_for_scale("mini", "mtt").test_every == 0  # MTT's protocol tests only at the end
    with pytest.raises(ValueError, match="eval_max_tests=0"):
        scale_settings("mini", eval_max_tests=0)
    assert eval_for_scale("mini", full_dataset=True).epochs == SCALES["mini"].expert_epochs_total


def test_protocol_config_validation():
    with pytest.raises(ValueError, match="protocol='dc'"):
        EvalConfig.preset("dc")
    with pytest.raises(ValueError, match="protocol='dc'"):
        eval_for_scale("mini", protocol="dc")
    with pytest.raises(ValueError, match=r"lr_decay_at=\(0.8, 0.5\)"):
        EvalConfig(lr_decay_at=(0.8, 0.5))
    with pytest.raises(ValueError, match=r"lr_decay_at=\(\)"):
        EvalConfig(lr_decay_at=())
    with pytest.raises(ValueError, match="momentum_after_decay=0.8 needs restart_at_decay=True"):
        EvalConfig(momentum_after_decay=0.8)
    with pytest.raises(ValueError, match="momentum_after_decay=1.5"):
        EvalConfig(restart_at_decay=True, momentum_after_decay=1.5)
    with pytest.raises(ValueError, match="lr_decay_offset=-1"):
        EvalConfig(lr_decay_offset=-1)
    with pytest.raises(TypeError, match="statistic"):
        EvalConfig(statistic="median")
    tgdd = EvalConfig.preset("tgdd")
    assert EvalConfig.from_dict(tgdd.to_dict()) == tgdd  # the JSON list of fractions comes back as a tuple


def test_ast_schedule_by_hand_on_one_parameter():
    """loss = w^2 / 2 (gradient w), one step per epoch: SGD momentum 0.9, wd 1e-3, lr x0.5 and a fresh
    SGD with momentum 0.8 once E // 2 + 2 = 7 of E = 10 epochs are finished."""
    from ddlib.core.train import ScheduledOptimizer

    config = EvalConfig.preset("ast", epochs=10)
    assert config.milestones == (7,)
    w = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = ScheduledOptimizer([w], config.optimizer_config(lr=0.1))
    value, buf, lrs = 1.0, None, []
    for epoch in range(10):
        lr, momentum = (0.1, 0.9) if epoch < 7 else (0.05, 0.8)
        if epoch == 7:
            buf = None  # the rebuilt optimizer starts without a momentum buffer
        d = value + 1e-3 * value
        buf = d if buf is None else momentum * buf + d
        value -= lr * buf
        optimizer.optimizer.zero_grad()
        (0.5 * w**2).sum().backward()
        lrs.append(optimizer.lr)
        optimizer.optimizer.step()
        optimizer.epoch_done()
        assert w.item() == pytest.approx(value, rel=1e-12), f"epoch {epoch}"
    assert lrs == [0.1] * 7 + [0.05] * 3


def _tiny_tensors():
    g = torch.Generator().manual_seed(0)
    images, test_images = torch.randn(6, 1, 8, 8, generator=g), torch.randn(12, 1, 8, 8, generator=g)
    return images, torch.arange(3).repeat(2), test_images, torch.randint(0, 3, (12,), generator=g)


def _protocol_run(config):
    images, labels, test_images, test_labels = _tiny_tensors()
    return evaluation._run_protocol(images, labels, test_images, test_labels, num_classes=3, lr=0.05,
                                    config=config.replace(width=4, num_eval=1, batched=False), seed=0,
                                    device=torch.device("cpu"), progress=False, desc="")


@pytest.mark.parametrize("protocol", ["ast", "tgdd"])
def test_protocol_schedule_reaches_the_training_loop(monkeypatch, protocol):
    seen = []
    real_epoch = eval_training.train_epoch

    def recording(net, optimizer, *args, **kwargs):
        group = optimizer.param_groups[0]
        seen.append((group["lr"], group["momentum"], id(optimizer), kwargs["mix"] is not None))
        return real_epoch(net, optimizer, *args, **kwargs)

    monkeypatch.setattr(eval_training, "train_epoch", recording)
    _protocol_run(EvalConfig.preset(protocol, epochs=12))
    lrs, momenta, optimizers, mixed = zip(*seen)
    if protocol == "ast":  # halved once 12 // 2 + 2 = 8 epochs are done, SGD rebuilt with momentum 0.8
        assert lrs == pytest.approx([0.05] * 8 + [0.025] * 4) and momenta == (0.9,) * 8 + (0.8,) * 4
        assert len(set(optimizers[:8])) == 1 and optimizers[8] != optimizers[7] and not any(mixed)
    else:  # x0.2 after 8 and 10 of 12 epochs, one optimizer, CutMix on
        assert lrs == pytest.approx([0.05] * 8 + [0.01] * 2 + [0.002] * 2) and set(momenta) == {0.9}
        assert len(set(optimizers)) == 1 and all(mixed)


@pytest.mark.parametrize("protocol, calls, paper", [("mtt", 1, 0.4), ("tgdd", 6, 0.5)])
def test_test_points_and_reported_statistic(monkeypatch, protocol, calls, paper):
    scripted = iter([0.1, 0.5, 0.3, 0.5, 0.2, 0.4] if calls == 6 else [0.4])
    tested = []
    monkeypatch.setattr(eval_training, "accuracy", lambda *a, **k: tested.append(1) or next(scripted))
    result = _protocol_run(EvalConfig.preset(protocol, epochs=12))  # TGDD: every round(250 * 12 / 1500) = 2
    assert len(tested) == calls and result.last == (0.4,)
    assert result.best == (0.5 if calls == 6 else 0.4,) and result.best_epoch == ((4,) if calls == 6 else (12,))
    assert result.paper_mean == paper and result.protocol == protocol
    assert result.statistic == ("best" if protocol == "tgdd" else "last")


def test_result_names_the_papers_statistic():
    common = dict(last=(0.5, 0.7), best=(0.6, 0.9), best_epoch=(4, 6), seeds=(1, 2), arch="ConvNet", lr=0.01, epochs=6)
    last, best = EvalResult(**common), EvalResult(**common, protocol="ast", statistic="best")
    assert last.paper == last.last and last.paper_mean == pytest.approx(0.6)
    assert best.paper == best.best and best.paper_mean == pytest.approx(0.75) and best.paper_std == pytest.approx(0.15)
    record = best.to_dict()
    assert (record["protocol"], record["statistic"], record["paper_mean"]) == ("ast", "best", pytest.approx(0.75))
    assert "reports best" in str(best)
    with pytest.raises(ValueError, match="statistic='mean'"):
        EvalResult(**common, statistic="mean")


def eval_for_scale(scale, protocol="mtt", **overrides):
    """A scale's protocol: the one definition, ``scale_settings(scale).eval_config(protocol, ...)``."""
    from ddlib.chapters.scales import scale_settings

    return scale_settings(scale).eval_config(protocol, **overrides)
