"""The reproduction summary: one row per claim of the three papers, built from result files.

Each chapter records its verdicts with :func:`ddlib.results.recorder.record_claim`: a
:class:`~ddlib.results.verdicts.Verdict` (metric ``claim_verdict``: effect, interval, n, verdict)
or, until the chapters switch, a bare comparison of two means (metric ``claim_holds``,
shown with "none (bare comparison)" as its interval). :func:`reproduction_summary` reads,
per (paper, scale, dataset), the newest complete run only (never mixing two runs) and adds a
row for every table and figure the chapters are expected to produce (``EXPECTED``) that has
no record: such an item shows "not run", never a blank or an old number.
"""
from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any, Iterable

__all__ = ["EXPECTED", "SUMMARY_VERDICTS", "reproduction_summary", "summary_html", "summary_counts",
           "reading_guide", "headline_markdown"]

#: The summary's verdict column, in the order it is counted ("not run at this scale" counts as "not run").
SUMMARY_VERDICTS = ("holds", "does not hold", "inconclusive at this scale", "not run",
                    "shown, no directional claim")
# The interval cell of a legacy claim (a bare comparison of two means).
BARE = "none (bare comparison)"

# Every table and figure the chapters reproduce, by (paper as recorded, chapter page).
EXPECTED: dict[tuple[str, str], tuple[str, ...]] = {
    ("Baselines", "02_baselines"): ("Expert trajectories", "Table 3"),
    ("AST", "03_ast"): ("Table 1", "Table 2", "Table 3", "Table 4", "Table 5", "Table 6", "Table 7", "Table 8",
                     "Figure 2", "Figure 3", "Figure 4", "Figure 6", "Figure 7", "Figure 9"),
    ("MCT", "04_mct"): ("Figure (a) accuracy along trajectories", "Table (b) storage", "Figure (c) convergence",
                     "Table (d) accuracy", "Table (e) ablations"),
    ("TGDD", "05_tgdd"): ("main table", "ablation", "cross-architecture", "ImageNet subsets", "Figure 1", "Figure 2",
                       "Figure 4", "Figure 5"),
}


def _num(x: Any) -> str:
    return "" if x is None else f"{x:.3g}" if math.isfinite(x) else ("∞" if x > 0 else "-∞")


def _claim_row(claim: Any, page: str) -> dict[str, Any]:
    """Summary cells of one claim record (``claim_verdict`` or legacy ``claim_holds``)."""
    from ddlib.results.recorder import claim_text

    cfg = claim.config
    row = {"claim": cfg.get("claim", claim.method), "paper value": cfg.get("paper", ""), "ours": cfg.get("ours", ""),
           "link": f"{cfg.get('page', page)}.html#{cfg.get('anchor', '')}"}
    if claim.metric == "claim_holds":  # legacy: a bare comparison of two means
        value = None if math.isnan(claim.value) else bool(claim.value)
        return {**row, "effect": "", "interval": BARE, "n": "", "verdict": claim_text(value)}
    unit = f" {cfg['unit']}" if cfg.get("unit") else ""
    effect = "" if cfg.get("effect") is None else f"{cfg['effect']:+.3g}{unit}"
    low, high = cfg.get("low"), cfg.get("high")
    if cfg.get("n", 0) < 2 or low is None or high is None:
        interval = "none (n < 2)"
    else:
        interval = f"[{_num(low)}, {_num(high)}] ({100 * cfg.get('level', 0.95):g} % {cfg.get('method', 't')})"
    return {**row, "effect": effect, "interval": interval, "n": cfg.get("n", ""),
            "verdict": claim_text(cfg["verdict"])}


def reproduction_summary(results_root: str | os.PathLike, *, scale: str | None = None):
    """Claims and expected items found under ``results_root`` (searched recursively for ``.jsonl``).

    Parameters
    ----------
    results_root : path
        Folder holding the chapters' ``out_dir`` folders.
    scale : str, optional
        Only runs at this scale (the build's); default: every scale found.

    Returns
    -------
    pandas.DataFrame
        Columns ``paper``, ``experiment``, ``dataset``, ``claim``, ``paper value``, ``ours``,
        ``effect``, ``interval``, ``n``, ``scale``, ``device``, ``verdict`` (one of
        :data:`SUMMARY_VERDICTS` or "not run at this scale"), ``link`` (``page.html#anchor``).
        Only the newest complete run per (paper, scale, dataset) is read.
    """
    import pandas as pd

    from ddlib.results.records import read_records

    root = Path(results_root)
    records = read_records(root) if root.exists() else None
    if records is not None and scale is not None:
        records = records[records["scale"] == scale]
    blank = {"dataset": "", "claim": "", "paper value": "", "ours": "", "effect": "", "interval": "", "n": "",
             "scale": "", "device": ""}
    rows = []
    for (paper, page), experiments in EXPECTED.items():
        mine = records[records["paper"] == paper] if records is not None else None
        for experiment in experiments:
            found = mine[mine["experiment"] == experiment] if mine is not None else None
            claims = found[found["metric"].isin(("claim_verdict", "claim_holds"))] if found is not None else None
            head = {"paper": paper, "experiment": experiment}
            if claims is not None and len(claims):
                for claim in claims.itertuples():
                    rows.append({**head, **blank, "dataset": claim.dataset, "scale": claim.scale,
                                 "device": claim.device, **_claim_row(claim, page)})
            elif found is not None and len(found):
                for dataset, group in found.groupby("dataset", sort=False):
                    first = group.iloc[0]
                    rows.append({**head, **blank, "dataset": dataset, "ours": f"{len(group)} numbers recorded",
                                 "scale": first["scale"], "device": first["device"],
                                 "verdict": "shown, no directional claim", "link": f"{page}.html"})
            else:
                rows.append({**head, **blank, "verdict": "not run", "link": f"{page}.html"})
    columns = ["paper", "experiment", *blank, "verdict", "link"]
    return pd.DataFrame(rows, columns=columns)


def summary_counts(table) -> dict[str, int]:
    """How many rows of a :func:`reproduction_summary` table have each of :data:`SUMMARY_VERDICTS`."""
    counts = dict.fromkeys(SUMMARY_VERDICTS, 0)
    for verdict in table["verdict"]:
        key = "not run" if verdict == "not run at this scale" else verdict
        if key not in counts:
            raise ValueError(f"verdict {verdict!r}: expected one of {SUMMARY_VERDICTS}")
        counts[key] += 1
    return counts


def reading_guide(table, scale: str) -> str:
    """Markdown for a :func:`reproduction_summary` table: the verdict counts (:func:`summary_counts`),
    how many are bare comparisons, how to read a verdict and, at ``smoke`` scale, that they mean nothing."""
    text = ", ".join(f"**{n}** {verdict}" for verdict, n in summary_counts(table).items()) + ". "
    bare = int((table["interval"] == BARE).sum())
    if bare:
        text += f"{bare} of the holds / does not hold verdicts are bare comparisons of two means, without an interval. "
    text += ("A claim *holds* when the confidence interval of its effect (e.g. AST - MTT accuracy, paired by "
             "seed and evaluation network) lies entirely on the claimed side of zero, *does not hold* when it "
             "lies entirely on the other side, and is *inconclusive at this scale* when it contains zero: too "
             f"few or too noisy runs to tell. Rows whose interval reads \"{BARE}\" compare two "
             "means without any interval; treat them as inconclusive. A verdict at a reduced scale is about "
             "direction at that scale, not about the papers' CIFAR numbers.")
    if scale == "smoke":
        text += (" **This is a smoke build: every run is a few iterations on a few images with one seed, so its "
                 "verdicts are meaningless; they only show that the pipeline runs.**")
    return text


def summary_html(table, columns: Iterable[str] = ("paper", "experiment", "dataset", "claim", "paper value", "ours",
                                                   "effect", "interval", "n", "scale", "device", "verdict")) -> str:
    """HTML table of the summary with the experiment cell linking to the producing cell."""
    columns = list(columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in table.to_dict("records"):
        cells = []
        for c in columns:
            text = html.escape(str(row[c]))
            if c == "experiment":
                text = f'<a href="{html.escape(row["link"])}">{text}</a>'
            cells.append(f"<td>{text}</td>")
        body.append(f'<tr class="verdict-{row["verdict"].replace(" ", "-").replace(",", "")}">{"".join(cells)}</tr>')
    return f'<table class="reproduction-summary"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


SCALE_WORDS = {
    "smoke": "a few iterations on a few embedded images: it proves that every cell runs, and its verdicts mean nothing",
    "mini": "the embedded MNIST digits on 2 CPU cores: the verdicts are about the direction of each claim at this "
            "scale, not about the papers' CIFAR numbers",
    "paper": "the papers' settings on their data sets",
}


def headline_markdown(table, scale: str, prefix: str = "notebooks/") -> str:
    """The landing page's headline: per paper, its claims with their verdicts (linked to the cell that
    produced each), the build's scale and device, and how to read a verdict.

    Parameters
    ----------
    table : pandas.DataFrame
        A :func:`reproduction_summary` table.
    scale : str
        The build's scale.
    prefix : str
        Path from the landing page to the chapter pages.

    Returns
    -------
    str
        Markdown with one HTML table per paper (MyST renders raw HTML).
    """
    devices = sorted({d for d in table["device"] if d})
    counts = summary_counts(table)
    lines = [f"This build ran at scale **{scale}** on **{', '.join(devices) or 'no device (nothing run)'}**: "
             f"{SCALE_WORDS.get(scale, scale)}. Over all papers: "
             + ", ".join(f"**{n}** {verdict}" for verdict, n in counts.items() if n) + ".", ""]
    for paper, rows in table.groupby("paper", sort=False):
        claims = rows[rows["claim"] != ""]
        paper_counts = summary_counts(rows)
        lines += [f"**{html.escape(paper)}**: " + ", ".join(f"{n} {v}" for v, n in paper_counts.items() if n) + ".",
                  ""]
        if not len(claims):
            continue
        body = "".join(
            f'<tr class="verdict-{row["verdict"].replace(" ", "-").replace(",", "")}">'
            f'<td><a href="{html.escape(prefix + row["link"])}">{html.escape(str(row["claim"]))}</a></td>'
            f'<td>{html.escape(str(row["effect"]))}</td><td>{html.escape(str(row["interval"]))}</td>'
            f'<td>{html.escape(str(row["n"]))}</td><td><b>{html.escape(row["verdict"])}</b></td></tr>'
            for row in claims.to_dict("records"))
        lines += ['<table class="headline"><thead><tr><th>claim</th><th>effect</th><th>interval</th><th>n</th>'
                  f"<th>verdict</th></tr></thead><tbody>{body}</tbody></table>", ""]
    lines += ["**How to read a verdict.** Each claim is measured over several independent distillation seeds; "
              "the methods it compares share seeds and evaluation networks. A claim *holds* when the confidence "
              "interval of its effect lies entirely on the claimed side of zero, *does not hold* when it lies "
              "entirely on the other side, and is *inconclusive at this scale* when it contains zero. `n` is the "
              "number of seeds. Click a claim for the table or figure that produced it.", ""]
    return "\n".join(lines)
