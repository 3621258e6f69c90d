"""The public reference code and ddlib timed side by side, interleaved, in one invocation.

    python benchmarks/side_by_side.py --mtt-ref PATH --dm-ref PATH [--cases mtt_ipc10_s10,dm_ipc10]
        [--repeats 3] [--threads 2] [--huge-pages on|off] [--size full] [--out FILE]

For every repeat and case it runs the reference (``../shared/bench/reference_bench.py``, the
public MTT / DM code unchanged, as a subprocess with ``--settings``) and then ddlib's case of
``benchmarks/run.py`` at the same shapes (ConvNet-128, CIFAR-shaped random data, no ZCA), each
in a fresh process, with the same thread count and the same huge-page setting
(``THP_MEM_ALLOC_ENABLE``), so slow drifts of a shared machine hit both sides alike. Written:
per run s/iter and peak RSS, per case the ratios ddlib / reference as median with min-max over
the repeats, the date and the machine. The reference needs ``kornia`` and ``scipy`` in the
interpreter that runs it (``make bench-deps`` installs them into ``.venv``).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

import run as bench  # noqa: E402  (benchmarks/run.py: machine info, child runs)

DEFAULT_REF_SCRIPT = HERE.parent.parent / "shared" / "bench" / "reference_bench.py"
DEFAULT_OUT = HERE / "results" / "side_by_side.json"
#: Our case name -> the reference script's ``--settings`` name.
#: AST and MCT are timed against the MTT code their authors' code extends, TGDD against the DM code.
REFERENCE_SETTINGS = {"mtt_ipc1_s50": "ipc1_s50", "mtt_ipc10_s10": "ipc10_s10", "mtt_ipc10_s20": "ipc10_s20",
                      "mtt_ipc10_s30": "ipc10_s30", "dm_ipc10": "dm_ipc10", "ast_ipc10_s20": "ipc10_s20",
                      "mct_ipc10_s20": "ipc10_s20", "tgdd_ipc10": "dm_ipc10"}
DEFAULT_CASES = ("mtt_ipc1_s50", "mtt_ipc10_s10", "dm_ipc10")

Runner = Callable[[str, int], dict[str, Any]]  # (case, repeat) -> {"status", "s_per_iter", "peak_mb", ...}


def reference_runner(args: argparse.Namespace) -> Runner:
    """Runs one setting of the reference script in a fresh process; its result as ours are shaped.

    ``case`` is a key of :data:`REFERENCE_SETTINGS` or the script's own setting name
    (``ipc10_s40``); ``args.ref_warmup``, when the namespace has it, sets the script's warm-up
    iterations (its default: 2).
    """

    def run(case: str, repeat: int) -> dict[str, Any]:
        setting = REFERENCE_SETTINGS.get(case, case)
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        command = [args.ref_python, str(args.ref_script), str(args.mtt_ref or "none"), "--workdir", str(workdir),
                   "--settings", setting, "--threads", str(args.threads)]
        if args.dm_ref:
            command += ["--dm-ref", str(args.dm_ref)]
        if args.ref_iters:
            command += ["--iters", str(args.ref_iters)]
        if getattr(args, "ref_warmup", None) is not None:
            command += ["--warmup", str(args.ref_warmup)]
        env = bench.child_env(os.environ, args.threads, args.huge_pages)
        start = time.perf_counter()
        try:  # in a process group of its own: the script's child must not outlive a timeout
            proc = bench.run_process_group(command, env, args.timeout)
        except subprocess.TimeoutExpired:
            return {"status": "error", "reason": f"timed out after {args.timeout} s"}
        try:
            rows = json.loads((workdir / "results.json").read_text())
            row = next(r for r in rows if r.get("setting") == setting)
        except (OSError, ValueError, StopIteration):
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
            return {"status": "error", "reason": f"exit code {proc.returncode}, no result for {setting}",
                    "stderr_tail": tail}
        (workdir / "results.json").unlink()  # the next run must not read this one's numbers
        return {"status": "ok", "s_per_iter": float(row["median_s"]), "peak_mb": float(row["peak_rss_mb"]),
                "timed_s": row.get("timed_s"), "window_peak_mb": row.get("window_peak_rss_mb"),
                "process_s": time.perf_counter() - start}

    return run


def ddlib_runner(args: argparse.Namespace) -> Runner:
    """Runs ddlib's case of ``benchmarks/run.py`` in a fresh process."""
    child_args = argparse.Namespace(threads=args.threads, huge_pages=args.huge_pages, size=args.size,
                                    device="cpu", timeout=args.timeout)

    def run(case: str, repeat: int) -> dict[str, Any]:
        return bench.run_child(bench.cases.CASES_BY_NAME[case], child_args)

    return run


def _spread(values: list[float]) -> dict[str, float] | None:
    return ({"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}
            if values else None)


def summarise(runs: list[dict[str, Any]], case: str) -> dict[str, Any]:
    """Per-repeat ratios ddlib / reference (time and peak RSS) of ``case``, and their median and min-max.

    A repeat counts only when both of its runs succeeded; the ratio of a repeat pairs the two
    runs made back to back.
    """
    pairs: dict[int, dict[str, dict]] = {}
    for r in runs:
        if r["case"] == case:
            pairs.setdefault(r["repeat"], {})[r["side"]] = r
    time_ratios, memory_ratios = [], []
    for repeat in sorted(pairs):
        ref, ours = pairs[repeat].get("reference"), pairs[repeat].get("ddlib")
        if ref and ours and ref["status"] == ours["status"] == "ok":
            time_ratios.append(ours["s_per_iter"] / ref["s_per_iter"])
            memory_ratios.append(ours["peak_mb"] / ref["peak_mb"])
    side = {s: _spread([r["s_per_iter"] for r in runs if r["case"] == case and r["side"] == s
                        and r["status"] == "ok"]) for s in ("reference", "ddlib")}
    return {"time_ratio": _spread(time_ratios), "memory_ratio": _spread(memory_ratios),
            "time_ratios": time_ratios, "memory_ratios": memory_ratios,
            "reference_s_per_iter": side["reference"], "ddlib_s_per_iter": side["ddlib"]}


def interleave(case_names: list[str], repeats: int, run_reference: Runner, run_ddlib: Runner,
               log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run ``reference, ddlib`` for every case, ``repeats`` times over (repeat-major order)."""
    runs = []
    for repeat in range(repeats):
        for case in case_names:
            for side, runner in (("reference", run_reference), ("ddlib", run_ddlib)):
                result = runner(case, repeat)
                keep = {k: result.get(k) for k in ("status", "s_per_iter", "peak_mb", "reason", "stderr_tail",
                                                   "timed_s", "times_s", "process_s")}
                runs.append({"case": case, "repeat": repeat, "side": side, **keep})
                shown = (f"{result['s_per_iter']:.3f} s/iter, peak {result['peak_mb']:.0f} MB"
                         if result.get("status") == "ok" else f"FAILED: {result.get('reason')}")
                log(f"[side-by-side] repeat {repeat + 1}/{repeats} {case} {side}: {shown}")
    return runs


def report(args: argparse.Namespace, runs: list[dict[str, Any]], torch_version: str) -> dict[str, Any]:
    machine = {"cpu_model": bench._cpu_model(), "logical_cpus": os.cpu_count(), "threads": args.threads,
               "mem_total_gb": bench._mem_total_gb(), "huge_pages": args.huge_pages,
               "torch_version": torch_version,
               "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    return {"schema": 1, "kind": "side_by_side",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine, "repeats": args.repeats, "size": args.size,
            "settings": {"threads": args.threads, "huge_pages": args.huge_pages, "ref_iters": args.ref_iters,
                         "data": "CIFAR-shaped random images, ConvNet-128, no ZCA"},
            "cases": {c: summarise(runs, c) for c in args.cases}, "runs": runs}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mtt-ref", type=Path, help="extracted GeorgeCazenavette/mtt-distillation checkout")
    p.add_argument("--dm-ref", type=Path, help="extracted VICO-UoE/DatasetCondensation checkout")
    p.add_argument("--cases", default=",".join(DEFAULT_CASES),
                   help=f"comma list of {sorted(REFERENCE_SETTINGS)} (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--huge-pages", choices=("on", "off"), default="on",
                   help="THP_MEM_ALLOC_ENABLE for both sides (default on, as make runs everything)")
    p.add_argument("--size", choices=tuple(bench.cases.SIZES), default="full", help="ddlib side's size")
    p.add_argument("--ref-script", type=Path, default=DEFAULT_REF_SCRIPT)
    p.add_argument("--ref-python", default=sys.executable, help="interpreter with kornia and scipy")
    p.add_argument("--ref-iters", type=int, default=None, help="timed iterations of the reference (its default: 5)")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ddlib-side-by-side")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in args.cases if c not in REFERENCE_SETTINGS]
    if unknown:
        p.error(f"--cases: unknown {unknown}; expected some of {sorted(REFERENCE_SETTINGS)}")
    if args.repeats < 1:
        p.error(f"--repeats={args.repeats}: expected >= 1")
    if any(c.startswith("mtt") for c in args.cases) and not args.mtt_ref:
        p.error("MTT cases need --mtt-ref (make bench REF_MTT=...)")
    if "dm_ipc10" in args.cases and not args.dm_ref:
        p.error("dm_ipc10 needs --dm-ref (make bench REF_DM=...)")
    return args


def main(argv: list[str] | None = None, run_reference: Runner | None = None,
         run_ddlib: Runner | None = None) -> int:
    import torch

    args = parse_args(argv)
    runs = interleave(args.cases, args.repeats, run_reference or reference_runner(args),
                      run_ddlib or ddlib_runner(args))
    result = report(args, runs, torch.__version__)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bench.write_json(args.out, result)
    print("\n| case | ddlib / reference time: median (min-max) | memory: median (min-max) | repeats |")
    print("|---|---|---|---|")
    for case, s in result["cases"].items():
        t, m = s["time_ratio"], s["memory_ratio"]
        cell = (lambda v: f"{v['median']:.2f} ({v['min']:.2f}-{v['max']:.2f})" if v else "-")
        print(f"| {case} | {cell(t)} | {cell(m)} | {t['n'] if t else 0} |")
    print(f"\n[side-by-side] wrote {args.out}")
    return 1 if any(r["status"] != "ok" for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
