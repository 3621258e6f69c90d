"""The on-disk expert buffer (ddlib.trajectories.trajectory_store): contents, validation, fp16, crash + resume."""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ddlib.trajectories.experts import ExpertConfig, train_expert
from ddlib.core.runtime import derive_seed
from ddlib.trajectories.fingerprints import describe_loss_hook
from ddlib.trajectories.trajectory_manifest import MANIFEST_NAME
from ddlib.trajectories.trajectory_store import TrajectoryStore, generate_experts

REPO = Path(__file__).resolve().parents[1]

# Executed both here and in the child process of the kill test, so both build the same inputs.
SETTINGS = """
import dataclasses
import ddlib
from ddlib.trajectories.experts import ExpertConfig
_full = ddlib.load_dataset("digits")
DATA = dataclasses.replace(
    _full, images_train=_full.images_train[:60], labels_train=_full.labels_train[:60],
    images_test=_full.images_test[:40], labels_test=_full.labels_test[:40],
)
CONFIG = ExpertConfig(width=8, epochs=4, batch_size=16)
SEED = 3
"""


def settings() -> dict:
    namespace: dict = {}
    exec(SETTINGS, namespace)
    return namespace


@pytest.fixture(scope="module")
def env():
    return settings()


@pytest.fixture(scope="module")
def built(env, tmp_path_factory):
    """A finished store of 2 experts x 4 epochs (do not modify: copy it first)."""
    root = tmp_path_factory.mktemp("store")
    store = generate_experts(root, env["DATA"], env["CONFIG"], 2, env["SEED"], progress=False)
    return root, store


@pytest.fixture
def store_copy(built, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(built[0], root)
    return root


def rewrite_manifest(root: Path, edit) -> None:
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    edit(manifest)
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))


# ---------------------------------------------------------------------- contents
def test_store_contents_match_train_expert(env, built):
    root, store = built
    data, config, seed = env["DATA"], env["CONFIG"], env["SEED"]
    assert len(store) == 2 and store.num_epochs == 4
    assert sorted(p.name for p in root.iterdir()) == [".lock", "expert_000.pt", "expert_001.pt", MANIFEST_NAME]
    for k in range(2):
        expected = train_expert(data, config, derive_seed(seed, "expert", k))
        trajectory = store.trajectory(k)
        assert trajectory.snapshots.shape == (5, store.num_params)
        assert torch.equal(trajectory.snapshots, expected.snapshots)
        assert trajectory.train_loss == expected.train_loss
        assert trajectory.test_accuracy == expected.test_accuracy
        assert trajectory.seed == derive_seed(seed, "expert", k) == store.experts[k]["seed"]
        assert trajectory.layout == expected.layout
    assert store.nbytes == sum(os.path.getsize(root / f"expert_{k:03d}.pt") for k in range(2))


def test_manifest_fields(env, built):
    root, store = built
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["dataset"]["name"] == "digits"
    assert manifest["arch"] == "ConvNet" and manifest["model_kwargs"] == {"width": 8, "depth": None, "norm": "instance"}
    assert (manifest["channel"], manifest["num_classes"], manifest["im_size"]) == (1, 10, [8, 8])
    assert manifest["num_params"] == store.layout.numel == sum(
        int(torch.tensor(s).prod()) for s in manifest["param_shapes"])
    assert manifest["param_names"][0] == "features.0.weight"
    assert manifest["dtype"] == "float32" and manifest["epochs"] == 4 and manifest["seed"] == env["SEED"]
    assert ExpertConfig.from_dict(manifest["config"]) == env["CONFIG"]
    assert manifest["loss_hook"] == {"name": "cross_entropy_hook", "config": None}
    for k, record in enumerate(manifest["experts"]):
        assert record["file"] == f"expert_{k:03d}.pt" and len(record["sha256"]) == 64
        assert record["nbytes"] == os.path.getsize(root / record["file"])
        assert len(record["train_loss"]) == len(record["test_accuracy"]) == 4


def test_iteration_and_single_cache(built):
    _, store = built
    first = store.trajectory(0)
    assert store.trajectory(0) is first  # one-slot cache
    trajectories = list(iter(store))
    assert len(trajectories) == 2 and store._cached[0] == 1
    with pytest.raises(IndexError, match="valid indices 0..1"):
        store.trajectory(2)


def test_rerun_is_a_noop_and_can_extend(env, store_copy):
    before = (store_copy / MANIFEST_NAME).read_text()
    store = generate_experts(store_copy, env["DATA"], env["CONFIG"], 2, env["SEED"], progress=False)
    assert len(store) == 2 and (store_copy / MANIFEST_NAME).read_text() == before
    store = generate_experts(store_copy, env["DATA"], env["CONFIG"], 3, env["SEED"], progress=False)
    assert len(store) == 3 and store.trajectory(2).seed == derive_seed(env["SEED"], "expert", 2)


def test_loss_hook_recorded():
    from ddlib.core.train import cross_entropy_hook

    class Hook:
        def __call__(self, net, images, labels, *, epoch, raw_images):
            return cross_entropy_hook(net, images, labels, epoch=epoch, raw_images=raw_images)

    assert describe_loss_hook(Hook()) == {"name": Hook.__qualname__, "config": None}
    from ddlib.data.dsa_params import DSAConfig  # any Config instance: its values are recorded

    assert describe_loss_hook(DSAConfig(flip_prob=0.25)) == {"name": "DSAConfig",
                                                             "config": DSAConfig(flip_prob=0.25).to_dict()}


# ---------------------------------------------------------------------- validation
def test_missing_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / MANIFEST_NAME)):
        TrajectoryStore.open(tmp_path)


def test_arch_mismatch(built):
    assert len(TrajectoryStore.open(built[0], arch="convnet")) == 2 == len(TrajectoryStore(built[0]))
    with pytest.raises(ValueError, match="'ConvNet'.*'ResNet18'"):
        TrajectoryStore.open(built[0], arch="ResNet18")


def test_num_params_mismatch(built):
    root, store = built
    assert TrajectoryStore.open(root, num_params=store.num_params).num_params == store.num_params
    with pytest.raises(ValueError, match=rf"{store.num_params}.*num_params=12345"):
        TrajectoryStore.open(root, num_params=12345)


def test_missing_expert_file(store_copy):
    (store_copy / "expert_001.pt").unlink()
    store = TrajectoryStore.open(store_copy)
    store.trajectory(0)
    with pytest.raises(FileNotFoundError, match="expert_001.pt"):
        store.trajectory(1)


def test_truncated_file(store_copy):
    path = store_copy / "expert_000.pt"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"expert_000\.pt.*1000 bytes.*truncated"):
        TrajectoryStore.open(store_copy).trajectory(0)


def test_bit_flip_is_a_hash_mismatch(store_copy):
    path = store_copy / "expert_000.pt"
    payload = bytearray(path.read_bytes())
    payload[-3000] ^= 0x10  # inside the tensor data: torch.load alone would not notice
    path.write_bytes(bytes(payload))
    with pytest.raises(ValueError, match=r"expert_000\.pt.*sha256"):
        TrajectoryStore.open(store_copy).trajectory(0)
    unverified = TrajectoryStore.open(store_copy, verify=False).trajectory(0)  # opt-out loads it
    assert unverified.snapshots.shape[0] == 5


def _replace_expert_file(root: Path, payload: bytes) -> None:
    import hashlib

    (root / "expert_000.pt").write_bytes(payload)

    def edit(manifest):
        manifest["experts"][0].update(sha256=hashlib.sha256(payload).hexdigest(), nbytes=len(payload))

    rewrite_manifest(root, edit)


def test_unreadable_file_with_matching_hash(store_copy):
    _replace_expert_file(store_copy, b"not a torch file" * 10)
    with pytest.raises(ValueError, match=r"expert_000\.pt.*torch\.load"):
        TrajectoryStore.open(store_copy).trajectory(0)


def test_wrong_shape_and_dtype(store_copy):
    store = TrajectoryStore.open(store_copy)
    buffer = io.BytesIO()
    torch.save(torch.zeros(3, store.num_params), buffer)
    _replace_expert_file(store_copy, buffer.getvalue())
    with pytest.raises(ValueError, match=rf"expert_000\.pt.*\(3, {store.num_params}\).*\(5, {store.num_params}\)"):
        TrajectoryStore.open(store_copy).trajectory(0)
    buffer = io.BytesIO()
    torch.save(torch.zeros(5, store.num_params, dtype=torch.float64), buffer)
    _replace_expert_file(store_copy, buffer.getvalue())
    with pytest.raises(ValueError, match="dtype torch.float64"):
        TrajectoryStore.open(store_copy).trajectory(0)


def test_snapshot_epoch_out_of_range(built):
    trajectory = TrajectoryStore.open(built[0]).trajectory(0)
    assert trajectory.snapshot(4).shape == (trajectory.num_params,)
    for epoch in (5, -1):
        with pytest.raises(IndexError, match=r"\[0, 4\]"):
            trajectory.snapshot(epoch)


@pytest.mark.parametrize("change, named", [
    ({"config": {"epochs": 5}}, "epochs: stored 4, requested 5"),
    ({"config": {"optimizer": {"kind": "sgd", "lr": 0.02, "momentum": 0.0}}}, "config.optimizer.lr"),
    ({"seed": 4}, "seed: stored 3, requested 4"),
    ({"data": "subset"}, "dataset.num_train"),
    ({"loss_hook": True}, "loss_hook.name"),
])
def test_resume_rejects_other_settings(env, store_copy, change, named):
    config, seed, data = env["CONFIG"], env["SEED"], env["DATA"]
    kwargs = {}
    if "config" in change:
        config = config.replace(**change["config"])
    if "seed" in change:
        seed = change["seed"]
    if "data" in change:
        data = dataclasses.replace(data, images_train=data.images_train[:50], labels_train=data.labels_train[:50])
    if "loss_hook" in change:
        kwargs["loss_hook"] = lambda net, images, labels, *, epoch, raw_images: net(images).sum()
    with pytest.raises(ValueError, match=named):
        generate_experts(store_copy, data, config, 2, seed, progress=False, **kwargs)


def test_fp16_halves_bytes_and_round_trips(env, built, tmp_path):
    _, store32 = built
    store16 = generate_experts(tmp_path, env["DATA"], env["CONFIG"].replace(storage_dtype="float16"), 1,
                               env["SEED"], progress=False)
    assert store16.manifest["dtype"] == "float16"
    ratio = store16.nbytes / (store32.nbytes / 2)
    assert ratio < 0.6, ratio  # payload halves; the zip container adds about 1.5 kB
    t16, t32 = store16.trajectory(0), store32.trajectory(0)
    assert t16.snapshots.dtype == torch.float16 and t16.snapshot(2).dtype == torch.float32
    assert torch.equal(t16.snapshots, t32.snapshots.half())
    assert torch.allclose(t16.snapshot(4), t32.snapshot(4), rtol=1e-3, atol=1e-4)
    assert t16.test_accuracy == t32.test_accuracy  # training itself is in float32


# ---------------------------------------------------------------------- crash safety
CHILD = SETTINGS + """
import sys, time
import torch
torch.set_num_threads(1)  # as the test process (tests/conftest.py): bit-identical arithmetic
from ddlib.trajectories.trajectory_store import generate_experts
generate_experts(sys.argv[1], DATA, CONFIG, 2, SEED, progress=False,
                 on_epoch=lambda k, state: time.sleep(0.3))
"""


def _run_and_kill(root: Path, wait_for: str, log: Path) -> None:
    """Start generate_experts in a child, SIGKILL it as soon as ``root / wait_for`` exists."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(log, "wb") as out:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(root)], env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while not (root / wait_for).exists():
            assert child.poll() is None, f"child exited early: {log.read_text()}"
            assert time.monotonic() < deadline, f"{wait_for} never appeared: {log.read_text()}"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL


def test_kill_9_and_resume_is_bit_identical(env, built, tmp_path, caplog):
    reference_root, reference = built  # the uninterrupted run, same settings
    root = tmp_path / "crashy"
    _run_and_kill(root, "expert_000.partial.pt", tmp_path / "child1.log")
    assert not (root / "expert_000.pt").exists()
    assert json.loads((root / MANIFEST_NAME).read_text())["experts"] == []

    _run_and_kill(root, "expert_001.partial.pt", tmp_path / "child2.log")
    assert (root / "expert_000.pt").exists() and not (root / "expert_000.partial.pt").exists()
    assert len(json.loads((root / MANIFEST_NAME).read_text())["experts"]) == 1

    with caplog.at_level(logging.INFO, logger="ddlib.trajectories.trajectory_store"):
        store = generate_experts(root, env["DATA"], env["CONFIG"], 2, env["SEED"], progress=False)
    assert "expert 1: resuming from epoch" in caplog.text
    assert sorted(p.name for p in root.iterdir()) == [".lock", "expert_000.pt", "expert_001.pt", MANIFEST_NAME]
    for k in range(2):
        assert torch.equal(store.trajectory(k).snapshots, reference.trajectory(k).snapshots)
    # metrics, hashes, sizes: the whole manifest is identical to the uninterrupted run's
    assert json.loads((root / MANIFEST_NAME).read_text()) == json.loads((reference_root / MANIFEST_NAME).read_text())
