"""The Performance chapter's GPU section: the figures of a check run on a GPU machine.

``benchmarks/gpu_check.sh`` runs, on a GPU machine, the CPU-vs-CUDA agreement tests, the
benchmark cases on the device and every chapter's paper-scale dry run, and writes
``device.json``, ``gpu_tests.log`` and ``bench.json`` into one folder. The page shows this build's
check (``benchmarks/results/gpu_check``, the script's default output) when it ran on a GPU, else the
committed one (``benchmarks/measured/gpu_check``), else nothing. A folder may hold ``notes.json``
(test name -> explanation), an annotation stored with that measurement, shown beside its test results.

Ratios are given only between cases of the same check (one invocation, one machine): graph over
recompute memory mode, batched over sequential evaluation, bf16 over float32. The published
per-iteration time of AST (Table 8, hardware not stated) is shown beside the matching case as a
published figure, never divided into ours.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Mapping

from ddlib.core.fileio import read_json

__all__ = ["GPU_CHECK_DIRS", "GPU_CASES", "GPU_FORMATS", "RATIO_FORMATS", "GPU_RATIOS", "GpuCheck",
           "load_gpu_check", "gpu_text", "gpu_table", "gpu_caption", "gpu_ratios", "gpu_ratios_caption"]

#: Where a GPU check is looked for, first match that ran on a GPU wins: (folder under the repository, origin).
GPU_CHECK_DIRS = (("benchmarks/results/gpu_check", "this build's check"),
                  ("benchmarks/measured/gpu_check", "the committed check"))
#: Cases shown, in order, with what they time (CIFAR-10 shapes, ConvNet-128).
GPU_CASES = {
    "mtt_ipc10_s10": "MTT iteration, IPC 10, 10 inner steps, recompute (default)",
    "mtt_graph_ipc10_s10": "MTT iteration, IPC 10, 10 inner steps, graph mode",
    "mtt_ipc10_s30": "MTT iteration, IPC 10, 30 inner steps, recompute (default)",
    "mtt_graph_ipc10_s30": "MTT iteration, IPC 10, 30 inner steps, graph mode",
    "dm_ipc10": "DM iteration, IPC 10",
    "dm_ipc10_bf16": "DM iteration, IPC 10, bf16 embedding",
    "expert_epoch": "expert training, 5,000 images",
    "expert_epoch_bf16": "expert training, 5,000 images, bf16",
    "eval_sequential": "evaluation epoch, 5 networks one after another",
    "eval_batched": "evaluation epoch, 5 networks batched",
    "eval_batched_bf16": "evaluation epoch, 5 networks batched, bf16",
}
#: How the page prints :func:`gpu_table`'s columns (pandas ``Styler.format`` specifications).
GPU_FORMATS = {"s/iter": "{:.3g}", "peak MB": "{:.0f}", "published s/iter": "{:.2g}"}
#: How the page prints :func:`gpu_ratios`'s columns.
RATIO_FORMATS = {"value": "{:.2f}", "low": "{:.2f}", "high": "{:.2f}"}
#: Within-check ratios: (what, numerator case, denominator case, measure) with measure ``s_per_iter`` or ``peak_mb``.
GPU_RATIOS = (
    ("time, graph / recompute, 10 steps", "mtt_graph_ipc10_s10", "mtt_ipc10_s10", "s_per_iter"),
    ("time, graph / recompute, 30 steps", "mtt_graph_ipc10_s30", "mtt_ipc10_s30", "s_per_iter"),
    ("memory, graph / recompute, 10 steps", "mtt_graph_ipc10_s10", "mtt_ipc10_s10", "peak_mb"),
    ("memory, graph / recompute, 30 steps", "mtt_graph_ipc10_s30", "mtt_ipc10_s30", "peak_mb"),
    ("time, batched / sequential evaluation", "eval_batched", "eval_sequential", "s_per_iter"),
    ("time, bf16 / float32, expert epoch", "expert_epoch_bf16", "expert_epoch", "s_per_iter"),
    ("time, bf16 / float32, batched evaluation", "eval_batched_bf16", "eval_batched", "s_per_iter"),
    ("time, bf16 / float32, DM iteration", "dm_ipc10_bf16", "dm_ipc10", "s_per_iter"),
)
#: AST's published seconds per iteration on CIFAR-10 IPC 10 (Table 8; the GPU is not stated), at 30 inner steps.
_TABLE8_CASES = ("mtt_ipc10_s30", "mtt_graph_ipc10_s30")
_SUMMARY = re.compile(r"^=*\s*((?:\d+ (?:passed|failed|skipped|errors?|deselected)(?:, )?)+) in [\d.]+s")


@dataclasses.dataclass(frozen=True)
class GpuCheck:
    """One GPU check folder.

    Attributes
    ----------
    path : Path
        The folder read.
    origin : str
        ``"this build's check"`` or ``"the committed check"`` (:data:`GPU_CHECK_DIRS`).
    device : dict
        ``device.json``: ``device`` (the GPU's name), ``memory_gib``, ``torch``, ``cuda``, ``python``.
    bench : dict
        ``bench.json`` (``benchmarks/run.py``'s results on the device).
    tests : str or None
        The agreement tests' summary line (e.g. ``"2 passed"``); ``None`` without ``gpu_tests.log``.
    failed : tuple of str
        Names of the agreement tests that failed.
    notes : dict
        ``notes.json``: test name -> explanation stored with the measurement (empty when absent).
    """

    path: Path
    origin: str
    device: dict
    bench: dict
    tests: str | None
    failed: tuple[str, ...]
    notes: dict


def _test_results(log: Path) -> tuple[str | None, tuple[str, ...]]:
    if not log.exists():
        return None, ()
    lines = log.read_text(errors="replace").splitlines()
    failed = tuple(line.split("::")[-1].split(" ")[0] for line in lines if line.startswith("FAILED "))
    summary = next((m.group(1) for line in reversed(lines) if (m := _SUMMARY.match(line))), None)
    return summary, failed


def load_gpu_check(root: str | Path) -> GpuCheck | None:
    """The GPU check the page shows: this build's if it ran on a GPU, else the committed one, else ``None``.

    Parameters
    ----------
    root : str or Path
        The repository (holds ``benchmarks/``).

    Raises
    ------
    ValueError
        A folder's ``device.json`` or ``bench.json`` is empty or damaged
        (:func:`~ddlib.core.fileio.read_json`), or ``bench.json`` has no ``cases``.
    """
    for relative, origin in GPU_CHECK_DIRS:
        folder = Path(root) / relative
        if not (folder / "device.json").exists() or not (folder / "bench.json").exists():
            continue
        device = read_json(folder / "device.json", "GPU check device", fix="rerun benchmarks/gpu_check.sh")
        if not device.get("cuda_available"):
            continue  # a CPU rehearsal of the check: nothing about a GPU
        bench = read_json(folder / "bench.json", "GPU check benchmark", fix="rerun benchmarks/gpu_check.sh")
        if not isinstance(bench.get("cases"), dict):
            raise ValueError(f"{folder / 'bench.json'}: expected benchmark results with 'cases' "
                             f"(benchmarks/run.py); found keys {sorted(bench)}")
        notes_file = folder / "notes.json"
        notes = read_json(notes_file, "GPU check notes") if notes_file.exists() else {}
        tests, failed = _test_results(folder / "gpu_tests.log")
        return GpuCheck(path=folder, origin=origin, device=device, bench=bench, tests=tests, failed=failed,
                        notes=notes)
    return None


def gpu_text(check: GpuCheck) -> str:
    """Markdown naming the GPU, the software, the date and commit, and the agreement tests' outcome."""
    d, machine = check.device, check.bench.get("machine", {})
    sha = (machine.get("git_sha") or "unknown")[:7]
    dirty = " with uncommitted changes" if machine.get("git_dirty") else ""
    text = (f"Measured on an **{d.get('device', 'unnamed GPU')}** ({d.get('memory_gib', '?')} GiB, "
            f"{d.get('multiprocessors', '?')} multiprocessors) on {str(machine.get('date', '?'))[:10]}: torch "
            f"{d.get('torch', '?')}, CUDA {d.get('cuda', '?')}, Python {d.get('python', '?')}, ddlib at commit "
            f"`{sha}`{dirty} ({check.origin}).")
    if check.tests is None:
        return text + " The agreement tests' log is missing."
    text += (f" The CPU-vs-CUDA agreement tests (distillation steps and an evaluation on the embedded digits, "
             f"TF32 off): **{check.tests}**.")
    for name in check.failed:
        text += f"\n\n- `{name}` failed" + (f": {check.notes[name]}" if name in check.notes else ".")
    return text


def gpu_table(check: GpuCheck):
    """One row per case of :data:`GPU_CASES` the check measured: seconds per iteration and peak memory.

    Returns
    -------
    pandas.DataFrame
        Indexed by case; columns ``what``, ``s/iter``, ``peak MB`` (``torch.cuda.max_memory_allocated``)
        and ``published s/iter`` (AST's Table 8 beside the 30-step MTT cases; ``None`` elsewhere).
    """
    import pandas as pd

    from ddlib.results.records import paper_results

    papers = paper_results()
    row = papers[(papers["paper"] == "AST") & (papers["table"] == "Table 8") & (papers["dataset"] == "CIFAR-10")
                 & (papers["ipc"] == "10") & (papers["method"] == "AST")]
    published = float(row["value"].iloc[0]) if len(row) else None
    rows = []
    for name, what in GPU_CASES.items():
        result = check.bench["cases"].get(name)
        if result is None or result.get("status") != "ok":
            continue
        rows.append({"case": name, "what": what, "s/iter": result["s_per_iter"], "peak MB": result["peak_mb"],
                     "published s/iter": published if name in _TABLE8_CASES else None})
    return pd.DataFrame(rows, columns=["case", "what", "s/iter", "peak MB", "published s/iter"]).set_index("case")


def gpu_caption(check: GpuCheck) -> str:
    """The caption of :func:`gpu_table`."""
    repeats = sorted({r.get("repeats") for r in check.bench["cases"].values() if r.get("repeats")})
    return ("*Table: ddlib on the GPU, CIFAR-10 shapes (ConvNet-128, 3x32x32, random data), each case in its "
            f"own process, median of {'/'.join(map(str, repeats))} timed iterations once warm; peak MB is "
            "the largest memory PyTorch allocated on the GPU. Published s/iter: AST's Table 8, a whole AST "
            "iteration on CIFAR-10 at IPC 10 (30 inner steps, on a GPU the paper does not name), beside our "
            "MTT iteration of the same shape: a different machine and more work per iteration, so no ratio "
            "is taken.*")


def gpu_ratios(check: GpuCheck):
    """The within-check ratios of :data:`GPU_RATIOS` whose two cases were measured.

    Returns
    -------
    pandas.DataFrame
        Columns ``ratio`` (what is divided by what), ``value`` (of the medians), and for times ``low`` and
        ``high``: the smallest and largest ratio of one timed iteration of each case (``None`` for memory,
        measured once per case).
    """
    import pandas as pd

    cases: Mapping[str, Any] = check.bench["cases"]
    rows = []
    for what, top, bottom, measure in GPU_RATIOS:
        a, b = cases.get(top, {}), cases.get(bottom, {})
        if a.get("status") != "ok" or b.get("status") != "ok" or not b[measure]:
            continue
        low = high = None
        if measure == "s_per_iter" and a.get("times_s") and b.get("times_s"):
            low, high = min(a["times_s"]) / max(b["times_s"]), max(a["times_s"]) / min(b["times_s"])
        rows.append({"ratio": what, "value": a[measure] / b[measure], "low": low, "high": high})
    return pd.DataFrame(rows, columns=["ratio", "value", "low", "high"])


def gpu_ratios_caption() -> str:
    """The caption of :func:`gpu_ratios`."""
    return ("*Table: ratios between cases of the same GPU check (one machine, one invocation); below 1 the "
            "first is faster or smaller. For times, low and high are the smallest and largest ratio of any "
            "timed iteration of one case to any of the other: when they enclose 1, the check measured no "
            "difference. Memory is the peak of one process per case.*")
