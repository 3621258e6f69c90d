"""benchmarks/side_by_side.py: interleaving order, ratio arithmetic and JSON shape, with fake runs."""
import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("side_by_side", ROOT / "benchmarks" / "side_by_side.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_interleaved_runs_give_per_repeat_ratios_and_their_median_and_range(tmp_path):
    sbs = _module()
    order = []
    ref_times = {0: 10.0, 1: 20.0, 2: 40.0}  # a machine slowing down: pairing keeps the ratio at 0.5
    ours_times = {0: 5.0, 1: 12.0, 2: 20.0}

    def ref(case, repeat):
        order.append(("reference", case, repeat))
        return {"status": "ok", "s_per_iter": ref_times[repeat], "peak_mb": 1000.0}

    def ours(case, repeat):
        order.append(("ddlib", case, repeat))
        return {"status": "ok", "s_per_iter": ours_times[repeat], "peak_mb": 250.0 * (repeat + 1)}

    out = tmp_path / "sbs.json"
    rc = sbs.main(["--dm-ref", "x", "--cases", "dm_ipc10", "--repeats", "3", "--out", str(out)],
                  run_reference=ref, run_ddlib=ours)
    assert rc == 0
    assert order == [(side, "dm_ipc10", r) for r in range(3) for side in ("reference", "ddlib")]
    report = json.loads(out.read_text())
    case = report["cases"]["dm_ipc10"]
    assert case["time_ratios"] == [0.5, 0.6, 0.5]
    assert case["time_ratio"] == {"median": 0.5, "min": 0.5, "max": 0.6, "n": 3}
    assert case["memory_ratio"] == {"median": 0.5, "min": 0.25, "max": 0.75, "n": 3}
    assert case["reference_s_per_iter"]["median"] == 20.0
    assert {"date", "machine", "settings", "runs", "repeats"} <= set(report)
    assert {"cpu_model", "logical_cpus", "threads", "torch_version", "huge_pages"} <= set(report["machine"])
    assert len(report["runs"]) == 6 and report["runs"][0]["side"] == "reference"


def test_a_failed_run_drops_only_its_repeat_and_sets_the_exit_code(tmp_path):
    sbs = _module()

    def ref(case, repeat):
        return ({"status": "error", "reason": "boom"} if repeat == 0
                else {"status": "ok", "s_per_iter": 4.0, "peak_mb": 100.0})

    def ours(case, repeat):
        return {"status": "ok", "s_per_iter": 1.0, "peak_mb": 50.0}

    out = tmp_path / "sbs.json"
    rc = sbs.main(["--mtt-ref", "x", "--cases", "mtt_ipc10_s10", "--repeats", "2", "--out", str(out)],
                  run_reference=ref, run_ddlib=ours)
    case = json.loads(out.read_text())["cases"]["mtt_ipc10_s10"]
    assert rc == 1 and case["time_ratios"] == [0.25] and case["time_ratio"]["n"] == 1


def test_reference_runner_calls_the_script_with_settings_threads_and_the_huge_page_setting(tmp_path):
    """A fake reference script in the real one's interface: it writes results.json as reference_bench.py does."""
    sbs = _module()
    fake = tmp_path / "fake_reference.py"
    fake.write_text(textwrap.dedent("""
        import argparse, json, os
        p = argparse.ArgumentParser()
        p.add_argument("ref"); p.add_argument("--workdir"); p.add_argument("--settings")
        p.add_argument("--threads"); p.add_argument("--dm-ref"); p.add_argument("--iters")
        a = p.parse_args()
        row = {"setting": a.settings, "median_s": 2.5, "peak_rss_mb": 800.0, "timed_s": [2.5],
               "window_peak_rss_mb": 700.0}
        assert os.environ["OMP_NUM_THREADS"] == a.threads == "3", a.threads
        assert os.environ.get("THP_MEM_ALLOC_ENABLE") is None  # --huge-pages off
        json.dump([row], open(os.path.join(a.workdir, "results.json"), "w"))
    """))
    args = sbs.parse_args(["--dm-ref", "dm", "--cases", "dm_ipc10", "--threads", "3", "--huge-pages", "off",
                           "--ref-script", str(fake), "--workdir", str(tmp_path / "work")])
    result = sbs.reference_runner(args)("dm_ipc10", 0)
    assert result["status"] == "ok", result
    assert (result["s_per_iter"], result["peak_mb"]) == (2.5, 800.0)
    assert not (tmp_path / "work" / "results.json").exists()  # a later run cannot read stale numbers


def test_unknown_case_and_missing_checkout_are_rejected():
    sbs = _module()
    with pytest.raises(SystemExit):
        sbs.parse_args(["--cases", "mtt_ipc3_s7", "--mtt-ref", "x"])
    with pytest.raises(SystemExit):
        sbs.parse_args(["--cases", "mtt_ipc10_s10"])  # no --mtt-ref
