"""The `make book` pipeline (scripts/build_book.py): cache keys and failure reporting."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
build_book = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_book)

FAILING = '''# %% tags=["parameters"]
scale = "smoke"
seed = 0
device = "cpu"
data_root = ""
out_dir = "x"
artifacts_dir = "y"

# %%
print("first cell ran")

# %%
1 / 0
'''


def test_failed_notebook_reports_cell_and_error(tmp_path):
    notebook = tmp_path / "broken.py"
    notebook.write_text(FAILING)
    ok, error = build_book.execute(notebook, tmp_path / "out" / "broken.ipynb", {"scale": "smoke"})
    assert not ok
    assert "ZeroDivisionError" in error and "cell" in error
    assert (tmp_path / "out" / "broken.ipynb").exists()  # the partial output is kept for inspection


def test_cache_key_tracks_source_and_parameters(tmp_path):
    notebook = tmp_path / "nb.py"
    notebook.write_text(FAILING)
    results = tmp_path / "results"
    key = build_book.cache_key(notebook, {"scale": "smoke"}, results)
    assert key == build_book.cache_key(notebook, {"scale": "smoke"}, results)
    assert key != build_book.cache_key(notebook, {"scale": "mini"}, results)
    notebook.write_text(FAILING + "\n# changed\n")
    assert key != build_book.cache_key(notebook, {"scale": "smoke"}, results)


def test_summary_key_follows_other_notebooks_results(tmp_path):
    summary = tmp_path / "06_summary.py"
    summary.write_text("# %%\n")
    results = tmp_path / "results"
    (results / "ast").mkdir(parents=True)
    before = build_book.cache_key(summary, {}, results)
    (results / "ast" / "ast.jsonl").write_text('{"value": 1}\n')
    assert build_book.cache_key(summary, {}, results) != before


def test_parameter_cells_are_folded(tmp_path):
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("scale = 'mini'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("scale = 'smoke'", metadata={"tags": ["injected-parameters"]}),
    ])
    path = tmp_path / "nb.ipynb"
    nbformat.write(notebook, path)
    build_book.tag_parameter_cells(path)
    cells = nbformat.read(path, as_version=4).cells
    assert "remove-cell" in cells[0].metadata["tags"] and "hide-cell" in cells[1].metadata["tags"]


@pytest.mark.parametrize("scale, banner", [("smoke", True), ("mini", False), ("paper", False)])
def test_only_a_smoke_build_carries_the_banner(tmp_path, scale, banner):
    import yaml

    build_book.stage_sources(tmp_path, scale)
    config = yaml.safe_load((tmp_path / "_config.yml").read_text())
    announcement = config.get("html", {}).get("announcement", "")
    assert ("its verdicts mean nothing" in announcement) is banner
    assert config["bibtex_bibfiles"] == ["book/references.bib"]  # the rest of the configuration is kept
    assert (tmp_path / "_static" / "ddlib.css").exists() and (tmp_path / "book" / "intro.md").exists()


def test_headline_lists_claims_with_links_scale_and_device(tmp_path):
    import ddlib

    recorder = ddlib.Recorder(tmp_path / "results" / "ast", "AST", "mini", "mnist5k", "cpu", params={"seed": 0})
    verdict = ddlib.paired_verdict("AST beats MTT at IPC 1", [81.0, 82.0, 83.5], [80.0, 80.5, 81.0],
                                   names=("AST", "MTT"), unit="points")
    ddlib.record_claim(recorder, "Table 3", verdict, paper="48.8 vs 46.3")
    recorder.finish()
    headline = tmp_path / "headline.md"
    build_book.write_headline(headline, tmp_path / "results", "mini")
    text = headline.read_text()
    assert "scale **mini** on **cpu**" in text
    anchor = ddlib.results.recorder.claim_anchor("AST", "Table 3", "AST beats MTT at IPC 1")
    assert f'<a href="notebooks/ast.html#{anchor}">AST beats MTT at IPC 1</a>' in text
    assert "<b>holds</b>" in text and "90 % t" in text and "<td>3</td>" in text
    assert "**MCT**:" in text and "not run" in text  # a paper without results says so


def test_kernel_runs_over_ipc_without_the_tcp_warning(tmp_path, capfd):
    notebook = tmp_path / "fine.py"
    notebook.write_text(FAILING.replace("1 / 0", "print('done')"))
    ok, error = build_book.execute(notebook, tmp_path / "out" / "fine.ipynb", {"scale": "smoke"})
    assert ok, error
    assert "without encryption" not in capfd.readouterr().err
