"""Where one MTT iteration's time goes, op by op: ddlib's two memory modes beside the reference code.

    python benchmarks/profile_iteration.py --mtt-ref PATH [--ipc 10] [--steps 10] [--threads 2]
        [--sides ddlib_recompute,ddlib_graph,reference] [--huge-pages on|off] [--n-train 50000]
        [--repeats 1] [--top 15] [--workdir DIR] [--out benchmarks/results/profile_iteration.json]

``benchmarks/side_by_side.py`` says how ddlib's MTT iteration compares with the public reference
code's; this says why. Every side runs in a fresh process (``--child SIDE``) with the same thread
count and huge-page setting, at the side-by-side shapes (ConvNet-128, CIFAR-10-shaped random data,
no ZCA, DSA on), runs one warm-up iteration, then profiles ONE iteration with ``torch.profiler``
(CPU activities) and counts the FLOPs of one more under ``torch.utils.flop_counter.FlopCounterMode``:

* ``ddlib_recompute`` / ``ddlib_graph``: ``TrajectoryMatching.step`` with ``memory="recompute"``
  (ddlib's default: every inner step's graph is rebuilt in the backward sweep) or ``"graph"``
  (the reference's full graph), on ``benchmarks/cases.py``'s random data and fake trajectory;
* ``reference``: ``shared/bench/reference_bench.py``'s own ``_run-mtt`` child run in this process,
  so its monkeypatches (random CIFAR-10, wandb stub, ...) apply and the reference's ``distill.py``
  runs unedited; its wandb timing hooks (from "Synthetic_LR" to "Grand_Loss", the span that script
  times) start and stop the profiler in iteration 1 and the FLOP counter in iteration 2.

Per side: the profiled iteration's wall time, every op's calls and self CPU time, the top ops, and
two groupings into categories (``benchmarks/profile_report.py``): each op by its own kind (where the
time is spent: a norm's backward under ``create_graph=True`` is elementwise ops), and each op charged
to the layer it serves (its autograd node, else its top-level op); both with ``untraced``, the wall
time minus all ops' self times: Python and whatever runs between ops. Profiling costs a few microseconds
per op; the unprofiled warm-up iteration (``warmup_s``) shows how much. On a shared machine
``--repeats N`` runs the sides N times, interleaved, and keeps each side's fastest profiled run.
Written as JSON to ``--out``; printed as markdown: the categories side by side, the FLOPs, and
each side's top ops.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import run as bench  # noqa: E402  (benchmarks/run.py: child environment, machine info, JSON writing)
from profile_report import owners, report, summarise  # noqa: E402  (op categories, markdown tables)

DEFAULT_REF_SCRIPT = ROOT.parent / "shared" / "bench" / "reference_bench.py"
DEFAULT_OUT = HERE / "results" / "profile_iteration.json"
SIDES = ("ddlib_recompute", "ddlib_graph", "reference")


# -- the profiled sides (children) ----------------------------------------------------------------
def ops_of(prof: Any) -> list[dict[str, Any]]:
    """Per op name of a finished ``torch.profiler.profile``: ``name``, ``calls``, ``self_s``."""
    return [{"name": e.key, "calls": int(e.count), "self_s": e.self_cpu_time_total / 1e6}
            for e in prof.key_averages()]


def _cpu_profiler() -> Any:
    from torch.profiler import ProfilerActivity, profile

    return profile(activities=[ProfilerActivity.CPU])


def _warm_profiler() -> None:
    """Start and stop a profiler once: the first start in a process takes seconds (kineto's set-up)."""
    with _cpu_profiler():
        pass


def profile_ddlib(memory: str, args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, profile one ``TrajectoryMatching.step`` in ``memory`` mode, then count one step's FLOPs."""
    import torch

    import cases  # benchmarks/cases.py: random data, ConvNet, fake trajectory, FLOP counting
    from ddlib.methods.mtt import TrajectoryMatching
    from ddlib.methods.mtt_config import MTTConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    S = cases.SIZES["full"]
    data = cases.random_dataset(args.n_train, S["distill_test"], S["side"])
    net = cases.convnet(data, S["width"])
    config = MTTConfig.for_dataset("cifar10", args.ipc, syn_steps=args.steps, zca=False, memory=memory)
    source = cases.OneExpert(cases.fake_trajectory(net, S["traj_epochs"]))
    distiller = TrajectoryMatching(data, source, net, config, seed=0, device="cpu")
    _warm_profiler()
    start = time.perf_counter()
    distiller.step(0)
    warmup_s = time.perf_counter() - start
    prof = _cpu_profiler()
    prof.start()
    start = time.perf_counter()
    distiller.step(1)
    wall_s = time.perf_counter() - start
    prof.stop()
    flops, note = cases.count_flops(lambda: distiller.step(2))
    settings = {"memory": memory, "ipc": args.ipc, "syn_steps": config.syn_steps, "dsa": config.dsa,
                "batch_syn": config.batch_syn or 10 * args.ipc, "width": S["width"],
                "num_params": distiller.layout.numel}
    return {**summarise(ops_of(prof), wall_s, args.top, owners(prof.events())), "warmup_s": warmup_s,
            "flops_per_iter": flops, "flops_note": note, "settings": settings}


class HookWindow:
    """Opens a profiler in one iteration and a FLOP counter in another, between the reference's wandb hooks.

    ``wrap(recorder)`` returns a ``wandb.log`` recorder that tracks the iteration ("Progress"),
    opens the window after the wrapped recorder has seen "Synthetic_LR" and closes it before it
    sees "Grand_Loss", so the window is the span that ``reference_bench.py`` times.
    ``make_profiler()`` returns an object with ``start()``/``stop()``, ``make_counter()`` a
    context manager with ``get_total_flops()``.
    """

    def __init__(self, profile_it: int, flops_it: int, make_profiler: Callable[[], Any] = _cpu_profiler,
                 make_counter: Callable[[], Any] | None = None) -> None:
        if profile_it == flops_it:
            raise ValueError(f"profile_it == flops_it == {profile_it}: the FLOP counter would distort the profile")
        self.profile_it, self.flops_it = profile_it, flops_it
        self._make_profiler, self._make_counter = make_profiler, make_counter
        self.it: int | None = None
        self.profiler: Any = None
        self.wall_s: float | None = None
        self.flops: float | None = None
        self._counter: Any = None
        self._start: float | None = None

    def wrap(self, recorder: Callable[[dict, Any], None]) -> Callable[..., None]:
        def hooked(d: dict, step: Any = None) -> None:
            if "Progress" in d:
                self.it = int(d["Progress"])
            if "Grand_Loss" in d:
                self._close()
            recorder(d, step)
            if "Synthetic_LR" in d:
                self._open()
        return hooked

    def _open(self) -> None:
        if self.it == self.profile_it:
            self.profiler = self._make_profiler()
            self.profiler.start()
            self._start = time.perf_counter()
        elif self.it == self.flops_it and self._make_counter is not None:
            self._counter = self._make_counter()
            self._counter.__enter__()

    def _close(self) -> None:
        if self._start is not None:
            self.wall_s = time.perf_counter() - self._start
            self.profiler.stop()
            self._start = None
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops = float(self._counter.get_total_flops())
            self._counter = None


def _load_reference_bench(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"--ref-script {path} does not exist: pass the path of shared/bench/reference_bench.py")
    spec = importlib.util.spec_from_file_location("reference_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def profile_reference(args: argparse.Namespace) -> dict[str, Any]:
    """reference_bench.py's MTT child in this process: iteration 0 warms up, 1 is profiled, 2 counted."""
    from torch.utils.flop_counter import FlopCounterMode

    rb = _load_reference_bench(args.ref_script)
    workdir = Path(args.workdir).resolve()
    common = ["--workdir", str(workdir), "--threads", str(args.threads), "--n-train", str(args.n_train)]
    buffer = rb.buffer_file(argparse.Namespace(workdir=str(workdir), buffer_mode="synthetic", buffer_experts=10,
                                               buffer_epochs=50, zca=False))  # the script's defaults
    if not os.path.exists(buffer):  # written once per workdir, by the script's own child
        subprocess.run([sys.executable, str(args.ref_script), "_prep-buffer", str(args.mtt_ref), *common],
                       check=True, env=rb._child_env(args.threads))
    window = HookWindow(profile_it=1, flops_it=2, make_counter=lambda: FlopCounterMode(display=False))
    install = rb._install_wandb_stub
    rb._install_wandb_stub = lambda recorder: install(window.wrap(recorder))
    result_file = workdir / "profile_reference_result.json"
    sys.argv = [str(args.ref_script), "_run-mtt", str(args.mtt_ref), *common, "--warmup", "1", "--iters", "2",
                "--ipc", str(args.ipc), "--syn-steps", str(args.steps), "--result", str(result_file)]
    _warm_profiler()
    rb.main()
    timing = json.loads(result_file.read_text())
    if window.profiler is None or window.wall_s is None:
        raise RuntimeError("the reference never reached iteration 1's Synthetic_LR/Grand_Loss hooks")
    return {**summarise(ops_of(window.profiler), window.wall_s, args.top, owners(window.profiler.events())),
            "warmup_s": (timing.get("warmup_s") or [None])[-1], "flops_per_iter": window.flops,
            "flops_note": None if window.flops else "FLOP counter window not reached",
            "settings": {"ipc": args.ipc, "syn_steps": args.steps, "batch_syn": timing.get("batch_syn"),
                         "argv": timing.get("argv"), "num_params": timing.get("buffer", {}).get("n_params")}}


# -- parent -------------------------------------------------------------------------------------
def run_side(side: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``side`` in a fresh interpreter (output in the workdir's ``SIDE.log``) and read its result."""
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out, log = workdir / f"{side}.json", workdir / f"{side}.log"
    out.unlink(missing_ok=True)  # never read an earlier run's numbers
    command = [sys.executable, str(Path(__file__).resolve()), "--child", side, "--child-out", str(out),
               "--ipc", str(args.ipc), "--steps", str(args.steps), "--threads", str(args.threads),
               "--n-train", str(args.n_train), "--top", str(args.top), "--workdir", str(workdir),
               "--ref-script", str(args.ref_script), "--mtt-ref", str(args.mtt_ref)]
    env = bench.child_env(os.environ, args.threads, args.huge_pages)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ inside the reference checkout
    start = time.perf_counter()
    try:
        with open(log, "w") as stream:
            proc = subprocess.run(command, cwd=ROOT, env=env, stdout=stream, stderr=subprocess.STDOUT,
                                  timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"timed out after {args.timeout} s", "log": str(log)}
    if proc.returncode != 0 or not out.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-12:]
        return {"status": "error", "reason": f"exit code {proc.returncode}", "log": str(log), "log_tail": tail}
    return {"status": "ok", **json.loads(out.read_text()), "process_s": time.perf_counter() - start}


def least_disturbed(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Of one side's repeats, the successful run with the shortest profiled iteration, else the last.

    Other work on a shared machine only ever adds time, so the fastest run is the least
    disturbed one; ``walls_s`` keeps every repeat's profiled time (``None`` for a failed one).
    """
    if not results:
        raise ValueError("no runs: expected at least one result per side")
    ok = [r for r in results if r.get("status") == "ok"]
    chosen = min(ok, key=lambda r: r["wall_s"]) if ok else results[-1]
    return {**chosen, "walls_s": [r.get("wall_s") for r in results], "repeat": results.index(chosen)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mtt-ref", type=Path, help="extracted GeorgeCazenavette/mtt-distillation checkout")
    p.add_argument("--sides", default=",".join(SIDES), help="comma list of %(default)s")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--steps", type=int, default=10, help="syn_steps (inner steps) per iteration")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--huge-pages", choices=("on", "off"), default="on", help="THP_MEM_ALLOC_ENABLE, as side_by_side")
    p.add_argument("--n-train", type=int, default=50_000, help="training images held in memory (both sides)")
    p.add_argument("--repeats", type=int, default=1,
                   help="interleaved runs of every side; each side reports its fastest (least disturbed) one")
    p.add_argument("--top", type=int, default=15, help="ops listed per side (all ops are in the JSON)")
    p.add_argument("--ref-script", type=Path, default=DEFAULT_REF_SCRIPT)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ddlib-profile-iteration")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per side")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.sides = [s for s in args.sides.split(",") if s]
    unknown = [s for s in args.sides if s not in SIDES]
    if unknown:
        p.error(f"--sides: unknown {unknown}; expected some of {list(SIDES)}")
    for name in ("ipc", "steps", "threads", "n_train", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}={getattr(args, name)}: expected >= 1")
    if "reference" in (*args.sides, args.child) and not args.mtt_ref:
        p.error("the reference side needs --mtt-ref (an extracted mtt-distillation checkout)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        result = (profile_reference(args) if args.child == "reference"
                  else profile_ddlib(args.child.removeprefix("ddlib_"), args))
        args.child_out.write_text(json.dumps(result))
        return 0
    machine = bench.machine_info(argparse.Namespace(device="cpu", threads=args.threads))
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in args.sides}
    for repeat in range(args.repeats):  # interleaved, so a busy spell of a shared machine hits every side
        for side in args.sides:
            print(f"[profile] repeat {repeat + 1}/{args.repeats} {side} ...", flush=True)
            s = run_side(side, args)
            runs[side].append(s)
            print(f"[profile] {side}: " + (f"{s['wall_s']:.2f} s profiled, warm-up {s['warmup_s']} s"
                                            if s["status"] == "ok" else f"FAILED ({s['reason']}, see {s['log']})"),
                  flush=True)
    sides = {side: least_disturbed(results) for side, results in runs.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    markdown = report(sides)
    bench.write_json(args.out, {
        "schema": 1, "kind": "profile_iteration",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "machine": machine,
        "settings": {"ipc": args.ipc, "syn_steps": args.steps, "threads": args.threads, "huge_pages": args.huge_pages,
                     "repeats": args.repeats,
                     "n_train": args.n_train, "width": 128, "image": "3x32x32", "zca": False,
                     "iteration": "one outer step after one warm-up (reference: Synthetic_LR..Grand_Loss)"},
        "sides": sides, "markdown": markdown})
    print("\n" + markdown + f"\n\n[profile] wrote {args.out}")
    return 1 if any(s["status"] != "ok" for s in sides.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
