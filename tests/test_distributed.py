"""Multi-process runs: rank info, sharding, sharded expert stores and evaluation, torchrun with Gloo on the CPU.

The torchrun tests start 2 CPU processes (Gloo) of ``python -m ddlib experts`` at a shrunk smoke scale
(4 experts of 2 epochs on 40 images) and compare their store, tensor by tensor, with one process's.
"""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import ddlib
from ddlib.cli_config import RunConfig
from ddlib.cli_stages import run_evaluate, run_stage
from ddlib.chapters.scales import load_scaled_dataset
from ddlib.core.distributed import RankInfo, rank_info, shard
from ddlib.trajectories.experts import ExpertConfig
from ddlib.trajectories.expert_records import record_path
from ddlib.trajectories.trajectory_store import generate_experts

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
# 4 experts of 2 epochs on 4 training images per class: seconds per run, yet 2 experts per rank.
TINY = {"num_experts": 4, "expert_epochs_total": 2, "train_per_class": 4, "test_per_class": 2}
TINY_ARGS = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]

_full = ddlib.load_dataset("digits")
DATA = dataclasses.replace(_full, images_train=_full.images_train[:40], labels_train=_full.labels_train[:40],
                           images_test=_full.images_test[:20], labels_test=_full.labels_test[:20])
CONFIG = ExpertConfig(width=4, epochs=2, batch_size=16)


def store_files(folder: Path) -> dict[str, bytes]:
    """Every file of a store except its lock, by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".lock"}


def assert_same_store(a: Path, b: Path) -> None:
    files_a, files_b = store_files(a), store_files(b)
    assert sorted(files_a) == sorted(files_b)
    assert json.loads(files_a["manifest.json"]) == json.loads(files_b["manifest.json"])
    for name in files_a:
        if name.endswith(".pt"):
            assert torch.equal(torch.load(a / name), torch.load(b / name)), name


# ---------------------------------------------------------------------- rank info and sharding
def test_shard_partitions_the_items_round_robin():
    shards = [shard(range(7), r, 3) for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert shard(range(1), 1, 2) == []
    with pytest.raises(ValueError, match="rank=2, world_size=2"):
        shard(range(4), 2, 2)


def test_rank_info_reads_the_torchrun_variables():
    assert rank_info({}) == RankInfo(0, 1, 0)
    info = rank_info({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.is_main, info.distributed) == (3, 4, 1, False, True)
    with pytest.raises(ValueError, match="RANK='x'"):
        rank_info({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="rank=4"):
        rank_info({"RANK": "4", "WORLD_SIZE": "4"})


# ---------------------------------------------------------------------- sharded stores, in one process
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """3 experts generated the usual way (one process, manifest after each)."""
    root = tmp_path_factory.mktemp("reference")
    generate_experts(root, DATA, CONFIG, 3, 5, progress=False)
    return root


def test_sharded_generation_equals_one_process(reference, tmp_path):
    generate_experts(tmp_path, DATA, CONFIG, 3, 5, ids=(), progress=False)  # rank 0 creates the store
    generate_experts(tmp_path, DATA, CONFIG, 3, 5, ids=[1], write_manifest=False, progress=False)  # rank 1
    generate_experts(tmp_path, DATA, CONFIG, 3, 5, ids=[0, 2], write_manifest=False, progress=False)  # rank 0
    assert json.loads((tmp_path / "manifest.json").read_text())["experts"] == []  # nobody wrote the manifest
    assert all(record_path(tmp_path, k).exists() for k in range(3))
    store = generate_experts(tmp_path, DATA, CONFIG, 3, 5, ids=(), progress=False)  # rank 0 after the barrier
    assert len(store) == 3
    assert_same_store(tmp_path, reference)  # no record files left, same manifest and tensors


def test_records_are_folded_in_only_as_a_prefix_and_a_rerun_trains_the_rest(reference, tmp_path):
    generate_experts(tmp_path, DATA, CONFIG, 3, 5, ids=(), progress=False)
    generate_experts(tmp_path, DATA, CONFIG, 3, 5, ids=[1], write_manifest=False, progress=False)
    store = generate_experts(tmp_path, DATA, CONFIG, 3, 5, ids=(), progress=False)
    assert len(store) == 0 and record_path(tmp_path, 1).exists()  # expert 0 missing: 1 waits as a record
    trained = set()
    generate_experts(tmp_path, DATA, CONFIG, 3, 5, progress=False, on_epoch=lambda k, state: trained.add(k))
    assert trained == {0, 2}
    assert_same_store(tmp_path, reference)


def test_sharded_generation_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="needs the manifest"):
        generate_experts(tmp_path, DATA, CONFIG, 3, 5, ids=[0], write_manifest=False, progress=False)
    with pytest.raises(ValueError, match=r"ids \[3\]: expected expert indices in \[0, 3\)"):
        generate_experts(tmp_path, DATA, CONFIG, 3, 5, ids=[0, 3], progress=False)


# ---------------------------------------------------------------------- sharded evaluation
def test_evaluation_networks_split_among_ranks_equal_one_process(tmp_path):
    settings = ddlib.scale_settings("smoke", train_per_class=4, test_per_class=2)
    data = load_scaled_dataset(settings)
    syn = ddlib.random_coreset(data, 1, 0)
    syn.save(tmp_path / "set")
    config = RunConfig(scale="smoke", settings={"train_per_class": 4, "test_per_class": 2}, num_eval=2,
                       epochs=1, synthetic=str(tmp_path / "set"), out=str(tmp_path / "eval.json"))
    # Rank 1 of 2 alone (its peer crashed): it writes the parts of its networks and no result.
    assert run_evaluate(config, RankInfo(1, 2, 1), torch.device("cpu")) is None
    parts = sorted(p.name for p in tmp_path.glob("eval.parts-*/*"))
    assert parts == ["net_001.json"]
    # One process then trains only network 0 (network 1's part is reused) and writes the result.
    summary = run_evaluate(config, RankInfo(), torch.device("cpu"))
    whole = ddlib.evaluate_synthetic(syn, data, settings.eval_config("mtt", epochs=1, num_eval=2), 0)
    assert list(summary["last"]) == list(whole.last) and list(summary["seeds"]) == list(whole.seeds)
    assert json.loads((tmp_path / "eval.json").read_text())["mean"] == pytest.approx(whole.last_mean)


def test_a_subset_of_runs_gives_those_networks_accuracies():
    syn = ddlib.random_coreset(DATA, 1, 0)
    config = ddlib.EvalConfig(epochs=1, num_eval=3, width=4)
    whole = ddlib.evaluate_synthetic(syn, DATA, config, 7)
    part = ddlib.evaluate_synthetic(syn, DATA, config, 7, runs=[2, 0])
    assert part.last == (whole.last[2], whole.last[0]) and part.seeds == (whole.seeds[2], whole.seeds[0])
    with pytest.raises(ValueError, match=r"runs=\[3\]: expected distinct network indices in \[0, 3\)"):
        ddlib.evaluate_synthetic(syn, DATA, config, 7, runs=[3])


# ---------------------------------------------------------------------- torchrun, 2 Gloo processes
def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The tiny smoke experts of one process (in this one, one thread)."""
    artifacts = tmp_path_factory.mktemp("one")
    config = RunConfig(scale="smoke", settings=TINY, artifacts_dir=str(artifacts), device="cpu")
    store = run_stage("experts", config, environ={})
    return config, store.root


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed next to this Python")
def test_torchrun_two_gloo_processes_write_the_same_store_as_one(one_process, tmp_path):
    result = torchrun("-m", "ddlib", "experts", "--scale", "smoke", *TINY_ARGS, "--device", "cpu",
                      "--artifacts-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 1 of 2: experts [1, 3]" in result.stderr
    folder = tmp_path / one_process[1].name  # the same cache key
    assert_same_store(folder, one_process[1])


KILLED = """
import os, sys
sys.path.insert(0, {root!r})
from ddlib.cli_config import RunConfig
from ddlib.cli_stages import run_stage

def on_epoch(k, state):
    if k == 3 and state.epoch == 1:  # rank 1 dies after finishing expert 1, one epoch into expert 3
        os._exit(3)

run_stage("experts", RunConfig(scale="smoke", settings={tiny!r}, artifacts_dir={artifacts!r}, device="cpu"),
          on_epoch=on_epoch)
"""


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed next to this Python")
def test_a_rerun_after_one_rank_died_trains_only_the_missing_experts(one_process, tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED.format(root=str(ROOT), tiny=TINY, artifacts=str(tmp_path))))
    result = torchrun(str(script), cwd=tmp_path)
    assert result.returncode != 0  # torchrun reports the dead rank (and stops the other)
    folder = tmp_path / one_process[1].name
    survived = {k for k in range(4) if record_path(folder, k).exists()}
    assert 1 in survived and 3 not in survived
    assert (folder / "expert_003.partial.pt").exists()  # expert 3 resumes from its first epoch
    retrained = []
    config = dataclasses.replace(one_process[0], artifacts_dir=str(tmp_path))
    run_stage("experts", config, environ={}, on_epoch=lambda k, state: retrained.append((k, state.epoch)))
    assert {k for k, _ in retrained} == set(range(4)) - survived
    assert (3, 1) not in retrained  # resumed after epoch 1, not retrained from 0
    assert_same_store(folder, one_process[1])



@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed next to this Python")
@pytest.mark.parametrize("method", ["dm", "mtt"])
def test_torchrun_data_parallel_distill_gives_the_one_process_set(method, tmp_path):
    """``distill`` under torchrun splits each step between 2 ranks; the set equals one process's (float32
    sums in another order: allclose, not equal)."""
    args = ["distill", "--scale", "smoke", *TINY_ARGS, "--method", method, "--ipc", "1", "--device", "cpu"]
    one = RunConfig(scale="smoke", settings=TINY, artifacts_dir=str(tmp_path / "one"), device="cpu",
                    method=method, ipc=1)
    folder_one = run_stage("distill", one, environ={})
    result = torchrun("-m", "ddlib", *args, "--artifacts-dir", str(tmp_path / "two"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"distill {method} data-parallel: rank 1 of 2" in result.stderr
    folder_two = tmp_path / "two" / folder_one.relative_to(tmp_path / "one")
    a, b = ddlib.SyntheticSet.load(folder_one), ddlib.SyntheticSet.load(folder_two)
    assert torch.equal(a.labels_syn, b.labels_syn)
    torch.testing.assert_close(b.images_syn, a.images_syn, rtol=1e-4, atol=1e-4)
