"""The Performance page's profile: where one MTT iteration's time goes, in ddlib and in the reference.

``benchmarks/profile_iteration.py`` profiles one iteration (ConvNet-128, CIFAR-10-shaped random
data, after a warm-up) with ``torch.profiler`` for ddlib's two memory modes and for the public MTT
code, and charges every operator's own time to the layer it serves (its autograd node, else its
top-level operator). This module reads that measurement (this build's, else the one committed
with the book) and turns it into the page's table and sentences; every number comes from the file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["PROFILE_FILES", "CATEGORY_LABELS", "SIDE_NAMES", "load_profile", "profile_table", "profile_text",
           "profile_caption"]

#: Where the measurement is looked for, relative to the repository root: this build's first.
PROFILE_FILES = ("benchmarks/results/profile_iteration.json", "benchmarks/measured/profile_iteration.json")
#: Category key -> row label, in the table's order.
CATEGORY_LABELS = {
    "convolution": "convolution (forward, backward, double backward)",
    "norm": "normalisation layers",
    "elementwise": "elementwise, activation, pooling, loss",
    "matmul": "matmul / linear",
    "bookkeeping": "autograd bookkeeping, copies, views",
    "other": "other",
    "untraced": "untraced (Python between operators)",
}
#: Side key -> column label.
SIDE_NAMES = {"ddlib_recompute": "ddlib, recompute", "ddlib_graph": "ddlib, graph", "reference": "reference (MTT code)"}


def load_profile(root: str | Path) -> dict[str, Any] | None:
    """The profile measurement under ``root`` (``PROFILE_FILES``, this build's first), or ``None``.

    The returned dict gains ``source``: ``{"path": ..., "origin": "this build" | "committed"}``.
    """
    for origin, name in zip(("this build", "committed"), PROFILE_FILES):
        path = Path(root) / name
        if path.is_file():
            result = json.loads(path.read_text())
            return {**result, "source": {"path": name, "origin": origin}}
    return None


def _sides(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in result["sides"].items() if v.get("status") == "ok" and k in SIDE_NAMES}


def profile_table(result: dict[str, Any], key: str = "owner_categories") -> pd.DataFrame:
    """Seconds and share of the iteration per category and side.

    Parameters
    ----------
    result : dict
        From :func:`load_profile`.
    key : {"owner_categories", "categories"}
        ``owner_categories`` charges each operator to the layer it serves (a normalisation layer's
        double backward counts as normalisation); ``categories`` groups operators by their own kind.

    Returns
    -------
    pandas.DataFrame
        One row per category of ``CATEGORY_LABELS``, then the iteration's wall time and GFLOP;
        two columns per side (``"<side> s"``, ``"<side> share"``).
    """
    rows: dict[str, dict[str, float]] = {label: {} for label in CATEGORY_LABELS.values()}
    rows["iteration (wall)"], rows["GFLOP per iteration"] = {}, {}
    for side, data in _sides(result).items():
        name = SIDE_NAMES[side]
        for category, label in CATEGORY_LABELS.items():
            cell = data[key].get(category, {"seconds": 0.0, "share": 0.0})
            rows[label][f"{name} s"], rows[label][f"{name} share"] = cell["seconds"], cell["share"]
        rows["iteration (wall)"][f"{name} s"] = data["wall_s"]
        rows["iteration (wall)"][f"{name} share"] = 1.0
        rows["GFLOP per iteration"][f"{name} s"] = data["flops_per_iter"] / 1e9
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "category"
    return frame


def profile_text(result: dict[str, Any]) -> str:
    """What the profile says, from its numbers: the convolutions' share per side, the arithmetic of each
    mode against the reference's, and ddlib's own overhead."""
    sides = _sides(result)
    needed = ("ddlib_recompute", "ddlib_graph", "reference")
    if any(s not in sides for s in needed):
        return "The profile is incomplete (a side failed); no reading is given."
    conv = {s: sides[s]["owner_categories"]["convolution"]["share"] for s in needed}
    flops = {s: sides[s]["flops_per_iter"] for s in needed}
    untraced = max(sides[s]["categories"]["untraced"]["share"] for s in ("ddlib_recompute", "ddlib_graph"))
    extra = flops["ddlib_recompute"] / flops["reference"] - 1
    same = abs(flops["ddlib_graph"] / flops["reference"] - 1) < 0.01
    wall = {s: sides[s]["wall_s"] for s in needed}
    target = 0.6 * wall["reference"]
    conv_s = {k: sides[k]["owner_categories"]["convolution"]["seconds"] for k in needed}
    return (f"Convolutions take {conv['ddlib_recompute']:.0%} of ddlib's iteration with recomputation, "
            f"{conv['ddlib_graph']:.0%} in graph mode and {conv['reference']:.0%} of the reference's; both "
            f"sides call the same oneDNN kernels. Graph mode does {'the same' if same else 'different'} "
            f"arithmetic as the reference ({flops['ddlib_graph'] / 1e9:.0f} against "
            f"{flops['reference'] / 1e9:.0f} GFLOP per iteration); recomputation does {extra:.0%} more, since it "
            f"replays every student step's forward and first-order backward. ddlib's own overhead, the Python "
            f"between operators, is at most {untraced:.1%} of an iteration. In this profile's single iterations "
            f"ddlib took {wall['ddlib_recompute'] / wall['reference']:.2f}x (recompute) and "
            f"{wall['ddlib_graph'] / wall['reference']:.2f}x (graph) the reference's time (the side-by-side "
            f"medians above are the measurement of speed; this profile explains it). 0.6x the reference's "
            f"iteration is {target:.1f} s; ddlib's convolutions alone take {conv_s['ddlib_recompute']:.1f} s with "
            f"recomputation, which would leave {target - conv_s['ddlib_recompute']:.1f} s for the rest, now "
            f"{wall['ddlib_recompute'] - conv_s['ddlib_recompute']:.1f} s, and {conv_s['ddlib_graph']:.1f} s in "
            f"graph mode, leaving {target - conv_s['ddlib_graph']:.1f} s against "
            f"{wall['ddlib_graph'] - conv_s['ddlib_graph']:.1f} s. The rest is work both codes share (the "
            "normalisation layers' double backward, the activations' and pooling's backward): it shrinks with "
            "fused kernels, not with less overhead.")


def profile_caption(result: dict[str, Any]) -> str:
    """The table's caption: what was profiled, where, when and from which file."""
    s, m = result["settings"], result["machine"]
    source = result.get("source", {})
    return (f"Where one MTT iteration's time goes: ConvNet-{s['width']}, IPC {s['ipc']}, {s['syn_steps']} "
            f"student steps, {s['threads']} threads, one profiled iteration after a warm-up, each side the "
            f"faster of {s['repeats']} interleaved repeats. Operators are charged to the layer they serve. "
            f"Measured {str(result['date'])[:10]} on {m['cpu_model']} ({m['logical_cpus']} logical CPUs), "
            f"torch {m['torch_version']}"
            + {"this build": "; measured by this build.", "committed": "; the measurement committed with the book."}
            .get(source.get("origin"), "."))
