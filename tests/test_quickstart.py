"""The one-call front door: ddlib.distill and ddlib.evaluate on a tiny digits problem.

Ten classes of 5 training and 3 test images (8x8), two width-8 experts of 2 epochs shared by
the whole module, 2 distillation iterations of 2 inner steps, evaluation for 2 epochs.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import ddlib
import ddlib.chapters.scales as experiments
import ddlib.quickstart as quickstart
from ddlib.chapters.scales import subset_per_class
from ddlib.quickstart_checks import CORESET_METHODS, METHODS, uses_experts

TINY_EXPERTS = ddlib.ExpertConfig.mtt(width=8, epochs=2, batch_size=64)
# Per method, the keywords that make a run tiny (2 inner steps; schedules that fit 2-epoch experts).
TINY = {"mtt": dict(syn_steps=2, max_start_epoch=1, expert_epochs=1),
        "ast": dict(syn_steps=2, max_start_epoch=1, expert_epochs=1),
        "mct": dict(syn_steps=2, max_start_epoch=1, expert_epochs=1),
        "tgdd": dict(batch_real=4), "dm": dict(width=8, batch_real=4),
        "random": {}, "herding": {}, "kcenter": {}, "forgetting": dict(epochs=2, width=8)}


@pytest.fixture(scope="module")
def data():
    return subset_per_class(ddlib.load_dataset("digits"), 5, 3)


@pytest.fixture(scope="module")
def store(data, tmp_path_factory):
    return ddlib.cached_experts(tmp_path_factory.mktemp("experts"), data, TINY_EXPERTS, 2, 0, progress=False)


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """The default expert cache (``$XDG_CACHE_HOME/ddlib``) inside the test's folder, never ``~/.cache``."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "ddlib"


def tiny_args(method, store, **changes):
    """distill's keywords for a tiny run of ``method`` with the shared experts where it uses them."""
    args = dict(ipc=1, device="cpu", progress=False, **TINY[method])
    if method not in CORESET_METHODS:
        args["iterations"] = 2
    if uses_experts(method):
        args["experts"] = store
    return {**args, **changes}


# ---------------------------------------------------------------------- every method, end to end
@pytest.mark.parametrize("method", METHODS)
def test_every_method_distils_and_evaluates(method, data, store):
    syn = ddlib.distill(data, method, seed=0, **tiny_args(method, store, ipc=2))
    assert syn.images_syn.shape == (20, 1, 8, 8)
    assert torch.equal(syn.labels_syn, torch.arange(10).repeat_interleave(2))
    assert (syn.ipc, syn.dataset) == (2, "digits")
    assert torch.isfinite(syn.images_syn).all()
    if method != "random":  # a random pick is made for no network
        assert syn.provenance["network"] == {"arch": "ConvNet", "width": 8, "depth": None, "norm": "instance"}
    result = ddlib.evaluate(syn, data, num_eval=1, epochs=2, device="cpu", progress=False)
    assert (result.num_eval, result.epochs, result.protocol) == (1, 2, "mtt")
    assert len(result.values) == 1 and 0.0 <= result.mean <= 1.0 and result.std == 0.0


def test_distilled_sets_carry_each_papers_settings(data, store):
    mtt = ddlib.distill(data, "mtt", **tiny_args("mtt", store)).config
    ast_code = ddlib.distill(data, "ast", **tiny_args("ast", store)).config
    ast_paper = ddlib.distill(data, "ast", preset="paper", **tiny_args("ast", store)).config
    mct = ddlib.distill(data, "mct", **tiny_args("mct", store)).config
    assert (mtt["sampling"], mtt["gradient"], mtt["init"], mtt["perturbation"]) == ("integer", "exact", "real", "none")
    assert (mtt["syn_steps"], mtt["lr_img"], mtt["memory"]) == (2, 100.0, "graph")  # embedded: the mini scale's
    assert (ast_code["method"], ast_code["inner_momentum"], ast_code["perturbation"]) == ("AST", 0.9, "code")
    assert (ast_paper["inner_momentum"], ast_paper["perturbation"], ast_paper["balance_log_base"]) == (0.0, "paper",
                                                                                                      None)
    assert (mct["sampling"], mct["gradient"], mct["zca"]) == ("continuous", "tesla", False)


def test_published_tables_are_the_defaults_on_cifar10():
    # A stand-in named cifar10 (planning reads only its name, shape and classes): no experts are trained.
    images, labels = torch.zeros(20, 3, 32, 32), torch.arange(10).repeat(2)
    fake = ddlib.ImageDataset("cifar10", images, labels, images, labels, tuple(map(str, range(10))),
                              (0.0,) * 3, (1.0,) * 3)
    mtt = quickstart._plan(fake, "mtt", 1, None, None, {}).config
    assert mtt == ddlib.MTTConfig.for_dataset("cifar10", 1, iterations=5000)  # syn_steps 50, zca True
    mct = quickstart._plan(fake, "mct", 1, None, None, {}).config
    assert (mct.syn_steps, mct.expert_epochs, mct.max_start_epoch, mct.lr_img, mct.zca) == (60, 6, 4, 1e3, False)
    plan = quickstart._plan(fake, "ast", 1, None, None, {})
    assert plan.expert_config.zca and plan.expert_config.optimizer.momentum == 0.9  # smooth experts, in ZCA space


# ---------------------------------------------------------------------- seeds, checkpoints, experts
@pytest.mark.parametrize("method", ["mtt", "dm"])
def test_same_seed_gives_the_same_images(method, data, store):
    first, again, other = (ddlib.distill(data, method, seed=s, **tiny_args(method, store)) for s in (0, 0, 1))
    assert torch.equal(first.images_syn, again.images_syn)
    assert not torch.equal(first.images_syn, other.images_syn)


def test_interrupted_run_resumes_from_checkpoint_dir(data, store, tmp_path, monkeypatch):
    args = tiny_args("mtt", store, iterations=3)
    straight = ddlib.distill(data, "mtt", **args)
    original = ddlib.TrajectoryMatching.step

    def interrupted(self, iteration):
        if iteration == 2:
            raise KeyboardInterrupt
        return original(self, iteration)

    monkeypatch.setattr(ddlib.TrajectoryMatching, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ddlib.distill(data, "mtt", checkpoint_dir=tmp_path, **args)
    (checkpoint,) = tmp_path.glob("mtt-digits-ipc1-seed0-*.pt")
    monkeypatch.setattr(ddlib.TrajectoryMatching, "step", original)
    resumed = ddlib.distill(data, "mtt", checkpoint_dir=tmp_path, **args)
    assert resumed.provenance["iterations"] == 3
    assert torch.equal(resumed.images_syn, straight.images_syn)
    assert resumed.syn_lr == straight.syn_lr


def test_experts_are_trained_once_and_cached(data, tmp_path, monkeypatch, cache_home):
    args = dict(ipc=1, iterations=1, device="cpu", progress=False, expert_config=TINY_EXPERTS, num_experts=1,
                **TINY["mtt"])
    syn = ddlib.distill(data, "mtt", checkpoint_dir=tmp_path, **args)
    (folder,) = tmp_path.glob("experts-digits-*")
    assert len(ddlib.TrajectoryStore.open(folder)) == 1
    assert syn.provenance["expert_store"]["path"] == str(folder)
    roots = []

    def refuse(root, *args, **kwargs):
        roots.append(Path(root))
        raise RuntimeError("no training in this part of the test")

    monkeypatch.setattr(experiments, "generate_experts", refuse)
    again = ddlib.distill(data, "mtt", checkpoint_dir=tmp_path, **args)  # the cached experts, not trained again
    assert roots == [] and torch.equal(again.images_syn, syn.images_syn)
    with pytest.raises(RuntimeError, match="no training"):  # no checkpoint_dir: the default cache folder
        ddlib.distill(data, "herding", device="cpu", progress=False, expert_config=TINY_EXPERTS)
    assert roots[0].parent == cache_home and roots[0].name.startswith("experts-digits-")


def test_experts_given_as_a_folder(data, store):
    syn = ddlib.distill(data, "herding", experts=str(store.root), device="cpu", progress=False)
    assert syn.config["method"] == "herding" and syn.ipc == 1


# ---------------------------------------------------------------------- errors, all before any compute
@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(experiments, "generate_experts", lambda *a, **k: pytest.fail("trained before checking"))


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="mtx"), r"method='mtx': expected one of \['mtt', 'ast', 'mct', 'dm', 'tgdd', 'random'"),
    (dict(ipc=0), r"ipc=0: expected an int >= 1"),
    (dict(ipc=6), r"ipc=6 exceeds the 5 training images of class 0 \('0'\), the smallest class of 'digits'; "
                  r"pass ipc <= 5"),
    (dict(iterations=0), r"iterations=0: expected an int >= 1"),
    (dict(seed="0"), r"seed='0': expected an int"),
    (dict(method="random", iterations=5), r"method 'random' selects real images and has no iterations"),
    (dict(syn_step=2), r"unknown keyword\(s\) \['syn_step'\] for method 'mtt'; valid keywords are \[.*'syn_steps'"),
    (dict(method="dm", num_experts=2), r"unknown keyword\(s\) \['num_experts'\] for method 'dm'"),
    (dict(method="forgetting", epoch=2), r"unknown keyword\(s\) \['epoch'\] .*'epochs'"),
    (dict(num_experts=0), r"num_experts=0: expected an int >= 1"),
    (dict(method="ast", preset="papers"), r"preset='papers': expected 'code'"),
    (dict(expert_config=TINY_EXPERTS), r"max_start_epoch=8 \+ expert_epochs=2 exceeds the 2 epochs of the experts "
                                       r"\(to be trained\)"),
    (dict(data_parallel="yes"), r"data_parallel='yes': expected True or False"),
    (dict(method="random", data_parallel=True), r"data_parallel=True with method='random': coresets run in one"),
])
def test_bad_arguments_fail_before_training(kwargs, message, data, no_training):
    kwargs = {"method": "mtt", **kwargs}
    with pytest.raises(ValueError, match=message):
        ddlib.distill(data, device="cpu", progress=False, **kwargs)


def test_experts_of_another_data_set_are_refused(data, store, no_training):
    fewer = subset_per_class(data, 4, 3)
    with pytest.raises(ValueError, match=r"trained on 'digits' \(50 training images, fingerprint \w+\); data is "
                                         r"'digits' \(40 training images"):
        ddlib.distill(fewer, "mtt", experts=store)
    padded = dataclasses.replace(data, images_train=F.pad(data.images_train, (1, 1, 1, 1)),
                                 images_test=F.pad(data.images_test, (1, 1, 1, 1)))
    with pytest.raises(ValueError, match=r"images \(1, 8, 8\), 10 classes; data 'digits' has images \(1, 10, 10\)"):
        ddlib.distill(padded, "tgdd", experts=store)


def test_experts_of_another_network_are_refused(data, store):
    with pytest.raises(ValueError, match=r"are \{'arch': 'ConvNet', 'width': 8, .*\} networks, but expert_config "
                                         r"asks for \{'arch': 'ConvNet', 'width': 16"):
        ddlib.distill(data, "mtt", experts=store, expert_config=TINY_EXPERTS.replace(width=16), **TINY["mtt"])


def test_experts_that_cannot_be_used(data, store, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"experts='.*missing': the folder does not exist"):
        ddlib.distill(data, "mtt", experts=tmp_path / "missing")
    with pytest.raises(ValueError, match=r"method 'dm' uses no expert trajectories, but experts= was given"):
        ddlib.distill(data, "dm", experts=store)
    with pytest.raises(ValueError, match=r"num_experts=3: the store .* holds 2 experts; pass num_experts <= 2"):
        ddlib.distill(data, "mtt", experts=store, num_experts=3, **TINY["mtt"])
    with pytest.raises(ValueError, match=r"max_start_epoch=8 \+ expert_epochs=2 exceeds the 2 epochs of the experts "
                                         r"\(given\)"):
        ddlib.distill(data, "ast", experts=store)
    with pytest.raises(ValueError, match=r"zca=True, but the experts \(given\) see images with zca=False"):
        ddlib.distill(data, "mct", experts=store, zca=True, **TINY["mct"])


def test_student_of_another_width_is_named(data, store):
    student = ddlib.build_model("ConvNet", 1, 10, (8, 8), width=16)
    config = ddlib.MTTConfig(ipc=1, iterations=1, syn_steps=2, max_start_epoch=1, expert_epochs=1)
    with pytest.raises(ValueError, match=r"student network has \d+ parameters but the experts have 1386: the student "
                                         r"must be the experts' network .*build_expert_model"):
        ddlib.TrajectoryMatching(data, store, student, config, 0)


# ---------------------------------------------------------------------- evaluate
def test_evaluate_reads_the_network_and_the_scale(data, store, monkeypatch):
    seen = {}
    monkeypatch.setattr(quickstart, "evaluate_synthetic", lambda syn, data, config, seed, **kw: seen.update(
        config=config, seed=seed))
    syn = ddlib.distill(data, "herding", experts=store, device="cpu", progress=False)
    ddlib.evaluate(syn, data, "tgdd", seed=4, device="cpu", batch_size=32)
    config = seen["config"]
    # digits is embedded: the mini scale (3 networks, 300 MTT epochs -> 450 for TGDD), the set's width-8 network
    assert (config.protocol, config.width, config.num_eval, config.epochs, config.batch_size) == ("tgdd", 8, 3, 450,
                                                                                                   32)
    assert seen["seed"] == 4 and config.statistic == "best"
    ddlib.evaluate(syn, data, arch="ResNet18BN", device="cpu")  # the recorded ConvNet's width does not carry over
    assert (seen["config"].arch, seen["config"].width, seen["config"].protocol) == ("ResNet18BN", 16, "mtt")


@pytest.mark.parametrize("kwargs, message", [
    (dict(protocol="dc"), r"protocol='dc': expected one of \['mtt', 'ast', 'tgdd'\]"),
    (dict(num_eval=0), r"num_eval=0: expected an int >= 1"),
    (dict(epochs=0), r"epochs=0: expected an int >= 1"),
    (dict(lr_decay=0.5), r"unknown keyword\(s\) \['lr_decay'\] for evaluate; valid keywords are \[.*'lr_decay_at'"),
])
def test_evaluate_rejects_bad_arguments(kwargs, message, data):
    syn = ddlib.random_coreset(data, 1, 0)
    with pytest.raises(ValueError, match=message):
        ddlib.evaluate(syn, data, **kwargs)


def test_evaluate_rejects_a_set_of_another_data_set(data):
    three = ddlib.SyntheticSet(torch.zeros(3, 1, 8, 8), torch.arange(3), None, {}, {}, "other", 1)
    with pytest.raises(ValueError, match=r"synthetic set \('other'\) has images \(1, 8, 8\) and 3 classes; data "
                                         r"'digits' has images \(1, 8, 8\) and 10 classes"):
        ddlib.evaluate(three, data)


def test_eval_result_mean_std_values_follow_the_reported_statistic():
    result = ddlib.EvalResult(last=(0.5, 0.7), best=(0.6, 1.0), best_epoch=(2, 2), seeds=(0, 1), arch="ConvNet",
                              lr=0.01, epochs=2, protocol="ast", statistic="best")
    assert result.values == (0.6, 1.0)
    assert result.mean == pytest.approx(0.8) and result.std == pytest.approx(0.2)  # population std
    last = dataclasses.replace(result, statistic="last")
    assert last.values == (0.5, 0.7) and last.mean == pytest.approx(0.6) and last.std == pytest.approx(0.1)
