"""The parameters every chapter notebook takes, checked once before any compute starts.

papermill injects parameters as they were typed: ``-p ipcs 1,10`` arrives as the string
``"1,10"``, ``-p ipcs 0`` as the int ``0`` and ``-y "ipcs: [1, 10]"`` as a list. A chapter
passes its parameters cell to :func:`chapter_params`, which normalises them and raises a
``ValueError`` naming the bad value and what was expected, so a typo fails in the first cell
instead of as a bare ``KeyError`` (or a silent default) minutes later.

Examples
--------
>>> params = chapter_params(scale="smoke", ipcs="1,2", device="cpu", out_dir="results/x")
>>> params.ipcs, params.settings().ipcs
((1, 2), (1, 2))
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from ddlib.data import canonical_name
from ddlib.chapters.dry_run import dry_run_overrides
from ddlib.chapters.scales import SCALES, ScaleSettings, scale_settings
from ddlib.core.runtime import resolve_device

__all__ = ["ChapterParams", "chapter_params", "parse_ipcs", "show_library_messages", "show_markdown"]


def parse_ipcs(value: Any) -> tuple[int, ...]:
    """Images per class as papermill may pass them, as a tuple of positive ints (``()``: the scale's).

    Parameters
    ----------
    value : list, tuple, int or str
        ``[1, 10]``, ``(1, 10)``, ``10``, ``"1,10"``, ``"[1, 10]"`` or ``""``/``[]`` (the scale's).

    Raises
    ------
    ValueError
        For anything else, a non-positive or non-integer entry, or a repeated one.
    """
    expected = "expected positive ints as a list ([1, 10]), an int (10) or a comma string ('1,10'); empty: the scale's"
    if isinstance(value, str):
        text = value.strip().strip("[]()")
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            items = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"ipcs={value!r}: {expected}") from None
    elif isinstance(value, bool):
        raise ValueError(f"ipcs={value!r}: {expected}")
    elif isinstance(value, int):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"ipcs={value!r}: {expected}")
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in items):
        raise ValueError(f"ipcs={value!r}: {expected}")
    if len(set(items)) != len(items):
        raise ValueError(f"ipcs={value!r}: each images-per-class setting once, expected distinct values")
    return tuple(items)


@dataclasses.dataclass(frozen=True)
class ChapterParams:
    """A chapter's checked parameters.

    Attributes
    ----------
    scale : {"smoke", "mini", "paper"}
    dataset : str
        The canonical data set name, or ``""`` for the scale's.
    ipcs : tuple of int
        Images-per-class settings, or ``()`` for the scale's.
    seed : int
        The run seed (>= 0).
    device : torch.device
    data_root : str
    out_dir, artifacts_dir : Path
        Created and checked writable.
    dry_run : bool
        Paper shapes with minimal counts (:mod:`~ddlib.chapters.dry_run`); only with ``scale="paper"``.
    """

    scale: str
    dataset: str
    ipcs: tuple[int, ...]
    seed: int
    device: torch.device
    data_root: str
    out_dir: Path
    artifacts_dir: Path
    dry_run: bool = False

    def scale_overrides(self) -> dict[str, Any]:
        """The :class:`~ddlib.chapters.scales.ScaleSettings` fields these parameters change."""
        return {**({"dataset": self.dataset} if self.dataset else {}), **({"ipcs": self.ipcs} if self.ipcs else {})}

    def settings(self, **overrides: Any) -> ScaleSettings:
        """The scale's settings with ``overrides`` (a chapter's own), this run's data set and IPCs, and, in a
        dry run, the dry run's counts last (:func:`~ddlib.chapters.dry_run.dry_run_overrides`)."""
        settings = scale_settings(self.scale, **{**overrides, **self.scale_overrides()})
        if not self.dry_run:
            return settings
        return settings.replace(**dry_run_overrides(settings.dataset, settings.ipcs))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (strings for the device and paths), for records and provenance."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple)
                         else str(v) if isinstance(v, (Path, torch.device)) else v)
                for f in dataclasses.fields(self)}


class _NotebookHandler(logging.StreamHandler):
    """The handler :func:`show_library_messages` attaches: it writes to whatever ``sys.stdout`` is
    at the time of the message (the notebook's current cell), and marks itself so a second call adds none."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the current stdout always wins
        pass


def show_library_messages(level: int = logging.INFO) -> None:
    """Print ddlib's messages at ``level`` and above (where results go, a run resumed from its
    checkpoint, stale files removed) to the notebook's output, one line each. Idempotent.

    A notebook (the application) calls this; the library itself never configures logging.
    """
    library = logging.getLogger("ddlib")
    handler = next((h for h in library.handlers if isinstance(h, _NotebookHandler)), None)
    if handler is None:
        handler = _NotebookHandler()
        handler.setFormatter(logging.Formatter("[ddlib] %(message)s"))
        library.addHandler(handler)
    handler.setLevel(level)
    library.setLevel(min(level, library.level or logging.WARNING))


def _writable_dir(name: str, value: Any) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"{name}={value!r}: expected a folder path")
    path = Path(value)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as error:
        raise ValueError(f"{name}={str(value)!r}: the folder cannot be created or written ({error.strerror}); "
                         "choose a writable folder") from error
    return path


def chapter_params(scale: Any = "mini", *, dataset: Any = "", ipcs: Any = (), seed: Any = 0, device: Any = "auto",
                   data_root: Any = "", out_dir: Any = "results", artifacts_dir: Any = "artifacts",
                   messages: bool = True, dry_run: Any = False) -> ChapterParams:
    """Check and normalise a chapter's parameters cell (every check before any compute).

    With ``messages`` (the default) it also shows ddlib's progress messages in the notebook
    (:func:`show_library_messages`): where this run's results go, and runs resumed from a checkpoint.

    Parameters
    ----------
    scale : {"smoke", "mini", "paper"}
    dataset : str
        ``""`` (the scale's) or a registered data set name (see :func:`~ddlib.data.load_dataset`).
    ipcs : list, int or str
        See :func:`parse_ipcs`.
    seed : int
        Non-negative.
    device : {"auto", "cpu", "cuda", "cuda:N"}
    data_root : str
        Folder holding the real data sets (``""``: none; the embedded ones need none).
    out_dir, artifacts_dir : str
        Created if missing; must be writable.
    messages : bool
        Show ddlib's INFO messages in the notebook (:func:`show_library_messages`).
    dry_run : bool
        Only with ``scale="paper"``: keep every paper shape and setting, cut the counts to the
        minimum (:mod:`~ddlib.chapters.dry_run`), to prove a paper run works before it is paid for.

    Raises
    ------
    ValueError
        Naming the first bad value and what was expected.
    """
    if not isinstance(scale, str) or scale not in SCALES:
        raise ValueError(f"scale={scale!r}: expected one of {', '.join(SCALES)}")
    if not isinstance(dataset, str):
        raise ValueError(f"dataset={dataset!r}: expected a data set name or '' for the scale's")
    if not isinstance(dry_run, bool):
        raise ValueError(f"dry_run={dry_run!r}: expected True or False")
    if dry_run and scale != "paper":
        raise ValueError(f"dry_run=True with scale={scale!r}: a dry run keeps the paper's shapes; expected "
                         "scale='paper'")
    dataset = canonical_name(dataset) if dataset else ""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected an int >= 0")
    if not isinstance(data_root, (str, os.PathLike)):
        raise ValueError(f"data_root={data_root!r}: expected a folder path or ''")
    if str(data_root) and not Path(data_root).is_dir():
        raise ValueError(f"data_root={str(data_root)!r}: no such folder; expected the folder holding the data sets")
    params = ChapterParams(scale=scale, dataset=dataset, ipcs=parse_ipcs(ipcs), seed=seed,
                           device=resolve_device(device), data_root=str(data_root),
                           out_dir=_writable_dir("out_dir", out_dir),
                           artifacts_dir=_writable_dir("artifacts_dir", artifacts_dir), dry_run=dry_run)
    if messages:
        show_library_messages()
    return params


def show_markdown(text: str) -> None:
    """Display ``text`` as Markdown in the notebook (a claim's recorded sentence, a computed paragraph)."""
    from IPython.display import Markdown, display  # imported here: only notebooks need IPython

    display(Markdown(text))
