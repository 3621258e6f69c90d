"""ddlib benchmarks: seconds per iteration, peak memory and GFLOP/s, one subprocess per case.

    python benchmarks/run.py [--size tiny|full] [--out benchmarks/results/bench.json]
                             [--only NAME_OR_PATTERN ...] [--threads 2] [--device auto] [--jobs 1]
                             [--huge-pages on|off]

Every case (see ``benchmarks/cases.py``) runs in its own fresh Python process, so its peak
memory (max RSS on the CPU, ``torch.cuda.max_memory_allocated`` on a GPU) is its own. Each
case warms up once, then reports the median of a few timed iterations. The results are
printed as a table and written to JSON with the machine's description; the targets of
``benchmarks/reference.json`` that compare ddlib with itself are judged here, those against
the reference code (``time_ratio``, ``memory_ratio``) only from the interleaved side-by-side
run (``benchmarks/side_by_side.py``), never from figures measured elsewhere. ``--size tiny``
(width 8, 8x8 images, 1-2 iterations) only proves that every case runs, so no target verdict
is given for it. Every case's process runs with
``THP_MEM_ALLOC_ENABLE=1``, as ``make`` runs the chapters and the tests (PyTorch then backs
CPU tensors of 2 MB and more with transparent huge pages, so a fresh activation faults in
a few huge pages instead of thousands of small ones); ``--huge-pages off`` measures
without it.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import fnmatch
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]  # cases.py, and ddlib when it is not installed

import cases  # noqa: E402
from ddlib.core.fileio import read_json, write_json  # noqa: E402

MARKER = "@@BENCH_RESULT@@ "
REFERENCE = HERE / "reference.json"
DEFAULT_OUT = HERE / "results" / "bench.json"
#: Target kinds judged only from the side-by-side run (ddlib against the reference code, interleaved).
SIDE_BY_SIDE_KINDS = ("time_ratio", "memory_ratio")


# -- machine ----------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    cuda = args.device in ("auto", "cuda") and torch.cuda.is_available()
    return {
        "cpu_model": _cpu_model(), "logical_cpus": os.cpu_count(), "threads": args.threads,
        "mem_total_gb": _mem_total_gb(), "platform": platform.platform(), "python": platform.python_version(),
        "torch_version": torch.__version__, "device": "cuda" if cuda else "cpu",
        "device_name": torch.cuda.get_device_name(0) if cuda else _cpu_model(),
        "git_sha": _git("rev-parse", "HEAD"), "git_dirty": bool(_git("status", "--porcelain")),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# -- running the cases -----------------------------------------------------------------------------
HUGE_PAGES_ENV = "THP_MEM_ALLOC_ENABLE"


def child_env(environ: dict[str, str] | os._Environ, threads: int, huge_pages: str) -> dict[str, str]:
    """Environment of a case's process: thread counts, and PyTorch's huge-page switch on or off.

    ``huge_pages="on"`` sets ``THP_MEM_ALLOC_ENABLE=1`` (PyTorch then backs CPU tensors of
    2 MB and more with transparent huge pages, as ``make`` runs everything); ``"off"``
    removes it, which is how the reference numbers were taken.
    """
    if huge_pages not in ("on", "off"):
        raise ValueError(f"huge_pages={huge_pages!r}: expected 'on' or 'off'")
    env = dict(environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    if huge_pages == "on":
        env[HUGE_PAGES_ENV] = "1"
    else:
        env.pop(HUGE_PAGES_ENV, None)
    return env


def run_process_group(command: list[str], env: dict[str, str], timeout: float | None,
                      cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``subprocess.run`` in a session of its own; on timeout the whole group is killed.

    A command that starts children of its own (the reference script runs each setting in a
    child) would otherwise leave them running, and holding memory, after its timeout.

    Raises
    ------
    subprocess.TimeoutExpired
        After ``timeout`` seconds, once every process of the group is killed (as on ``KeyboardInterrupt``).
    """
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:  # the timeout, or Ctrl-C, which a group in a session of its own does not see
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def run_command(command: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Run a child command (``args``: threads, huge_pages, timeout) and parse its last result line."""
    env = child_env(os.environ, args.threads, args.huge_pages)
    start = time.perf_counter()
    try:
        proc = run_process_group(command, env, args.timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"timed out after {args.timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
        return {"status": "error", "reason": f"exit code {proc.returncode}", "stderr_tail": tail,
                "process_s": time.perf_counter() - start}
    result = json.loads(lines[-1][len(MARKER):])
    result["process_s"] = time.perf_counter() - start
    return result


def run_child(case: cases.Case, args: argparse.Namespace) -> dict[str, Any]:
    """Run one case in a fresh interpreter and parse its result line."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", case.name, "--size", args.size,
               "--threads", str(args.threads), "--device", args.device]
    return run_command(command, args)


def select(patterns: list[str] | None) -> list[cases.Case]:
    if not patterns:
        return list(cases.CASES)
    chosen = [c for c in cases.CASES if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]
    unknown = [p for p in patterns if not any(fnmatch.fnmatchcase(c.name, p) for c in cases.CASES)]
    if unknown:
        raise SystemExit(f"--only: no case matches {unknown}; cases: {[c.name for c in cases.CASES]}")
    return chosen


def attach_reference(name: str, result: dict[str, Any], reference: dict[str, Any]) -> None:
    """Name the reference setting of the case (``ref``: a key of ``reference.json``'s cases, or None).

    Only the name: the reference code's times and memory are measured beside ours by
    ``benchmarks/side_by_side.py``; ratios across runs on different machines mean little.
    """
    key = cases.CASES_BY_NAME[name].ref
    result["ref"] = key if key and key in reference["cases"] else None


# -- targets (reported, never asserted) ----------------------------------------------------------------
def _ok(results: dict, name: str) -> dict | None:
    r = results.get(name)
    return r if r and r.get("status") == "ok" else None


def evaluate_targets(results: dict[str, dict], reference: dict[str, Any], size: str) -> list[dict[str, Any]]:
    """The targets that compare ddlib with itself, with our values; ``met`` is None when a case is missing
    or the size is tiny. Targets against the reference code (:data:`SIDE_BY_SIDE_KINDS`) are left out."""
    out = []
    for target in reference["targets"]:
        kind, threshold = target["kind"], target["threshold"]
        rows: list[tuple[str, float | None, dict]] = []  # (cases, value, extra)
        if kind in SIDE_BY_SIDE_KINDS:
            continue  # judged from side_by_side.json (the page: performance_side_by_side)
        if kind == "own_memory_growth":
            long, short = (_ok(results, n) for n in target["cases"])
            value = long["peak_mb"] / short["peak_mb"] if long and short else None
            extra = {}
            if long and short and short["peak_mb"] > short["baseline_mb"]:
                extra["working_memory_ratio"] = ((long["peak_mb"] - long["baseline_mb"])
                                                 / (short["peak_mb"] - short["baseline_mb"]))
            rows.append((" / ".join(target["cases"]), value, extra))
        elif kind == "speedup":
            slow, fast = (_ok(results, n) for n in target["cases"])
            rows.append((" / ".join(target["cases"]),
                         slow["s_per_iter"] / fast["s_per_iter"] if slow and fast else None, {}))
        elif kind == "efficiency":
            field = target.get("field", "gflops")  # e.g. conv_gflops: the conv kernels alone
            achieved, peak = (_ok(results, n) for n in target["cases"])
            ok = achieved and peak and achieved.get(field) and peak.get("gflops")
            rows.append((" / ".join(target["cases"]), achieved[field] / peak["gflops"] if ok else None, {}))
        for label, value, extra in rows:
            met = None
            if value is not None and size == "full":
                met = value <= threshold if target["op"] == "<=" else value >= threshold
            out.append({"id": target["id"], "text": target["text"], "cases": label, "value": value,
                        "op": target["op"], "threshold": threshold, "met": met, **extra})
    return out


def report_case(case: cases.Case, result: dict[str, Any], with_name: bool) -> None:
    prefix = f"[bench] {case.name}: " if with_name else "[bench]   "
    if result["status"] == "ok":
        print(f"{prefix}{result['s_per_iter']:.4g} s/iter, peak {result['peak_mb']:.0f} MB "
              f"(process {result['process_s']:.1f} s)", flush=True)
    else:
        print(f"{prefix}{result['status']}: {result.get('reason')}", flush=True)
        for line in result.get("stderr_tail", []):
            print(f"[bench]     {line}", flush=True)


# -- output -----------------------------------------------------------------------------------------
def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(results: dict[str, dict]) -> str:
    header = f"{'case':<24} {'settings':<36} {'s/iter':>9} {'peak MB':>9} {'GFLOP/s':>8}"
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        label = cases.CASES_BY_NAME[name].label
        if r.get("status") != "ok":
            lines.append(f"{name:<24} {label[:36]:<36} {r.get('status', '?')}: {r.get('reason', '')}")
            continue
        lines.append(f"{name:<24} {label[:36]:<36} {_fmt(r['s_per_iter'], '9.4g')} {_fmt(r['peak_mb'], '9.0f')} "
                     f"{_fmt(r.get('gflops'), '8.1f')}")
    return "\n".join(lines)


def format_targets(targets: list[dict[str, Any]], size: str) -> str:
    lines = [f"targets (reported, not asserted{'; not judged at size tiny' if size != 'full' else ''}):"]
    for t in targets:
        verdict = {True: "met", False: "NOT met", None: "n/a"}[t["met"]]
        lines.append(f"  {t['text']:<68} {t['cases']:<48} {_fmt(t['value'], '.3g'):>7} "
                     f"{t['op']} {t['threshold']:<5} {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=tuple(cases.SIZES), default="full")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="case names or shell patterns, e.g. 'mtt_*'")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch/OpenMP threads per case (default: 2 as the reference at size full, 1 at tiny)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--huge-pages", choices=("on", "off"), default="on",
                        help=f"on (default, as make runs the chapters): {HUGE_PAGES_ENV}=1 in every case's "
                             "process, so PyTorch backs large CPU tensors with transparent huge pages; off: without")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per case (default: none)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other cases of an existing --out file of the same size")
    parser.add_argument("--jobs", type=int, default=None,
                        help="cases run at the same time (default: 1 at size full; more spoils the timings, "
                             "so the default only runs several at a time for the tiny smoke run)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads is None:
        args.threads = cases.SIZES[args.size]["threads"]
    if args.jobs is None:
        args.jobs = cases.SIZES[args.size]["jobs"]

    if args.child:
        result = cases.run_case(args.child, args.size, args.device, args.threads)
        print(MARKER + json.dumps(result), flush=True)
        return 0
    if args.list:
        for c in cases.CASES:
            print(f"{c.name:<26} {c.label}")
        return 0

    reference = read_json(REFERENCE, "reference settings and targets", fix="restore it with git checkout")
    selected = select(args.only)
    machine = machine_info(args)
    machine["huge_pages"] = args.huge_pages
    results: dict[str, dict] = {}
    if args.merge and args.out.exists():
        previous = read_json(args.out, "earlier benchmark results", fix="delete it or drop --merge")
        same_pages = previous.get("machine", {}).get("huge_pages", "off") == args.huge_pages
        if previous.get("size") == args.size and same_pages:
            results = {n: r for n, r in previous.get("cases", {}).items() if n in cases.CASES_BY_NAME}
    print(f"[bench] size={args.size} threads={args.threads} huge_pages={args.huge_pages} device={machine['device']} "
          f"({machine['device_name']}), load average {machine['load_average_start']}", flush=True)
    if args.jobs > 1 and args.size == "full":
        print(f"[bench] warning: --jobs {args.jobs} runs cases concurrently; times and memory are not clean",
              flush=True)

    def one(case: cases.Case) -> tuple[cases.Case, dict[str, Any]]:
        if args.jobs <= 1:
            print(f"[bench] {case.name}: {case.label} ...", flush=True)
        result = run_child(case, args)
        attach_reference(case.name, result, reference)
        return case, result

    if args.jobs <= 1:
        finished = map(one, selected)
    else:
        pool = concurrent.futures.ThreadPoolExecutor(args.jobs)
        finished = pool.map(one, selected)
    for case, result in finished:
        results[case.name] = result
        report_case(case, result, with_name=args.jobs > 1)
    if args.jobs > 1:
        pool.shutdown()
    results = {c.name: results[c.name] for c in cases.CASES if c.name in results}  # registry order
    machine["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    targets = evaluate_targets(results, reference, args.size)
    report = {"schema": 1, "size": args.size, "size_settings": cases.SIZES[args.size], "jobs": args.jobs,
              "machine": machine,
              "reference_source": reference["source"], "cases": results, "targets": targets}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report)  # crash-safe: a full disk or Ctrl-C never leaves half a file
    print()
    print(format_table(results))
    print()
    print(format_targets(targets, args.size))
    print(f"\n[bench] wrote {args.out}")
    return 1 if any(r.get("status") == "error" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
