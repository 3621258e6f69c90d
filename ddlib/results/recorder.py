"""The result recorder of a notebook run, and the claims it records.

One :class:`Recorder` per notebook run writes its own JSON-lines file
``out_dir/runs/<paper>-<run_key>-<started>-<pid>-<token>.partial.jsonl``; :meth:`Recorder.finish`
renames it to ``.jsonl`` (one atomic rename) once the chapter ran to the end. Hence

* a rerun into the same ``out_dir`` never deletes earlier records;
* appends inside a run need no lock, and two concurrent runs cannot interleave;
* a chapter failing midway leaves a ``.partial.jsonl`` that readers skip, so the previous
  complete run stays what the book shows (:func:`ddlib.results.records.read_records`).

``run_key`` hashes the paper, the notebook's parameters (scale, dataset, device, seed, ipcs,
...) and the ddlib source: runs with equal keys are comparable.
:func:`record_claim` records a :class:`~ddlib.results.verdicts.Verdict` (metric ``claim_verdict``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from ddlib.core.config import Config
from ddlib.core.provenance import source_hash
from ddlib.results.records import PARTIAL_SUFFIX, Record, append_records
from ddlib.results.measurement import collect_provenance
from ddlib.results.verdicts import VERDICTS, Verdict

logger = logging.getLogger(__name__)

__all__ = ["Recorder", "record_claim", "claim_text", "claim_anchor", "CLAIM_VERDICTS"]

#: Every verdict wording the chapters and the summary use (d2l: one fixed vocabulary).
CLAIM_VERDICTS = (*VERDICTS, "not run at this scale")
_SCALES = ("smoke", "mini", "paper")
_UNSET = object()


def _plain(values: Mapping[str, Any] | None) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(values or {}), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"params={values!r} must be JSON values (finite numbers, str keys): {err}") from None


def _now() -> str:
    """UTC now as ``YYYYmmddTHHMMSS.ffffffZ`` (sorts as text; see ddlib.results.records.run_started)."""
    ns = time.time_ns()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(ns // 10**9)) + f".{ns // 1000 % 10**6:06d}Z"


class Recorder:
    """Writes every number a notebook prints as a JSON-lines record of this run, with provenance.

    Parameters
    ----------
    out_dir : path
        The notebook's ``out_dir``; the run's file is ``out_dir/runs/<run_id>.partial.jsonl``
        until :meth:`finish`, then ``out_dir/runs/<run_id>.jsonl`` (``.path`` follows).
    paper, scale, dataset : str
        Fixed for the run.
    device : torch.device or str
    params : mapping, optional
        The notebook's other parameters (``ipcs``, ``seed``, ``seeds``, ...; JSON values).
        ``scale``, ``dataset`` and ``device`` are added (a conflicting value raises). ``seed``
        is the run seed (0 when absent), written as every record's ``seed``.

    Attributes
    ----------
    run_key : str
        12 hex digits hashing paper, params and the ddlib source hash.
    run_id : str
        ``<paper>-<run_key>-<started>-<pid>-<token>``: unique per run, the file's stem.
    seed : int
        The run seed.
    """

    def __init__(self, out_dir: str | os.PathLike, paper: str, scale: str, dataset: str,
                 device: torch.device | str, *, params: Mapping[str, Any] | None = None):
        if scale not in _SCALES:
            raise ValueError(f"scale={scale!r}: expected 'smoke', 'mini' or 'paper'")
        self.out_dir = Path(out_dir)
        self.paper, self.scale, self.dataset, self.device = paper, scale, dataset, torch.device(device)
        fixed = {"scale": scale, "dataset": dataset, "device": str(self.device)}
        self.params = _plain(params)
        clash = {k: (self.params[k], v) for k, v in fixed.items() if k in self.params and self.params[k] != v}
        if clash:
            raise ValueError(f"params disagree with the recorder's arguments (params value, argument): {clash}")
        self.params = {"seed": 0, **self.params, **fixed}
        seed = self.params["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"params['seed']={seed!r}: expected the run seed, an int")
        self.seed = seed
        text = json.dumps({"paper": paper, "params": self.params, "ddlib_source": source_hash()}, sort_keys=True)
        self.run_key = hashlib.sha256(text.encode()).hexdigest()[:12]
        stem = "".join(ch if ch.isalnum() else "_" for ch in paper.lower())
        self.run_id = f"{stem}-{self.run_key}-{_now()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.path = self.out_dir / "runs" / f"{self.run_id}{PARTIAL_SUFFIX}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "x"):  # exclusive: a run never appends to another run's file
            pass
        self.finished = False
        self._start = time.perf_counter()
        logger.info("recording this run's results to %s", self.path)

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r}, paper={self.paper!r}, scale={self.scale!r}, dataset={self.dataset!r})"

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:  # a failed run stays partial, so readers keep the previous complete one
            self.finish()

    def _check_open(self) -> None:
        if self.finished:
            raise ValueError(f"run {self.run_id} is finished ({self.path}); start a new Recorder for a new run")

    def add(self, experiment: str, method: str, metric: str, value: float, *, ipc: int | None = None,
            arch: str = "ConvNet", seed: int | None = None, eval_index: int | None = None,
            distill_seed: int | None = None, config: Mapping[str, Any] | Config | None = None,
            wall_time_s: float | None = None, **provenance: Any) -> float:
        """Record one number and return it (so a cell can print what it recorded).

        Parameters
        ----------
        seed : int, optional
            Deprecated; ``None`` (default) records the run seed. The chapters still pass the
            index of an evaluation or an expert's seed here; use ``eval_index`` and
            ``distill_seed`` (or ``config``) instead, so ``seed`` always means the run seed.
        eval_index : int, optional
            Which evaluation network (0-based) of the synthetic set gave ``value``.
        distill_seed : int, optional
            Seed of the distillation replicate that made the synthetic set.
        **provenance
            Extra provenance fields (``expert=k``, ``iteration=i``...).
        """
        self._check_open()
        if isinstance(config, Config):
            config = config.to_dict()
        wall = time.perf_counter() - self._start if wall_time_s is None else wall_time_s
        record = Record(paper=self.paper, experiment=experiment, method=method, dataset=self.dataset, ipc=ipc,
                        arch=arch, seed=self.seed if seed is None else seed, metric=metric, value=float(value),
                        scale=self.scale, config=dict(config or {}),
                        provenance=collect_provenance(self.device, wall, **provenance),
                        eval_index=eval_index, distill_seed=distill_seed)
        self.extend([record])
        return float(value)

    def extend(self, records: Iterable[Record]) -> list[Record]:
        """Append records built elsewhere (one write), stamped with this run's key, id and params.

        Raises
        ------
        ValueError
            A record's paper, scale or dataset differs from the recorder's, or the run is finished.
        """
        self._check_open()
        stamped = []
        for record in records:
            mine = (self.paper, self.scale, self.dataset)
            if (record.paper, record.scale, record.dataset) != mine:
                raise ValueError(f"record of (paper, scale, dataset)={(record.paper, record.scale, record.dataset)} "
                                 f"does not belong to this run of {mine}")
            stamped.append(dataclasses.replace(record, run_key=self.run_key, run_id=self.run_id, params=self.params))
        append_records(self.path, stamped)
        return stamped

    def finish(self) -> Path:
        """Mark the run complete: rename ``*.partial.jsonl`` to ``*.jsonl`` (atomic). Idempotent.

        Returns
        -------
        Path
            The complete run's file (also ``self.path`` from now on).
        """
        if not self.finished:
            final = self.path.with_name(self.path.name[: -len(PARTIAL_SUFFIX)] + ".jsonl")
            os.replace(self.path, final)
            self.path, self.finished = final, True
            logger.info("run complete: results in %s", final)
        return self.path


def claim_text(holds: bool | str | None) -> str:
    """Verdict wording used in every chapter and the reproduction summary.

    ``True`` / ``False`` / ``None`` (legacy bare comparisons) give "holds" / "does not hold" /
    "not run at this scale"; a string must be one of :data:`CLAIM_VERDICTS` and is returned.
    """
    if isinstance(holds, str):
        if holds not in CLAIM_VERDICTS:
            raise ValueError(f"verdict {holds!r}: expected one of {CLAIM_VERDICTS}")
        return holds
    if holds is not None and not isinstance(holds, bool):
        raise ValueError(f"holds={holds!r}: expected True, False, None or one of {CLAIM_VERDICTS}")
    return {True: "holds", False: "does not hold", None: "not run at this scale"}[holds]


def claim_anchor(paper: str, experiment: str, claim: str) -> str:
    """HTML id of a claim's verdict, so the reproduction summary can link to the cell."""
    text = f"claim-{paper}-{experiment}-{claim}".lower()
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")[:120]


def record_claim(recorder: Recorder, experiment: str, verdict: Verdict | str, holds: Any = _UNSET, *,
                 ours: str = "", paper: str, ipc: int | None = None) -> str:
    """Record a verdict on a paper's claim and return the chapter's sentence about it.

    ``record_claim(recorder, experiment, verdict, ours=..., paper=...)`` with a
    :class:`~ddlib.results.verdicts.Verdict` records metric ``claim_verdict`` (value: the effect;
    config: the verdict, effect, interval, n, level, method, ...).

    The legacy form ``record_claim(recorder, experiment, claim, holds, ...)`` with a bool
    ``holds`` (``None``: not run at this scale) records metric ``claim_holds`` (1.0 / 0.0 / NaN):
    a bare comparison of two means without an interval, marked as such in the sentence and
    the summary. It is kept only until the chapters switch to verdicts.

    ``ours`` and ``paper`` are short texts with the numbers compared (from records and the
    results file, never typed in). The sentence starts with an HTML anchor that the
    reproduction summary links to.
    """
    page = recorder.out_dir.name
    where = f"This run ({recorder.scale} scale, {recorder.dataset})"
    if isinstance(verdict, Verdict):
        if holds is not _UNSET:
            raise ValueError(f"holds={holds!r} given with a Verdict: the Verdict already decides")
        anchor = claim_anchor(recorder.paper, experiment, verdict.claim)
        recorder.add(experiment, f"claim: {verdict.claim}", "claim_verdict", verdict.effect, ipc=ipc,
                     config={**verdict.to_dict(), "ours": ours, "paper": paper, "anchor": anchor, "page": page})
        text = (f'<a id="{anchor}"></a>**{experiment}, claim: {verdict.claim}.** Paper: {paper}. {where}: '
                + (f"{ours}; " if ours else "") + verdict.sentence() + ".")
        needed = verdict.required_n() if verdict.verdict == VERDICTS[2] else None
        if needed is not None and needed > verdict.n:
            text += (f" At this effect and spread, about {needed} {verdict.n_unit} would be needed for the "
                     "interval to exclude zero.")
        return text
    if not isinstance(verdict, str) or holds is _UNSET:
        raise ValueError(f"record_claim(recorder, experiment, {verdict!r}, ...): expected a Verdict, "
                         "or the legacy (claim: str, holds: bool) pair")
    claim, word = verdict, claim_text(None if holds is None else bool(holds))  # numpy bools too
    anchor = claim_anchor(recorder.paper, experiment, claim)
    recorder.add(experiment, f"claim: {claim}", "claim_holds", float("nan") if holds is None else float(holds),
                 ipc=ipc, config={"claim": claim, "ours": ours, "paper": paper, "anchor": anchor, "page": page})
    return (f'<a id="{anchor}"></a>**{experiment}, claim: {claim}.** Paper: {paper}. {where}: {ours}. '
            f"Direction {word} at this scale (a bare comparison of two means, no interval).")
