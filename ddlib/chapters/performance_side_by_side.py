"""The Performance chapter's comparison with the public reference code: ratios measured side by side only.

``benchmarks/side_by_side.py`` (``make bench REF_MTT=... REF_DM=...``) runs the public MTT and
DM code and ddlib's case at the same shapes, interleaved in one invocation (reference, ddlib,
reference, ddlib, ...), and writes per case the ratios ddlib / reference of seconds per
iteration and peak memory as ``{median, min, max, n}`` over the repeats. A ratio of two runs
on different machines, or on one machine at different times, says little, so the page shows
ratios only from such a file: this build's (``benchmarks/results/side_by_side.json``), else
the committed measurement (``benchmarks/measured/side_by_side.json``), else none.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from ddlib.core.fileio import read_json

__all__ = ["SIDE_BY_SIDE_FILES", "RATIO_KINDS", "MAKE_COMMAND", "SideBySide", "load_side_by_side",
           "side_by_side_text", "ratio_text", "side_by_side_table", "side_by_side_caption", "targets_frame"]

#: Where a side-by-side measurement is looked for, first match wins: (path under the repository, origin).
SIDE_BY_SIDE_FILES = (("benchmarks/results/side_by_side.json", "this build's measurement"),
                      ("benchmarks/measured/side_by_side.json", "the committed measurement"))
#: Target kinds of ``benchmarks/reference.json`` judged from the side-by-side medians.
RATIO_KINDS = ("time_ratio", "memory_ratio")
#: How a reader makes a side-by-side measurement (extracted checkouts of the two public repositories).
MAKE_COMMAND = ("make bench REF_MTT=<checkout of GeorgeCazenavette/mtt-distillation> "
                "REF_DM=<checkout of VICO-UoE/DatasetCondensation>")


@dataclasses.dataclass(frozen=True)
class SideBySide:
    """One side-by-side measurement file and where it came from.

    Attributes
    ----------
    path : Path
        The file read.
    origin : str
        ``"this build's measurement"`` or ``"the committed measurement"`` (:data:`SIDE_BY_SIDE_FILES`).
    data : dict
        Its contents: ``date``, ``machine``, ``repeats``, ``size``, ``settings`` and ``cases``
        (each ``time_ratio``/``memory_ratio`` ``{median, min, max, n}`` or ``None``).
    """

    path: Path
    origin: str
    data: dict

    def ratio(self, case: str, kind: str) -> Mapping[str, float] | None:
        """``{median, min, max, n}`` of ``kind`` (``"time_ratio"``/``"memory_ratio"``) of ``case``; None if absent."""
        if kind not in RATIO_KINDS:
            raise ValueError(f"kind={kind!r}: expected one of {RATIO_KINDS}")
        return (self.data.get("cases", {}).get(case) or {}).get(kind)


def load_side_by_side(root: str | Path) -> SideBySide | None:
    """The side-by-side measurement the page shows: this build's, else the committed one, else ``None``.

    Parameters
    ----------
    root : str or Path
        The repository (holds ``benchmarks/``).

    Raises
    ------
    ValueError
        The file found is empty or damaged (:func:`~ddlib.core.fileio.read_json`), or is not a
        side-by-side measurement (no ``cases``).
    """
    for relative, origin in SIDE_BY_SIDE_FILES:
        path = Path(root) / relative
        if path.exists():
            data = read_json(path, "side-by-side measurement", fix=f"rerun {MAKE_COMMAND}")
            if not isinstance(data.get("cases"), dict):
                raise ValueError(f"{path}: expected a side-by-side measurement with 'cases' (benchmarks/"
                                 f"side_by_side.py); found keys {sorted(data)}")
            return SideBySide(path=path, origin=origin, data=data)
    return None


def side_by_side_text(sbs: SideBySide | None) -> str:
    """Markdown naming the measurement shown (origin, date, machine, repeats), or how to make one."""
    if sbs is None:
        return ("**No side-by-side measurement was made**, so no ratio to the reference code is shown "
                "and the targets against it are not judged. To measure, run `" + MAKE_COMMAND + "`; it "
                "writes `benchmarks/results/side_by_side.json`, which this page then reads.")
    data, machine = sbs.data, sbs.data.get("machine", {})
    settings = data.get("settings", {})
    return (f"Ratios from {sbs.origin} (`{'/'.join(sbs.path.parts[-3:])}`, {data.get('date', 'undated')}): "
            f"{machine.get('cpu_model', 'unknown CPU')}, {machine.get('threads', '?')} threads on "
            f"{machine.get('logical_cpus', '?')} logical CPUs, torch {machine.get('torch_version', '?')}, huge "
            f"pages {settings.get('huge_pages', machine.get('huge_pages', '?'))} for both sides, "
            f"{data.get('repeats', '?')} repeats of (reference, ddlib) run back to back, ddlib at size "
            f"{data.get('size', '?')}.")


def ratio_text(spread: Mapping[str, float] | None) -> str:
    """``"0.52 [0.49-0.55]"``: median [min-max] of a ratio over the repeats; ``"-"`` when not measured."""
    if not spread:
        return "-"
    return f"{spread['median']:.2f} [{spread['min']:.2f}-{spread['max']:.2f}]"


def side_by_side_table(sbs: SideBySide):
    """One row per measured case: time and memory ratios (median [min-max]), repeats, and both medians.

    Returns
    -------
    pandas.DataFrame
        Indexed by case: ``time ddlib / ref``, ``memory ddlib / ref`` (text), ``n`` (paired repeats
        that both ran), ``ref s/iter`` and ``ddlib s/iter`` (medians over the repeats; NaN if none).
    """
    import pandas as pd

    rows = []
    for case, entry in sbs.data["cases"].items():
        time, memory = entry.get("time_ratio"), entry.get("memory_ratio")
        ref, ours = entry.get("reference_s_per_iter") or {}, entry.get("ddlib_s_per_iter") or {}
        rows.append({"case": case, "time ddlib / ref": ratio_text(time), "memory ddlib / ref": ratio_text(memory),
                     "n": (time or {}).get("n", 0), "ref s/iter": ref.get("median"),
                     "ddlib s/iter": ours.get("median")})
    columns = ["case", "time ddlib / ref", "memory ddlib / ref", "n", "ref s/iter", "ddlib s/iter"]
    return pd.DataFrame(rows, columns=columns).set_index("case")


def side_by_side_caption(sbs: SideBySide) -> str:
    """The caption of :func:`side_by_side_table`."""
    return (f"*Table: ddlib over the public reference code, measured side by side ({sbs.origin}, "
            f"{sbs.data.get('date', 'undated')}): median [min-max] over the n repeats of one reference run "
            f"followed by one ddlib run, each in a fresh process; below 1 is better. Peak memory is each "
            f"process's maximum resident set size. \"-\": no repeat in which both sides ran.*")


def _verdict(value: float | None, op: str, threshold: float) -> str:
    if value is None:
        return "not measured"
    return "met" if (value <= threshold if op == "<=" else value >= threshold) else "not met"


def targets_frame(bench: Mapping[str, Any], reference: Mapping[str, Any], sbs: SideBySide | None):
    """Every target of ``reference.json`` with its value and verdict.

    Targets that compare ddlib with itself come from the benchmark file (``bench["targets"]``,
    judged by ``benchmarks/run.py``); the targets against the reference code (:data:`RATIO_KINDS`)
    are judged here, one row per case, from the side-by-side median, and read "not measured"
    without a measurement of the case. A ratio target found in ``bench["targets"]`` (written by an
    older ``run.py`` from figures measured elsewhere) is dropped.

    Returns
    -------
    pandas.DataFrame
        Columns ``text, cases, value, range, op, threshold, verdict``; ``range`` is the
        side-by-side ``[min-max]`` (``""`` for the others); verdict ``"met"``, ``"not met"``,
        ``"n/a"`` (no verdict from the benchmark file) or ``"not measured"``.
    """
    import pandas as pd

    ratio_ids = {t["id"] for t in reference["targets"] if t["kind"] in RATIO_KINDS}
    rows = [{"text": t["text"], "cases": t["cases"], "value": t["value"], "range": "", "op": t["op"],
             "threshold": t["threshold"], "verdict": {True: "met", False: "not met"}.get(t["met"], "n/a")}
            for t in bench.get("targets", []) if t.get("id") not in ratio_ids]
    for target in reference["targets"]:
        if target["kind"] not in RATIO_KINDS:
            continue
        for case in target["cases"]:
            spread = sbs.ratio(case, target["kind"]) if sbs is not None else None
            value = spread["median"] if spread else None
            rows.append({"text": target["text"], "cases": case, "value": value,
                         "range": f"[{spread['min']:.2f}-{spread['max']:.2f}]" if spread else "",
                         "op": target["op"], "threshold": target["threshold"],
                         "verdict": _verdict(value, target["op"], target["threshold"])})
    return pd.DataFrame(rows, columns=["text", "cases", "value", "range", "op", "threshold", "verdict"])
