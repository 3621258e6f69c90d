"""One call that sets a chapter up: settings, device, data and the recorder its results go to.

Every chapter notebook starts the same way: check its parameters
(:func:`~ddlib.chapters.notebook_params.chapter_params`), apply the chapter's own scale
overrides, pin the CPU to one thread, load the scale's data set and open a
:class:`~ddlib.results.recorder.Recorder`. :func:`start_chapter` does these steps in that order,
so a chapter's first code cell is one line and the steps cannot drift apart between chapters.

Examples
--------
>>> params = chapter_params("smoke", device="cpu", out_dir=tmp / "out", artifacts_dir=tmp / "art")
>>> run = start_chapter("MCT", params)  # doctest: +SKIP
>>> run.data.name, run.settings.ipcs, run.seeds  # doctest: +SKIP
('mnist5k', (1,), (0,))
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ddlib.chapters.notebook_params import ChapterParams
from ddlib.chapters.scales import ScaleSettings, load_scaled_dataset
from ddlib.data import ImageDataset
from ddlib.results.recorder import Recorder

__all__ = ["ChapterRun", "start_chapter"]


@dataclasses.dataclass(frozen=True)
class ChapterRun:
    """What a chapter's cells share once it has started.

    Attributes
    ----------
    params : ChapterParams
        The checked notebook parameters.
    settings : ScaleSettings
        The scale's preset with the run's data set, IPCs and the chapter's overrides.
    data : ImageDataset
        The scale's data set on ``params.device``.
    recorder : Recorder
        Where this run's results are written (one new file per run).
    """

    params: ChapterParams
    settings: ScaleSettings
    data: ImageDataset
    recorder: Recorder

    @property
    def device(self) -> torch.device:
        """The resolved device of every computation."""
        return self.params.device

    @property
    def seeds(self) -> tuple[int, ...]:
        """The distillation seeds of this scale."""
        return tuple(self.settings.seeds)

    @property
    def ipcs(self) -> tuple[int, ...]:
        """The images-per-class settings this run distils at."""
        return tuple(self.settings.ipcs)


def start_chapter(method: str, params: ChapterParams, *, single_thread: bool = True,
                  record_params: dict[str, Any] | None = None, **overrides: Any) -> ChapterRun:
    """Set a chapter up: its settings, one CPU thread, the data set and a recorder.

    Parameters
    ----------
    method : str
        The chapter's name in the result records (``"AST"``, ``"MCT"``, ...).
    params : ChapterParams
        From :func:`~ddlib.chapters.notebook_params.chapter_params`.
    single_thread : bool
        On a CPU, run torch on one thread (the default). The networks of the small scales gain
        little from a second thread, and experts shared between chapters are then bit-identical
        whichever chapter trains them first (thread count changes the order of float sums).
    record_params : dict, optional
        Extra values stored with the run's records, beside the scale, data set, IPCs, seeds and
        device.
    **overrides
        :class:`~ddlib.chapters.scales.ScaleSettings` fields the chapter sets at this scale (e.g.
        ``num_eval=3``); the notebook's own ``dataset`` and ``ipcs`` take precedence.

    Returns
    -------
    ChapterRun

    Raises
    ------
    ValueError
        If ``method`` is empty or an override is not a settings field (before any data is loaded).
    """
    if not isinstance(method, str) or not method.strip():
        raise ValueError(f"method={method!r}: expected the chapter's method name, e.g. 'MCT'")
    settings = params.settings(**overrides)
    if params.device.type == "cpu" and single_thread:
        torch.set_num_threads(1)
    data = load_scaled_dataset(settings, params.data_root, params.device)
    stored = {"scale": params.scale, "dataset": data.name, "ipcs": list(settings.ipcs), "seed": params.seed,
              "device": str(params.device), "seeds": list(settings.seeds),
              **({"dry_run": True} if params.dry_run else {}), **(record_params or {})}
    recorder = Recorder(params.out_dir, method, params.scale, data.name, params.device, params=stored)
    return ChapterRun(params=params, settings=settings, data=data, recorder=recorder)
