"""The cluster page's correctness run: 1 and 2 processes on a CPU, timed and compared, stored as JSON.

    python benchmarks/cluster_check.py [--experts 4] [--size full|tiny] [--timeout S]
        [--work-dir DIR] [--out benchmarks/measured/cluster_check.json]

Runs, each in fresh processes (``python`` is this interpreter, ``torchrun`` is
``python -m torch.distributed.run``, both from a working folder, a temporary one unless
``--work-dir`` names an empty or missing one), and times the wall clock of:

1. ``python -m ddlib experts --scale smoke --set num_experts=N --device cpu --artifacts-dir one``
   and the same under ``torchrun --standalone --nproc_per_node 2`` into ``two``;
2. ``python -m ddlib distill ... --method mtt --ipc 1`` into ``one`` and under torchrun into ``two``,
   each on the experts its own folder already holds (step 1 trained them);
3. ``python benchmarks/data_parallel_memory.py --width 128 --memory graph`` and ``--memory recompute``
   (one MTT iteration at CIFAR-10 shapes, IPC 10, 10 inner steps; 1 process, then 2 under torchrun).

It then compares the two expert stores (the manifest byte for byte, every tensor of every
``expert_*.pt`` with ``torch.equal``), checks that ``distill`` trained no expert of its own, and
compares the two distilled sets (the largest absolute pixel of one process's, the largest
absolute difference between the two). The JSON (written atomically) holds the date, the machine
(CPU model and cores, not its host name), the torch and Python versions, every command as run,
every wall time, the comparisons and the memory numbers; ``ddlib.chapters.cluster_page`` renders
it into the cluster page. ``--size tiny`` keeps the experts and distillation commands (they are
smoke scale already) and shrinks the memory case to width 8 on 200 images: it proves the
pipeline in about a minute, its numbers mean nothing. Nothing runs when an argument is bad.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import run as bench  # noqa: E402  (benchmarks/run.py: machine info, process groups killed on timeout)

DEFAULT_OUT = HERE / "measured" / "cluster_check.json"
#: The memory case per size: the page's CIFAR-10 shapes, or a width-8 case that only proves the pipeline.
MEMORY_ARGS = {"full": ["--width", "128"], "tiny": ["--width", "8", "--train", "200"]}
MEMORY_MODES = ("graph", "recompute")
TORCHRUN = ["torchrun", "--standalone", "--nproc_per_node", "2"]


def stage_command(stage: str, experts: int, artifacts: str, processes: int) -> list[str]:
    """The ``python -m ddlib`` command of ``stage`` (``experts`` or ``distill``), as the page shows it."""
    launcher = ["python"] if processes == 1 else TORCHRUN
    method = ["--method", "mtt", "--ipc", "1"] if stage == "distill" else []
    return [*launcher, "-m", "ddlib", stage, "--scale", "smoke", "--set", f"num_experts={experts}", *method,
            "--device", "cpu", "--artifacts-dir", artifacts]


def memory_command(size: str, mode: str) -> list[str]:
    """``data_parallel_memory.py``'s command for one memory mode (its JSON goes into the working folder)."""
    return ["python", "benchmarks/data_parallel_memory.py", *MEMORY_ARGS[size], "--memory", mode,
            "--out", f"memory-{mode}.json"]


def executable(command: list[str]) -> list[str]:
    """What runs for a shown command: this interpreter for ``python``, ``python -m torch.distributed.run``
    for ``torchrun``, and the repository's script for ``benchmarks/...`` (the working folder is elsewhere)."""
    head = {"python": [sys.executable], "torchrun": [sys.executable, "-m", "torch.distributed.run"]}[command[0]]
    return head + [str(ROOT / arg) if arg.startswith("benchmarks/") else arg for arg in command[1:]]


def timed(command: list[str], work: Path, timeout: float) -> dict[str, Any]:
    """Run one command in ``work``; its shown form and wall time. A failure raises with its stderr's tail."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    shown = shlex.join(command)
    print(f"[cluster check] {shown}", flush=True)
    start = time.perf_counter()
    try:
        proc = bench.run_process_group(executable(command), env, timeout, cwd=work)
    except subprocess.TimeoutExpired as error:  # every process of the group is already killed
        raise RuntimeError(f"{shown}: {type(error).__name__}: {error}") from error
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{shown} failed with exit code {proc.returncode}:\n{(proc.stderr or '')[-3000:]}")
    print(f"[cluster check]   {seconds:.1f} s", flush=True)
    return {"command": shown, "wall_s": seconds}


def only_folder(pattern: str, root: Path) -> Path:
    """The one folder matching ``pattern`` under ``root`` (a store the commands wrote)."""
    found = sorted(path for path in root.glob(pattern) if path.is_dir())
    if len(found) != 1:
        raise RuntimeError(f"expected one folder {pattern!r} under {root}, found {[p.name for p in found]}")
    return found[0]


def store_snapshot(artifacts: Path) -> dict[str, bytes]:
    """The manifests of every expert store under ``artifacts``, by folder name."""
    return {p.parent.name: p.read_bytes() for p in sorted(artifacts.glob("experts-*/manifest.json"))}


def compare_experts(one: Path, two: Path) -> dict[str, Any]:
    """The two expert stores: same folder (cache key), manifest bytes, file names and every tensor."""
    import torch

    a, b = only_folder("experts-*", one), only_folder("experts-*", two)
    names_a, names_b = (sorted(p.name for p in folder.glob("expert_*.pt")) for folder in (a, b))
    tensors_equal = names_a == names_b and bool(names_a) and all(
        torch.equal(torch.load(a / name), torch.load(b / name)) for name in names_a)
    return {"folder": a.name, "same_folder": a.name == b.name, "count": len(names_a), "files": names_a,
            "files_equal": names_a == names_b,
            "manifest_equal": (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes(),
            "tensors_equal": tensors_equal}


def compare_sets(one: Path, two: Path) -> dict[str, Any]:
    """The two distilled sets: labels equal, the largest pixel of one process's and the largest difference."""
    import torch
    from ddlib.methods.synthetic import SyntheticSet

    a_folder = only_folder("distilled/*", one)
    a, b = SyntheticSet.load(a_folder), SyntheticSet.load(two / a_folder.relative_to(one))
    if a.images_syn.shape != b.images_syn.shape:
        raise RuntimeError(f"distilled sets of shapes {tuple(a.images_syn.shape)} and {tuple(b.images_syn.shape)}")
    return {"folder": str(a_folder.relative_to(one)), "shape": list(a.images_syn.shape),
            "labels_equal": bool(torch.equal(a.labels_syn, b.labels_syn)),
            "max_abs_pixel": float(a.images_syn.abs().max()),
            "max_abs_difference": float((a.images_syn - b.images_syn).abs().max())}


def memory_result(run: dict[str, Any], path: Path) -> dict[str, Any]:
    """One memory mode's rises (MB) from ``data_parallel_memory.py``'s JSON, and the largest over one."""
    report = json.loads(path.read_text())
    one = report["one_process"][0]["rise_mb"]
    many = [r["rise_mb"] for r in sorted(report[f"{report['settings']['world']}_processes"], key=lambda r: r["rank"])]
    return {**run, "one_process_mb": one, "per_process_mb": many, "ratio_largest": max(many) / one,
            "settings": report["settings"]}


def machine() -> dict[str, Any]:
    """The CPU, its cores and memory, the load when the run started, versions and commit (no host name)."""
    info = bench.machine_info(argparse.Namespace(threads=1, device="cpu"))
    return {"cpu_model": info["cpu_model"], "cores": info["logical_cpus"], "mem_total_gb": info["mem_total_gb"],
            "platform": info["platform"], "load_average_start": info["load_average_start"],
            "torch_version": info["torch_version"], "python_version": info["python"], "git_sha": info["git_sha"],
            "git_dirty": info["git_dirty"]}


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run the six commands in ``work`` and gather the report (see the module docstring)."""
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    info = machine()
    report: dict[str, Any] = {
        "schema": 1, "kind": "cluster_check", "date": date, "size": args.size,
        "machine": {k: v for k, v in info.items() if k not in ("torch_version", "python_version", "git_sha",
                                                                "git_dirty")},
        **{k: info[k] for k in ("torch_version", "python_version", "git_sha", "git_dirty")},
        "command": shlex.join(["python", "benchmarks/cluster_check.py", "--size", args.size,
                               "--experts", str(args.experts)]),
        "commands_note": "python is the interpreter that ran the check, torchrun is `python -m "
                         "torch.distributed.run`; each command ran in a fresh working folder (the artifacts "
                         "folders one and two are relative to it), OMP_NUM_THREADS=1",
        "num_experts": args.experts}
    folders = {1: "one", 2: "two"}
    runs = {("experts", n): timed(stage_command("experts", args.experts, folders[n], n), work, args.timeout)
            for n in folders}
    before = {name: store_snapshot(work / name) for name in folders.values()}
    runs.update({("distill", n): timed(stage_command("distill", args.experts, folders[n], n), work, args.timeout)
                 for n in folders})
    # distill finds the experts its folder holds: their manifests are unchanged (none trained again)
    reused = all(store_snapshot(work / name) == before[name] for name in folders.values())
    report["experts"] = {"one": runs["experts", 1], "two": runs["experts", 2], "num_experts": args.experts,
                         **compare_experts(work / "one", work / "two")}
    report["distill"] = {"one": runs["distill", 1], "two": runs["distill", 2], "method": "mtt", "ipc": 1,
                         "experts_reused": reused, **compare_sets(work / "one", work / "two")}
    report["memory"] = {mode: memory_result(timed(memory_command(args.size, mode), work, args.timeout),
                                            work / f"memory-{mode}.json") for mode in MEMORY_MODES}
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experts", type=int, default=4, help="experts of the smoke-scale store (>= 1)")
    parser.add_argument("--size", choices=("full", "tiny"), default="full",
                        help="full: the page's memory case (ConvNet-128); tiny: width 8, for the test")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per command")
    parser.add_argument("--work-dir", help="empty or missing folder for the runs, kept (default: a temporary one)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the JSON written")
    args = parser.parse_args(argv)
    if args.experts < 1:
        parser.error(f"--experts {args.experts}: expected at least 1 expert")
    if not args.timeout > 0:
        parser.error(f"--timeout {args.timeout}: expected a positive number of seconds")
    if args.work_dir and Path(args.work_dir).exists() and (
            not Path(args.work_dir).is_dir() or any(Path(args.work_dir).iterdir())):
        parser.error(f"--work-dir {args.work_dir}: expected an empty or missing folder (stores already there "
                     "would be reused and the times would not be those of training)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from ddlib.core.fileio import write_json

    if args.work_dir:
        Path(args.work_dir).mkdir(parents=True, exist_ok=True)
        report = measure(args, Path(args.work_dir).resolve())
    else:
        work = Path(tempfile.mkdtemp(prefix="cluster-check-"))
        try:
            report = measure(args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    write_json(args.out, report)
    experts, distilled = report["experts"], report["distill"]
    print(f"[cluster check] experts: {experts['one']['wall_s']:.1f} s / {experts['two']['wall_s']:.1f} s, "
          f"tensors equal: {experts['tensors_equal']}; distill: {distilled['one']['wall_s']:.1f} s / "
          f"{distilled['two']['wall_s']:.1f} s, largest difference {distilled['max_abs_difference']:.1e}; "
          + ", ".join(f"{mode} ratio {report['memory'][mode]['ratio_largest']:.2f}" for mode in MEMORY_MODES)
          + f"; wrote {args.out}", flush=True)
    return report


if __name__ == "__main__":
    main()
