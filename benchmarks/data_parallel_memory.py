"""Peak memory per process of one data-parallel MTT iteration, for 1 and N processes.

    python benchmarks/data_parallel_memory.py [--world 2] [--ipc 10] [--steps 10] [--width 64]
        [--memory graph] [--out benchmarks/results/data_parallel_memory.json]

Runs the same MTT outer step (CIFAR-shaped random data, a fake expert trajectory, ``memory``
mode as given) once in one process and once under ``torchrun --standalone --nproc_per_node N``
(Gloo on the CPU, one thread per process), each in fresh processes. Every process resets its
peak-RSS counter (``/proc/self/clear_refs``) once its data, network and distiller are built, runs a
warm-up and a timed iteration, and reports how far its resident memory rose above the level
before them: the memory an iteration needs, which data parallelism divides (the unroll's
activations of each process's part of the mini-batch), without the data set and the imported
libraries, which every process holds whole.
Linux only (``/proc``). This measures memory, not speed: N processes on a CPU share its cores.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(args: argparse.Namespace) -> None:
    """One process (or one rank under torchrun): warm up, then measure one outer iteration."""
    import torch
    import torch.distributed as dist

    sys.path[:0] = [str(HERE), str(ROOT)]
    import cases  # noqa: E402  (benchmarks/cases.py: random data, fake trajectory)

    from ddlib.methods.mtt import TrajectoryMatching
    from ddlib.methods.mtt_config import MTTConfig

    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    data = cases.random_dataset(args.train, 100, 32)
    net = cases.convnet(data, args.width)
    config = MTTConfig.for_dataset("cifar10", args.ipc, syn_steps=args.steps, zca=False, memory=args.memory)
    source = cases.OneExpert(cases.fake_trajectory(net, 30))
    distiller = TrajectoryMatching(data, source, net, config, seed=0, device="cpu", data_parallel=world > 1)
    # The peak is taken over a warm-up and a timed iteration from the level before the warm-up: measured
    # from after a warm-up, the timed iteration partly reuses memory the warm-up freed but the allocator
    # kept, and its rise understates what an iteration needs (by a different amount in every process).
    before = _rss_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM to the current RSS
    distiller.step(0)  # warm-up: allocator pools, lazy initialisation
    start = time.perf_counter()
    distiller.step(1)
    seconds = time.perf_counter() - start
    rise = _rss_mb("VmHWM") - before
    result = {"rank": int(os.environ.get("RANK", "0")), "world": world, "rise_mb": rise, "rss_before_mb": before,
              "seconds": seconds}
    Path(args.child_out).with_suffix(f".{result['rank']}.json").write_text(json.dumps(result))
    if world > 1:
        dist.destroy_process_group()


def run(world: int, args: argparse.Namespace, folder: Path) -> list[dict]:
    """The per-process results of one run with ``world`` processes."""
    out = folder / f"world{world}"
    common = [str(HERE / "data_parallel_memory.py"), "--child-out", str(out), "--ipc", str(args.ipc),
              "--steps", str(args.steps), "--width", str(args.width), "--memory", args.memory,
              "--train", str(args.train)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    if world == 1:
        command = [sys.executable, *common]
    else:
        torchrun = Path(sys.executable).with_name("torchrun")
        command = [str(torchrun), "--standalone", "--nproc_per_node", str(world), *common]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    return [json.loads(out.with_suffix(f".{rank}.json").read_text()) for rank in range(world)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=int, default=2, help="processes of the data-parallel run (>= 2)")
    parser.add_argument("--ipc", type=int, default=10, help="1, 10 or 50: a row of MTT's CIFAR-10 table")
    parser.add_argument("--steps", type=int, default=10, help="inner steps (syn_steps)")
    parser.add_argument("--width", type=int, default=64, help="ConvNet width")
    parser.add_argument("--memory", choices=("graph", "recompute"), default="graph")
    parser.add_argument("--train", type=int, default=2000, help="random training images held in memory")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--out", default=str(HERE / "results" / "data_parallel_memory.json"))
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.world < 2 or args.ipc not in (1, 10, 50) or args.steps < 1 or args.width < 1:
        parser.error(f"--world {args.world} --ipc {args.ipc} --steps {args.steps} --width {args.width}: "
                     "expected world >= 2, ipc 1, 10 or 50 (MTT's CIFAR-10 rows), positive steps and width")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.child_out:
        child(args)
        return {}
    with tempfile.TemporaryDirectory() as folder:
        one, many = run(1, args, Path(folder)), run(args.world, args, Path(folder))
    report = {"date": datetime.date.today().isoformat(), "settings": {k: v for k, v in vars(args).items()
                                                                      if k not in ("child_out", "out", "timeout")},
              "one_process": one, f"{args.world}_processes": many,
              "rise_ratio_max_rank": max(r["rise_mb"] for r in many) / one[0]["rise_mb"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"[data-parallel memory] 1 process: +{one[0]['rise_mb']:.0f} MB; {args.world} processes: "
          + ", ".join(f"rank {r['rank']} +{r['rise_mb']:.0f} MB" for r in many)
          + f" (largest / one: {report['rise_ratio_max_rank']:.2f}); wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
