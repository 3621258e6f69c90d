"""How the cost of one MTT iteration grows with the student's steps and the images per class.

    python benchmarks/cost_growth.py --mtt-ref PATH [--ipcs 1,10,50] [--steps 10,20,40,80]
        [--sides ref,graph,recompute] [--warmup 1] [--iters 1] [--memory-budget-gb GB]
        [--threads 2] [--huge-pages on|off] [--size full|tiny] [--timeout S] [--out FILE]

For every cell of the grid IPC x syn_steps it times one MTT iteration (ConvNet-128,
CIFAR-10-shaped random data, ``batch_syn`` = all ``10 * ipc`` images as MTT's CIFAR-10 table,
no ZCA) for three sides, interleaved per cell in this order: the public reference code
(``../shared/bench/reference_bench.py``, setting ``ipc{I}_s{S}``, through
``side_by_side.reference_runner``), ddlib with ``memory="graph"`` and ddlib with
``memory="recompute"`` (``cases.run_mtt``), each in a fresh process with the same threads and
huge-page setting (``THP_MEM_ALLOC_ENABLE``). Written per (side, ipc, syn_steps): status,
s/iter and peak RSS (the process's maximum resident set size, data included).

One warm-up and one timed iteration per cell (``--warmup 1 --iters 1``) is the default: the
growth across cells is the question (they span 400x in images x steps, and time grows about in
proportion), a cell's single iteration runs for seconds to minutes, so its timer noise is small
next to that growth, and more iterations would multiply a grid that already takes an hour.

Graph-mode cells (the reference and ``memory="graph"``) keep the autograd graph of every
inner step, so their peak grows as ``images x syn_steps``. A cell whose *estimated* peak
(:data:`PEAK_MODELS`) exceeds ``--memory-budget-gb`` (default 80 % of this machine's RAM) is
not run, and recorded as skipped with the estimate, before any cell runs. ``--size tiny``
(width 8, 8x8 images, ddlib sides only unless ``--sides`` names the reference, which keeps its
full shapes) runs in about a minute and only proves that the pipeline works.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

import run as bench  # noqa: E402  (benchmarks/run.py: machine info, child processes)
import side_by_side  # noqa: E402  (the reference runner)

DEFAULT_OUT = HERE / "results" / "cost_growth.json"
SIDES = ("reference", "graph", "recompute")
SIDE_ALIASES = {"ref": "reference"}
#: Per size: the default grid and sides (the reference is full-size whatever --size says).
DEFAULT_GRID = {"full": {"ipcs": (1, 10, 50), "steps": (10, 20, 40, 80), "sides": SIDES},
                "tiny": {"ipcs": (1,), "steps": (10, 20), "sides": ("graph", "recompute")}}
NUM_CLASSES = 10
BUDGET_SHARE = 0.8  # of the machine's RAM, the default --memory-budget-gb

Runner = Callable[[int, int], dict[str, Any]]  # (ipc, syn_steps) -> {"status", "s_per_iter", "peak_mb", ...}


@dataclasses.dataclass(frozen=True)
class PeakModel:
    """Peak RSS (MB) of a graph-mode MTT iteration at full size, for ``n = 10 * ipc`` images and ``s`` steps.

    ``peak = base_mb + mb_per_image * n + mb_per_image_step * n * s``: the graph of every inner
    step holds that step's activations of all ``n`` synthetic images (the per-(image x step)
    term); the backward pass through it adds buffers of one step's size (per image); the base
    is the interpreter, PyTorch and the 50,000 training images. All three are measured, from
    three cells' peaks (``source`` names them), never guessed.
    """

    base_mb: float
    mb_per_image: float
    mb_per_image_step: float
    source: str

    def __post_init__(self) -> None:
        if self.base_mb < 0 or self.mb_per_image < 0 or self.mb_per_image_step <= 0:
            raise ValueError(f"PeakModel(base_mb={self.base_mb}, mb_per_image={self.mb_per_image}, "
                             f"mb_per_image_step={self.mb_per_image_step}): expected base_mb >= 0, "
                             "mb_per_image >= 0 and mb_per_image_step > 0")

    @classmethod
    def fit(cls, peaks: dict[tuple[int, int], float], source: str) -> "PeakModel":
        """The model through three measured cells ``{(ipc, syn_steps): peak_mb}``: two at one IPC
        and different steps (the per-step slope), one at another IPC (the per-image term)."""
        (ipc_a, steps_a), (ipc_b, steps_b), (ipc_c, steps_c) = sorted(peaks)[:3]
        if not (ipc_b == ipc_c and steps_b != steps_c and ipc_a != ipc_b):
            raise ValueError(f"PeakModel.fit: cells {sorted(peaks)}: expected (ipc1, s), (ipc2, s2), (ipc2, s3) "
                             "with ipc1 < ipc2 and s2 != s3")
        n_a, n_b = NUM_CLASSES * ipc_a, NUM_CLASSES * ipc_b
        per_image_step = (peaks[ipc_c, steps_c] - peaks[ipc_b, steps_b]) / (n_b * (steps_c - steps_b))
        per_image = max(0.0, (peaks[ipc_b, steps_b] - peaks[ipc_a, steps_a]) / (n_b - n_a)
                        - per_image_step * (n_b * steps_b - n_a * steps_a) / (n_b - n_a))  # noise can dip below 0
        base = peaks[ipc_a, steps_a] - per_image * n_a - per_image_step * n_a * steps_a
        return cls(round(base, 1), round(per_image, 3), round(per_image_step, 4), source)

    def estimate_mb(self, ipc: int, syn_steps: int) -> float:
        images = NUM_CLASSES * ipc
        return self.base_mb + self.mb_per_image * images + self.mb_per_image_step * images * syn_steps


#: Measured on the 2-core machine this benchmark was written on (AMD EPYC, 23.5 GB, 2 threads, huge
#: pages on, torch 2.14), one warm-up and one timed iteration per cell, by ``--fit-from`` (PeakModel.fit)
#: on the peaks of the cells (IPC, syn_steps) = (1, 10), (10, 10), (10, 20). At the default budget
#: (80 % of 23.5 GB) the graph-mode sides then run IPC 1 at every step count, IPC 10 up to 40 steps
#: and IPC 50 at 10 steps (estimated 18.1 GB), and skip the rest.
PEAK_MODELS = {
    "reference": PeakModel(base_mb=2225.1, mb_per_image=2.16, mb_per_image_step=3.045,
                           source="peaks 2551, 5486, 8531 MB, 2026-11-30"),
    "graph": PeakModel(base_mb=1394.7, mb_per_image=0.634, mb_per_image_step=3.365,
                       source="peaks 1738, 4823, 8188 MB, 2026-11-30"),
}


def estimated_peak_mb(side: str, ipc: int, syn_steps: int, size: str) -> float | None:
    """The estimated peak of a graph-mode cell (MB), ``None`` where no estimate applies.

    ``memory="recompute"`` is flat in ``syn_steps`` and is never skipped; ddlib at ``size="tiny"``
    (width 8, 8x8 images) needs a few MB per step, so the full-size model does not apply to it.
    """
    model = PEAK_MODELS.get(side)
    if model is None or (side != "reference" and size != "full"):
        return None
    return model.estimate_mb(ipc, syn_steps)


def plan(ipcs: list[int], steps: list[int], sides: list[str], size: str,
         budget_mb: float, max_image_steps: int | None = None) -> list[dict[str, Any]]:
    """Every cell in run order (IPC, then syn_steps, then side), the over-budget ones already skipped.

    ``max_image_steps`` bounds the time a cell may take: a cell of more than that many images x
    inner steps is skipped on every side (time grows about in proportion to it).

    Returns
    -------
    list of dict
        ``side, ipc, syn_steps, images, estimated_peak_mb`` and, for a cell not to run,
        ``status="skipped"`` with ``reason="estimated N GB > budget M GB"`` or
        ``reason="N image-steps > time budget M"``.
    """
    cells = []
    for ipc in ipcs:
        for syn_steps in steps:
            for side in sides:
                estimate = estimated_peak_mb(side, ipc, syn_steps, size)
                cell = {"side": side, "ipc": ipc, "syn_steps": syn_steps, "images": NUM_CLASSES * ipc,
                        "estimated_peak_mb": estimate}
                work = NUM_CLASSES * ipc * syn_steps
                if max_image_steps is not None and work > max_image_steps:
                    cell.update(status="skipped", reason=f"{work} image-steps > time budget {max_image_steps}")
                elif estimate is not None and estimate > budget_mb:
                    cell.update(status="skipped",
                                reason=f"estimated {estimate / 1024:.1f} GB > budget {budget_mb / 1024:.1f} GB")
                cells.append(cell)
    return cells


def run_cells(cells: list[dict[str, Any]], runners: dict[str, Runner],
              log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run the cells that are not skipped, in order; one row per cell."""
    rows = []
    for cell in cells:
        label = f"IPC {cell['ipc']}, {cell['syn_steps']} steps, {cell['side']}"
        if cell.get("status") == "skipped":
            rows.append({**cell, "s_per_iter": None, "peak_mb": None})
            log(f"[cost-growth] {label}: skipped ({cell['reason']})")
            continue
        result = runners[cell["side"]](cell["ipc"], cell["syn_steps"])
        keep = {k: result.get(k) for k in ("status", "s_per_iter", "peak_mb", "reason", "stderr_tail", "process_s")}
        rows.append({**cell, **keep})
        log(f"[cost-growth] {label}: " + (f"{result['s_per_iter']:.3f} s/iter, peak {result['peak_mb']:.0f} MB"
                                          if result.get("status") == "ok" else f"FAILED: {result.get('reason')}"))
    return rows


def ddlib_runner(args: argparse.Namespace, memory: str) -> Runner:
    """ddlib's MTT iteration at ``memory`` in a fresh process (this script's ``--child``)."""

    def run(ipc: int, syn_steps: int) -> dict[str, Any]:
        spec = {"ipc": ipc, "syn_steps": syn_steps, "memory": memory, "size": args.size,
                "warmup": args.warmup, "iters": args.iters, "threads": args.threads}
        return bench.run_command([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)], args)

    return run


def reference_runner(args: argparse.Namespace) -> Runner:
    """The reference script's setting ``ipc{I}_s{S}`` (side_by_side.reference_runner) in a fresh process."""
    ref_args = argparse.Namespace(**vars(args), ref_iters=args.iters, ref_warmup=args.warmup, dm_ref=None)
    run_setting = side_by_side.reference_runner(ref_args)
    return lambda ipc, syn_steps: run_setting(f"ipc{ipc}_s{syn_steps}", 0)


def child(spec_json: str) -> int:
    """Time one ddlib cell in this process and print its result line (``run.MARKER``)."""
    spec = json.loads(spec_json)
    name = f"mtt_{spec['memory']}_ipc{spec['ipc']}_s{spec['syn_steps']}"
    case = bench.cases._mtt(name, f"IPC {spec['ipc']}, {spec['syn_steps']} steps, {spec['memory']}",
                            ipc=spec["ipc"], steps=spec["syn_steps"], memory=spec["memory"])
    # steps_scale 1: even at size tiny the cell runs the syn_steps it is keyed by; 50 expert epochs,
    # as the reference's buffer, since IPC 50 starts up to epoch 40 (MTT's table) and matches 2 on
    overrides = {"repeats": spec["iters"], "warmup": spec["warmup"], "flops": False, "steps_scale": 1.0,
                 "traj_epochs": 50}
    # tiny keeps 30 training images per class: IPC 50 initialises from real images, so it needs more
    overrides["distill_train"] = max(bench.cases.SIZES[spec["size"]]["distill_train"], 2 * NUM_CLASSES * spec["ipc"])
    result = bench.cases.run_case(name, spec["size"], "cpu", spec["threads"], case=case, overrides=overrides)
    print(bench.MARKER + json.dumps(result), flush=True)
    return 0


def fit_from(path: Path, cells: tuple[tuple[int, int], ...] = ((1, 10), (10, 10), (10, 20))) -> int:
    """Print :meth:`PeakModel.fit` of each graph-mode side on ``cells`` of an earlier output ``path``."""
    result = json.loads(path.read_text())
    for side in PEAK_MODELS:
        peaks = {(r["ipc"], r["syn_steps"]): r["peak_mb"] for r in result["rows"]
                 if r["side"] == side and r["status"] == "ok" and (r["ipc"], r["syn_steps"]) in cells}
        if len(peaks) < len(cells):
            print(f"{side}: needs the cells {list(cells)} measured; found {sorted(peaks)}")
            continue
        source = f"cells {list(cells)} of {path.name}, {result['date']}, {result['machine']['cpu_model']}"
        print(f"{side!r}: {PeakModel.fit(peaks, source)!r},")
    return 0


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mtt-ref", type=Path, help="extracted GeorgeCazenavette/mtt-distillation checkout")
    p.add_argument("--ipcs", type=_int_list, help="comma list (default: 1,10,50; tiny: 1)")
    p.add_argument("--steps", type=_int_list, help="comma list of syn_steps (default: 10,20,40,80; tiny: 10,20)")
    p.add_argument("--sides", help=f"comma list of {list(SIDES)} ('ref' = reference); default all, tiny: ddlib's")
    p.add_argument("--warmup", type=int, default=1, help="warm-up iterations per cell (default 1)")
    p.add_argument("--iters", type=int, default=1, help="timed iterations per cell (default 1: see above)")
    p.add_argument("--memory-budget-gb", type=float, default=None,
                   help=f"skip graph-mode cells estimated above this (default {BUDGET_SHARE * 100:.0f} %% of RAM)")
    p.add_argument("--max-image-steps", type=int, default=None,
                   help="skip cells of more images x inner steps than this on every side (a time budget)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--huge-pages", choices=("on", "off"), default="on")
    p.add_argument("--size", choices=tuple(DEFAULT_GRID), default="full", help="ddlib sides' size")
    p.add_argument("--ref-script", type=Path, default=side_by_side.DEFAULT_REF_SCRIPT)
    p.add_argument("--ref-python", default=sys.executable, help="interpreter with kornia and scipy")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ddlib-cost-growth")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per cell (default %(default)s)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--fit-from", type=Path, metavar="JSON",
                   help="print the PeakModel of each graph-mode side fitted to the cells (1, 10), (10, 10) and "
                        "(10, 20) of an earlier output, then exit: how PEAK_MODELS was measured")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child or args.fit_from:
        return args
    grid = DEFAULT_GRID[args.size]
    args.ipcs = args.ipcs or list(grid["ipcs"])
    args.steps = args.steps or list(grid["steps"])
    sides = args.sides.split(",") if args.sides else list(grid["sides"])
    args.sides = [SIDE_ALIASES.get(s, s) for s in sides if s]
    unknown = [s for s in args.sides if s not in SIDES]
    if unknown:
        p.error(f"--sides: unknown {unknown}; expected some of {list(SIDES)} (or 'ref')")
    if not args.ipcs or min(args.ipcs) < 1 or not args.steps or min(args.steps) < 1:
        p.error(f"--ipcs={args.ipcs} --steps={args.steps}: expected non-empty lists of integers >= 1")
    if args.warmup < 0 or args.iters < 1:
        p.error(f"--warmup={args.warmup} --iters={args.iters}: expected warmup >= 0 and iters >= 1")
    if "reference" in args.sides and not args.mtt_ref:
        p.error("the reference side needs --mtt-ref (make bench-growth REF_MTT=...)")
    if args.memory_budget_gb is None:
        total = bench._mem_total_gb()
        args.memory_budget_gb = round(BUDGET_SHARE * total, 1) if total else float("inf")
    if args.memory_budget_gb <= 0:
        p.error(f"--memory-budget-gb={args.memory_budget_gb}: expected > 0")
    return args


def report(args: argparse.Namespace, rows: list[dict[str, Any]], torch_version: str) -> dict[str, Any]:
    machine = bench.machine_info(argparse.Namespace(threads=args.threads, device="cpu"))
    machine["huge_pages"] = args.huge_pages
    return {"schema": 1, "kind": "cost_growth", "date": machine["date"], "machine": machine,
            "torch_version": torch_version, "size": args.size,
            "settings": {"ipcs": args.ipcs, "steps": args.steps, "sides": args.sides, "warmup": args.warmup,
                         "iters": args.iters, "threads": args.threads, "huge_pages": args.huge_pages,
                         "memory_budget_gb": args.memory_budget_gb, "timeout_s": args.timeout,
                         "max_image_steps": args.max_image_steps,
                         "peak_models": {s: dataclasses.asdict(m) for s, m in PEAK_MODELS.items()},
                         "data": "CIFAR-10-shaped random images, ConvNet-128, batch_syn = all images, no ZCA"},
            "rows": rows}


def main(argv: list[str] | None = None, runners: dict[str, Runner] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.child)
    if args.fit_from:
        return fit_from(args.fit_from)
    import torch

    runners = runners or {"reference": reference_runner(args) if "reference" in args.sides else None,
                          "graph": ddlib_runner(args, "graph"), "recompute": ddlib_runner(args, "recompute")}
    cells = plan(args.ipcs, args.steps, args.sides, args.size, args.memory_budget_gb * 1024, args.max_image_steps)
    to_run = sum(c.get("status") != "skipped" for c in cells)
    print(f"[cost-growth] {to_run} of {len(cells)} cells to run (budget {args.memory_budget_gb} GB), "
          f"{args.warmup} warm-up + {args.iters} timed iteration(s) each", flush=True)
    rows = run_cells(cells, runners)
    result = report(args, rows, torch.__version__)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bench.write_json(args.out, result)
    print("\n| side | IPC | syn_steps | s/iter | peak MB | status |\n|---|---|---|---|---|---|")
    for r in rows:
        shown = (f"{r['s_per_iter']:.3f} | {r['peak_mb']:.0f}" if r["status"] == "ok" else "- | -")
        print(f"| {r['side']} | {r['ipc']} | {r['syn_steps']} | {shown} | {r['status']} {r.get('reason') or ''} |")
    print(f"\n[cost-growth] wrote {args.out}")
    return 1 if any(r["status"] == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
