"""The MCT chapter's measurements (ddlib.chapters.mct_experiments): oscillation statistics, convergence
targets, the expert view, checkpoint names, path accuracies, distillation runs, storage arithmetic."""
from __future__ import annotations

import pytest
import torch

import ddlib
from ddlib.chapters import mct_experiments as mcx
from ddlib.trajectories.convexified import ConvexifiedTrajectory, storage_bytes
from ddlib.evaluation.runner import EvalConfig
from ddlib.trajectories.experts import build_expert_model
from ddlib.core.functional import load_flat_params
from ddlib.methods.mtt_config import MTTConfig
from helpers import small_digits, tiny_store


# ---------------------------------------------------------------------- oscillation
def test_monotone_curve_has_no_drops():
    stats = mcx.oscillation([10.0, 20.0, 20.0, 35.0])
    assert stats == {"drops": 0.0, "total_drop": 0.0, "max_drop": 0.0, "total_rise": 25.0, "net_gain": 25.0}


def test_oscillating_curve_counts_every_drop():
    stats = mcx.oscillation([10.0, 30.0, 25.0, 40.0, 32.0, 33.0])
    assert stats["drops"] == 2
    assert stats["total_drop"] == pytest.approx(5.0 + 8.0)
    assert stats["max_drop"] == pytest.approx(8.0)
    assert stats["total_rise"] == pytest.approx(20.0 + 15.0 + 1.0)
    assert stats["net_gain"] == pytest.approx(stats["total_rise"] - stats["total_drop"])


def test_decreasing_curve_and_plateau():
    assert mcx.oscillation([0.9, 0.5, 0.1])["drops"] == 2
    assert mcx.oscillation([0.5, 0.5])["drops"] == 0  # equal values are not a drop


@pytest.mark.parametrize("bad", [[], [1.0], [1.0, float("nan")]])
def test_oscillation_rejects_short_or_nonfinite_curves(bad):
    with pytest.raises(ValueError, match="at least 2 finite"):
        mcx.oscillation(bad)


# ---------------------------------------------------------------------- convergence target
def test_iterations_to_reach_first_crossing():
    iterations, accs = [0, 20, 40, 60], [10.0, 30.0, 25.0, 45.0]
    assert mcx.iterations_to_reach(iterations, accs, 10.0) == 0
    assert mcx.iterations_to_reach(iterations, accs, 26.0) == 20  # a later dip does not matter
    assert mcx.iterations_to_reach(iterations, accs, 40.0) == 60
    assert mcx.iterations_to_reach(iterations, accs, 46.0) is None


def test_iterations_to_reach_validates():
    with pytest.raises(ValueError, match="2 iterations but 1"):
        mcx.iterations_to_reach([0, 1], [1.0], 0.5)
    with pytest.raises(ValueError, match="increase strictly"):
        mcx.iterations_to_reach([0, 0], [1.0, 2.0], 0.5)


# ---------------------------------------------------------------------- storage arithmetic
def test_paper_storage_matches_storage_bytes_and_authors():
    rows = {(r["dataset"], r["buffer"]): r for r in mcx.paper_storage()}
    c10 = rows["cifar10", "full"]
    assert c10["num_params"] == 320010 and c10["depth"] == 3
    assert c10["bytes"] == storage_bytes(320010, 100, kind="full", epochs=50)
    assert rows["cifar10", "convexified"]["bytes"] == storage_bytes(320010, 100, kind="convexified", num_layers=14)
    assert rows["tinyimagenet", "full"]["depth"] == 4
    # the authors' MB figures (results file) are these sizes plus file framing
    assert c10["mb"] == pytest.approx(6244.41, rel=0.01)
    assert rows["cifar10", "waypoints"]["mb"] == pytest.approx(508.2, rel=0.05)
    assert c10["mb"] / rows["cifar10", "convexified"]["mb"] == pytest.approx(25.5, abs=0.1)


def test_authors_tiny_imagenet_figure_is_a_depth_3_convnet():
    tiny = {r["buffer"]: r for r in mcx.paper_storage(depths={"tinyimagenet": 3}) if r["dataset"] == "tinyimagenet"}
    assert tiny["full"]["depth"] == 3
    assert tiny["full"]["mb"] == pytest.approx(37724.71, rel=0.005)


# ---------------------------------------------------------------------- stores, paths, runs
@pytest.fixture(scope="module")
def data():
    return small_digits()


@pytest.fixture(scope="module")
def store(data, tmp_path_factory):
    return tiny_store(tmp_path_factory.mktemp("experts"), data, 3)


@pytest.fixture(scope="module")
def variants(store, tmp_path_factory):
    return mcx.convexified_variants(mcx.FirstExperts(store, 2), tmp_path_factory.mktemp("conv"),
                                    {"path-2": {}, "uniform-2": {"lambda_mode": "uniform"}})


def test_first_experts_view(store):
    view = mcx.FirstExperts(store, 2)
    assert len(view) == 2 and view.num_epochs == store.num_epochs and view.config == store.config
    assert [e["seed"] for e in view.experts] == [e["seed"] for e in store.experts[:2]]
    assert torch.equal(view.trajectory(1).snapshots, store.trajectory(1).snapshots)
    with pytest.raises(IndexError, match="0..1"):
        view.trajectory(2)
    with pytest.raises(ValueError, match="1 <= n <= 3"):
        mcx.FirstExperts(store, 4)


def test_convexified_variants_convert_the_whole_store(store, variants):
    assert set(variants) == {"path-2", "uniform-2"}
    assert all(len(v) == len(store) for v in variants.values())  # the view's source, not only 2 experts
    assert variants["uniform-2"].manifest["options"]["lambda_mode"] == "uniform"
    assert variants["path-2"].manifest["options"]["smoothing"] == "code"
    assert variants["path-2"].root != variants["uniform-2"].root


def test_convexified_variants_with_other_options_get_their_own_folder(store, variants):
    folder = variants["path-2"].root.parent
    again = mcx.convexified_variants(store, folder, {"path-2": {}})["path-2"]
    assert again.root == variants["path-2"].root  # resumed, not rebuilt
    smoothed = mcx.convexified_variants(store, folder, {"path-2": {"smoothing": "paper"}})["path-2"]
    assert smoothed.root != variants["path-2"].root and smoothed.manifest["options"]["smoothing"] == "paper"
    end = store.num_epochs
    snaps = store.trajectory(0).snapshots
    assert torch.equal(variants["path-2"].trajectory(0).at(end), snaps[end])  # the code: 2 models, no smoothing
    torch.testing.assert_close(smoothed.trajectory(0).at(end), (snaps[end - 1] + snaps[end]) / 2)


def test_path_accuracies_load_each_point(data, store, variants):
    net = build_expert_model(data, store.config)
    trajectory = store.trajectory(0)
    accs = mcx.path_accuracies(trajectory, net, data, [0, trajectory.num_epochs])
    load_flat_params(net, trajectory.snapshot(trajectory.num_epochs))
    assert accs[-1] == ddlib.accuracy(net, data.images_test, data.labels_test)
    convex = variants["path-2"].trajectory(0)
    assert isinstance(convex, ConvexifiedTrajectory)
    accs = mcx.path_accuracies(convex, net, data, [0, 1.5, convex.num_epochs])
    assert len(accs) == 3 and all(0 <= a <= 1 for a in accs)
    assert mcx.path_accuracies(convex, net, data, [0])[0] == mcx.path_accuracies(trajectory, net, data, [0])[0]


def test_checkpoint_file_separates_sources_and_configs(store, variants, tmp_path):
    config = MTTConfig(ipc=1, iterations=2)
    plain = mcx.checkpoint_file(tmp_path, "MTT", config, 0, store)
    assert plain.parent == tmp_path and plain.name.startswith("mtt-ipc1-") and plain.suffix == ".pt"
    assert plain == mcx.checkpoint_file(tmp_path, "MTT", config, 0, store)
    others = {mcx.checkpoint_file(tmp_path, "MTT", config, 0, variants["path-2"]),
              mcx.checkpoint_file(tmp_path, "MTT", config.replace(syn_steps=3), 0, store),
              mcx.checkpoint_file(tmp_path, "MTT", config, 1, store),
              mcx.checkpoint_file(tmp_path, "MTT", config, 0, mcx.FirstExperts(store, 2)),
              mcx.checkpoint_file(tmp_path, "MTT", config, 0, store, EvalConfig(epochs=3))}
    assert plain not in others and len(others) == 5


def test_distill_and_evaluate_ends_with_an_evaluation(data, variants, tmp_path):
    source = mcx.FirstExperts(variants["path-2"], 2)
    config = MTTConfig(ipc=1, iterations=2, syn_steps=2, expert_epochs=1, max_start_epoch=2, lr_img=10.0,
                       lr_teacher=0.01, lr_lr=1e-7, sampling="continuous", dsa=False)
    eval_config = EvalConfig(epochs=2, num_eval=2, width=8, dsa=False)
    path = mcx.checkpoint_file(tmp_path, "MCT", config, 0, source, eval_config)
    final_only = mcx.distill_and_evaluate(data, source, config, 0, eval_config=eval_config, checkpoint_path=path)
    assert [e["iteration"] for e in final_only.evaluations] == [2] and len(final_only.evaluations[0]["last"]) == 2
    resumed = mcx.distill_and_evaluate(data, source, config, 0, eval_config=eval_config, checkpoint_path=path)
    assert resumed.evaluations == final_only.evaluations  # same seeds: the same evaluation networks
    periodic = mcx.distill_and_evaluate(data, source, config, 0, eval_config=eval_config, eval_every=1)
    assert [e["iteration"] for e in periodic.evaluations] == [0, 1, 2]
    assert periodic.evaluations[-1]["last"] == final_only.evaluations[0]["last"]


# ---------------------------------------------------------------------- MCT preset and gradients
def test_mct_config_takes_the_codes_choices():
    base = MTTConfig.for_dataset("cifar10", 10)
    mct = mcx.mct_config(base)
    assert (mct.sampling, mct.gradient, mct.zca) == ("continuous", "tesla", False)
    assert (mct.syn_steps, mct.lr_teacher) == (base.syn_steps, base.lr_teacher)  # not published: base values
    assert mcx.mct_config(base, gradient="exact").gradient == "exact"
    published = {ipc: mcx.mct_config(MTTConfig.for_dataset("cifar10", ipc), published=True) for ipc in (1, 10, 50)}
    assert (published[10].syn_steps, published[10].expert_epochs, published[10].max_start_epoch) == (30, 15, 8)
    assert (published[1].syn_steps, published[1].lr_lr, published[50].max_start_epoch) == (60, 1e-7, 40)
    # --lr_init is never read by the code: syn_lr starts at lr_teacher = 0.01 at every IPC (MTT: 0.001 at 10, 50)
    assert {c.lr_teacher for c in published.values()} == {0.01} and base.lr_teacher == 0.001
    assert mcx.MCT_NUM_EVAL == 3
    with pytest.raises(ValueError, match=r"ipc=5: MCT's run file gives settings for IPC \[1, 10, 50\] only"):
        mcx.mct_config(MTTConfig(ipc=5), published=True)


def test_vector_agreement_hand_values():
    got = mcx.vector_agreement(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]))
    assert got["cosine"] == pytest.approx(2 ** -0.5) and got["relative_difference"] == pytest.approx(2 ** -0.5)
    same = mcx.vector_agreement(torch.tensor([[2.0, -1.0]]), torch.tensor([[2.0, -1.0]]))
    assert same == {"cosine": pytest.approx(1.0), "relative_difference": 0.0}
    opposite = mcx.vector_agreement(-torch.ones(3), torch.ones(3))
    assert opposite["cosine"] == pytest.approx(-1.0) and opposite["relative_difference"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="shapes differ"):
        mcx.vector_agreement(torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match="zero gradient"):
        mcx.vector_agreement(torch.zeros(2), torch.ones(2))


def small_mct(syn_steps):
    return mcx.mct_config(MTTConfig(ipc=1, iterations=3, syn_steps=syn_steps, expert_epochs=1, max_start_epoch=2,
                                    lr_img=10.0, lr_teacher=0.01, lr_lr=1e-7, dsa=True))


def test_gradient_agreement_probes_without_disturbing_the_run(data, variants):
    source = variants["path-2"]
    config = small_mct(3)
    rows = mcx.gradient_agreement(data, source, config, 0, iterations=3)
    net = build_expert_model(data, source.config)
    plain = ddlib.run_distillation(ddlib.TrajectoryMatching(data, source, net, config, 0), 3, progress=False)
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert [(r["expert"], r["start_epoch"], r["loss"]) for r in rows] == [
        (h["expert"], h["start_epoch"], h["loss"]) for h in plain.history]
    for r in rows:  # 3 inner steps: the dropped cross-step terms make the gradients differ, a little
        assert 0.5 < r["cosine"] < 1 - 1e-9 and 0 < r["relative_difference"] < 1
        assert r["norm_exact"] > 0 and r["norm_tesla"] > 0 and r["lr_grad_exact"] != r["lr_grad_tesla"]
    one_step = mcx.gradient_agreement(data, source, small_mct(1), 0, iterations=2, start_from=plain.synthetic)
    for r in one_step:  # nothing to drop with a single inner step
        assert r["cosine"] == pytest.approx(1.0, abs=1e-6) and r["relative_difference"] < 1e-3
        assert r["lr_grad_tesla"] == pytest.approx(r["lr_grad_exact"], rel=1e-4)
    with pytest.raises(ValueError, match="iterations=0"):
        mcx.gradient_agreement(data, source, config, 0, iterations=0)
