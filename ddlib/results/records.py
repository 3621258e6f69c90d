"""Result records: one JSON line per measured number, with its provenance.

Every number the book shows is a record written by the notebook that measured it:
``paper``, ``experiment`` (the paper's table or figure, e.g. ``"Table 3"``, or a named
extra), ``method``, ``dataset``, ``ipc``, ``arch``, ``seed``, ``metric``, ``value``,
``scale``, ``config`` and ``provenance`` (git SHA, ddlib/torch versions, device, wall
time, peak memory; :mod:`ddlib.results.measurement`). Appends are atomic: the file is rewritten to a temporary file and
renamed, so a crash leaves either the old or the new file, never half a line.

A notebook run writes its own file (:class:`ddlib.results.recorder.Recorder`:
``out_dir/runs/<paper>-<run_key>-<started>-<pid>-<token>.jsonl``, named ``*.partial.jsonl``
until the run finishes), so reruns never overwrite earlier records and concurrent runs
never share a file. :func:`read_records` on a folder reads, per (paper, scale, dataset),
the newest complete run only, so one table or verdict never mixes two runs.
Published numbers come from ``resources/paper_results.csv`` (a copy of the papers'
results file, keeping its ``source`` column); :func:`side_by_side` puts ours beside them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import operator
import os
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from ddlib.core.fileio import atomic_write

__all__ = [
    "Record", "append_records", "read_records", "paper_results",
    "side_by_side", "Stopwatch", "REQUIRED_FIELDS", "RUN_FIELDS", "PARTIAL_SUFFIX", "run_started", "paired_samples",
]

REQUIRED_FIELDS = ("paper", "experiment", "method", "dataset", "ipc", "arch", "seed", "metric", "value", "scale")
# Written by a Recorder since runs got their own files; absent (defaults) in older files.
RUN_FIELDS = ("run_key", "run_id", "eval_index", "distill_seed", "params")
PARTIAL_SUFFIX = ".partial.jsonl"
# <started>-<pid>-<token> at the end of a run file's name (see ddlib.results.recorder.Recorder).
_RUN_NAME = re.compile(r"-(\d{8}T\d{6}\.\d{6}Z)-\d+-[0-9a-f]+(?:\.partial)?\.jsonl$")


@dataclasses.dataclass(frozen=True)
class Record:
    """One measured number.

    ``ipc`` is an int, or ``None`` for rows that have none (full data set, storage).
    ``value`` is a float (accuracies in percent, as the papers print them).
    ``seed`` is the run seed (the notebook's ``seed`` parameter) for records written with
    the run fields; ``distill_seed`` (the seed of the distillation replicate) and
    ``eval_index`` (the evaluation network) tell apart the samples of one run.
    ``run_key`` hashes the run's parameters and the ddlib source (equal keys: comparable
    runs), ``run_id`` names the run (its file), ``params`` are the notebook's parameters.
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
    run_key: str = ""
    run_id: str = ""
    eval_index: int | None = None
    distill_seed: int | None = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

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
        for name in ("seed", "eval_index", "distill_seed"):
            value = getattr(self, name)
            if value is None and name != "seed":
                continue
            try:  # numpy and torch integers are fine; 1.5, "1" and True are not
                if isinstance(value, bool):
                    raise TypeError
                object.__setattr__(self, name, operator.index(value))
            except TypeError:
                raise ValueError(f"{name}={value!r}: expected an int"
                                 + ("" if name == "seed" else " or None")) from None
        if self.eval_index is not None and self.eval_index < 0:
            raise ValueError(f"eval_index={self.eval_index}: expected >= 0")

    def to_json(self) -> str:
        """One line of JSON (NaN is written as null)."""
        data = dataclasses.asdict(self)
        if isinstance(data["value"], float) and not math.isfinite(data["value"]):
            data["value"] = None
        return json.dumps(data, sort_keys=True, default=str, allow_nan=False)


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


def run_started(path: str | os.PathLike) -> str:
    """When the run that wrote ``path`` started, as ``YYYYmmddTHHMMSS.ffffffZ`` (UTC; sorts as text).

    Taken from the name of a :class:`~ddlib.results.recorder.Recorder` run file; for other files
    (written before runs had their own files) the file's modification time.
    """
    match = _RUN_NAME.search(Path(path).name)
    if match:
        return match.group(1)
    mtime = Path(path).stat().st_mtime
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(mtime)) + f".{int(mtime % 1 * 1e6):06d}Z"


def _read_file(file: Path) -> list[dict[str, Any]]:
    rows = []
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
        rows.append({"run_key": "", "run_id": "", "eval_index": None, "distill_seed": None, "params": {}, **row,
                     "source_file": str(file)})
    return rows


def read_records(paths: str | os.PathLike | Iterable[str | os.PathLike], *, runs: str = "newest",
                 partial: bool = False):
    """Read ``.jsonl`` records (files, or folders searched recursively) into a DataFrame.

    Parameters
    ----------
    paths : path or iterable of paths
        Files, always read whole (also a run still in progress, so a notebook can read back
        its own ``recorder.path``), or folders, searched recursively for ``*.jsonl``.
    runs : {"newest", "all"}
        Which of the runs found in folders to keep. ``"newest"``: per (paper, scale,
        dataset), only the records of the newest run (the file whose run started last;
        see :func:`run_started`), so two runs are never mixed. ``"all"``: every run (tell
        them apart by ``run_id`` or ``source_file``; equal ``run_key`` = same parameters
        and library source, so comparable).
    partial : bool
        Also consider runs found in folders that have not finished (``*.partial.jsonl``: still
        running, or failed midway). By default only complete runs count, so a chapter that
        fails leaves the previous complete run in place.

    Returns
    -------
    pandas.DataFrame
        The record fields (older files get the defaults of the run fields), plus
        ``source_file``, ``run_started`` and ``device``, ``git_sha``, ``wall_time_s`` lifted
        out of the provenance.
    """
    import pandas as pd

    if runs not in ("newest", "all"):
        raise ValueError(f"runs={runs!r}: expected 'newest' or 'all'")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[tuple[Path, bool]] = []  # (file, named explicitly)
    for p in map(Path, paths):
        if p.is_dir():
            files += [(f, False) for f in sorted(p.rglob("*.jsonl"))
                      if partial or not f.name.endswith(PARTIAL_SUFFIX)]
        else:
            files.append((p, True))
    rows = []
    for file, explicit in files:
        started = run_started(file)
        rows += [{**row, "run_started": started, "_explicit": explicit} for row in _read_file(file)]
    columns = list(REQUIRED_FIELDS) + list(RUN_FIELDS) + ["config", "provenance", "source_file", "run_started"]
    frame = pd.DataFrame(rows, columns=columns + ["_explicit"])
    if runs == "newest" and len(frame):
        keys = ["paper", "scale", "dataset"]
        candidates = frame[~frame["_explicit"].astype(bool)][keys + ["run_started", "source_file"]].drop_duplicates()
        newest = candidates.sort_values(["run_started", "source_file"]).groupby(keys).tail(1)
        keep = set(newest[keys + ["source_file"]].itertuples(index=False, name=None))
        chosen = [bool(e) or (p, s, d, f) in keep for e, p, s, d, f in
                  zip(frame["_explicit"], frame["paper"], frame["scale"], frame["dataset"], frame["source_file"])]
        frame = frame[chosen].reset_index(drop=True)
    frame = frame[columns]
    for key in ("device", "git_sha", "wall_time_s"):
        frame[key] = [p.get(key) if isinstance(p, dict) else None for p in frame["provenance"]]
    frame["value"] = frame["value"].astype(float)
    for key in ("eval_index", "distill_seed"):
        frame[key] = frame[key].astype("Int64")
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


def paired_samples(records: Any, a: str, b: str, *, by: str = "method",
                   keys: Iterable[str] = ("distill_seed",), average: str | None = "eval_index",
                   value: str = "value"):
    """Pair the records of ``a`` and ``b`` (values of column ``by``) on ``keys``.

    The default pairs at the level of the distillation seed, averaging the evaluation
    networks of each synthetic set first: networks trained on one set share that set, so they
    are not independent units and would make an interval too narrow. ``average=None`` with
    ``keys=("distill_seed", "eval_index")`` pairs every network instead.

    Parameters
    ----------
    records : pandas.DataFrame
        Records of ONE run (e.g. :func:`read_records` of a run file), already filtered
        to one experiment, metric and IPC.
    keys : iterable of str
        Columns identifying a pair (default: the distillation seed).
    average : str or None
        Column whose records are averaged within a pair (default: the evaluation network);
        both sides must hold the same number of them per pair.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``a`` and ``b`` values, shape (n,), aligned by ``keys`` (sorted by them).

    Raises
    ------
    ValueError
        The records come from several runs (``run_id``), a key appears twice for one side
        (without ``average``), the averaged groups differ in size, or a key is found on only
        one side (naming the keys).
    """
    import numpy as np

    if "run_id" in records and records["run_id"].nunique() > 1:  # one verdict never mixes two runs
        raise ValueError(f"records come from {records['run_id'].nunique()} runs "
                         f"{sorted(records['run_id'].unique())[:2]}...: pair the records of one run")
    keys = list(keys)
    sides, sizes = {}, {}
    for name in (a, b):
        rows = records[records[by] == name]
        if average is None:
            duplicated = rows.duplicated(keys)
            if duplicated.any():
                raise ValueError(f"{by}={name!r} has several records for {keys}="
                                 f"{tuple(rows[duplicated].iloc[0][keys])}: expected one per pair")
        elif rows.duplicated(keys + [average]).any():
            raise ValueError(f"{by}={name!r} has several records for one {keys + [average]}: expected one each")
        groups = rows.groupby(keys, sort=False)[value]
        sides[name] = {(k if isinstance(k, tuple) else (k,)): float(v) for k, v in groups.mean().items()}
        sizes[name] = {(k if isinstance(k, tuple) else (k,)): int(v) for k, v in groups.size().items()}
    only = set(sides[a]) ^ set(sides[b])
    if only:
        raise ValueError(f"{keys} {sorted(only, key=str)[:3]} found for only one of {a!r}, {b!r}: "
                         "pairs need both methods evaluated with the same seed and network")
    uneven = [k for k in sides[a] if sizes[a][k] != sizes[b][k]]
    if uneven:
        raise ValueError(f"{keys}={uneven[0]}: {sizes[a][uneven[0]]} {average} records of {a!r} against "
                         f"{sizes[b][uneven[0]]} of {b!r}; pairs need the same evaluation networks on both sides")
    order = sorted(sides[a], key=str)
    return (np.array([sides[a][k] for k in order], dtype=np.float64),
            np.array([sides[b][k] for k in order], dtype=np.float64))


class Stopwatch:
    """Context manager measuring wall time in seconds (``.seconds``)."""

    def __enter__(self) -> "Stopwatch":
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start
