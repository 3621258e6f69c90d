"""The chapters read as explanations: prose leads, plumbing is folded, no internal references.

Measured on the notebook sources (what the rendered page shows: markdown cells, and the code of
cells not tagged to hide their input); the browser test checks the rendered pages themselves.
"""
import re
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PAPER_CHAPTERS = ("02_baselines", "03_ast", "04_mct", "05_tgdd")
HIDDEN = {"hide-input", "remove-input", "remove-cell", "hide-cell", "parameters"}
FORBIDDEN = re.compile(r"FACTS|mct\.txt|(?i:\bissues?\b)")
MAX_LINE = 100


def cells(stem: str):
    return jupytext.read(NOTEBOOKS / f"{stem}.py").cells


def visible_code(cell) -> bool:
    return cell.cell_type == "code" and not HIDDEN & set(cell.metadata.get("tags", []))


@pytest.mark.parametrize("stem", PAPER_CHAPTERS)
def test_prose_at_least_as_long_as_visible_code(stem):
    prose = sum(len(c.source) for c in cells(stem) if c.cell_type == "markdown")
    code = sum(len(c.source) for c in cells(stem) if visible_code(c))
    assert prose >= code, f"{stem}: {prose} characters of prose against {code} of visible code"


@pytest.mark.parametrize("stem", sorted(p.stem for p in NOTEBOOKS.glob("*.py")))
def test_no_internal_references_and_short_code_lines(stem):
    problems = []
    for i, cell in enumerate(cells(stem)):
        if match := FORBIDDEN.search(cell.source):
            problems.append(f"cell {i}: mentions {match.group(0)!r}")
        if cell.cell_type == "code":
            problems += [f"cell {i}: line of {len(line)} characters: {line[:40]}..."
                         for line in cell.source.splitlines() if len(line) > MAX_LINE]
    assert not problems, f"{stem}: " + "; ".join(problems)


@pytest.mark.parametrize("stem", PAPER_CHAPTERS)
def test_figures_have_captions_and_plumbing_is_folded(stem):
    chapter = cells(stem)
    for cell in chapter:
        figure = cell.metadata.get("mystnb", {}).get("figure")
        if figure is not None:
            assert figure.get("caption", "").strip() and figure.get("name"), (stem, cell.source[:60])
    setup = next(c for c in chapter if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", []))
    assert HIDDEN & set(setup.metadata.get("tags", [])), f"{stem}: the set-up cell (imports) is not folded"
