"""The Performance chapter's "how cost grows": one MTT iteration against ``syn_steps`` and IPC.

``benchmarks/cost_growth.py`` (``make bench-growth REF_MTT=...``) times one MTT iteration for a
grid of IPC x ``syn_steps`` on three sides, interleaved per cell: the public MTT code (which
keeps the autograd graph of every inner step), ddlib with ``memory="graph"`` (the same) and
ddlib with ``memory="recompute"`` (one step's graph at a time). Graph-mode cells whose
estimated peak exceeds the machine's memory budget are recorded as skipped, not run. The page
reads this build's file (``benchmarks/results/cost_growth.json``), else the committed
measurement (``benchmarks/measured/cost_growth.json``), else shows that none was made.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from ddlib.core.fileio import read_json

__all__ = ["COST_GROWTH_FILES", "SIDE_LABELS", "SIDE_PHRASES", "NOT_MEASURED", "load_cost_growth", "cost_growth_frame",
           "cost_growth_figure", "cost_growth_caption", "cost_growth_text"]

#: Where a cost-growth measurement is looked for, first match wins: (path under the repository, origin).
COST_GROWTH_FILES = (("benchmarks/results/cost_growth.json", "this build's measurement"),
                     ("benchmarks/measured/cost_growth.json", "the committed measurement"))
#: The sides as the figure's legend names them, and as the caption and the text do (Markdown).
SIDE_LABELS = {"reference": "reference code", "graph": 'ddlib, memory="graph"',
               "recompute": 'ddlib, memory="recompute"'}
SIDE_PHRASES = {"reference": "the reference code", "graph": 'ddlib with `memory="graph"`',
                "recompute": 'ddlib with `memory="recompute"`'}
NOT_MEASURED = ("**Not measured**: no cost-growth measurement was made for this build. "
                "`make bench-growth REF_MTT=<checkout of GeorgeCazenavette/mtt-distillation>` makes one, "
                "which this page then reads.")
FRAME_COLUMNS = ["side", "ipc", "syn_steps", "s_per_iter", "peak_mb", "status", "reason"]


def load_cost_growth(root: str | Path) -> dict[str, Any] | None:
    """The measurement the page shows: this build's, else the committed one, else ``None``.

    Parameters
    ----------
    root : str or Path
        The repository (holds ``benchmarks/``).

    Returns
    -------
    dict or None
        The file's contents (``date``, ``machine``, ``settings``, ``rows``) with ``source``
        added: ``{"path": str, "origin": "this build's measurement" | "the committed measurement"}``.

    Raises
    ------
    ValueError
        The file found is empty or damaged, or has no ``rows`` list (not a cost-growth measurement).
    """
    for relative, origin in COST_GROWTH_FILES:
        path = Path(root) / relative
        if path.exists():
            data = read_json(path, "cost-growth measurement", fix="rerun make bench-growth REF_MTT=...")
            if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
                found = sorted(data) if isinstance(data, dict) else type(data).__name__
                raise ValueError(f"{path}: expected a cost-growth measurement with a 'rows' list "
                                 f"(benchmarks/cost_growth.py); found {found}")
            return {**data, "source": {"path": str(path), "origin": origin}}
    return None


def cost_growth_frame(result: Mapping[str, Any]):
    """One row per (side, ipc, syn_steps) cell, in the file's order.

    Returns
    -------
    pandas.DataFrame
        Columns ``side, ipc, syn_steps, s_per_iter, peak_mb, status, reason``; ``s_per_iter`` and
        ``peak_mb`` are NaN where the cell did not run (``status`` ``"skipped"`` or ``"error"``).
    """
    import pandas as pd

    rows = [{"side": r["side"], "ipc": int(r["ipc"]), "syn_steps": int(r["syn_steps"]),
             "s_per_iter": r.get("s_per_iter") if r.get("status") == "ok" else None,
             "peak_mb": r.get("peak_mb") if r.get("status") == "ok" else None,
             "status": r.get("status", "error"), "reason": r.get("reason") or ""} for r in result["rows"]]
    return pd.DataFrame(rows, columns=FRAME_COLUMNS).astype({"s_per_iter": float, "peak_mb": float})


def cost_growth_figure(frame: Any) -> Any:
    """Seconds per iteration (left) and peak memory (right) against ``syn_steps``; colour IPC, marker the side.

    Only cells that ran are drawn, so a skipped or failed cell is a missing point. Log y axes:
    the cells span more than an order of magnitude.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import FuncFormatter

    ran = frame[frame["status"] == "ok"].assign(IPC=lambda f: "IPC " + f["ipc"].astype(str),
                                                side=lambda f: f["side"].map(SIDE_LABELS).fillna(f["side"]))
    ipc_order = [f"IPC {i}" for i in sorted(frame["ipc"].unique())]
    side_order = [SIDE_LABELS.get(s, s) for s in dict.fromkeys(frame["side"])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, column, title in zip(axes, ["s_per_iter", "peak_mb"], ["seconds per iteration", "peak memory (MB)"]):
        sns.lineplot(data=ran, x="syn_steps", y=column, hue="IPC", hue_order=ipc_order, style="side",
                     style_order=side_order, markers=True, ax=ax)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(_log_label))
        ax.yaxis.set_minor_formatter(FuncFormatter(_log_label))
        ax.set_xticks(sorted(frame["syn_steps"].unique()))
        ax.set(title=f"One MTT iteration: {title}", xlabel="syn_steps (inner steps)", ylabel=title)
    if axes[1].get_legend() is not None:  # one legend, outside the panels, where it hides no point
        axes[0].get_legend().remove()
        sns.move_legend(axes[1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.tight_layout()
    return fig


def _log_label(value: float, _position: Any) -> str:
    """Plain numbers at 1, 2 and 5 times a power of ten on a log axis, none elsewhere (no ``2 x 10^3``)."""
    lead = value / 10 ** math.floor(math.log10(value)) if value > 0 else 0.0
    if round(lead, 6) not in (1.0, 2.0, 5.0):
        return ""
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def _cells(rows: list[Mapping[str, Any]]) -> str:
    """``"reference code at IPC 10 with 40 and 80 steps; ..."``: the cells of ``rows`` grouped by side and IPC."""
    parts = []
    for side in dict.fromkeys(r["side"] for r in rows):
        per_ipc = {}
        for r in rows:
            if r["side"] == side:
                per_ipc.setdefault(r["ipc"], []).append(str(r["syn_steps"]))
        where = " and ".join(f"IPC {ipc} with {', '.join(steps)} steps" for ipc, steps in per_ipc.items())
        parts.append(f"{SIDE_PHRASES.get(side, side)} at {where}")
    return "; ".join(parts)


def cost_growth_caption(result: Mapping[str, Any]) -> str:
    """The caption of :func:`cost_growth_figure`: what was measured, when, where, and what did not run and why."""
    settings, machine = result.get("settings", {}), result.get("machine", {})
    origin = result.get("source", {}).get("origin", "a measurement")
    skipped = [r for r in result["rows"] if r.get("status") == "skipped"]
    failed = [r for r in result["rows"] if r.get("status") not in ("ok", "skipped")]
    text = (f"*Figure: one MTT iteration (ConvNet-128, CIFAR-10-shaped random images, all 10 x IPC synthetic "
            f"images in every inner step, no ZCA) against the number of inner steps, per IPC (colour) and side "
            f"(marker). {origin.capitalize()}, {result.get('date', 'undated')}: "
            f"{machine.get('cpu_model', 'unknown CPU')}, "
            f"{settings.get('threads', machine.get('threads', '?'))} threads, huge pages "
            f"{settings.get('huge_pages', '?')} for every side, {settings.get('warmup', '?')} warm-up and "
            f"{settings.get('iters', '?')} timed iteration per cell, each side in a fresh process, the sides run "
            f"one after the other per cell. Peak memory is the process's maximum resident set size, the "
            f"training images held in memory included. Log scales.")
    over_time = [r for r in skipped if "image-steps" in (r.get("reason") or "")]
    over_memory = [r for r in skipped if r not in over_time]
    if over_memory:
        text += (f" Not run, because their estimated peak (a measured cost per image and inner step) exceeds "
                 f"the memory budget of {settings.get('memory_budget_gb', '?')} GB: {_cells(over_memory)}.")
    if over_time:
        text += (f" Not run on any side, to keep the measurement within its time budget of "
                 f"{settings.get('max_image_steps', '?')} images x inner steps per iteration: {_cells(over_time)}.")
    if failed:
        text += f" Failed: {_cells(failed)} ({'; '.join(dict.fromkeys(r.get('reason') or '?' for r in failed))})."
    for rerun in result.get("reruns", ()):
        text += (f" The cell at IPC {rerun['ipc']} with {rerun['syn_steps']} steps was measured again "
                 f"({str(rerun.get('date', ''))[:10]}): {rerun['reason']}.")
    return text + "*"


def _slopes(frame: Any, ipc: int) -> dict[str, tuple[float, float]]:
    """Per side at ``ipc``: least-squares slopes (MB per step, s per step) over the cells that ran (two or more)."""
    import numpy as np

    out = {}
    for side, cells in frame[(frame["ipc"] == ipc) & (frame["status"] == "ok")].groupby("side", sort=False):
        if cells["syn_steps"].nunique() >= 2:
            steps = cells["syn_steps"].to_numpy(float)
            out[side] = (float(np.polyfit(steps, cells["peak_mb"].to_numpy(float), 1)[0]),
                         float(np.polyfit(steps, cells["s_per_iter"].to_numpy(float), 1)[0]))
    return out


def _fixed(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, never ``"-0"`` (a flat fit's slope dips below zero as often as not)."""
    return f"{round(value, digits) + 0.0:.{digits}f}"


def cost_growth_text(frame: Any) -> str:
    """Sentences, one per IPC, giving what one more inner step costs in memory and time on each side.

    The slopes are least-squares fits of peak memory and seconds against ``syn_steps`` over the
    cells that ran; the memory slope is also given per synthetic image (``10 * ipc`` images).
    """
    sentences = []
    for ipc in sorted(frame["ipc"].unique()):
        slopes, images = _slopes(frame, ipc), 10 * int(ipc)
        if not slopes:
            continue
        memory = ", ".join(f"{_fixed(mb, 0)} MB for {SIDE_PHRASES.get(s, s)} ({_fixed(mb / images, 2)} MB per image)"
                           for s, (mb, _) in slopes.items())
        time = ", ".join(f"{_fixed(sec, 2)} s" for _, sec in slopes.values())
        span = frame[(frame["ipc"] == ipc) & (frame["status"] == "ok")]["syn_steps"]
        order = ", in the same order" if len(slopes) > 1 else ""
        sentences.append(f"At IPC {ipc} ({span.min()} to {span.max()} steps), one more inner step adds {memory} "
                         f"to the peak, and {time} to the iteration{order}.")
    if not sentences:
        return "Too few cells ran to fit a growth: each side needs two step counts at one IPC."
    return " ".join(sentences)
