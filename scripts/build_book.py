"""Execute every notebook with papermill and build the Jupyter Book (the `make book` pipeline).

Steps, per notebook in ``notebooks/*.py`` (jupytext percent format):
1. convert to ``.ipynb`` with jupytext;
2. execute with papermill, passing ``scale``, ``device``, ``data_root``, ``out_dir``
   and ``artifacts_dir`` -- skipped when the notebook source, the parameters and the
   ddlib sources are unchanged since the last successful run (cache key file);
3. place the executed copy where ``_toc.yml`` expects it inside a staging copy of the
   book sources (``<build-dir>/src``), so executed notebooks are never committed.
A failed notebook is reported with its failing cell and error; the other notebooks'
outputs are kept, and the book is not built. Typos fail instead of being ignored: ``--only``
with an unknown chapter exits with status 2 listing the chapters, and a parameter that a
notebook's ``parameters`` cell does not declare fails that notebook (papermill only warns). Finally ``jupyter-book build`` runs with
``-W -n --keep-going``. Time per notebook is printed. Chapters run ``--jobs`` at a time
(default 2: each kernel keeps to one CPU thread below paper scale); the summary runs last.
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK_FILES = ("_config.yml", "_toc.yml")
# Notebooks that read the other notebooks' results: re-executed when any result changes,
# and executed after all others.
AGGREGATORS = ("06_summary",)
# Chapters that take longest at mini scale start first, so two workers finish close together.
LONGEST_FIRST = ("03_ast", "05_tgdd", "04_mct", "02_baselines")
# Files outside notebooks/ and ddlib/ that a notebook reads: a change re-executes it.
EXTRA_INPUTS = {"07_performance": ("benchmarks/results/bench.json", "benchmarks/reference.json",
                                   "benchmarks/results/side_by_side.json", "benchmarks/measured/side_by_side.json",
                                   "benchmarks/results/cost_growth.json", "benchmarks/measured/cost_growth.json",
                                   "benchmarks/results/profile_iteration.json",
                                   "benchmarks/measured/profile_iteration.json")}


def tree_hash(folder: Path, pattern: str = "*.py") -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob(pattern)):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(notebook: Path, parameters: dict, results: Path) -> str:
    digest = hashlib.sha256(notebook.read_bytes())
    for extra in EXTRA_INPUTS.get(notebook.stem, ()):
        if (ROOT / extra).exists():
            digest.update((ROOT / extra).read_bytes())
    if notebook.stem in AGGREGATORS:
        for path in sorted(results.rglob("*.jsonl")):
            if path.parent.name != notebook.stem:
                digest.update(path.read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True).encode())
    digest.update(tree_hash(ROOT / "ddlib").encode())
    digest.update(tree_hash(ROOT / "ddlib", "*.csv").encode())
    return digest.hexdigest()


def declared_parameters(cells: list) -> set[str] | None:
    """Names assigned in the ``parameters``-tagged cell among ``cells`` (``None``: no such cell)."""
    for cell in cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            tree = ast.parse(cell.source)
            return {target.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(target, ast.Name)}
    return None


def execute(notebook: Path, executed: Path, parameters: dict) -> tuple[bool, str]:
    """Convert and execute one notebook; return (ok, error text).

    A parameter the notebook's ``parameters`` cell does not declare fails the notebook
    before it runs (papermill would only warn and inject it anyway).
    """
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError
    from traitlets.config import Config

    converted = jupytext.read(notebook, fmt="py:percent")
    declared = declared_parameters(converted.cells)
    if unknown := sorted(set(parameters) - (declared or set())):
        where = "has no parameters cell" if declared is None else f"declares {sorted(declared)}"
        return False, (f"{notebook}: parameter(s) {unknown} are not declared in its parameters cell (the notebook "
                       f"{where}); fix the name or add it to the cell tagged 'parameters'")
    executed.parent.mkdir(parents=True, exist_ok=True)
    source = executed.with_suffix(".source.ipynb")
    jupytext.write(converted, source)
    # The kernel talks to papermill over local IPC sockets in a private folder rather than TCP
    # ports: nothing is reachable from outside, and the kernel's plain-TCP warning stays out of the log.
    sockets = tempfile.TemporaryDirectory(prefix="ddlib-kernel-")
    ipc = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets.name) / "kernel")}})
    try:
        papermill.execute_notebook(
            str(source), str(executed), parameters=parameters, kernel_name="python3", language="python",
            cwd=str(executed.parent), progress_bar=False, log_output=False, config=ipc,
        )
    except PapermillExecutionError as err:
        return False, f"cell {err.exec_count}: {err.ename}: {err.evalue}\n{''.join(err.traceback[-3:])}"
    finally:
        source.unlink(missing_ok=True)
        sockets.cleanup()
    tag_parameter_cells(executed)
    return True, ""


def timed_execute(notebook: Path, executed: Path, parameters: dict) -> tuple[bool, str, float]:
    """:func:`execute` with its wall time; runs in a worker process when chapters run side by side."""
    print(f"[book] {notebook.stem}: executing ...", flush=True)
    start = time.perf_counter()
    try:
        ok, error = execute(notebook, executed, parameters)
    except Exception as err:  # a worker must report, not die: the other chapters go on
        ok, error = False, f"{type(err).__name__}: {err}"
    return ok, error, time.perf_counter() - start


def tag_parameter_cells(path: Path) -> None:
    """Readers see the values a run used: drop the notebook's default parameters cell from the
    page and fold papermill's injected one (``remove-cell`` / ``hide-cell`` tags)."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if "injected-parameters" in tags and "hide-cell" not in tags:
            tags.append("hide-cell")
    nbformat.write(notebook, path)


SMOKE_BANNER = ("Smoke build: every number on this page comes from a run of a few iterations on a few images. "
                "It only proves that the code runs; its verdicts mean nothing. Build with make book (mini) or "
                "SCALE=paper for results.")


def stage_sources(src: Path, scale: str) -> None:
    """Copy the book sources (config, toc, book/ pages, book/_static) into the staging folder.

    A ``smoke`` build's configuration gets a banner on every page saying its numbers mean nothing.
    """
    import yaml

    src.mkdir(parents=True, exist_ok=True)
    for name in BOOK_FILES:
        shutil.copy2(ROOT / name, src / name)
    for path in (ROOT / "book").rglob("*"):
        if path.is_file() and "notebooks" not in path.relative_to(ROOT / "book").parts:
            target = src / "book" / path.relative_to(ROOT / "book")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    if (ROOT / "book" / "_static").is_dir():  # the book's CSS: Jupyter Book reads _static/ at its root
        shutil.copytree(ROOT / "book" / "_static", src / "_static", dirs_exist_ok=True)
    if scale == "smoke":
        config = yaml.safe_load((src / "_config.yml").read_text())
        config.setdefault("html", {})["announcement"] = SMOKE_BANNER
        (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def write_headline(path: Path, results: Path, scale: str) -> None:
    """The landing page's headline (included by ``book/intro.md``), from the chapters' result files."""
    from ddlib.results.summary import headline_markdown, reproduction_summary

    path.write_text(headline_markdown(reproduction_summary(results, scale=scale), scale))


CLUSTER_MEASURED = ROOT / "benchmarks" / "measured" / "cluster_check.json"


def write_cluster_measured(path: Path, measured: Path = CLUSTER_MEASURED) -> None:
    """The cluster page's correctness run (included by ``book/cluster.md``), from the stored measurement
    of ``benchmarks/cluster_check.py``: the page types none of its numbers."""
    from ddlib.chapters.cluster_page import cluster_markdown
    from ddlib.core.fileio import read_json

    if not measured.is_file():
        raise FileNotFoundError(f"{measured}: no cluster measurement; run python benchmarks/cluster_check.py "
                                "(a few minutes) to write it")
    path.write_text(cluster_markdown(read_json(measured, "cluster measurement",
                                               fix="rerun python benchmarks/cluster_check.py")))


def write_fake_data(root: Path) -> Path:
    """Fake CIFAR-10 and CIFAR-100 files (exact on-disk format) for a dry run without real data:
    50 train images per class (the largest IPC's real initialisation) and 10 test images."""
    sys.path.insert(0, str(ROOT))
    from ddlib.data.fake_files import write_fake_cifar

    for name in ("cifar10", "cifar100"):
        write_fake_cifar(root, name, train_per_class=50, test_per_class=10)
    print(f"[book] dry run on fake CIFAR-10/100 files in {root}", flush=True)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini", choices=("smoke", "mini", "paper"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default="")
    parser.add_argument("--build-dir", default=None)
    parser.add_argument("--only", nargs="*", default=None, help="notebook stems to execute (default: all)")
    parser.add_argument("--no-build", action="store_true", help="execute notebooks only")
    parser.add_argument("--dry-run", action="store_true",
                        help="paper scale with every paper shape and the counts cut to the minimum; without "
                             "--data-root, on fake CIFAR-10/100 files written into the build folder")
    parser.add_argument("--ipcs", default="", help="images per class of every chapter, e.g. 1 or 1,10 "
                        "(default: each scale's)")
    parser.add_argument("--dataset", default="", help="data set of every chapter (default: each scale's)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="notebooks executed side by side (default: 2, or 1 on a one-core machine)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: expected at least 1")
    if args.dry_run and args.scale != "paper":
        parser.error(f"--dry-run with --scale {args.scale}: a dry run keeps the paper's shapes; use --scale paper")
    chapters = sorted(nb.stem for nb in (ROOT / "notebooks").glob("*.py"))
    # A chapter may be named with or without its number: "ast" or "03_ast".
    short = {stem.split("_", 1)[1]: stem for stem in chapters if stem[:2].isdigit() and "_" in stem}
    args.only = None if args.only is None else [short.get(name, name) for name in args.only]
    if args.only is not None and (unknown := sorted(set(args.only) - set(chapters))):
        parser.error(f"--only {' '.join(unknown)}: no such chapter; the chapters are {', '.join(chapters)}")
    # Kernels inherit this: PyTorch backs large CPU tensors with transparent huge pages
    # (faster, same values; see the Makefile). An explicit setting of the caller wins.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

    label = f"{args.scale}-dry-run" if args.dry_run else args.scale
    build = (ROOT / (args.build_dir or f"_build/{label}")).resolve()
    src = build / "src"
    stage_sources(src, args.scale)
    artifacts = (ROOT / "artifacts" / label).resolve()  # a dry run's experts never mix with real ones
    if args.dry_run and not args.data_root:
        args.data_root = str(write_fake_data(build / "fake-data"))
    toc = (ROOT / "_toc.yml").read_text()
    notebooks = sorted((ROOT / "notebooks").glob("*.py"),
                       key=lambda nb: (nb.stem in AGGREGATORS, toc.find(f"book/notebooks/{nb.stem}"), nb.stem))
    if args.only:
        notebooks = [nb for nb in notebooks if nb.stem in args.only]
    failures, timings, pending = [], [], []
    for notebook in notebooks:
        parameters = {
            "scale": args.scale, "device": args.device, "data_root": args.data_root,
            "out_dir": str(build / "results" / notebook.stem), "artifacts_dir": str(artifacts),
            **({"dry_run": True} if args.dry_run else {}),
            # --dataset and --ipcs reach the notebooks whose parameters cell declares them
            **{name: value for name, value in (("dataset", args.dataset), ("ipcs", args.ipcs))
               if value and re.search(rf"^{name}\s*:", notebook.read_text(), re.M)},
        }
        executed = src / "book" / "notebooks" / f"{notebook.stem}.ipynb"
        key_file = build / "keys" / f"{notebook.stem}.key"
        if notebook.stem not in AGGREGATORS:  # an aggregator's key depends on the others' results: computed later
            key = cache_key(notebook, parameters, build / "results")
            if executed.exists() and key_file.exists() and key_file.read_text() == key:
                print(f"[book] {notebook.stem}: unchanged, not re-executed", flush=True)
                timings.append((notebook.stem, "cached"))
                continue
        pending.append((notebook, executed, key_file, parameters))

    def finished(item, ok: bool, error: str, seconds: float) -> None:
        notebook, _, key_file, parameters = item
        timings.append((notebook.stem, f"{seconds:.1f} s"))
        if ok:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(cache_key(notebook, parameters, build / "results"))
            print(f"[book] {notebook.stem}: done in {seconds:.1f} s", flush=True)
        else:
            key_file.unlink(missing_ok=True)
            failures.append(notebook.stem)
            print(f"[book] {notebook.stem}: FAILED after {seconds:.1f} s\n{error}", file=sys.stderr, flush=True)

    # Chapters run side by side (each kernel keeps to one CPU thread below paper scale), the
    # longest first; shared experts are trained once under a file lock. Aggregators run last.
    chapters_first = sorted((item for item in pending if item[0].stem not in AGGREGATORS),
                            key=lambda item: LONGEST_FIRST.index(item[0].stem)
                            if item[0].stem in LONGEST_FIRST else len(LONGEST_FIRST))
    if chapters_first:
        jobs = max(1, min(args.jobs, len(chapters_first)))
        print(f"[book] executing {len(chapters_first)} notebook(s), {jobs} at a time, at scale={args.scale} ...",
              flush=True)
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(timed_execute, nb, executed, parameters): (nb, executed, key_file, parameters)
                       for nb, executed, key_file, parameters in chapters_first}
            for future in concurrent.futures.as_completed(futures):
                finished(futures[future], *future.result())
    for item in (item for item in pending if item[0].stem in AGGREGATORS):
        notebook, executed, key_file, parameters = item
        key = cache_key(notebook, parameters, build / "results")
        if executed.exists() and key_file.exists() and key_file.read_text() == key:
            print(f"[book] {notebook.stem}: unchanged, not re-executed", flush=True)
            timings.append((notebook.stem, "cached"))
            continue
        finished(item, *timed_execute(notebook, executed, parameters))
    print("[book] time per notebook: " + ", ".join(f"{n} {t}" for n, t in timings), flush=True)
    if failures:
        print(f"[book] failed notebooks: {failures}; the book was not built "
              f"(executed outputs of the others are kept in {src / 'book' / 'notebooks'})", file=sys.stderr)
        return 1
    write_headline(src / "book" / "headline.md", build / "results", args.scale)
    if args.no_build:
        return 0
    write_cluster_measured(src / "book" / "cluster_measured.md")
    command = [
        str(Path(sys.executable).with_name("jupyter-book")), "build", str(src),
        "--path-output", str(build), "-W", "-n", "--keep-going",
    ]
    print("[book] " + " ".join(command), flush=True)
    result = subprocess.run(command, cwd=src)
    if result.returncode == 0:
        html = build / "html"
        if html.is_symlink() or html.exists():
            html.unlink() if html.is_symlink() else shutil.rmtree(html)
        html.symlink_to(build / "_build" / "html", target_is_directory=True)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
