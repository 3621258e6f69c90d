"""Data-parallel distillation steps: 2 Gloo CPU processes give one process's images and syn_lr (float64)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ddlib.core.data_parallel import DataParallel, resolve_data_parallel
from ddlib.core.functional import flatten_params
from ddlib.data.dataset import ImageDataset
from ddlib.methods import distill_loop
from ddlib.methods.dm import DMConfig, DistributionMatching
from ddlib.methods.mtt import TrajectoryMatching
from ddlib.methods.mtt_config import MTTConfig
from ddlib.methods.tgdd import TGDD, TGDDConfig
from ddlib.models import build_model

WORLD = 2
# (memory, gradient, extra MTTConfig fields): both memory modes, TESLA, and AST's momentum student with
# intermediate matching. batch_syn=3 of 8 images gives batches of 3, 3 and 2: uneven parts (2/1, 1/1).
MTT_CASES = {
    "graph_exact": dict(memory="graph"),
    "recompute_exact": dict(memory="recompute"),
    "graph_tesla": dict(memory="graph", gradient="tesla"),
    "recompute_tesla": dict(memory="recompute", gradient="tesla"),
    "recompute_ast": dict(memory="recompute", inner_momentum=0.5, intermediate_matching=True,
                          balanced_inner_loss=True),
}


@dataclasses.dataclass
class MemoryTrajectory:
    snapshots: torch.Tensor

    @property
    def num_epochs(self):
        return len(self.snapshots) - 1

    def snapshot(self, epoch):
        return self.snapshots[epoch]


class MemorySource:
    def __init__(self, trajectories):
        self.trajectories = trajectories

    def __len__(self):
        return len(self.trajectories)

    def trajectory(self, k):
        return self.trajectories[k]


def _setup():
    """A float64 toy data set (4 classes of 6 noise images, 1x8x8), a width-4 ConvNet, two random-walk trajectories.

    (Built here rather than loaded: importing the digits loader costs seconds in every spawned process.)
    """
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(6)
    data = ImageDataset("toy", torch.randn(24, 1, 8, 8, generator=g, dtype=torch.float64), labels,
                        torch.randn(8, 1, 8, 8, generator=g, dtype=torch.float64), torch.arange(4).repeat(2),
                        class_names=("a", "b", "c", "d"), mean=(0.5,), std=(0.25,))
    net = build_model("ConvNet", data.channel, data.num_classes, data.im_size, width=4, seed=0).double()
    start = flatten_params(net)
    walks = [start + 0.05 * torch.randn(5, start.numel(), generator=g, dtype=torch.float64).cumsum(0)
             for _ in range(2)]
    return data, net, MemorySource([MemoryTrajectory(torch.cat([start[None], w])) for w in walks])


def _run_all(data_parallel: bool, out_dir: Path) -> dict:
    """Two outer steps of every MTT case, DM and TGDD; a checkpointed DM run; images and syn_lr of each."""
    data, net, source = _setup()
    results = {}
    for name, fields in MTT_CASES.items():
        config = MTTConfig(ipc=2, iterations=2, syn_steps=3, expert_epochs=2, max_start_epoch=2, lr_img=10.0,
                           lr_lr=1e-4, lr_teacher=0.01, batch_syn=3, dsa=True, **fields)
        method = TrajectoryMatching(data, source, net, config, seed=3, data_parallel=data_parallel)
        before = method.images.detach().clone()
        logs = [method.step(i) for i in range(2)]
        results[name] = (method.images.detach().clone(), method.syn_lr.detach().clone(), logs, before)
    dm = DistributionMatching(data, DMConfig(ipc=2, iterations=2, batch_real=4, width=4, lr_img=1.0), seed=3,
                              data_parallel=data_parallel)
    before = dm.images.detach().clone()
    logs = [dm.step(i) for i in range(2)]
    results["dm"] = (dm.images.detach().clone(), None, logs, before)
    tgdd = TGDD(data, source, net, TGDDConfig(ipc=2, iterations=2, batch_real=4, region_length=2, lr_img=0.1),
                seed=3, data_parallel=data_parallel)
    before = tgdd.pixels.detach().clone()
    logs = [tgdd.step(i) for i in range(2)]
    results["tgdd"] = (tgdd.pixels.detach().clone(), None, logs, before)
    saves = []
    real_save = distill_loop.atomic_torch_save
    distill_loop.atomic_torch_save = lambda obj, path: (saves.append(str(path)), real_save(obj, path))
    try:
        dm = DistributionMatching(data, DMConfig(ipc=2, iterations=2, batch_real=4, width=4), seed=4,
                                  data_parallel=data_parallel)
        run = distill_loop.run_distillation(dm, checkpoint_path=out_dir / "dm.ckpt", checkpoint_every=1,
                                            progress=False)
    finally:
        distill_loop.atomic_torch_save = real_save
    results["checkpointed"] = (run.synthetic.images_syn, None, [h["loss"] for h in run.history],
                               DistributionMatching(data, dm.config, seed=4).images.detach().clone())
    results["saves"] = saves
    return results


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        results = _run_all(True, Path(out_dir) / f"rank{rank}")
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``(single, [rank0, rank1])``: the same steps in one process and in 2 Gloo processes."""
    out = tmp_path_factory.mktemp("data_parallel")
    for rank in range(WORLD):
        (out / f"rank{rank}").mkdir()
    (out / "single").mkdir()
    mp.spawn(_worker, args=(str(out / "init"), str(out)), nprocs=WORLD, join=True)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        single = _run_all(False, out / "single")
    finally:
        torch.set_default_dtype(default)
    return single, ranks


@pytest.mark.parametrize("case", [*MTT_CASES, "dm", "tgdd", "checkpointed"])
def test_two_processes_match_one(runs, case):
    single, ranks = runs
    images, syn_lr, logs, before = single[case]
    assert len(logs) == 2
    # float64 throughout; the checkpointed run's SyntheticSet stores float32 images
    tol = dict(rtol=1e-9, atol=1e-11) if images.dtype == torch.float64 else dict(rtol=1e-6, atol=1e-6)
    assert (images - before).abs().max() > 1e-6  # the steps moved the images (else equality would prove nothing)
    for rank in ranks:
        other_images, other_lr, other_logs, _ = rank[case]
        torch.testing.assert_close(other_images, images, **tol)
        if syn_lr is not None:
            torch.testing.assert_close(other_lr, syn_lr, rtol=1e-9, atol=1e-15)
        for mine, theirs in zip(logs, other_logs):  # the logged losses are the full (all-reduced) ones
            if isinstance(mine, dict):
                assert theirs.keys() == mine.keys()
                for key in ("loss", "inner_loss", "mmd", "sdc", "syn_lr"):
                    if key in mine:
                        assert theirs[key] == pytest.approx(mine[key], rel=1e-9), key
            else:
                assert theirs == pytest.approx(mine, rel=1e-9)


def test_checkpoint_written_by_rank_zero_only(runs):
    single, ranks = runs
    assert single["saves"] and ranks[0]["saves"] == [s.replace("single", "rank0") for s in single["saves"]]
    assert ranks[1]["saves"] == []


def test_parts_cover_the_batch_without_overlap():
    # 7 positions over 2 ranks: 4 + 3; over 3 ranks: 3 + 2 + 2.
    assert [DataParallel(r, 2).part(7) for r in range(2)] == [slice(0, 4), slice(4, 7)]
    assert [DataParallel(r, 3).part(7) for r in range(3)] == [slice(0, 3), slice(3, 5), slice(5, 7)]
    assert [DataParallel(r, 3).classes(10) for r in range(3)] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    with pytest.raises(ValueError, match="cannot be split over 2 processes"):
        DataParallel(1, 2).part(1)
    with pytest.raises(ValueError, match="3 classes cannot be divided over 4"):
        DataParallel(0, 4).classes(3)
    with pytest.raises(ValueError, match="at least 2 processes"):
        DataParallel(0, 1)
    with pytest.raises(ValueError, match="rank=2"):
        DataParallel(2, 2)


def test_no_process_group_is_one_process():
    assert not dist.is_initialized()
    assert resolve_data_parallel(True) is None and resolve_data_parallel(False) is None
    with pytest.raises(ValueError, match="data_parallel='yes'"):
        resolve_data_parallel("yes")


def test_rejects_batch_norm_and_batches_smaller_than_the_world():
    data, net, source = _setup()
    shard = DataParallel(0, 2)  # the checks run before any collective, so no process group is needed
    config = MTTConfig(ipc=1, syn_steps=2, expert_epochs=2, max_start_epoch=2, dsa=False)
    bn = build_model("ConvNet", data.channel, data.num_classes, data.im_size, width=4, norm="batch", seed=0)
    with pytest.raises(ValueError, match="without batch norm.*use norm='instance'"):
        TrajectoryMatching(data, source, bn.double(), config, seed=0, data_parallel=shard)
    with pytest.raises(ValueError, match="batch of 1 synthetic images cannot be split over 2"):
        TrajectoryMatching(data, source, net, config.replace(batch_syn=1), seed=0, data_parallel=shard)
    with pytest.raises(ValueError, match="without batch norm"):
        DistributionMatching(data, DMConfig(ipc=1, width=4, norm="batch"), seed=0, data_parallel=shard)
