"""The AST chapter's tables as the reader sees them: our numbers beside the paper's, rounded and captioned.

:mod:`ddlib.chapters.ast_reporting` computes the cells (:func:`~ddlib.chapters.ast_reporting.beside_paper`: mean ± sd
over the independent units); this module only presents them. Every table comes back as a pandas
``Styler`` without the index and with a caption that names the scale, the data set, the variant
(the authors' code preset or the paper's reading) and the evaluation statistic behind its numbers.
A published cell that does not exist reads :data:`NOT_IN_PAPER`, never ``None`` or ``nan``. Our
columns are titled ``"ours: ..."`` and the published ones ``"paper <data set>: ..."``.

It also reads single published cells for the chapter's sentences (:func:`published_value`,
:func:`table3_cells`), so no number of the paper is typed into the chapter.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, Sequence

from ddlib.chapters.ast_claims import BEST, LAST, table_records, verdict_table
from ddlib.chapters.ast_reporting import beside_paper, settings_table
from ddlib.results.recorder import Recorder

__all__ = ["NOT_IN_PAPER", "OURS_LABELS", "EXPERT_METRICS", "published_value", "table3_cells", "captioned",
           "results_table", "scale_table", "plan_overview", "experts_overview", "table5_not_run", "verdicts"]

#: What a table shows where the paper has no cell (its caption says so).
NOT_IN_PAPER = "–"
#: Column title of each of our metrics; every title starts with "ours", as the book's tables require.
#: (Module constants are read-only mappings: no state to change between calls.)
OURS_LABELS = MappingProxyType({
    BEST: "ours: best of tests, %", LAST: "ours: last epoch, %", "expert_acc": "ours: expert acc., %",
    "avg_var": "ours: Avg Var", "input_grad_norm_sample": "ours: grad norm per sample",
    "input_grad_norm_pixel": "ours: grad norm per pixel", "sec_per_iteration": "ours: s / iteration"})
#: Our metric -> the published metric it is compared with (``None``: the paper reports no such number).
_PUBLISHED = {BEST: "test_acc", LAST: None, "input_grad_norm_sample": None, "input_grad_norm_pixel": None}
#: The published metrics in the reader's words.
_PAPER_WORDS = {"test_acc": "acc., %", "expert_acc": "expert acc., %", "avg_var": "Avg Var",
                "sec_per_iteration": "s / iteration"}
#: Rounding (:func:`~ddlib.chapters.ast_reporting.mean_sd_text`): accuracies to one decimal, times to two
#: significant digits, the rest to three.
_STYLES = {BEST: "percent", LAST: "percent", "expert_acc": "percent", "sec_per_iteration": "sig2",
           "avg_var": "sig3", "input_grad_norm_sample": "sig3", "input_grad_norm_pixel": "sig3"}
#: Table 1's metrics of the experts themselves (Table 6 adds ``avg_var``); their units are experts.
EXPERT_METRICS = ("expert_acc", "input_grad_norm_sample", "input_grad_norm_pixel")
_OF_EXPERTS = ("avg_var", *EXPERT_METRICS)
_KEY_TITLES = {"method": "method", "ipc": "IPC", "arch": "network", "preset": "experts trained with"}
_RECORD_COLUMNS = ("method", "ipc", "arch", "dataset")
_STATISTICS = {BEST: "best of tests: the highest of the test accuracies measured during the evaluation "
                     "training (the AST code's statistic, which its paper reports)",
               LAST: "last epoch: the accuracy after the final epoch"}
_EXPERTS_NOTE = ("Experts: SGD with MTT's settings, every other kind with the AST code's settings; the "
                 "units are the experts (expert k of every kind starts from the same initialisation).")
_SETS_NOTE = ("Each set distilled by MTT's plain distiller from that kind of expert and evaluated with AST's "
              "protocol (the code's).")
#: Each results table's own note: which variant made its numbers. (experiment, part) for split tables.
NOTES: Mapping[Any, str] = MappingProxyType({
    ("Table 1", "experts"): _EXPERTS_NOTE + " Grad norm: the mean norm of the gradient of the summed "
                            "logits with respect to the input, per sample (the paper's Eq. 1) and per pixel "
                            "over the channels (the code's); the smooth experts' penalty pulls it to K = 1.",
    ("Table 1", "sets"): _SETS_NOTE,
    "Table 2": "All rows on the SGD experts with MTT's plain student; representative initialisation and the "
               "balanced loss as the paper states them (penultimate features, natural log).",
    "Table 3": "AST: the authors' code preset (smooth experts and all four components); MTT: its plain "
               "distiller on SGD experts. Paper: AST's cells are best of tests (its code's statistic), the "
               "other methods' cells are copied from their own papers, which report the last epoch.",
    "Table 4": "Table 3's sets (distilled with a ConvNet) training each network with their learned step size.",
    ("Table 6", "experts"): _EXPERTS_NOTE + " Avg Var: the mean squared change of the parameters per epoch "
                            "(its size grows with the number of parameters).",
    ("Table 6", "sets"): _SETS_NOTE,
    "Table 7": "Cumulative rows as the authors' code has them (its momentum-0.9 student already in the base "
               "row), on the smooth experts; MTT: its plain distiller on SGD experts (the paper gives "
               "MTT's cell in its Table 3).",
    "Table 8": "Fresh distillers, three timed iterations after one warm-up; AST: the code preset. The paper "
               "times AST only, on a GPU it does not name.",
})


def published_value(published, table: str, method: str, metric: str = "test_acc", **match: Any) -> float:
    """One published number: the first cell of ``published`` (:func:`~ddlib.results.records.paper_results`
    rows) in ``table`` for ``method`` and ``metric`` whose columns equal ``match`` (compared as text)."""
    rows = published[(published["table"] == table) & (published["method"] == method)
                     & (published["metric"] == metric)]
    for key, value in match.items():
        rows = rows[rows[key].astype(str) == str(value)]
    if rows.empty:
        raise ValueError(f"no published cell {table}/{method}/{metric} with {match}: expected one in "
                         "ddlib/resources/paper_results.csv")
    return float(rows["value"].iloc[0])


def table3_cells(published, dataset: str, a: str, b: str, ipc: int) -> str:
    """The published Table 3 cells of ``a`` and ``b`` at ``ipc`` as a sentence, on the paper's data set
    matching ``dataset`` (our data set's name; CIFAR-10 for any data set the paper does not use)."""
    name = {"cifar100": "CIFAR-100", "tinyimagenet": "TinyImageNet"}.get(dataset, "CIFAR-10")
    cells = published[(published["table"] == "Table 3") & (published["dataset"] == name)
                      & (published["ipc"] == str(ipc))].set_index("method")["value"]
    if not {a, b} <= set(cells.index):
        return f"no {name} cells for both at IPC {ipc}"
    return f"{name} IPC {ipc}: {a} {cells[a]:.1f} % vs {b} {cells[b]:.1f} %"


def captioned(frame, caption: str):
    """``frame`` as a captioned ``Styler`` without the index (what the book renders).

    The table keeps pandas' ``dataframe`` class (the book's style for tables) and pads its cells,
    which a ``Styler`` table otherwise renders without.
    """
    padded = [{"selector": "th, td", "props": "padding: 0.25em 0.6em; text-align: left;"}]
    return (frame.style.hide(axis="index").set_caption(caption).set_table_styles(padded)
            .set_table_attributes('class="dataframe"'))


def _part(experiment: str, metrics: Sequence[str]) -> Any:
    """The key of ``NOTES`` for these metrics of ``experiment``."""
    if (experiment, "experts") not in NOTES:
        return experiment
    return (experiment, "experts" if all(m in _OF_EXPERTS for m in metrics) else "sets")


def results_table(recorder: Recorder, experiment: str, metrics: Sequence[str], *,
                  keys: Sequence[str] = ("method",), datasets: Sequence[str] | None = None,
                  published: Mapping[str, str | None] | None = None, note: str | None = None):
    """This run's numbers of ``experiment`` beside the paper's, rounded and captioned.

    Parameters
    ----------
    recorder : Recorder
        The chapter's recorder (its records of ``experiment``, claims left out).
    metrics : sequence of str
        Our metrics, one column each (``ours: ...``), each followed by the published columns it is
        compared with (``paper <data set>: ...``).
    keys : sequence of str
        Row keys: record columns (``method``, ``ipc``, ``arch``) or config entries (``preset``).
    datasets : sequence of str, optional
        Published data sets shown (default: all of ``experiment``).
    published : mapping, optional
        Our metric -> the published metric beside it, overriding the defaults (best of tests
        beside the paper's accuracy, the last epoch and the gradient norms beside nothing).
    note : str, optional
        What made the numbers (default: the chapter's note of ``experiment``, ``NOTES``).

    Returns
    -------
    pandas.io.formats.style.Styler
        ``.data``: the keys, per metric ours then the paper's, and ``n`` (the units averaged).
    """
    records = table_records(recorder, experiment, [k for k in keys if k not in _RECORD_COLUMNS])
    compared = {m: _PUBLISHED.get(m, m) for m in metrics} | dict(published or {})
    table = beside_paper(records, experiment, metrics, keys, labels=OURS_LABELS, published_metrics=compared,
                         styles=_STYLES)
    where = f"{', '.join(sorted(records['dataset'].unique()))}, {', '.join(sorted(records['scale'].unique()))} scale"
    columns = list(keys)
    for metric in metrics:
        columns.append(OURS_LABELS.get(metric, f"ours: {metric}"))
        columns += [c for c in table.columns if compared[metric] and c.endswith(f": {compared[metric]}")
                    and (datasets is None or c.removeprefix("paper ").rsplit(": ", 1)[0] in datasets)
                    and c not in columns]
    table = table[[*columns, "n"]].copy()
    paper_columns = [c for c in table.columns if c.startswith("paper ")]
    table[paper_columns] = table[paper_columns].replace("", NOT_IN_PAPER)
    names = {c: c.rsplit(": ", 1)[0] + ": " + _PAPER_WORDS.get(c.rsplit(": ", 1)[1], c.rsplit(": ", 1)[1])
             for c in paper_columns}
    table = table.rename(columns={**names, **{k: _KEY_TITLES.get(k, k) for k in keys}})
    statistics = "; ".join(_STATISTICS[m] for m in metrics if m in _STATISTICS)
    note = NOTES.get(_part(experiment, metrics), "") if note is None else note
    units = "experts" if all(m in _OF_EXPERTS for m in metrics) else "distillation seeds"
    caption = (f"{experiment}. Ours: {where}, mean ± sd over the n {units}. {note} "
               f"{statistics[:1].upper() + statistics[1:] + '. ' if statistics else ''}"
               f"Paper columns: the published cells ({NOT_IN_PAPER}: not in the paper).")
    return captioned(table, " ".join(caption.split()))


def scale_table(settings, choices: Mapping[str, tuple[Any, Any]], paper=None):
    """:func:`~ddlib.chapters.ast_reporting.settings_table` with the chapter's ``choices``, captioned."""
    return captioned(settings_table(settings, choices, paper),
                     "Every setting of this run beside the paper scale's (CIFAR-10 unless this run uses another "
                     "data set of the papers); values that depend on the images per class are listed per IPC "
                     "as MTT's published table gives them; changed: this run differs.")


def plan_overview(plan):
    """:func:`~ddlib.chapters.ast_seeded.plan_table` of ``plan``, captioned."""
    from ddlib.chapters.ast_seeded import plan_table

    return captioned(plan_table(plan), "What the chapter runs at this scale beside what it runs at the paper "
                                       "scale; dropped here: rows of the paper's plan this scale leaves out "
                                       "(never seeds).")


def experts_overview(runs, zca_space: bool = False):
    """:func:`~ddlib.chapters.ast_seeded.experts_table` of ``runs``, captioned."""
    from ddlib.chapters.ast_seeded import experts_table

    return captioned(experts_table(runs, zca_space), "The kinds of experts of this run: the settings that "
                                                     "trained them, their cache folder (named by a hash of data, "
                                                     "settings and seed), how many and for how many epochs.")


def table5_not_run(published, scale: str):
    """The published Table 5 (ImageNet subsets), with ours marked as not run at ``scale``."""
    rows = published[published["table"] == "Table 5"]
    paper = [f"{v:.1f}" + ("" if s != s else f" ± {s:.1f}") for v, s in zip(rows["value"], rows["std"])]
    frame = rows[["dataset", "ipc", "method"]].rename(columns={"dataset": "data set", "ipc": "IPC"})
    frame = frame.assign(**{"paper: acc., %": paper, "ours": f"not run at {scale} scale"})
    return captioned(frame.reset_index(drop=True),
                     f"Table 5 as published (test accuracy of a depth-5 ConvNet, best of tests for AST); not "
                     f"run at {scale} scale.")


def verdicts(recorder: Recorder):
    """:func:`~ddlib.chapters.ast_claims.verdict_table` of this run, captioned."""
    return captioned(verdict_table(recorder), "Every claim of this chapter with its verdict at this scale; n "
                                              "counts the units of the claim (seeds or experts).")
