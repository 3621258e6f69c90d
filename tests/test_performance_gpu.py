"""The Performance chapter's GPU section: which check it reads, its test outcome, its tables."""
import json

import pytest

from ddlib.chapters import performance_gpu as gpu_page
from ddlib.chapters.performance_page import ROOT

LOG = """..F                                                                      [100%]
=================================== FAILURES ===================================
FAILED tests/test_gpu.py::test_dm_steps_agree - AssertionError: Tensor-likes ...
1 failed, 2 passed in 10.17s
"""


def _case(s, mb, status="ok"):
    return {"status": status, "s_per_iter": s, "peak_mb": mb, "repeats": 3}


def _write(folder, *, cuda=True, cases=None, log=LOG, notes=None):
    folder.mkdir(parents=True)
    (folder / "device.json").write_text(json.dumps({"cuda_available": cuda, "device": "Test GPU", "memory_gib": 80,
                                                    "torch": "2.11", "cuda": "13.0", "python": "3.12"}))
    cases = cases if cases is not None else {"mtt_ipc10_s30": _case(0.6, 500), "mtt_graph_ipc10_s30": _case(0.3, 8000),
                                             "eval_sequential": _case(0.02, 300), "eval_batched": _case(0.01, 2000)}
    (folder / "bench.json").write_text(json.dumps({"cases": cases, "machine": {"date": "2026-01-02T03:04:05",
                                                                               "git_sha": "abcdef123456"}}))
    if log is not None:
        (folder / "gpu_tests.log").write_text(log)
    if notes is not None:
        (folder / "notes.json").write_text(json.dumps(notes))


def test_no_check_reads_as_none(tmp_path):
    assert gpu_page.load_gpu_check(tmp_path) is None


def test_a_cpu_rehearsal_is_skipped_for_the_committed_gpu_check(tmp_path):
    _write(tmp_path / "benchmarks/results/gpu_check", cuda=False)
    _write(tmp_path / "benchmarks/measured/gpu_check")
    check = gpu_page.load_gpu_check(tmp_path)
    assert check.origin == "the committed check" and check.path == tmp_path / "benchmarks/measured/gpu_check"


def test_this_builds_gpu_check_comes_first(tmp_path):
    _write(tmp_path / "benchmarks/results/gpu_check")
    _write(tmp_path / "benchmarks/measured/gpu_check")
    assert gpu_page.load_gpu_check(tmp_path).origin == "this build's check"


def test_test_outcome_and_stored_notes_are_named(tmp_path):
    _write(tmp_path / "benchmarks/measured/gpu_check", notes={"test_dm_steps_agree": "networks drawn differently."})
    check = gpu_page.load_gpu_check(tmp_path)
    assert check.tests == "1 failed, 2 passed" and check.failed == ("test_dm_steps_agree",)
    text = gpu_page.gpu_text(check)
    assert "**Test GPU**" in text and "2026-01-02" in text and "`abcdef1`" in text
    assert "**1 failed, 2 passed**" in text and "`test_dm_steps_agree` failed: networks drawn differently." in text


def test_a_missing_log_is_said(tmp_path):
    _write(tmp_path / "benchmarks/measured/gpu_check", log=None)
    check = gpu_page.load_gpu_check(tmp_path)
    assert check.tests is None and "log is missing" in gpu_page.gpu_text(check)


def test_table_puts_the_published_figure_beside_the_30_step_cases_only(tmp_path):
    cases = {"mtt_ipc10_s10": _case(0.2, 500), "mtt_ipc10_s30": _case(0.6, 500),
             "dm_ipc10": _case(0.04, 2000, status="timeout")}
    _write(tmp_path / "benchmarks/measured/gpu_check", cases=cases)
    table = gpu_page.gpu_table(gpu_page.load_gpu_check(tmp_path))
    assert list(table.index) == ["mtt_ipc10_s10", "mtt_ipc10_s30"]  # GPU_CASES order; failed cases left out
    assert table.loc["mtt_ipc10_s30", "published s/iter"] == pytest.approx(0.6)  # AST Table 8, CIFAR-10 IPC 10
    assert table["published s/iter"].isna().sum() == 1


def test_ratios_divide_cases_of_the_same_check(tmp_path):
    _write(tmp_path / "benchmarks/measured/gpu_check")
    ratios = gpu_page.gpu_ratios(gpu_page.load_gpu_check(tmp_path)).set_index("ratio")["value"]
    assert ratios["time, graph / recompute, 30 steps"] == pytest.approx(0.5)
    assert ratios["memory, graph / recompute, 30 steps"] == pytest.approx(16.0)
    assert ratios["time, batched / sequential evaluation"] == pytest.approx(0.5)
    assert "time, graph / recompute, 10 steps" not in ratios  # its cases were not measured


def test_a_damaged_benchmark_file_is_named(tmp_path):
    folder = tmp_path / "benchmarks/measured/gpu_check"
    _write(folder)
    (folder / "bench.json").write_text('{"cases": {')
    with pytest.raises(ValueError, match="bench.json"):
        gpu_page.load_gpu_check(tmp_path)


def test_the_committed_check_names_its_gpu():
    check = gpu_page.load_gpu_check(ROOT)
    if check is None or check.origin != "the committed check":
        pytest.skip("this build has its own GPU check")
    assert "H200" in gpu_page.gpu_text(check)
    assert set(gpu_page.gpu_table(check).index) <= set(gpu_page.GPU_CASES)
