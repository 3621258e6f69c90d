"""Every notebook is parameterised, listed in the book, and ran clean at smoke scale.

The smoke build is made by `make test` before pytest (scripts/build_book.py); when pytest
runs on its own, the session fixture builds it (already-executed notebooks are cached).
"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
REQUIRED_PARAMETERS = ("scale", "seed", "device", "data_root", "out_dir", "artifacts_dir", "dry_run")


def parameters_cell(path: Path) -> str:
    text = path.read_text()
    start = text.index('# %% tags=["parameters"]')
    end = text.index("# %%", start + 5)
    return text[start:end]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_declares_the_pipeline_parameters(notebook):
    cell = parameters_cell(notebook)
    for name in REQUIRED_PARAMETERS:
        assert re.search(rf"\n{name}(: *\w+)? = ", cell), f"{notebook.name} lacks parameter {name!r}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_in_the_table_of_contents(notebook):
    assert f"book/notebooks/{notebook.stem}" in (ROOT / "_toc.yml").read_text()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_executed_notebook_has_no_error_output(smoke_build, notebook):
    executed = json.loads((smoke_build / "src" / "book" / "notebooks" / f"{notebook.stem}.ipynb").read_text())
    code_cells = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert code_cells and all(c.get("execution_count") for c in code_cells), "a code cell did not run"
    errors = [o for c in code_cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert executed["metadata"]["papermill"]["parameters"]["scale"] == "smoke"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_book_page_rendered(smoke_build, notebook):
    page = smoke_build / "html" / "book" / "notebooks" / f"{notebook.stem}.html"
    assert page.exists(), page
    html = page.read_text()
    assert "Traceback" not in html
    assert "<img" in html or "<table" in html
    assert "PosixPath(" not in html, f"{page.name} shows a stray return value (end the cell's last call with ';')"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_only_call_the_library(notebook):
    """No function or class is defined in a notebook: the chapters' code lives in ddlib.chapters, tested."""
    import ast as python_ast

    import jupytext

    for cell in jupytext.read(notebook).cells:
        if cell.cell_type == "code":
            tree = python_ast.parse(cell.source)
            defined = [n.name for n in python_ast.walk(tree)
                       if isinstance(n, (python_ast.FunctionDef, python_ast.AsyncFunctionDef, python_ast.ClassDef))]
            assert not defined, f"{notebook.name} defines {defined}"


MAX_CELL_LINES = 12


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_code_cells_are_short(notebook):
    """Each code cell is a call, a table or a figure: at most a dozen lines (the parameters cell aside),
    no lambda, no line over 100 characters."""
    import ast as python_ast

    import jupytext

    for index, cell in enumerate(jupytext.read(notebook).cells):
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        lines = [line for line in cell.source.splitlines() if line.strip()]
        assert len(lines) <= MAX_CELL_LINES, (
            f"{notebook.name} cell {index}: {len(lines)} lines (at most {MAX_CELL_LINES}); "
            f"move the computation into ddlib.chapters. It starts: {lines[0][:80]!r}")
        lambdas = [n for n in python_ast.walk(python_ast.parse(cell.source)) if isinstance(n, python_ast.Lambda)]
        assert not lambdas, f"{notebook.name} cell {index} defines a lambda: give it a name in ddlib.chapters"
        long = [line for line in lines if len(line) > 100]
        assert not long, f"{notebook.name} cell {index}: line over 100 characters: {long[0][:60]!r}..."
