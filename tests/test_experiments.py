import pytest

import ddlib
from ddlib.chapters.scales import FirstExperts, cached_experts, scale_settings, subset_per_class


@pytest.fixture(scope="module")
def tiny():
    return subset_per_class(ddlib.load_dataset("digits"), 10, 5)


def test_subset_per_class_is_deterministic_and_balanced(tiny):
    assert len(tiny.labels_train) == 100 and len(tiny.labels_test) == 50
    assert tiny.labels_train.bincount().tolist() == [10] * 10


def test_scale_presets_and_unknown_scale():
    mini = scale_settings("mini")
    assert mini.dataset == "mnist5k" and scale_settings("paper").width == 128
    assert mini.mtt_config(10).syn_steps == mini.syn_steps
    assert scale_settings("paper").mtt_config(1).syn_steps == 50  # the MTT table
    assert scale_settings("smoke", width=4).width == 4
    with pytest.raises(ValueError, match="scale='huge'"):
        scale_settings("huge")
    with pytest.raises(ValueError, match="unknown key"):
        scale_settings("mini", widht=3)


def test_cached_experts_trains_once_and_returns_exactly_n(tiny, tmp_path):
    config = scale_settings("smoke").expert_config("mtt", epochs=1)
    two = cached_experts(tmp_path, tiny, config, 2, seed=0, progress=False)
    assert len(two) == 2
    again = cached_experts(tmp_path, tiny, config, 2, seed=0, progress=False)
    assert again.root == two.root and len(list(tmp_path.iterdir())) == 1
    one = cached_experts(tmp_path, tiny, config, 1, seed=0, progress=False)
    assert isinstance(one, FirstExperts) and len(one) == 1 and one.config == config
    with pytest.raises(IndexError):
        one.trajectory(1)
    other_seed = cached_experts(tmp_path, tiny, config, 1, seed=1, progress=False)
    assert other_seed.root != two.root


def test_cached_experts_whiten_with_the_callers_zca_fitted_once(tiny, tmp_path, monkeypatch):
    """Kinds of experts on one data set share the caller's ZCA: no fit per expert, same trajectories."""
    import torch

    from ddlib.data.zca import ZCA

    config = scale_settings("smoke").expert_config("mtt", epochs=1, zca=True)
    zca = ZCA.fit(tiny.images_train, regularization=0.1)
    fitted = cached_experts(tmp_path / "fit", tiny, config, 2, seed=0, progress=False)

    def no_fit(*args, **kwargs):
        raise AssertionError("ZCA.fit called although the caller gave its ZCA")

    monkeypatch.setattr(ZCA, "fit", no_fit)
    given = cached_experts(tmp_path / "given", tiny, config, 2, seed=0, progress=False, zca=zca)
    for k in range(2):
        assert torch.equal(given.trajectory(k).snapshots, fitted.trajectory(k).snapshots)
