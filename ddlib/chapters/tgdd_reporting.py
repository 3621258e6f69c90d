"""The TGDD chapter's verdicts and tables, from the records of one run (Ran et al., AAAI 2026).

The runs themselves are in :mod:`ddlib.chapters.tgdd_experiments`. Every verdict here is over
distillation seeds (the independent units; a seed's evaluation networks are averaged first):

* :func:`ratio_verdict`: Figure 1's "A needs less time (memory) than B", on per-seed ratios;
* :func:`judge` (paired: "A beats B"), :func:`judge_ratio` and :func:`ablation_claims` (the
  ablation's "each added component raises the accuracy", one paired verdict per step) record
  a verdict and return the chapter's sentence; :func:`main_table_claims` records the main
  table's; :func:`versus_text` gives both sides' per-seed means for them;
* :func:`accuracy_table`: our best and last accuracies beside the paper's numbers;
* :func:`paper_pairs`, :func:`paper_chain`: the published numbers a claim is about, in words.

The chapter page's captioned tables are in :mod:`ddlib.chapters.tgdd_page`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ddlib.results.recorder import Recorder, record_claim
from ddlib.results.records import read_records
from ddlib.results.seeded import STATISTIC_METRICS, compare_methods, mean_text
from ddlib.results.verdicts import Verdict, threshold_verdict

__all__ = ["per_seed", "ratio_verdict", "versus_text", "judge", "judge_ratio", "ablation_claims",
           "main_table_claims", "SANITY_CHECK",
           "accuracy_table", "paper_pairs", "paper_chain", "NOT_IN_PAPER"]

#: A table cell where the paper has no number.
NOT_IN_PAPER = "not in the paper"


def per_seed(recorder: Recorder, experiment: str, method: str, metric: str, **match: Any):
    """``method``'s value per distillation seed (records of a seed averaged) as a pandas Series."""
    records = read_records(recorder.path)
    rows = records[(records["experiment"] == experiment) & (records["method"] == method)
                   & (records["metric"] == metric)]
    for key, value in match.items():
        rows = rows[rows[key] == value]
    if rows.empty:
        raise ValueError(f"no records of {experiment}/{method}/{metric} {match or ''} in {recorder.path}")
    return rows.groupby("distill_seed")["value"].mean().sort_index()


def ratio_verdict(recorder: Recorder, experiment: str, claim: str, metric: str, a: str, b: str, *,
                  what: str, **match: Any) -> Verdict:
    """Verdict on "``a`` needs less ``metric`` than ``b``": per-seed ratios a / b below 1 (log scale).

    Raises
    ------
    ValueError
        The two methods were recorded for different distillation seeds (naming them).
    """
    values_a, values_b = (per_seed(recorder, experiment, m, metric, **match) for m in (a, b))
    if list(values_a.index) != list(values_b.index):
        raise ValueError(f"{a} has seeds {list(values_a.index)}, {b} {list(values_b.index)}: a ratio per seed "
                         "needs both methods run with the same seeds")
    ratios = values_a.to_numpy(dtype=np.float64) / values_b.to_numpy(dtype=np.float64)
    return threshold_verdict(claim, ratios, 1.0, direction="less", scale="log", name=f"{a} / {b} {what}")


def versus_text(recorder: Recorder, experiment: str, names: Sequence[str], *, metric: str, unit: str = "%",
                **match: Any) -> str:
    """``"TGDD 88.9 % ± 0.5 (3 seeds) vs DM 88.1 % ± 0.4 (3 seeds)"``: each name's per-seed mean."""
    return " vs ".join(f"{name} {mean_text(per_seed(recorder, experiment, name, metric, **match).to_numpy(), unit)}"
                       for name in names)


def _where(ipc: int | None, match: dict[str, Any]) -> dict[str, Any]:
    return {**match, **({"ipc": ipc} if ipc is not None else {})}


def judge(recorder: Recorder, experiment: str, claim: str, a: str, b: str, *, paper: str, metric: str,
          note: str = "best of tests", ipc: int | None = None, **match: Any) -> str:
    """Record the paired verdict on "``a`` beats ``b``" (unit: the seed) and return the chapter's sentence.

    ``note`` says which statistic ``metric`` is; ``ipc`` and ``match`` select the records.
    """
    where = _where(ipc, match)
    verdict = compare_methods(recorder, experiment, claim, a, b, metric=metric, **where)
    ours = versus_text(recorder, experiment, [a, b], metric=metric, **where)
    return record_claim(recorder, experiment, verdict, ours=f"{ours} ({note})" if note else ours, paper=paper,
                        ipc=ipc)


def judge_ratio(recorder: Recorder, experiment: str, claim: str, metric: str, a: str, b: str, *, what: str,
                paper: str, unit: str, also: Sequence[str] = (), ipc: int | None = None, **match: Any) -> str:
    """Record :func:`ratio_verdict` ("``a`` needs less ``metric`` than ``b``") and return the sentence.

    The sentence lists the per-seed means of ``a``, ``b`` and ``also`` (e.g. DM) in ``unit``.
    """
    where = _where(ipc, match)
    verdict = ratio_verdict(recorder, experiment, claim, metric, a, b, what=what, **where)
    ours = versus_text(recorder, experiment, [a, b, *also], metric=metric, unit=unit, **where)
    return record_claim(recorder, experiment, verdict, ours=ours, paper=paper, ipc=ipc)


def ablation_claims(recorder: Recorder, experiment: str, labels: Sequence[str], *, paper: str, metric: str,
                    ipc: int | None = None, note: str = "best of tests") -> list[str]:
    """The cumulative ablation's verdicts: each row beats the one before it, and the last beats the first.

    Returns
    -------
    list of str
        One sentence per consecutive pair ("``next`` raises the accuracy over ``previous``"),
        then "full TGDD beats the baseline without any component" (last row vs first).
    """
    pairs = [(f"{nxt} raises the accuracy over {prev}", nxt, prev) for prev, nxt in zip(labels, labels[1:])]
    pairs.append(("full TGDD beats the baseline without any component", labels[-1], labels[0]))
    return [judge(recorder, experiment, claim, a, b, paper=paper, metric=metric, note=note, ipc=ipc)
            for claim, a, b in pairs]


#: The "paper" text of the main table's sanity checks (they are not claims of the paper).
SANITY_CHECK = "a sanity check: a distiller should beat real images"


def main_table_claims(recorder: Recorder, published: Any, ipcs: Sequence[int], *, metric: str,
                      rivals: Sequence[str] = ("DM",), experiment: str = "main table") -> list[str]:
    """The main table's verdicts, recorded in order, and their sentences.

    First the sanity checks, DM and then TGDD beating ``"Random"`` (random real images) at the
    smallest IPC of ``ipcs``; then, per rival of ``rivals`` and per IPC, "TGDD beats <rival> at IPC
    <ipc>" with the paper's pairs (:func:`paper_pairs`) as the paper's side.

    Returns
    -------
    list of str
        ``2 + len(rivals) * len(ipcs)`` sentences, in the order above.
    """
    low = min(ipcs)
    sentences = [judge(recorder, experiment, f"{name} beats random real images at IPC {low}", name, "Random",
                       paper=SANITY_CHECK, metric=metric, ipc=low) for name in ("DM", "TGDD")]
    for rival in rivals:
        paper = paper_pairs(published, experiment, "TGDD", rival)
        sentences += [judge(recorder, experiment, f"TGDD beats {rival} at IPC {ipc}", "TGDD", rival, paper=paper,
                            metric=metric, ipc=ipc) for ipc in ipcs]
    return sentences


def _text(value: Any) -> str:
    """``value`` as the results file writes it (an IPC read back as ``1.0`` is ``"1"``)."""
    return str(int(value)) if isinstance(value, (float, np.floating)) and float(value).is_integer() else str(value)


def accuracy_table(records: Any, published: Any, experiment: str, *, keys: Sequence[str] = ("method", "ipc"),
                   statistic_label: str = "best of tests, as the TGDD code", compact: bool = False):
    """Our best and last accuracies (mean ± sd over seeds of each seed's network mean) beside the paper's.

    Parameters
    ----------
    records : pandas.DataFrame
        This run's records (:func:`~ddlib.results.records.read_records`).
    published : pandas.DataFrame
        The paper's rows of :func:`~ddlib.results.records.paper_results` (matched on ``keys``; ``ipc`` as text).
    keys : sequence of str
        Columns naming a row (``("method", "ipc")``, ``("method", "arch")``).
    compact : bool
        For the page: ``"82.5 ± 2.1"`` (the seed count goes to the caption, see
        :func:`~ddlib.chapters.tgdd_page.accuracy_view`), paper cells without the UNVERIFIED mark and
        :data:`NOT_IN_PAPER` where the paper has no number. Default: ``"82.5 % ± 2.1 (2
        seeds)"`` and ``"71.9 (UNVERIFIED)"`` / ``""``.

    Returns
    -------
    pandas.DataFrame
        ``keys``, ``ours (<statistic_label>)``, ``ours (last epoch)``, ``seeds``, ``networks per
        set``, then ``paper: <data set> (best)`` per published data set ("" where none).
    """
    import pandas as pd

    rows = records[records["experiment"] == experiment]
    if "ipc" in rows:  # read back as floats (NaN for no IPC): show 1, not 1.0
        rows = rows.assign(ipc=rows["ipc"].astype("Int64"))
    out = []
    best, last = STATISTIC_METRICS["best"], STATISTIC_METRICS["last"]
    for key, mine in rows[rows["metric"].isin((best, last))].groupby(list(keys), sort=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for metric, label in ((best, statistic_label), (last, "last epoch")):
            values = mine[mine["metric"] == metric]
            seeds = values.groupby("distill_seed")["value"].mean()
            row[f"ours ({label})"] = _mean_sd(seeds.to_numpy()) if compact else mean_text(seeds.to_numpy())
        row["seeds"], row["networks per set"] = len(seeds), int(values.groupby("distill_seed").size().max())
        ref = published[published["table"] == experiment]
        for k in keys:
            ref = ref[ref[k].astype(str) == _text(row[k])]
        for dataset in dict.fromkeys(published.loc[published["table"] == experiment, "dataset"]):
            cell = ref[ref["dataset"] == dataset]
            if compact:
                row[f"paper: {dataset} (best)"] = NOT_IN_PAPER if cell.empty else f"{cell['value'].iloc[0]:.1f}"
                continue
            row[f"paper: {dataset} (best)"] = "" if cell.empty else (
                f"{cell['value'].iloc[0]:.1f}" + (" (UNVERIFIED)" if cell["unverified"].iloc[0] else ""))
        out.append(row)
    return pd.DataFrame(out)


def paper_pairs(published: Any, table: str, first: str, second: str, *, by: str = "ipc",
                dataset: str = "CIFAR-10") -> str:
    """``"CIFAR-10: ipc 10: TGDD 71.9 vs DM 48.9; ..."``: every published pair of ``table`` on ``dataset``."""
    rows = published[(published["table"] == table) & (published["dataset"] == dataset)]
    pivot = rows.pivot_table(index=by, columns="method", values="value", sort=False)
    if first not in pivot or second not in pivot:
        return f"{dataset}: no published pair of {first} and {second} in the {table}"
    pivot = pivot.dropna(subset=[first, second])
    mark = " (UNVERIFIED)" if rows["unverified"].any() else ""
    return f"{dataset}: " + "; ".join(f"{by} {k}: {first} {r[first]:.1f} vs {second} {r[second]:.1f}"
                                      for k, r in pivot.iterrows()) + mark


def paper_chain(published: Any, table: str, dataset: str = "CIFAR-10") -> str:
    """``"CIFAR-10 IPC 10: none 55.2 → +augmentation 63.2 → ..."``: a cumulative table's rows per IPC."""
    rows = published[(published["table"] == table) & (published["dataset"] == dataset)]
    mark = " (UNVERIFIED)" if rows["unverified"].any() else ""
    return "; ".join(f"{dataset} IPC {ipc}: " + " → ".join(f"{r.method} {r.value:.1f}" for r in group.itertuples())
                     for ipc, group in rows.groupby("ipc", sort=False)) + mark


def _mean_sd(values: np.ndarray) -> str:
    """``"82.5 ± 2.1"`` (one decimal, sd over seeds); ``"82.5"`` for one seed."""
    values = np.asarray(values, dtype=np.float64)
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if len(values) > 1 else f"{values.mean():.1f}"
