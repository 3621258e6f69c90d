"""The Performance chapter's inputs and figures: which benchmark file it reads, the machine it ran on,
the MTT inner-step sweep, the achieved GFLOP/s and the huge-pages comparison.

The page times nothing itself: it reads ``benchmarks/run.py``'s JSON results. Only when no
benchmark has been run on the machine does :func:`load_benchmarks` run the tiny benchmark, so that
the page still shows measured numbers. The comparison with the public reference code is
measured side by side and shown by :mod:`ddlib.chapters.performance_side_by_side`.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from ddlib.core.fileio import read_json

__all__ = ["ROOT", "FLOPS_CAPTION", "Benchmarks", "load_benchmarks", "machine_text", "mtt_steps_frame",
           "mtt_steps_figure", "mtt_steps_caption", "flops_frame", "flops_figure", "huge_pages_comparison"]

ROOT = Path(__file__).resolve().parents[2]  # the repository: benchmarks/ lies beside ddlib/

FLOPS_CAPTION = (
    "*Figure: achieved GFLOP/s of each case beside the measured matmul and convolution peaks "
    "of the same machine and run. FLOPs are those of the convolutions, matrix products and "
    "other operations `torch.utils.flop_counter` knows; element-wise work (norms, "
    "augmentation) is not counted, so the achieved rate understates the work done.*")


@dataclasses.dataclass(frozen=True)
class Benchmarks:
    """The benchmark results the page shows, and the reference settings and targets.

    Attributes
    ----------
    path : Path
        The results file read.
    bench : dict
        Its contents: ``size``, ``machine``, ``cases``, ``targets`` (``benchmarks/run.py``).
    reference : dict
        ``benchmarks/reference.json``: the reference code's settings per case and the speed targets
        (no measured figures: those come from the side-by-side run).
    note : str
        Markdown saying that no benchmark had been run and the tiny one ran now; ``""`` otherwise.
    """

    path: Path
    bench: dict
    reference: dict
    note: str = ""

    @property
    def size(self) -> str:
        """The benchmark's size: ``"full"`` is judged against the targets, smaller ones are not."""
        return self.bench["size"]

    @property
    def machine(self) -> dict:
        """What the benchmark ran on (CPU, threads, device, torch version, commit, load)."""
        return self.bench["machine"]

    @property
    def comparable(self) -> bool:
        """Whether the numbers are of the real workloads' size (full), so targets get a verdict."""
        return self.size == "full"


def load_benchmarks(bench_json: str, out_dir: str | Path, device: str, *, root: Path = ROOT) -> Benchmarks:
    """Read the reference settings and targets and the benchmark results; run the tiny benchmark if there are none.

    Parameters
    ----------
    bench_json : str
        The results file, relative to ``root`` unless absolute; ``""``: ``benchmarks/results/bench.json``.
    out_dir : str or Path
        The chapter's output folder: without a results file, the tiny benchmark writes ``bench.json`` here.
    device : str
        The notebook's ``device`` parameter, passed to the tiny benchmark.
    root : Path
        The repository (holds ``benchmarks/reference.json`` and ``benchmarks/run.py``).

    Returns
    -------
    Benchmarks

    Raises
    ------
    RuntimeError
        If the tiny benchmark had to run and wrote no results (its output is in the message).
    ValueError
        If a JSON file is empty or damaged (:func:`~ddlib.core.fileio.read_json`).
    """
    reference = read_json(root / "benchmarks" / "reference.json", "reference settings and targets",
                          fix="restore it with git checkout")
    path = Path(bench_json) if bench_json else root / "benchmarks" / "results" / "bench.json"
    path = path if path.is_absolute() else root / path
    note = ""
    if not path.exists():
        path = Path(out_dir).resolve() / "bench.json"
        note = (f"**No benchmark has been run on this machine**: there is no "
                f"`benchmarks/results/bench.json`. Run `make bench` (or `python benchmarks/run.py --size "
                f"full`, tens of minutes on 2 CPU threads) and rebuild the book. So that this page still "
                f"shows measured numbers, the tiny benchmark (`python benchmarks/run.py --size tiny`: "
                f"width 8, 8x8 images, one iteration) runs now into `{path.parent.name}/`. Its numbers "
                f"only show that every case runs; no target is judged on them.")
        path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, str(root / "benchmarks" / "run.py"), "--size", "tiny",
                   "--out", str(path), "--device", str(device)]
        run = subprocess.run(command, cwd=root, capture_output=True, text=True)
        if not path.exists():
            raise RuntimeError(f"the tiny benchmark wrote no results (exit code {run.returncode}):\n"
                               + run.stdout[-2000:] + run.stderr[-2000:])
    bench = read_json(path, "benchmark results", fix="rerun make bench")
    return Benchmarks(path=path, bench=bench, reference=reference, note=note)


def machine_text(benchmarks: Benchmarks) -> str:
    """Markdown naming the results file, the machine and its load, and warning when not comparable."""
    bench, size, machine = benchmarks.bench, benchmarks.size, benchmarks.machine
    sha = (machine.get("git_sha") or "unknown")[:10]
    load = ", ".join(f"{x:.1f}" for x in machine.get("load_average_start") or [])
    side = bench.get("size_settings", {}).get("side")  # read only below the full size
    return (
        f"Benchmark size **{size}**, read from `{benchmarks.path.name}` ({machine['date']}): "
        f"{machine['cpu_model']}, {machine['threads']} threads on {machine['logical_cpus']} logical "
        f"CPUs, device `{machine['device']}`, torch {machine['torch_version']}, huge pages "
        f"{machine.get('huge_pages', 'off')}, ddlib commit `{sha}`"
        f"{' (uncommitted changes)' if machine.get('git_dirty') else ''}. Load average at the start "
        f"{load}: a busy machine inflates the times."
        + ("" if benchmarks.comparable else
           f"\n\n**These are `{size}`-size numbers** (width {bench['size_settings']['width']}, "
           f"{side}x{side} images, fewer inner steps): they prove the cases run, and **no** target "
           f"is judged on them."))


def mtt_steps_frame(bench: Mapping[str, Any]):
    """Seconds per iteration and peak memory of our MTT IPC 10 cases against their inner steps.

    Parameters
    ----------
    bench : mapping
        The benchmark's results; a case counts when ``ok`` with ``settings.variant == "mtt"`` and
        ``settings.ipc == 10``. The reference code is not drawn: it is compared only side by side.

    Returns
    -------
    pandas.DataFrame
        Columns ``inner steps, mode, s/iter, peak MB`` (mode ``"ddlib, <memory>"``); empty when
        there is no such case.
    """
    import pandas as pd

    rows = []
    for result in bench["cases"].values():
        settings = result.get("settings", {})
        is_mtt10 = settings.get("variant") == "mtt" and settings.get("ipc") == 10
        if result.get("status") == "ok" and is_mtt10:
            rows.append({"inner steps": settings["syn_steps"], "mode": f"ddlib, {settings['memory']}",
                         "s/iter": result["s_per_iter"], "peak MB": result["peak_mb"]})
    return pd.DataFrame(rows, columns=["inner steps", "mode", "s/iter", "peak MB"])


def mtt_steps_figure(frame: Any) -> Any:
    """Plot :func:`mtt_steps_frame`: seconds per iteration (left) and peak memory (right) per mode.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, column in zip(axes, ["s/iter", "peak MB"]):
        sns.lineplot(data=frame, x="inner steps", y=column, hue="mode", style="mode", markers=True,
                     dashes=False, ax=ax)
        ax.set_ylim(bottom=0)
        ax.set_title(f"MTT iteration at IPC 10: {column}")
    axes[1].get_legend().remove()
    fig.tight_layout()
    return fig


def mtt_steps_caption(size: str) -> str:
    """The caption of :func:`mtt_steps_figure` at benchmark size ``size``."""
    return (f"*Figure: seconds per iteration (left) and peak memory (right) of one MTT iteration at "
            f"IPC 10 against the number of inner steps, size {size}, in both memory modes. Graph mode "
            f"grows linearly in both; recompute mode should stay flat in memory (its target: 80 steps "
            f"within 1.2x its own 10-step peak) while costing more time per step.*")


def flops_frame(bench: Mapping[str, Any]):
    """The GFLOP/s of every successful case that counted its FLOPs.

    Returns
    -------
    pandas.DataFrame
        Columns ``case, GFLOP/s, kind``: ``"measured peak"`` for the ``peak_*`` cases (the machine's
        matmul and convolution ceilings), ``"achieved"`` for the others; empty when none.
    """
    import pandas as pd

    return pd.DataFrame([{"case": name, "GFLOP/s": r["gflops"],
                          "kind": "measured peak" if name.startswith("peak_") else "achieved"}
                         for name, r in bench["cases"].items()
                         if r.get("status") == "ok" and r.get("gflops")])


def flops_figure(frame: Any, size: str, threads: int) -> Any:
    """Bar chart of :func:`flops_frame`, one bar per case, titled with the size and thread count.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(8, 0.35 * len(frame) + 1.2))
    sns.barplot(data=frame, y="case", x="GFLOP/s", hue="kind", dodge=False, ax=ax)
    ax.set_title(f"GFLOP/s per case (size {size}, {threads} thread{'s' if threads != 1 else ''})")
    fig.tight_layout()
    return fig


def huge_pages_comparison(benchmarks: Benchmarks):
    """The same cases with huge pages off (``bench_huge_pages_off.json`` beside the results) and on.

    Parameters
    ----------
    benchmarks : Benchmarks
        The results shown (run with huge pages on).

    Returns
    -------
    table : pandas.DataFrame or None
        :func:`~ddlib.chapters.performance_tables.huge_pages_table`; ``None`` when there is no
        results file of the same size with huge pages off, or it shares no successful case.
    text : str
        The table's caption, or what is missing and how to measure it.
    """
    from ddlib.chapters.performance_tables import huge_pages_table

    path, size, machine = benchmarks.path, benchmarks.size, benchmarks.machine
    off_path = path.with_name("bench_huge_pages_off.json")
    off = (read_json(off_path, "benchmark results without huge pages", fix="rerun make bench")
           if off_path.exists() else None)
    if off is None or off.get("size") != size:
        return None, (f"No `{off_path.name}` of size {size} beside `{path.name}`: run "
                      f"`python benchmarks/run.py --size {size} --huge-pages off --out "
                      f"{off_path.name}` for the comparison.")
    table = huge_pages_table(benchmarks.bench, off)
    if table.empty:
        return None, f"`{off_path.name}` shares no successful case with `{path.name}`."
    off_sha = (off["machine"].get("git_sha") or "unknown")[:10]
    return table, (f"*Table: the same cases with PyTorch's huge-page switch off "
                   f"({off['machine']['date']}, commit `{off_sha}`) and on ({machine['date']}). Values "
                   f"do not change; a fresh activation of 2 MB or more is faulted in as a few 2 MB pages "
                   f"instead of thousands of 4 kB ones.*")
