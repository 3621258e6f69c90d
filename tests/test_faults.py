"""Fault injection: every fault either is survived or gives an error naming the file/value and the fix.

Caches that see the data, checksummed resume files, crash-safe JSON caches and disk-full
errors, the update guard, concurrent expert generation, and typos in the book pipeline.
"""
from __future__ import annotations

import dataclasses
import errno
import importlib.util
import json
import logging
import os
import pickle
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ddlib.methods.dm as dm_module
from ddlib.core import fileio
from ddlib.data.dataset import ImageDataset
from ddlib.data.real import load_cifar10
from ddlib.methods.distill_loop import (GUARD_FACTOR, NonFiniteLoss, UnstableUpdate, atomic_torch_save, check_update,
                                guard_bound, run_distillation, saturation_flags)
from ddlib.methods.dm import DMConfig, DistributionMatching
from ddlib.chapters.scales import cached_experts
from ddlib.trajectories.experts import build_expert_model
from ddlib.core.fileio import read_checked_torch, read_json, write_json
from ddlib.core.locks import LOCK_NAME, clean_stale_temporaries, process_start_time
from ddlib.methods.mtt import TrajectoryMatching
from ddlib.methods.mtt_config import MTTConfig
from ddlib.core.runtime import resolve_device
from ddlib.methods.tgdd import TGDD, TGDDConfig
from ddlib.chapters.tgdd_analysis import timed_distillation
from ddlib.trajectories.fingerprints import dataset_fingerprint
from ddlib.trajectories.trajectory_manifest import MANIFEST_NAME
from ddlib.trajectories.trajectory_store import generate_experts

from helpers import TINY_EXPERTS, small_digits, tiny_store

REPO = Path(__file__).resolve().parents[1]
LOOP = dict(progress=False)


@pytest.fixture(scope="module")
def digits():
    return small_digits(200, 40)


@pytest.fixture(scope="module")
def store(digits, tmp_path_factory):
    """One finished TINY_EXPERTS store on ``digits`` (do not modify)."""
    return tiny_store(tmp_path_factory.mktemp("store"), digits, 1)


def dm(digits, **overrides) -> DistributionMatching:
    """A tiny DM distiller; 2 iterations unless ``iterations`` says otherwise (run_distillation reads it)."""
    config = DMConfig(ipc=2, width=8, batch_real=16, dsa=False, iterations=2).replace(**overrides)
    return DistributionMatching(digits, config, 0)


def interrupted(method, at: int, path: Path) -> None:
    """Run ``method`` with a checkpoint at ``path`` and Ctrl-C at iteration ``at`` (checkpointed there)."""
    step = method.step

    def interrupt(iteration):
        if iteration == at:
            raise KeyboardInterrupt
        return step(iteration)

    method.step = interrupt
    with pytest.raises(KeyboardInterrupt):
        run_distillation(method, checkpoint_path=path, **LOOP)


def flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------ 1. caches that see what they cache
def test_cached_experts_see_the_data_not_its_name(digits, tmp_path):
    first = cached_experts(tmp_path, digits, TINY_EXPERTS, 1, 3, progress=False)
    flipped = dataclasses.replace(digits, images_train=digits.images_train.flip(-1),
                                  images_test=digits.images_test.flip(-1))
    second = cached_experts(tmp_path, flipped, TINY_EXPERTS, 1, 3, progress=False)
    assert second.root != first.root  # same name and size, other contents: other experts
    assert not torch.equal(first.trajectory(0).snapshots, second.trajectory(0).snapshots)
    assert second.manifest["dataset"]["fingerprint"] == dataset_fingerprint(flipped)
    again = cached_experts(tmp_path, digits, TINY_EXPERTS, 1, 3, progress=False)
    assert again.root == first.root and torch.equal(again.trajectory(0).snapshots, first.trajectory(0).snapshots)


def test_fingerprint_is_cached_on_the_object_and_notices_in_place_edits(digits):
    data = dataclasses.replace(digits, images_train=digits.images_train.clone())  # do not edit the shared tensor
    before = dataset_fingerprint(data)
    assert data.__dict__["_ddlib_fingerprint"][1] == before  # kept on the (frozen) object
    assert dataset_fingerprint(data) == before
    with torch.no_grad():
        data.images_train.copy_(data.images_train.flip(-1))
    after = dataset_fingerprint(data)
    assert after != before and after == dataset_fingerprint(dataclasses.replace(data))  # a fresh hash agrees


def test_cached_experts_compare_the_manifest_on_a_hit(digits, tmp_path, caplog):
    first = cached_experts(tmp_path, digits, TINY_EXPERTS, 1, 3, progress=False)
    reference = first.trajectory(0).snapshots.clone()
    manifest = json.loads((first.root / MANIFEST_NAME).read_text())
    manifest["seed"] = 99  # a folder edited or copied by hand
    (first.root / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"seed: stored 99, requested 3.*on_mismatch='recompute'"):
        cached_experts(tmp_path, digits, TINY_EXPERTS, 1, 3, progress=False)
    with pytest.raises(ValueError, match="on_mismatch='ignore'"):
        cached_experts(tmp_path, digits, TINY_EXPERTS, 1, 3, progress=False, on_mismatch="ignore")
    with caplog.at_level(logging.WARNING, logger="ddlib.chapters.scales"):
        fixed = cached_experts(tmp_path, digits, TINY_EXPERTS, 1, 3, progress=False, on_mismatch="recompute")
    assert "recomputing" in caplog.text and fixed.manifest["seed"] == 3
    assert torch.equal(fixed.trajectory(0).snapshots, reference)


# ------------------------------------------------------------------ 2. checksums, crash-safe JSON, disk full
@pytest.mark.parametrize("offset", [3, 100, -50])  # the header, the hash, the torch archive
def test_flipped_bit_in_a_checkpoint_is_an_error(digits, tmp_path, offset):
    path = tmp_path / "run" / "ckpt.pt"
    interrupted(dm(digits), 1, path)
    flip_bit(path, offset)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*corrupt.*delete it to start the run over"):
        run_distillation(dm(digits), checkpoint_path=path, **LOOP)


def test_empty_checkpoint_is_an_error_and_an_old_unchecked_one_still_loads(digits, tmp_path, caplog):
    path = tmp_path / "ckpt.pt"
    interrupted(dm(digits), 1, path)
    payload = read_checked_torch(path, "checkpoint", "", weights_only=False)
    torch.save(payload, path)  # as ddlib wrote checkpoints before the sha256 header
    with caplog.at_level(logging.WARNING, logger="ddlib.core.fileio"):
        resumed = run_distillation(dm(digits), checkpoint_path=path, **LOOP)
    assert "no checksum header" in caplog.text and [h["iteration"] for h in resumed.history] == [0, 1]
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*0 bytes.*delete it"):
        run_distillation(dm(digits), checkpoint_path=path, **LOOP)


def test_flipped_bit_in_a_partial_expert_is_an_error(digits, tmp_path):
    root = tmp_path / "store"

    def crash(k, state):
        if state.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_experts(root, digits, TINY_EXPERTS, 1, 3, progress=False, on_epoch=crash)
    partial = root / "expert_000.partial.pt"
    flip_bit(partial, partial.stat().st_size // 2)
    with pytest.raises(ValueError, match=r"expert_000\.partial\.pt.*corrupt.*delete it to retrain expert 0"):
        generate_experts(root, digits, TINY_EXPERTS, 1, 3, progress=False)
    partial.unlink()  # the fix the message names
    assert len(generate_experts(root, digits, TINY_EXPERTS, 1, 3, progress=False)) == 1


def disk_full(monkeypatch):
    def write(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "write", write)


def test_disk_full_names_the_file_and_keeps_the_previous_version(tmp_path, monkeypatch):
    target = tmp_path / "run.eval.json"
    write_json(target, {"iteration": 1})
    disk_full(monkeypatch)
    with pytest.raises(OSError, match=re.escape(str(target)) + r".*disk full.*previous version") as info:
        write_json(target, {"iteration": 2})
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert read_json(target, "evaluation cache") == {"iteration": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.eval.json"]  # no temporary left behind


def test_disk_full_during_a_checkpoint_keeps_the_last_one(digits, tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    interrupted(dm(digits), 1, path)
    disk_full(monkeypatch)
    with pytest.raises(OSError, match=re.escape(str(path))):
        run_distillation(dm(digits), checkpoint_path=path, **LOOP)
    monkeypatch.undo()
    resumed = run_distillation(dm(digits), checkpoint_path=path, **LOOP)
    assert resumed.iterations_done == 2 and [h["iteration"] for h in resumed.history] == [0, 1]


def test_empty_or_damaged_json_cache_names_the_file_or_is_recomputed(tmp_path, caplog):
    empty, broken = tmp_path / "a.json", tmp_path / "b.json"
    empty.write_bytes(b"")
    broken.write_text('{"iteration": 3,')
    for path in (empty, broken):
        with pytest.raises(ValueError, match=re.escape(str(path)) + r".*not valid JSON.*delete it to recompute"):
            read_json(path, "evaluation cache")
        with caplog.at_level(logging.WARNING, logger="ddlib.core.fileio"):
            assert read_json(path, "evaluation cache", on_corrupt="recompute") is None
        assert str(path) in caplog.text


def test_empty_cost_record_of_a_chapter_is_an_error_naming_it(digits, tmp_path):
    timed_distillation(dm(digits, iterations=1), 1, tmp_path)
    (sidecar,) = tmp_path.glob("*.cost.json")
    sidecar.write_bytes(b"")  # a crash of the old non-atomic write_text
    with pytest.raises(ValueError, match=re.escape(str(sidecar)) + r".*empty.*re-measure"):
        timed_distillation(dm(digits, iterations=1), 1, tmp_path)


# ------------------------------------------------------------------ 3. the update guard
def test_guard_bound_and_check_update_hand_computed():
    images = torch.tensor([-3.0, 2.0]).view(2, 1, 1, 1)
    data = ImageDataset("t", images, torch.tensor([0, 1]), images, torch.tensor([0, 1]), ("a", "b"), (0.5,), (0.25,))
    assert guard_bound(data) == GUARD_FACTOR * 3.0
    assert guard_bound(data, pixels=True) == GUARD_FACTOR * 1.0  # pixels -0.25 and 1.0
    small = dataclasses.replace(data, images_train=images / 10)
    assert guard_bound(small) == GUARD_FACTOR  # floored at 1
    check_update("x", torch.tensor([-3000.0, 2999.0]), 3000.0)
    for bad in (float("nan"), float("inf"), 3000.5):
        with pytest.raises(UnstableUpdate, match=r"x: max \|value\| is .* beyond the bound 3e\+03"):
            check_update("x", torch.tensor([0.0, bad]), 3000.0)
    assert issubclass(UnstableUpdate, NonFiniteLoss)


def test_saturation_flag_threshold():
    pixels = torch.full((1, 1, 10, 10), 0.5)
    pixels.view(-1)[:98] = 1.0
    assert saturation_flags(pixels) == {}
    pixels.view(-1)[98] = 0.0
    assert "99.0 %" in saturation_flags(pixels)["saturated"]


def test_huge_image_lr_stops_dm_and_keeps_the_initial_set(digits):
    initial = dm(digits).images.detach().clone()
    result = run_distillation(dm(digits, lr_img=1e30), **LOOP)
    assert result.stopped and result.iterations_done == 0 and "DM images (iteration 0)" in result.stopped_reason
    assert torch.equal(result.synthetic.images_syn, initial)
    assert result.synthetic.provenance["stopped"] == result.stopped_reason


def test_huge_image_lr_stops_mtt(digits, store):
    config = MTTConfig(ipc=1, iterations=2, syn_steps=2, expert_epochs=1, max_start_epoch=1, lr_img=1e30, dsa=False)
    method = TrajectoryMatching(digits, store, build_expert_model(digits, store.config), config, 0)
    initial = method.images.detach().clone()
    result = run_distillation(method, **LOOP)
    assert result.stopped and "MTT images (iteration 0)" in result.stopped_reason
    assert torch.equal(result.synthetic.images_syn, initial)
    assert result.synthetic.syn_lr == pytest.approx(config.lr_teacher)  # float32


def test_stop_checkpoints_the_last_good_state_and_a_rerun_retries_the_same_draw(digits, tmp_path, monkeypatch):
    straight = run_distillation(dm(digits, iterations=4), **LOOP)
    two = run_distillation(dm(digits), **LOOP)
    real_loss, calls = dm_module.dm_loss, {"n": 0}

    def nan_on_the_third_call(*args, **kwargs):
        calls["n"] += 1
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(dm_module, "dm_loss", nan_on_the_third_call)
    path = tmp_path / "ckpt.pt"
    first = run_distillation(dm(digits, iterations=4), checkpoint_path=path, **LOOP)
    assert first.stopped and first.iterations_done == 2
    assert torch.equal(first.synthetic.images_syn, two.synthetic.images_syn)
    calls["n"] = 2  # the fault is still there: the rerun draws iteration 2 again and stops again
    again = run_distillation(dm(digits, iterations=4), checkpoint_path=path, **LOOP)
    assert again.stopped and again.iterations_done == 2
    monkeypatch.undo()
    healed = run_distillation(dm(digits, iterations=4), checkpoint_path=path, **LOOP)
    assert not healed.stopped and "stopped" not in healed.synthetic.provenance
    assert torch.equal(healed.synthetic.images_syn, straight.synthetic.images_syn)  # no draw was skipped


def test_tgdd_saturated_pixels_are_flagged_and_unclamped_ones_stop(digits, store, caplog):
    def tgdd(**overrides):
        config = TGDDConfig(ipc=1, iterations=2, batch_real=8, dsa=False, lr_img=1e30).replace(**overrides)
        return TGDD(digits, store, build_expert_model(digits, store.config), config, 0)

    with caplog.at_level(logging.WARNING, logger="ddlib.methods.distill_loop"):
        result = run_distillation(tgdd(), **LOOP)
    assert not result.stopped and "saturated" in result.flags
    assert result.synthetic.provenance["flags"] == result.flags and "lower lr_img" in caplog.text
    assert run_distillation(tgdd(lr_img=0.01, iterations=1), **LOOP).flags == {}
    unclamped = run_distillation(tgdd(clamp=False), **LOOP)
    assert unclamped.stopped and "TGDD pixels (iteration 0)" in unclamped.stopped_reason


# ------------------------------------------------------------------ 4. concurrent expert generation
def test_two_threads_generating_one_store_train_each_expert_once(digits, tmp_path, caplog):
    root, epochs, stores, errors = tmp_path / "store", [], [], []

    def slow(k, state):
        epochs.append((k, state.epoch))
        time.sleep(0.02)

    def run():
        try:
            stores.append(generate_experts(root, digits, TINY_EXPERTS, 2, 3, progress=False, on_epoch=slow))
        except BaseException as error:  # reported below
            errors.append(error)

    with caplog.at_level(logging.WARNING, logger="ddlib.core.locks"):
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == [] and len(stores) == 2
    assert sorted(epochs) == [(k, e) for k in range(2) for e in range(1, TINY_EXPERTS.epochs + 1)]
    assert "waiting for it to finish" in caplog.text
    assert len(json.loads((root / MANIFEST_NAME).read_text())["experts"]) == 2
    for k in range(2):
        assert torch.equal(stores[0].trajectory(k).snapshots, stores[1].trajectory(k).snapshots)


# A writer in another process, without torch (fast to start): it holds the store's lock, then
# "finishes" the store by copying a finished one in (manifest last), as generate_experts would.
CHILD = """
import fcntl, os, shutil, sys, time
source, root = sys.argv[1], sys.argv[2]
os.makedirs(root, exist_ok=True)
with open(os.path.join(root, ".lock"), "a+") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    open(os.path.join(root, "ready"), "w").close()
    time.sleep(1.0)
    shutil.copy(os.path.join(source, "expert_000.pt"), root)
    shutil.copy(os.path.join(source, "manifest.json"), root)
"""


def test_a_second_process_waits_for_the_first_and_reuses_its_experts(digits, store, tmp_path, caplog):
    root = tmp_path / "store"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(store.root), str(root)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (root / "ready").exists():
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()[0]
            time.sleep(0.01)
        trained = []
        with caplog.at_level(logging.WARNING, logger="ddlib.core.locks"):
            reused = generate_experts(root, digits, TINY_EXPERTS, 1, 3, progress=False,
                                      on_epoch=lambda k, state: trained.append(k))
    finally:
        output = child.communicate(timeout=60)[0]
    assert child.returncode == 0, output
    assert "waiting for it to finish" in caplog.text
    assert trained == [] and torch.equal(reused.trajectory(0).snapshots, store.trajectory(0).snapshots)


def test_stale_temporaries_only_of_gone_writers_are_removed(tmp_path):
    if process_start_time(1) is None:
        pytest.skip("needs /proc to read process start times")
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    names = {f".tmp-a.{dead}.ab12": "dead writer", f".tmp-b.{os.getpid()}.ab12": "this process",
             ".tmp-c.1.ab12": "pid 1 reused", ".tmp-d.1.ab12": "pid 1 alive", ".tmp-e": "old, no pid",
             ".tmp-f": "new, no pid", "expert_000.pt": "not temporary"}
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    for name in (".tmp-c.1.ab12", ".tmp-e", "expert_000.pt"):
        os.utime(tmp_path / name, (0, 0))  # 1970: before pid 1 and this process started
    removed = {p.name for p in clean_stale_temporaries(tmp_path)}
    assert removed == {f".tmp-a.{dead}.ab12", ".tmp-c.1.ab12", ".tmp-e"}
    assert {p.name for p in tmp_path.iterdir()} == set(names) - removed


# ------------------------------------------------------------------ 5. typos and bad inputs fail
def load_build_book():
    spec = importlib.util.spec_from_file_location("build_book", REPO / "scripts" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_book_rejects_an_unknown_chapter(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        load_build_book().main(["--only", "ast", "tggd", "--build-dir", str(tmp_path / "build")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--only tggd: no such chapter" in err and "02_baselines, 03_ast" in err and "05_tgdd" in err
    assert not (tmp_path / "build").exists()  # nothing was staged


def test_build_book_rejects_an_undeclared_parameter(tmp_path):
    notebook = tmp_path / "nb.py"
    notebook.write_text('# %% tags=["parameters"]\nscale = "mini"\nseed: int = 0\n\n# %%\nprint(scale)\n')
    ok, error = load_build_book().execute(notebook, tmp_path / "out" / "nb.ipynb", {"scale": "smoke", "sede": 1})
    assert not ok and "['sede'] are not declared" in error and "declares ['scale', 'seed']" in error
    notebook.write_text("# %%\nprint(1)\n")
    ok, error = load_build_book().execute(notebook, tmp_path / "out" / "nb.ipynb", {"scale": "smoke"})
    assert not ok and "has no parameters cell" in error


def test_trajectory_matching_resolves_device_auto(digits, store):
    config = MTTConfig(ipc=1, syn_steps=1, expert_epochs=1, max_start_epoch=1, dsa=False)
    net = build_expert_model(digits, store.config)
    method = TrajectoryMatching(digits, store, net, config, 0, device="auto")
    assert method.device == resolve_device("auto") and method.images.device.type == method.device.type
    with pytest.raises(ValueError, match="device='gpu'"):
        TrajectoryMatching(digits, store, net, config, 0, device="gpu")


def write_cifar10(root: Path, **batch_3: object) -> Path:
    """A 2-images-per-file CIFAR-10 folder; ``batch_3`` overrides keys of data_batch_3."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
        if name == "data_batch_3":
            batch.update({k.encode(): v for k, v in batch_3.items()})
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return folder / "data_batch_3"


@pytest.mark.parametrize("override, message", [
    ({"labels": [0, 10]}, r"labels range \[0, 10\] \(1 outside, e\.g\. 10\); expected \[0, 10\)"),
    ({"labels": [-1, 3]}, r"labels range \[-1, 3\]"),
    ({"labels": [0.0, 1.5]}, r"'labels' holds non-integer values \(e\.g\. \[1\.5\]\); expected integers"),
    ({"labels": [[0], [1, 2]]}, r"'labels' is not an array"),
    ({"labels": ["cat", "dog"]}, r"'labels' holds <U3 values \(e\.g\. \['cat'\]\)"),
    ({"data": np.full((2, 3072), 0.5)}, r"'data' holds non-integer values \(e\.g\. \[0\.5\]\)"),
    ({"data": np.full((2, 3072), 300)}, r"'data' values range \[300, 300\]; expected \[0, 255\] \(uint8"),
])
def test_cifar_batch_with_bad_labels_or_pixels_names_file_value_and_fix(tmp_path, override, message):
    path = write_cifar10(tmp_path, **override)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": " + message + r".*download=True"):
        load_cifar10(str(tmp_path))


def test_cifar_fixture_itself_loads(tmp_path):
    write_cifar10(tmp_path)
    assert load_cifar10(str(tmp_path)).images_train.shape == (10, 3, 32, 32)


def test_checkpoint_with_the_wrong_image_shape_names_file_and_fix(digits, tmp_path):
    path = tmp_path / "ckpt.pt"
    interrupted(dm(digits), 1, path)
    payload = read_checked_torch(path, "checkpoint", "", weights_only=False)
    payload["method"]["images"] = torch.zeros(20, 1, 9, 9)
    atomic_torch_save(payload, path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r" holds 'images' of shape \(20, 1, 9, 9\), but "
                                         r"this run's 'images' has shape \(20, 1, 8, 8\).*delete the checkpoint"):
        run_distillation(dm(digits), checkpoint_path=path, **LOOP)


def test_unwritable_checkpoint_folder_fails_before_the_first_iteration(digits, tmp_path, monkeypatch):
    method = dm(digits)
    monkeypatch.setattr(method, "step", lambda iteration: pytest.fail("stepped before checking the folder"))
    blocker = tmp_path / "results"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(ValueError, match=re.escape(str(blocker)) + r"' is not writable.*choose a writable folder"):
        run_distillation(method, checkpoint_path=blocker / "ckpt.pt", **LOOP)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="not writable"):
            run_distillation(method, checkpoint_path=locked / "ckpt.pt", **LOOP)
