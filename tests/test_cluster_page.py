"""The cluster page's measured section: the renderer (ddlib.chapters.cluster_page), the stored measurement,
the book build's include file, and benchmarks/cluster_check.py run end to end at its tiny size."""
import copy
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddlib.chapters.cluster_page import REQUIRED_KEYS, cluster_markdown

ROOT = Path(__file__).resolve().parents[1]
MEASURED = ROOT / "benchmarks" / "measured" / "cluster_check.json"


def _load(name: str, path: Path):
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(command: str, wall_s: float) -> dict:
    return {"command": command, "wall_s": wall_s}


# Every number differs from every other, so a number in the wrong cell cannot pass.
SAMPLE = {
    "date": "2026-11-30T07:21:40+00:00", "command": "python benchmarks/cluster_check.py --size full --experts 4",
    "machine": {"cpu_model": "AMD EPYC", "cores": 2}, "torch_version": "2.9.0", "python_version": "3.11.7",
    "experts": {"one": _run("python -m ddlib experts --artifacts-dir one", 17.31),
                "two": _run("torchrun --standalone -m ddlib experts --artifacts-dir two", 27.64),
                "num_experts": 4, "count": 4, "manifest_equal": True, "tensors_equal": True},
    "distill": {"one": _run("python -m ddlib distill --artifacts-dir one", 8.83),
                "two": _run("torchrun --standalone -m ddlib distill --artifacts-dir two", 16.04),
                "ipc": 1, "experts_reused": True, "labels_equal": True, "max_abs_pixel": 3.27,
                "max_abs_difference": 4.77e-7},
    "memory": {mode: {"command": f"python benchmarks/data_parallel_memory.py --width 128 --memory {mode}",
                      "one_process_mb": one, "per_process_mb": many, "ratio_largest": max(many) / one,
                      "settings": {"width": 128, "ipc": 10, "steps": 12}}
               for mode, one, many in (("graph", 2463.2, [950.4, 700.1]), ("recompute", 385.0, [25.3, 287.0]))},
}


def tables(markdown: str) -> list[list[list[str]]]:
    """The Markdown tables of ``markdown``: rows of stripped cells, the separator row left out."""
    found, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= {"-"} for cell in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def code_blocks(markdown: str) -> list[list[str]]:
    return [block.split("\n", 1)[1].strip().splitlines() for block in markdown.split("```")[1::2]]


def test_every_number_lands_in_its_cell():
    text = cluster_markdown(SAMPLE)
    experts, distilled, memory = tables(text)
    assert experts == [["processes", "wall time", "store"],
                       ["1 (`python -m ddlib`)", "17.3 s", "4 experts"],
                       ["2 (`torchrun`, Gloo)", "27.6 s",
                        "the same 4 experts: manifest byte for byte, every tensor equal"]]
    assert distilled == [["processes", "wall time", "synthetic images"],
                         ["1 (`python -m ddlib`)", "8.8 s", "pixel values up to 3.3 in absolute value"],
                         ["2 (`torchrun`, Gloo, data-parallel)", "16.0 s", "largest difference from one process: 4.8e-7"]]
    assert memory == [["memory mode", "1 process", "2 processes (each)"],
                      ["graph (the unroll's whole graph kept)", "+2,463 MB", "+950 MB and +700 MB"],
                      ["recompute (one inner step's graph at a time)", "+385 MB", "+25 MB and +287 MB"]]
    assert code_blocks(text) == [[SAMPLE["experts"]["one"]["command"], SAMPLE["experts"]["two"]["command"]],
                                 [SAMPLE["distill"]["one"]["command"], SAMPLE["distill"]["two"]["command"]]]
    first = text.splitlines()[0]
    assert "2 CPU cores" in first and "AMD EPYC" in first and "2026-11-30" in first and "2.9.0" in first
    assert "IPC 1, on the 4 experts above, already trained" in text
    assert "ConvNet-128, IPC 10, 12 inner steps" in text
    assert "`python benchmarks/data_parallel_memory.py --width 128 --memory recompute`" in text
    # 950.4 / 2463.2 = 0.386 and 287 / 385 = 0.745
    assert "largest process needs 0.39 of one process's memory for the iteration (in recompute mode 0.75)" in text


def test_a_store_that_differs_and_retrained_experts_are_said_so():
    measured = copy.deepcopy(SAMPLE)
    measured["experts"]["tensors_equal"] = False
    measured["distill"]["experts_reused"] = False
    measured["distill"]["max_abs_difference"] = 0.0
    text = cluster_markdown(measured)
    assert tables(text)[0][2][2] == "**not the same store**: tensors differ"
    assert "**trained again**" in text
    assert tables(text)[1][2][2] == "largest difference from one process: 0"


@pytest.mark.parametrize("key", ["date", "machine.cpu_model", "experts.two.wall_s", "distill.max_abs_difference",
                                 "memory.recompute.per_process_mb", "memory.graph.settings.width"])
def test_a_missing_key_is_named(key):
    measured = copy.deepcopy(SAMPLE)
    *parents, last = key.split(".")
    holder = measured
    for part in parents:
        holder = holder[part]
    del holder[last]
    with pytest.raises(ValueError, match=f"missing key '{key}'"):
        cluster_markdown(measured)


def test_the_stored_measurement_renders_and_its_stores_are_equal():
    measured = json.loads(MEASURED.read_text())
    assert measured["size"] == "full" and measured["experts"]["tensors_equal"] is True
    assert measured["experts"]["manifest_equal"] is True and measured["distill"]["experts_reused"] is True
    text = cluster_markdown(measured)
    assert len(tables(text)) == 3 and measured["experts"]["one"]["command"] in text
    assert "nodename" not in json.dumps(measured) and measured["machine"]["cores"] >= 1


def test_the_book_build_writes_the_include_from_the_measurement(tmp_path):
    build_book = _load("build_book", ROOT / "scripts" / "build_book.py")
    (tmp_path / "m.json").write_text(json.dumps(SAMPLE))
    build_book.write_cluster_measured(tmp_path / "cluster_measured.md", tmp_path / "m.json")
    assert (tmp_path / "cluster_measured.md").read_text() == cluster_markdown(SAMPLE)
    with pytest.raises(FileNotFoundError, match="benchmarks/cluster_check.py"):
        build_book.write_cluster_measured(tmp_path / "x.md", tmp_path / "missing.json")
    assert "```{include} cluster_measured.md" in (ROOT / "book" / "cluster.md").read_text()


@pytest.mark.parametrize("argv, message", [(["--experts", "0"], "--experts 0: expected at least 1"),
                                           (["--timeout", "-5"], "--timeout -5.0: expected a positive"),
                                           (["--size", "huge"], "invalid choice: 'huge'")])
def test_bad_arguments_stop_the_check_before_it_runs(argv, message, capsys):
    check = _load("cluster_check", ROOT / "benchmarks" / "cluster_check.py")
    with pytest.raises(SystemExit):
        check.parse_args(argv)
    assert message in capsys.readouterr().err


def test_a_work_dir_with_stores_in_it_is_refused(tmp_path, capsys):
    check = _load("cluster_check", ROOT / "benchmarks" / "cluster_check.py")
    (tmp_path / "one").mkdir()
    with pytest.raises(SystemExit):
        check.parse_args(["--work-dir", str(tmp_path)])
    assert f"--work-dir {tmp_path}: expected an empty or missing folder" in capsys.readouterr().err


def test_the_tiny_check_runs_end_to_end(tmp_path):
    """Six commands in fresh processes (two of them under torchrun, two running torchrun themselves)."""
    out = tmp_path / "cluster.json"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cluster_check.py"), "--size", "tiny",
                           "--experts", "2", "--work-dir", str(tmp_path / "work"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    measured = json.loads(out.read_text())
    print(f"tiny cluster check: {seconds:.0f} s")
    experts, distilled = measured["experts"], measured["distill"]
    assert experts["count"] == 2 and experts["same_folder"] and experts["files_equal"]
    assert experts["manifest_equal"] and experts["tensors_equal"]
    assert distilled["experts_reused"] and distilled["labels_equal"] and distilled["max_abs_difference"] < 1e-4
    assert experts["one"]["command"].startswith("python -m ddlib experts --scale smoke --set num_experts=2")
    assert experts["two"]["command"].startswith("torchrun --standalone --nproc_per_node 2 -m ddlib experts")
    assert distilled["two"]["command"].endswith("--method mtt --ipc 1 --device cpu --artifacts-dir two")
    for mode in ("graph", "recompute"):
        memory = measured["memory"][mode]
        assert memory["settings"]["width"] == 8 and len(memory["per_process_mb"]) == 2
        assert memory["ratio_largest"] == pytest.approx(max(memory["per_process_mb"]) / memory["one_process_mb"])
    assert all(run["wall_s"] > 0 for run in (experts["one"], experts["two"], distilled["one"], distilled["two"]))
    cluster_markdown(measured)  # every key the page needs is there
    assert len(tables(cluster_markdown(measured))) == 3
