"""MCT's convexified trajectories (ddlib.trajectories.convexified): interpolation, lambda table, storage, store, distiller."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from ddlib.trajectories.convexified import (
    ConvexifyOptions, ConvexifiedStore, ConvexifiedTrajectory, convexify_store, convnet_param_counts, storage_bytes, waypoint_epochs,
)
from ddlib.methods.distill_loop import run_distillation
from ddlib.trajectories.experts import Trajectory, build_expert_model
from ddlib.core.functional import ParamLayout
from ddlib.methods.mtt import TrajectoryMatching
from ddlib.methods.mtt_config import MTTConfig
from ddlib.trajectories.trajectory_manifest import MANIFEST_NAME
from ddlib.trajectories.waypoints import smoothed_waypoints
from helpers import small_digits, tiny_store

LAYOUT = ParamLayout(("a", "b", "c"), ((2, 3), (4,), (1,)))  # P = 11, L = 3


def make_traj(snapshots: torch.Tensor, layout: ParamLayout = LAYOUT) -> Trajectory:
    K = snapshots.shape[0] - 1
    return Trajectory(snapshots=snapshots, layout=layout, train_loss=[0.0] * K, test_accuracy=[0.0] * K, seed=7)


def random_traj(K: int = 6, seed: int = 0) -> Trajectory:
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(K, LAYOUT.numel, generator=g) * torch.rand(K, 1, generator=g)
    theta0 = torch.randn(1, LAYOUT.numel, generator=g)
    return make_traj(torch.cat([theta0, theta0 + torch.cumsum(steps, 0)]))


def linear_traj(times: list[float]) -> Trajectory:
    """theta_t = theta_0 + times[t] * d (constant speed when times[t] = t)."""
    g = torch.Generator().manual_seed(1)
    theta0, d = torch.randn(LAYOUT.numel, generator=g), torch.randn(LAYOUT.numel, generator=g)
    return make_traj(torch.stack([theta0 + t * d for t in times]))


def per_layer(flat: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.split(flat, LAYOUT.numels))


# ---------------------------------------------------------------------- end points and table
# (smoothing, waypoints) -> is the end point mean(theta_5, theta_6)? The code smooths only with > 2 models.
END_SMOOTHED = {("code", 2): False, ("code", 4): True, ("paper", 2): True, ("paper", 4): True,
                ("none", 2): False, ("none", 4): False}


@pytest.mark.parametrize("smoothing, waypoints", list(END_SMOOTHED))
def test_end_points(smoothing, waypoints):
    traj = random_traj(K=6)
    snaps = traj.snapshots
    conv = ConvexifiedTrajectory.from_trajectory(traj, smoothing=smoothing, waypoints=waypoints)
    assert torch.equal(conv.at(0), snaps[0])
    end = (snaps[5] + snaps[6]) / 2 if END_SMOOTHED[smoothing, waypoints] else snaps[6]
    assert torch.equal(conv.at(6), end)
    assert conv.at(3).dtype == torch.float32 and conv.at(3).shape == (LAYOUT.numel,)
    assert torch.equal(conv.snapshot(2), conv.at(2.0))


def test_default_smoothing_follows_the_authors_code():
    traj = random_traj(K=6)
    assert ConvexifyOptions().smoothing == "code"
    assert torch.equal(ConvexifiedTrajectory.from_trajectory(traj).at(6), traj.snapshots[6])
    assert ConvexifiedTrajectory.from_trajectory(traj).options["smoothing"] == "code"
    with pytest.raises(TypeError, match="smoothing"):
        ConvexifyOptions(smoothing="end")
    with pytest.raises(ValueError, match=r"smoothing='end': expected one of \('code', 'paper', 'none'\)"):
        smoothed_waypoints(traj.snapshots, (0, 6), "end")


@pytest.mark.parametrize("mode", ["path", "uniform"])
def test_lambda_table_monotone_in_unit_interval(mode):
    traj = random_traj(K=7)
    conv = ConvexifiedTrajectory.from_trajectory(traj, lambda_mode=mode)
    lam = conv.lambdas
    assert lam.shape == (8, 3) and torch.equal(lam, conv.table)
    assert (lam[0] == 0).all() and (lam[-1] == 1).all()
    assert (lam >= 0).all() and (lam <= 1).all() and (lam[1:] >= lam[:-1]).all()
    if mode == "uniform":
        torch.testing.assert_close(lam, (torch.arange(8.0) / 7)[:, None].expand(8, 3))
    else:  # hand check of layer "b": cumulative share of its step norms
        norms = (traj.snapshots[1:, 6:10] - traj.snapshots[:-1, 6:10]).norm(dim=1).double()
        expected = torch.cat([torch.zeros(1), torch.cumsum(norms, 0) / norms.sum()]).float()
        torch.testing.assert_close(lam[:, 1], expected)
        assert not torch.allclose(lam[:, 0], lam[:, 1])  # per layer, not one global lambda


def test_frozen_layer_gets_uniform_lambda():
    snaps = random_traj(K=5).snapshots.clone()
    snaps[:, 10] = snaps[0, 10]  # layer "c" never moves
    conv = ConvexifiedTrajectory.from_trajectory(make_traj(snaps))
    torch.testing.assert_close(conv.lambdas[:, 2], torch.arange(6.0) / 5)
    assert torch.isfinite(conv.at(2.5)).all()


@pytest.mark.parametrize("mode", ["path", "uniform"])
def test_constant_speed_line_is_reproduced(mode):
    traj = linear_traj([float(t) for t in range(6)])
    conv = ConvexifiedTrajectory.from_trajectory(traj, smoothing="none", lambda_mode=mode)
    for t in range(6):
        torch.testing.assert_close(conv.at(t), traj.snapshots[t], rtol=0, atol=1e-5)
    torch.testing.assert_close(conv.at(2.5), (traj.snapshots[2] + traj.snapshots[3]) / 2, rtol=0, atol=1e-5)


def test_varying_speed_line_needs_path_mode():
    traj = linear_traj([0.0, 0.1, 0.5, 2.0, 2.2, 4.0])
    path = ConvexifiedTrajectory.from_trajectory(traj, smoothing="none", lambda_mode="path")
    uniform = ConvexifiedTrajectory.from_trajectory(traj, smoothing="none", lambda_mode="uniform")
    for t in range(6):
        torch.testing.assert_close(path.at(t), traj.snapshots[t], rtol=0, atol=1e-5)
    assert max(float((uniform.at(t) - traj.snapshots[t]).abs().max()) for t in range(6)) > 0.1


@pytest.mark.parametrize("waypoints", [2, 4])
def test_fractional_epochs_interpolate_per_layer(waypoints):
    conv = ConvexifiedTrajectory.from_trajectory(random_traj(K=6), waypoints=waypoints)
    for lo, hi, mid in zip(per_layer(conv.at(2)), per_layer(conv.at(3)), per_layer(conv.at(2.5))):
        assert (mid >= torch.minimum(lo, hi) - 1e-6).all() and (mid <= torch.maximum(lo, hi) + 1e-6).all()
    for bad in (-0.1, 6.01, float("nan")):
        with pytest.raises(ValueError, match=r"\[0, 6\]"):
            conv.at(bad)


# ---------------------------------------------------------------------- waypoints and storage
def test_waypoint_rule():
    assert waypoint_epochs(50, 4) == (0, 17, 34, 50)  # the authors' code
    assert waypoint_epochs(50, 2) == (0, 50)
    assert waypoint_epochs(50, 5) == (0, 12, 24, 36, 48, 50)  # their stride rule can add one
    assert waypoint_epochs(50, 4, "even") == (0, 17, 33, 50)
    assert waypoint_epochs(6, 4) == (0, 2, 4, 6)


def test_waypoint_variant_stores_n_models_and_passes_through_them():
    traj = random_traj(K=6)
    conv = ConvexifiedTrajectory.from_trajectory(traj, waypoints=4, smoothing="none")
    assert conv.waypoint_epochs == (0, 2, 4, 6) and conv.waypoints.shape == (4, 11)
    assert conv.nbytes == 4 * 11 * 4 + 7 * 3 * 4
    for e in conv.waypoint_epochs:
        assert torch.equal(conv.at(e), traj.snapshots[e])
    assert (conv.table[1:] >= conv.table[:-1]).all() and (conv.table[-1] == 3).all()
    # within a segment the share is that segment's own path length share
    norms = (traj.snapshots[3:5, :6] - traj.snapshots[2:4, :6]).norm(dim=1)
    torch.testing.assert_close(conv.table[3, 0], 1 + norms[0] / norms.sum())

def test_code_smoothing_of_four_waypoints():
    traj = random_traj(K=6)
    s = traj.snapshots
    code = ConvexifiedTrajectory.from_trajectory(traj, waypoints=4)  # waypoints at epochs 0, 2, 4, 6
    expected = torch.stack([s[0], (s[1] + s[3]) / 2, (s[3] + s[5]) / 2, (s[5] + s[6]) / 2])
    torch.testing.assert_close(code.waypoints, expected, rtol=0, atol=0)
    paper = ConvexifiedTrajectory.from_trajectory(traj, waypoints=4, smoothing="paper")  # the end point only
    torch.testing.assert_close(paper.waypoints, torch.stack([s[0], s[2], s[4], (s[5] + s[6]) / 2]), rtol=0, atol=0)
    assert torch.equal(code.table, paper.table)  # the table always comes from the unsmoothed snapshots


def test_code_smoothing_is_in_place_in_epoch_order():
    """Adjacent waypoints (K = 3, n = 4: epochs 0, 1, 2, 3): the code's in-place loop feeds each
    smoothed waypoint into the next one's mean, and the last into the end point's."""
    s = random_traj(K=3).snapshots
    w1 = (s[0] + s[2]) / 2
    w2 = (w1 + s[3]) / 2
    expected = torch.stack([s[0], w1, w2, (w2 + s[3]) / 2])
    torch.testing.assert_close(smoothed_waypoints(s, (0, 1, 2, 3), "code"), expected, rtol=0, atol=0)
    torch.testing.assert_close(smoothed_waypoints(s, (0, 1, 2, 3), "paper"),
                               torch.stack([s[0], s[1], s[2], (s[2] + s[3]) / 2]), rtol=0, atol=0)
    assert torch.equal(smoothed_waypoints(s, (0, 1, 2, 3), "none"), s)


def test_two_point_storage_is_two_models_plus_table():
    conv = ConvexifiedTrajectory.from_trajectory(random_traj(K=6))
    assert conv.waypoints.shape == (2, 11) and conv.table.shape == (7, 3)
    assert conv.nbytes == 2 * 11 * 4 + 7 * 3 * 4


def test_storage_bytes_hand_checks():
    assert storage_bytes(10, 3, kind="full", epochs=4) == 3 * 5 * 10 * 4
    assert storage_bytes(10, 3, kind="convexified", epochs=4, num_layers=2) == 3 * (2 * 10 + 5 * 2) * 4
    assert storage_bytes(10, 3, kind="waypoints", num_layers=2, bytes_per_param=2) == 3 * (4 * 10 + 51 * 2) * 2
    with pytest.raises(ValueError, match="num_layers"):
        storage_bytes(10, 3, kind="convexified")
    counts = convnet_param_counts()
    assert counts["cifar10"] == {"num_params": 320010, "num_layers": 14}  # MTT's ConvNetD3 on CIFAR-10
    assert counts["cifar100"]["num_params"] == 320010 + 90 * 2049
    assert counts["tinyimagenet"]["num_layers"] == 18
    for name, mtt_mb, mct_mb in (("cifar10", 6244, 508), ("cifar100", 9832, 790)):  # MCT code, 100 experts
        P, L = counts[name]["num_params"], counts[name]["num_layers"]
        assert abs(storage_bytes(P, 100, kind="full") / 2**20 / mtt_mb - 1) < 0.01  # + pickle framing
        assert abs(storage_bytes(P, 100, kind="waypoints", num_layers=L) / 2**20 / mct_mb - 1) < 0.05


# ---------------------------------------------------------------------- store
@pytest.fixture(scope="module")
def data():
    return small_digits()


@pytest.fixture(scope="module")
def source(data, tmp_path_factory):
    return tiny_store(tmp_path_factory.mktemp("experts"), data, 2)


@pytest.fixture(scope="module")
def conv_root(source, tmp_path_factory):
    root = tmp_path_factory.mktemp("conv")
    convexify_store(source, root)
    return root


def test_store_round_trip(source, conv_root):
    store = ConvexifiedStore.open(conv_root)
    assert len(store) == 2 and store.num_epochs == 4 and store.waypoint_epochs == (0, 4)
    assert store.config == source.config and store.layout == source.layout
    manifest = json.loads((conv_root / MANIFEST_NAME).read_text())
    assert manifest["options"]["lambda_mode"] == "path" and manifest["source"]["seed"] == 3
    for k in range(2):
        expected = ConvexifiedTrajectory.from_trajectory(source.trajectory(k))
        got = store.trajectory(k)
        assert torch.equal(got.waypoints, expected.waypoints) and torch.equal(got.table, expected.table)
        assert torch.equal(got.at(1.7), expected.at(1.7))
        assert manifest["experts"][k]["source_sha256"] == source.experts[k]["sha256"]
    assert store.nbytes < source.nbytes


def test_store_resume_and_option_mismatch(source, conv_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(conv_root, root)
    before = (root / "convexified_000.pt").stat().st_mtime_ns
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    manifest["experts"] = manifest["experts"][:1]  # as if interrupted after expert 0
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    (root / "convexified_001.pt").unlink()
    store = convexify_store(source, root)
    assert len(store) == 2 and (root / "convexified_000.pt").stat().st_mtime_ns == before
    assert (root / "convexified_001.pt").read_bytes() == (conv_root / "convexified_001.pt").read_bytes()
    with pytest.raises(ValueError, match="lambda_mode"):
        convexify_store(source, root, lambda_mode="uniform")
    with pytest.raises(ValueError, match="unknown key"):
        convexify_store(source, tmp_path / "other", lambda_mod="uniform")


def test_hash_mismatch_names_the_file(conv_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(conv_root, root)
    path = root / "convexified_001.pt"
    payload = bytearray(path.read_bytes())
    payload[-30] ^= 0xFF
    path.write_bytes(bytes(payload))
    store = ConvexifiedStore.open(root)
    store.trajectory(0)
    with pytest.raises(ValueError, match="convexified_001.pt.*sha256"):
        store.trajectory(1)


# ---------------------------------------------------------------------- distiller
def test_distiller_on_convexified_store(data, source, conv_root):
    store = ConvexifiedStore.open(conv_root)
    config = MTTConfig(ipc=1, iterations=3, syn_steps=4, expert_epochs=1, max_start_epoch=3, lr_img=10.0,
                       lr_teacher=0.01, lr_lr=1e-7, sampling="continuous")

    def run(seed):
        net = build_expert_model(data, store.config, seed=0)
        method = TrajectoryMatching(data, store, net, config, seed)
        return run_distillation(method, 3, progress=False)

    first, again, other = run(5), run(5), run(6)
    assert first.iterations_done == 3 and first.stopped_reason == "completed"
    starts = [h["start_epoch"] for h in first.history]
    assert all(0 <= s <= 3 for s in starts) and any(s != int(s) for s in starts)
    assert torch.equal(first.synthetic.images_syn, again.synthetic.images_syn)
    assert [h["loss"] for h in first.history] == [h["loss"] for h in again.history]
    assert not torch.equal(first.synthetic.images_syn, other.synthetic.images_syn)
