"""The benchmark suite runs end to end at the tiny size (a smoke run, not a timed test)."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"


def _cases_module():
    spec = importlib.util.spec_from_file_location("bench_cases", ROOT / "benchmarks" / "cases.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _case_names() -> list[str]:
    return [case.name for case in _cases_module().CASES]


def test_peak_memory_is_read_before_the_flop_counting_pass(monkeypatch):
    """FlopCounterMode holds memory of its own: it must run after the case's peak is taken."""
    import torch

    cases = _cases_module()
    events = []
    monkeypatch.setattr(cases, "memory_mb", lambda device: events.append("memory") or 100.0 * len(events))
    monkeypatch.setattr(cases, "count_flops", lambda fn: (events.append("flops"), fn(), (5e9, None))[-1])
    steps = []
    result = cases.measure(lambda: steps.append(1), torch.device("cpu"), repeats=2)
    assert events == ["memory", "memory", "flops"]  # baseline, peak, then the counting pass
    assert result["baseline_mb"] == 100.0 and result["peak_mb"] == 200.0
    assert len(steps) == 4 and len(result["times_s"]) == 2  # warm-up, 2 timed, 1 counted
    assert result["flops_per_iter"] == 5e9 and result["gflops"] > 0


def test_tiny_benchmark_writes_every_case_and_prints_the_table(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(RUN), "--size", "tiny", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())

    names = _case_names()
    for family in ("expert_epoch", "mtt_ipc1_s50", "mtt_ipc10_s10", "mtt_ipc10_s20", "mtt_ipc10_s30",
                   "mtt_ipc10_s80", "mtt_graph_ipc10_s30", "ast_ipc10_s20", "mct_ipc10_s20", "dm_ipc10", "tgdd_ipc10",
                   "eval_sequential", "eval_batched", "peak_matmul", "peak_conv", "convnet_fwd_bwd"):
        assert family in names
    assert list(report["cases"]) == names
    for name, result in report["cases"].items():
        if result["status"] == "skipped":  # an optional feature absent from this ddlib
            assert result["reason"], name
            continue
        assert result["status"] == "ok", (name, result)
        assert result["s_per_iter"] > 0 and all(t > 0 for t in result["times_s"]), name
        assert result["peak_mb"] > 0 and result["peak_mb"] >= result["baseline_mb"] > 0, name
    for name in ("peak_matmul", "peak_conv", "convnet_fwd_bwd"):
        assert report["cases"][name]["gflops"] > 0
    assert report["cases"]["mtt_ipc10_s10"]["ref_s_per_iter"] == 13.0
    assert report["cases"]["mtt_ipc10_s10"]["settings"]["memory"] == "recompute"  # the default mode
    assert report["cases"]["mtt_graph_ipc10_s10"]["settings"]["memory"] == "graph"

    machine = report["machine"]
    for key in ("cpu_model", "threads", "torch_version", "device", "git_sha", "date"):
        assert key in machine
    assert report["size"] == "tiny"
    assert all(t["met"] is None for t in report["targets"])  # no verdicts at the tiny size

    table = proc.stdout
    assert "s/iter" in table and "peak MB" in table and "ref s" in table
    for name in names:
        assert f"\n{name} " in table
    assert str(out) in table
