"""Result records: one JSON line per measured number, with its provenance.

Every number the book shows is a record written by the notebook that measured it:
``paper``, ``experiment`` (the paper's table or figure, e.g. ``"Table 3"``, or a named
extra), ``method``, ``dataset``, ``ipc``, ``arch``, ``seed``, ``metric``, ``value``,
``scale``, ``config`` and ``provenance`` (git SHA, ddlib/torch versions, device, wall
time, peak memory). Appends are atomic: the file is rewritten to a temporary file and
renamed, so a crash leaves either the old or the new file, never half a line.
Published numbers come from ``resources/paper_results.csv`` (a copy of the papers'
results file, keeping its ``source`` column); :func:`side_by_side` puts ours beside them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from .fileio import atomic_write

__all__ = [
    "Record", "collect_provenance", "append_records", "read_records", "paper_results",
    "side_by_side", "Stopwatch", "REQUIRED_FIELDS",
]

REQUIRED_FIELDS = ("paper", "experiment", "method", "dataset", "ipc", "arch", "seed", "metric", "value", "scale")


@dataclasses.dataclass(frozen=True)
class Record:
    """One measured number.

    ``ipc`` is an int, or ``None`` for rows that have none (full data set, storage).
    ``value`` is a float (accuracies in percent, as the papers print them).
    """

    paper: str
    experiment: str
    method: str
    dataset: str
    ipc: int | None
    arch: str
    seed: int
    metric: str
    value: float
    scale: str
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    provenance: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scale not in ("smoke", "mini", "paper"):
            raise ValueError(f"scale={self.scale!r}: expected 'smoke', 'mini' or 'paper'")
        if not isinstance(self.value, (int, float)) or isinstance(self.value, bool):
            raise ValueError(f"value={self.value!r}: expected a number")
        if self.ipc is not None and (not isinstance(self.ipc, int) or self.ipc < 1):
            raise ValueError(f"ipc={self.ipc!r}: expected a positive int or None")
        for name in ("paper", "experiment", "method", "dataset", "arch", "metric"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name}={getattr(self, name)!r}: expected a non-empty string")

    def to_json(self) -> str:
        """One line of JSON (NaN is written as null)."""
        data = dataclasses.asdict(self)
        if isinstance(data["value"], float) and not math.isfinite(data["value"]):
            data["value"] = None
        return json.dumps(data, sort_keys=True, default=str, allow_nan=False)


def _git_sha() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def peak_memory_mb(device: torch.device | str = "cpu") -> float:
    """Peak memory of this process in MB: CUDA allocator peak on GPU, max RSS on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def collect_provenance(device: torch.device | str, wall_time_s: float, **extra: Any) -> dict[str, Any]:
    """Provenance of a measurement: git SHA, versions, device, wall time, peak memory.

    ``thp_mem_alloc_enable`` is the process's ``THP_MEM_ALLOC_ENABLE`` (``"1"`` when PyTorch
    backs large CPU tensors with huge pages, as ``make`` runs the chapters; ``None`` when
    unset): it moves CPU wall times, never values.
    """
    from . import __version__

    device = torch.device(device)
    return {
        "git_sha": _git_sha(),
        "ddlib_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "thp_mem_alloc_enable": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "wall_time_s": round(float(wall_time_s), 3),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }


def append_records(path: str | os.PathLike, records: Iterable[Record]) -> Path:
    """Append records to a ``.jsonl`` file atomically (temporary file + rename).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    if path.suffix != ".jsonl":
        raise ValueError(f"results file {path} must end in .jsonl")
    lines = [r.to_json() + "\n" for r in records]
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else ""
    if old and not old.endswith("\n"):
        raise ValueError(f"{path} ends with a partial line; it was not written by append_records")
    atomic_write(path, (old + "".join(lines)).encode())
    return path


def read_records(paths: str | os.PathLike | Iterable[str | os.PathLike]):
    """Read ``.jsonl`` records (files, or folders searched recursively) into a DataFrame.

    Columns: the record fields, plus ``device``, ``git_sha``, ``wall_time_s`` and
    ``source_file`` lifted out of the provenance for convenience.
    """
    import pandas as pd

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.rglob("*.jsonl")) if p.is_dir() else [p]
    rows = []
    for file in files:
        for number, line in enumerate(file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{file}:{number} is not a JSON record: {err}") from None
            missing = [f for f in REQUIRED_FIELDS if f not in row]
            if missing:
                raise ValueError(f"{file}:{number} lacks fields {missing}")
            row["source_file"] = str(file)
            rows.append(row)
    frame = pd.DataFrame(rows, columns=list(REQUIRED_FIELDS) + ["config", "provenance", "source_file"])
    for key in ("device", "git_sha", "wall_time_s"):
        frame[key] = [p.get(key) if isinstance(p, dict) else None for p in frame["provenance"]]
    frame["value"] = frame["value"].astype(float)
    return frame


def paper_results():
    """The published numbers (one row per table cell) with their ``source`` column.

    ``ipc`` is kept as text (``"all"`` for the full-data-set rows); ``unverified`` marks
    rows whose source is a secondary summary rather than the paper.
    """
    import pandas as pd

    with resources.files("ddlib.resources").joinpath("paper_results.csv").open() as handle:
        frame = pd.read_csv(handle, dtype={"ipc": str})
    frame["unverified"] = frame["source"].str.contains("UNVERIFIED", na=False)
    return frame


def side_by_side(ours, paper: str, experiment: str, by: tuple[str, ...] = ("method", "ipc"),
                 paper_datasets: Iterable[str] | None = None, metric: str = "test_acc"):
    """Our numbers (mean +- std over records) beside the published ones, scale named per row.

    Parameters
    ----------
    ours : pandas.DataFrame
        From :func:`read_records`, already filtered to the rows to show.
    paper, experiment : str
        Which table of :func:`paper_results` to put beside ours (e.g. ``"AST"``, ``"Table 3"``).
    by : tuple of str
        Columns identifying a row (``method`` and ``ipc`` by default).
    paper_datasets : iterable of str, optional
        Published data sets to show as columns (default: all in that table).

    Returns
    -------
    pandas.DataFrame
        One row per ``by`` key: ``ours`` (``"mean +- std"``), ``n``, ``scale``, ``dataset``,
        then one ``paper: <dataset>`` column per published data set ("" where the paper has
        no such cell; UNVERIFIED values are marked).
    """
    import pandas as pd

    ours = ours[ours["metric"] == metric]
    rows = []
    for key, group in ours.groupby(list(by), dropna=False, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        values = group["value"].astype(float)
        rows.append({**dict(zip(by, key)), "ours": f"{values.mean():.1f} ± {values.std(ddof=0):.1f}",
                     "n": len(values), "scale": ", ".join(sorted(group["scale"].unique())),
                     "dataset": ", ".join(sorted(group["dataset"].unique()))})
    table = pd.DataFrame(rows)
    published = paper_results()
    published = published[(published["paper"] == paper) & (published["table"] == experiment)
                           & (published["metric"] == metric)]
    datasets = list(paper_datasets) if paper_datasets is not None else list(dict.fromkeys(published["dataset"]))
    for name in datasets:
        column = []
        for row in rows:
            match = published[(published["dataset"] == name) & (published["method"] == row.get("method"))]
            if "ipc" in by:
                match = match[match["ipc"] == str(row["ipc"])]
            if match.empty:
                column.append("")
                continue
            first = match.iloc[0]
            text = f"{first['value']:.1f}" + (f" ± {first['std']:.1f}" if pd.notna(first["std"]) else "")
            column.append(text + (" (UNVERIFIED)" if first["unverified"] else ""))
        table[f"paper: {name}"] = column
    return table


class Stopwatch:
    """Context manager measuring wall time in seconds (``.seconds``)."""

    def __enter__(self) -> "Stopwatch":
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start
