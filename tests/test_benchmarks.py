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


def test_conv_layer_throughput_counts_each_layers_flops_and_kernel_time():
    import torch
    import torch.nn.functional as F

    from ddlib.models import build_model

    cases = _cases_module()
    net = build_model("ConvNet", 3, 10, (8, 8), width=4, seed=0)
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])

    def step():
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()

    result = cases.conv_layer_throughput(net, step, repeats=2)
    layers = result["layers"]
    assert [layer["layer"] for layer in layers] == ["features.0", "features.4", "features.8"]
    # 2 N C_out H W C_in 9 per pass: forward and weight gradient for all, input gradient not for the
    # first layer (its input needs no gradient)
    per_pass = [2 * 2 * 4 * 8 * 8 * 3 * 9, 2 * 2 * 4 * 4 * 4 * 4 * 9, 2 * 2 * 4 * 2 * 2 * 4 * 9]
    expected = [2 * per_pass[0], 3 * per_pass[1], 3 * per_pass[2]]
    assert [round(layer["gflop"] * 1e9) for layer in layers] == expected
    assert layers[0]["weight"] == [4, 3, 3, 3] and layers[0]["input"] == [3, 8, 8]
    assert all(layer["seconds"] > 0 and layer["gflops"] > 0 for layer in layers)
    total = sum(layer["gflop"] for layer in layers) / sum(layer["seconds"] for layer in layers)
    assert result["conv_gflops"] == total


def test_efficiency_target_can_read_another_field():
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    run = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(RUN.parent))
    try:
        spec.loader.exec_module(run)
    finally:
        sys.path.remove(str(RUN.parent))
    results = {"net": {"status": "ok", "gflops": 50.0, "conv_gflops": 90.0},
               "peak": {"status": "ok", "gflops": 100.0}}
    reference = {"targets": [
        {"id": "a", "text": "whole", "kind": "efficiency", "op": ">=", "threshold": 0.8, "cases": ["net", "peak"]},
        {"id": "b", "text": "kernels", "kind": "efficiency", "field": "conv_gflops", "op": ">=", "threshold": 0.8,
         "cases": ["net", "peak"]}]}
    reference["targets"].append({"id": "c", "text": "vs reference", "kind": "time_ratio", "op": "<=",
                                 "threshold": 0.5, "cases": ["net"]})  # judged from the side-by-side run only
    whole, kernels = run.evaluate_targets(results, reference, "full")
    assert (whole["value"], whole["met"]) == (0.5, False)
    assert (kernels["value"], kernels["met"]) == (0.9, True)


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
    assert len(report["cases"]["convnet_fwd_bwd"]["conv_layers"]) == 3
    assert report["cases"]["dm_ipc10"]["settings"]["real_chunk"] > 0  # automatic chunking on the CPU
    assert report["cases"]["dm_ipc10_one_pass"]["settings"]["real_chunk"] == 0
    assert report["cases"]["eval_sequential_compiled"]["settings"]["compile"] is True
    assert report["cases"]["mtt_ipc10_s10"]["ref"] == "mtt_ipc10_s10"  # named only: no figures from elsewhere
    assert not any(k in report["cases"]["mtt_ipc10_s10"] for k in ("ref_s_per_iter", "time_ratio"))
    assert report["cases"]["mtt_ipc10_s10"]["settings"]["memory"] == "recompute"  # the default mode
    assert report["cases"]["mtt_graph_ipc10_s10"]["settings"]["memory"] == "graph"

    machine = report["machine"]
    for key in ("cpu_model", "threads", "torch_version", "device", "git_sha", "date"):
        assert key in machine
    assert report["size"] == "tiny"
    assert all(t["met"] is None for t in report["targets"])  # no verdicts at the tiny size
    assert {t["id"] for t in report["targets"]}.isdisjoint({"mtt_time", "mtt_memory", "dm_time"})  # side by side only

    table = proc.stdout
    assert "s/iter" in table and "peak MB" in table and "ref s" not in table
    for name in names:
        assert f"\n{name} " in table
    assert str(out) in table


def test_gpu_check_runs_its_cpu_rehearsal(tmp_path):
    """benchmarks/gpu_check.sh, prepared for a lent GPU machine, runs end to end here on the CPU:
    the device-agreement tests (against a second CPU run), one benchmark case and one chapter's
    paper-scale dry run, results under OUT."""
    import os

    env = dict(os.environ, OUT=str(tmp_path), DEVICE="cpu", PYTHON=sys.executable, CASES="eval_batched",
               DRY_RUN_IPCS="1", DRY_RUN_CHAPTERS="data_and_models")
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert json.loads((tmp_path / "device.json").read_text())["cuda_available"] in (True, False)
    assert "7 passed" in (tmp_path / "gpu_tests.log").read_text()
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert bench["size"] == "tiny" and bench["cases"]["eval_batched"]["status"] == "ok"
    assert "done, status 0" in (tmp_path / "check.log").read_text()
    executed = json.loads((tmp_path / "dry-run" / "src" / "book" / "notebooks" / "01_data_and_models.ipynb").read_text())
    assert executed["metadata"]["papermill"]["parameters"]["dry_run"] is True


def test_a_damaged_results_file_is_named_not_a_bare_json_error(tmp_path):
    out = tmp_path / "bench.json"
    out.write_text('{"size": "tiny", "cases": {')  # a run killed mid-write by an older, non-atomic writer
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--size", "tiny", "--only",
                          "peak_matmul", "--merge", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert str(out) in run.stderr and "delete it or drop --merge" in run.stderr
    assert "JSONDecodeError" not in run.stderr.splitlines()[-1]


def test_data_parallel_memory_reports_each_rank(tmp_path):
    """The data-parallel memory benchmark runs one and two processes and reports every rank's rise."""
    out = tmp_path / "dp.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "data_parallel_memory.py"), "--width", "4",
                           "--train", "100", "--steps", "2", "--ipc", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [r["rank"] for r in report["2_processes"]] == [0, 1] and report["one_process"][0]["world"] == 1
    assert all(r["rise_mb"] >= 0 for r in report["one_process"] + report["2_processes"])
    assert report["settings"]["memory"] == "graph" and report["rise_ratio_max_rank"] > 0


def test_data_parallel_memory_rejects_an_ipc_outside_the_table():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "data_parallel_memory.py"), "--ipc", "2"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and "--ipc 2" in proc.stderr and "ipc 1, 10 or 50" in proc.stderr
