"""How cost grows: benchmarks/cost_growth.py (plan, skip, interleaving, JSON) and the page's frame, text and figure."""
import importlib.util
import json
import math
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ddlib.chapters import performance_cost_growth as growth

ROOT = Path(__file__).resolve().parents[1]


def _module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("cost_growth", ROOT / "benchmarks" / "cost_growth.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["cost_growth"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _fake_runners(order, fail=()):
    def make(side):
        def run(ipc, syn_steps):
            order.append((side, ipc, syn_steps))
            if (side, ipc, syn_steps) in fail:
                return {"status": "error", "reason": "boom"}
            return {"status": "ok", "s_per_iter": 0.1 * syn_steps, "peak_mb": 1000.0 + syn_steps}
        return run
    return {side: make(side) for side in ("reference", "graph", "recompute")}


def test_peak_model_is_linear_in_images_times_steps_and_refuses_nonsense():
    cg = _module()
    assert cg.PeakModel(100.0, 1.0, 2.0, "test").estimate_mb(ipc=3, syn_steps=5) == 100.0 + 1.0 * 30 + 2.0 * 30 * 5
    with pytest.raises(ValueError, match=r"mb_per_image_step=0.0\): expected .* mb_per_image_step > 0"):
        cg.PeakModel(100.0, 1.0, 0.0, "test")
    # fit: three cells made by base 1000, 2 MB per image, 3 MB per image and step give those numbers back
    peaks = {(1, 10): 1000 + 2 * 10 + 3 * 10 * 10, (10, 10): 1000 + 2 * 100 + 3 * 100 * 10,
             (10, 20): 1000 + 2 * 100 + 3 * 100 * 20}
    fitted = cg.PeakModel.fit(peaks, "test")
    assert (fitted.base_mb, fitted.mb_per_image, fitted.mb_per_image_step) == pytest.approx((1000, 2, 3))
    with pytest.raises(ValueError, match=r"PeakModel.fit: cells \[\(1, 10\), \(1, 20\), \(10, 10\)\]"):
        cg.PeakModel.fit({(1, 10): 1.0, (1, 20): 2.0, (10, 10): 3.0}, "test")
    # recompute is flat: never estimated; ddlib at size tiny: the full-size model does not apply
    assert cg.estimated_peak_mb("recompute", 50, 80, "full") is None
    assert cg.estimated_peak_mb("graph", 50, 80, "tiny") is None
    assert cg.estimated_peak_mb("reference", 50, 80, "tiny") == cg.PEAK_MODELS["reference"].estimate_mb(50, 80)


def test_a_cell_over_budget_is_skipped_with_its_reason_before_any_run(tmp_path):
    cg = _module()
    budget_gb = 10.0
    cells = cg.plan([1, 50], [10, 80], ["reference", "graph", "recompute"], "full", budget_gb * 1024)
    over = {(c["side"], c["ipc"], c["syn_steps"]) for c in cells if c.get("status") == "skipped"}
    expected = {(side, ipc, steps) for side in ("reference", "graph") for ipc, steps in ((1, 10), (1, 80), (50, 10),
                (50, 80)) if cg.PEAK_MODELS[side].estimate_mb(ipc, steps) > budget_gb * 1024}
    assert over == expected and ("reference", 50, 80) in over and ("graph", 50, 80) in over
    assert not any(side == "recompute" for side, _, _ in over) and ("graph", 1, 10) not in over

    order = []
    out = tmp_path / "growth.json"
    rc = cg.main(["--mtt-ref", "x", "--ipcs", "1,50", "--steps", "10,80", "--memory-budget-gb", str(budget_gb),
                  "--out", str(out)], runners=_fake_runners(order))
    assert rc == 0
    assert not over & set(order)  # a skipped cell's runner is never called
    rows = {(r["side"], r["ipc"], r["syn_steps"]): r for r in json.loads(out.read_text())["rows"]}
    skipped = rows[("reference", 50, 80)]
    estimate = cg.PEAK_MODELS["reference"].estimate_mb(50, 80)
    assert skipped["status"] == "skipped" and skipped["s_per_iter"] is None
    assert skipped["reason"] == f"estimated {estimate / 1024:.1f} GB > budget 10.0 GB"
    assert skipped["estimated_peak_mb"] == pytest.approx(estimate)


def test_sides_run_interleaved_per_cell_and_the_json_has_rows_settings_and_machine(tmp_path):
    cg = _module()
    order = []
    out = tmp_path / "growth.json"
    rc = cg.main(["--mtt-ref", "x", "--ipcs", "1,10", "--steps", "10,20", "--sides", "ref,graph,recompute",
                  "--memory-budget-gb", "1000", "--out", str(out)],
                 runners=_fake_runners(order, fail={("graph", 10, 20)}))
    assert order == [(side, ipc, steps) for ipc in (1, 10) for steps in (10, 20)
                     for side in ("reference", "graph", "recompute")]
    assert rc == 1  # a failed cell sets the exit code; its row stays
    report = json.loads(out.read_text())
    assert {"date", "machine", "torch_version", "settings", "rows"} <= set(report)
    assert {"cpu_model", "threads", "mem_total_gb", "huge_pages"} <= set(report["machine"])
    assert report["settings"]["warmup"] == report["settings"]["iters"] == 1
    assert len(report["rows"]) == 12
    first, failed = report["rows"][0], report["rows"][10]
    assert (first["side"], first["ipc"], first["syn_steps"], first["status"]) == ("reference", 1, 10, "ok")
    assert (first["s_per_iter"], first["peak_mb"], first["images"]) == (1.0, 1010.0, 10)
    assert (failed["side"], failed["status"], failed["reason"]) == ("graph", "error", "boom")


def test_arguments_are_checked_and_tiny_defaults_to_ddlibs_sides():
    cg = _module()
    args = cg.parse_args(["--size", "tiny"])
    assert (args.ipcs, args.steps, args.sides) == ([1], [10, 20], ["graph", "recompute"])
    assert args.memory_budget_gb > 0
    with pytest.raises(SystemExit):
        cg.parse_args(["--sides", "graph,fast"])
    with pytest.raises(SystemExit):
        cg.parse_args(["--sides", "ref"])  # no --mtt-ref
    with pytest.raises(SystemExit):
        cg.parse_args(["--sides", "graph", "--steps", "0"])
    with pytest.raises(SystemExit) as shown:  # the help text formats (a bare "%" in it would raise)
        cg.parse_args(["--help"])
    assert shown.value.code == 0


def test_reference_runner_asks_the_script_for_the_cells_setting_warmup_and_iters(tmp_path):
    cg = _module()
    fake = tmp_path / "fake_reference.py"
    fake.write_text(textwrap.dedent("""
        import argparse, json, os
        p = argparse.ArgumentParser()
        p.add_argument("ref"); p.add_argument("--workdir"); p.add_argument("--settings")
        p.add_argument("--threads"); p.add_argument("--iters"); p.add_argument("--warmup")
        a = p.parse_args()
        assert (a.settings, a.warmup, a.iters) == ("ipc10_s40", "0", "2"), (a.settings, a.warmup, a.iters)
        row = {"setting": a.settings, "median_s": 3.5, "peak_rss_mb": 900.0}
        json.dump([row], open(os.path.join(a.workdir, "results.json"), "w"))
    """))
    args = cg.parse_args(["--mtt-ref", "x", "--ref-script", str(fake), "--workdir", str(tmp_path / "work"),
                          "--warmup", "0", "--iters", "2", "--timeout", "60"])
    result = cg.reference_runner(args)(10, 40)
    assert result["status"] == "ok", result
    assert (result["s_per_iter"], result["peak_mb"]) == (3.5, 900.0)


def test_a_timeout_kills_the_commands_own_children_too(tmp_path):
    """The reference script runs each setting in a child: after the timeout, nothing of it may keep running."""
    cg = _module()
    pid_file = tmp_path / "grandchild.pid"
    grandchild = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    command = [sys.executable, "-c", f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
               f"{grandchild!r}]); time.sleep(60)"]
    start = time.perf_counter()
    with pytest.raises(cg.bench.subprocess.TimeoutExpired):
        cg.bench.run_process_group(command, dict(cg.bench.os.environ), timeout=1.0)
    assert time.perf_counter() - start < 10
    pid = int(pid_file.read_text())
    for _ in range(50):  # the kill is asynchronous
        status = Path(f"/proc/{pid}/status")
        if not status.exists() or "State:\tZ" in status.read_text():
            break
        time.sleep(0.05)
    assert not status.exists() or "State:\tZ" in status.read_text(), f"grandchild {pid} still runs"


# -- the page ------------------------------------------------------------------------------------------
def _row(side, ipc, steps, s=None, mb=None, status="ok", reason=None):
    return {"side": side, "ipc": ipc, "syn_steps": steps, "status": status, "s_per_iter": s, "peak_mb": mb,
            "reason": reason}


RESULT = {"date": "2026-12-01T10:00:00+00:00", "machine": {"cpu_model": "Test CPU", "threads": 2},
          "settings": {"threads": 2, "huge_pages": "on", "warmup": 1, "iters": 1, "memory_budget_gb": 18.8},
          "rows": [_row("reference", 1, 10, 2.0, 1500.0), _row("graph", 1, 10, 1.0, 1100.0),
                   _row("recompute", 1, 10, 1.5, 1000.0),
                   _row("reference", 1, 20, 4.0, 1700.0), _row("graph", 1, 20, 2.0, 1200.0),
                   _row("recompute", 1, 20, 3.0, 1000.0),
                   _row("reference", 50, 80, status="skipped", reason="estimated 185.0 GB > budget 18.8 GB"),
                   _row("graph", 50, 80, status="skipped", reason="estimated 120.0 GB > budget 18.8 GB"),
                   _row("recompute", 50, 80, 60.0, 1900.0)]}


def test_frame_is_tidy_and_cells_that_did_not_run_have_no_numbers():
    frame = growth.cost_growth_frame(RESULT)
    assert list(frame.columns) == ["side", "ipc", "syn_steps", "s_per_iter", "peak_mb", "status", "reason"]
    assert len(frame) == 9
    row = frame[(frame["side"] == "graph") & (frame["syn_steps"] == 20)].iloc[0]
    assert (row["ipc"], row["s_per_iter"], row["peak_mb"], row["status"]) == (1, 2.0, 1200.0, "ok")
    skipped = frame[frame["status"] == "skipped"]
    assert len(skipped) == 2 and skipped["peak_mb"].isna().all() and skipped["s_per_iter"].isna().all()


def test_text_gives_the_fitted_cost_of_one_more_step_per_side():
    text = growth.cost_growth_text(growth.cost_growth_frame(RESULT))
    # IPC 1 = 10 images; slopes over 10 -> 20 steps: reference 200 MB / 10 steps, graph 100, recompute 0
    assert text == ("At IPC 1 (10 to 20 steps), one more inner step adds 20 MB for the reference code "
                    "(2.00 MB per image), 10 MB for ddlib with `memory=\"graph\"` (1.00 MB per image), 0 MB for "
                    "ddlib with `memory=\"recompute\"` (0.00 MB per image) to the peak, and 0.20 s, 0.10 s, "
                    "0.15 s to the iteration, in the same order.")
    lonely = growth.cost_growth_frame({"rows": [_row("graph", 10, 10, 1.0, 2000.0)]})
    assert growth.cost_growth_text(lonely).startswith("Too few cells ran")


def test_caption_names_date_machine_threads_and_what_was_skipped_and_why():
    caption = growth.cost_growth_caption(RESULT)
    for part in ("2026-12-01T10:00:00+00:00", "Test CPU", "2 threads", "huge pages on", "1 warm-up",
                 "memory budget of 18.8 GB", "reference code at IPC 50 with 80 steps",
                 'ddlib with `memory="graph"` at IPC 50 with 80 steps'):
        assert part in caption, part
    assert "Failed" not in caption and 'recompute"` at' not in caption


def test_figure_has_two_log_panels_and_no_point_for_a_skipped_cell():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = growth.cost_growth_figure(growth.cost_growth_frame(RESULT))
    try:
        time_ax, memory_ax = fig.axes[:2]
        assert time_ax.get_yscale() == memory_ax.get_yscale() == "log"
        points = [(x, y) for line in memory_ax.get_lines() for x, y in zip(line.get_xdata(), line.get_ydata())
                  if not math.isnan(y)]
        assert sorted(points) == sorted([(10, 1500.0), (10, 1100.0), (10, 1000.0), (20, 1700.0), (20, 1200.0),
                                         (20, 1000.0), (80, 1900.0)])
    finally:
        plt.close(fig)


def test_this_builds_file_wins_over_the_committed_one_and_none_without_either(tmp_path):
    assert growth.load_cost_growth(tmp_path) is None
    for relative, date in (("benchmarks/measured/cost_growth.json", "old"),
                           ("benchmarks/results/cost_growth.json", "new")):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(json.dumps({**RESULT, "date": date}))
        loaded = growth.load_cost_growth(tmp_path)
        assert loaded["date"] == date and loaded["source"]["path"].endswith(relative)
    assert loaded["source"]["origin"] == "this build's measurement"
    (tmp_path / "benchmarks/results/cost_growth.json").write_text(json.dumps({"machine": {}}))
    with pytest.raises(ValueError, match=r"cost_growth.json: expected a cost-growth measurement with a 'rows' list"):
        growth.load_cost_growth(tmp_path)


def test_a_cell_over_the_time_budget_is_skipped_on_every_side():
    cg = _module()
    cells = cg.plan([10, 50], [20, 40], ["reference", "graph", "recompute"], "full", 1e9, max_image_steps=10_000)
    skipped = {(c["side"], c["ipc"], c["syn_steps"]): c["reason"] for c in cells if c.get("status") == "skipped"}
    # 500 images x 40 steps = 20,000 > 10,000; 500 x 20 = 10,000 and 100 x 40 = 4,000 run
    assert set(skipped) == {(side, 50, 40) for side in ("reference", "graph", "recompute")}
    assert skipped[("recompute", 50, 40)] == "20000 image-steps > time budget 10000"


def test_caption_tells_memory_skips_from_time_skips():
    from ddlib.chapters import performance_cost_growth as pcg

    rows = [{"side": "graph", "ipc": 10, "syn_steps": 80, "status": "skipped", "reason": "estimated 28.6 GB > budget 16.0 GB"},
            {"side": "recompute", "ipc": 50, "syn_steps": 40, "status": "skipped",
             "reason": "20000 image-steps > time budget 10000"},
            {"side": "recompute", "ipc": 1, "syn_steps": 10, "status": "ok", "s_per_iter": 1.0, "peak_mb": 1.0}]
    caption = pcg.cost_growth_caption({"rows": rows, "settings": {"memory_budget_gb": 16.0, "max_image_steps": 10000}})
    memory, time = caption.split("Not run on any side")
    assert "memory budget of 16.0 GB" in memory and "80" in memory and "40 steps" not in memory
    assert "time budget of 10000 images x inner steps" in time


def test_caption_names_a_cell_measured_again_and_why():
    from ddlib.chapters import performance_cost_growth as pcg

    rows = [{"side": "graph", "ipc": 10, "syn_steps": 10, "status": "ok", "s_per_iter": 1.0, "peak_mb": 1.0}]
    reruns = [{"ipc": 10, "syn_steps": 10, "date": "2026-11-30T11:04:00", "reason": "it overlapped with other work"}]
    caption = pcg.cost_growth_caption({"rows": rows, "settings": {}, "reruns": reruns})
    assert "The cell at IPC 10 with 10 steps was measured again (2026-11-30): it overlapped with other work." in caption
