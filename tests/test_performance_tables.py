"""The Performance chapter: its tables, the benchmark files it reads, its captions and figures."""
import json
import math
import textwrap

import matplotlib
import pytest

matplotlib.use("Agg")  # figures are drawn, never shown
import matplotlib.pyplot as plt  # noqa: E402

from ddlib.chapters import performance_page as page
from ddlib.chapters import performance_tables as tables
from ddlib.chapters.performance_tables import benchmark_table, case_note

BENCH = {"cases": {
    "mtt_ipc10_s10": {"status": "ok", "ref": "mtt_ipc10", "s_per_iter": 5.0, "peak_mb": 512.0, "cpu_s_per_iter": 9.0,
                      "baseline_mb": 300.0, "gflops": 12.0, "settings": {"syn_steps": 10, "nominal_steps": 10}},
    "eval_batched": {"status": "ok", "s_per_iter": 1.0, "peak_mb": 100.0, "s_protocol_1000_epochs_estimate": 600.0},
    "dm_ipc10": {"status": "failed", "reason": "out of memory"},
}}


def test_benchmark_table_has_our_numbers_and_no_reference_column():
    table = benchmark_table(BENCH)
    assert table.loc["mtt_ipc10_s10", "s/iter"] == 5.0 and table.loc["mtt_ipc10_s10", "peak MB"] == 512.0
    assert not any("ref" in column for column in table.columns)  # ratios come from the side-by-side run only
    assert table.loc["dm_ipc10", "note"] == "out of memory" and math.isnan(table.loc["dm_ipc10", "s/iter"])
    assert table.loc["eval_batched", "note"] == "10.0 min for 1000 epochs x 5 networks"


def test_case_notes():
    assert case_note({"settings": {"syn_steps": 2, "nominal_steps": 10}}) == "2 inner steps (tiny)"
    expected = "2.00 ms/image; 100 s per 50k-image epoch"
    assert case_note({"s_per_image": 0.002, "s_per_cifar10_epoch_estimate": 100.0}) == expected


# ---- the rest of the page: targets, convolution layers, huge pages, loading and figures ----
MACHINE = {"date": "2026-01-01", "cpu_model": "Test CPU", "threads": 2, "logical_cpus": 4, "device": "cpu",
           "torch_version": "2.0", "git_sha": "0123456789abcdef", "load_average_start": [0.5, 1.25]}
CONVNET = {"status": "ok", "s_per_iter": 0.2, "conv_share_of_time": 0.75, "conv_gflops": 40.0,
           "settings": {"batch": 256}, "conv_layers": [
               {"layer": "conv0", "weight": [128, 3, 3, 3], "input": [256, 3, 32, 32], "gflop": 1.0,
                "seconds": 0.01, "gflops": 100.0}]}


def test_targets_table_words_each_verdict():
    bench = {"targets": [{"text": "a", "cases": "x", "value": 1.0, "op": "<=", "threshold": 2.0, "met": True},
                         {"text": "b", "cases": "y", "value": 3.0, "op": "<=", "threshold": 2.0, "met": False},
                         {"text": "c", "cases": "z", "value": None, "op": "<=", "threshold": 2.0, "met": None}]}
    table = tables.targets_table(bench)
    assert list(table.columns) == ["text", "cases", "value", "op", "threshold", "verdict"]
    assert list(table["verdict"]) == ["met", "not met", "n/a"]
    assert "(size tiny)" in tables.targets_caption("tiny") and "side-by-side median" in tables.targets_caption("tiny")


def test_benchmark_caption_names_the_size_and_no_reference():
    text = tables.benchmark_caption("full")
    assert text.startswith("*Table: our measurements (size full).") and "beside the reference" not in text


def test_conv_layers_rate_against_peak_and_time_outside():
    bench = {"cases": {"convnet_fwd_bwd": CONVNET, "peak_conv": {"gflops": 200.0}}}
    layers, text = tables.conv_layers(bench, "full")
    assert layers.loc["conv0", "weight"] == "128x3x3x3" and layers.loc["conv0", "ms"] == 10.0
    assert layers.loc["conv0", "of conv peak"] == 0.5
    assert "against the measured conv peak of 200 GFLOP/s" in text
    assert "25 % of the pass's 200 ms is spent outside them" in text and "at batch 256 (size full)" in text
    layers, text = tables.conv_layers({"cases": {"convnet_fwd_bwd": CONVNET}}, "full")
    assert "of conv peak" not in layers.columns and "measured conv peak" not in text


def test_conv_layers_absent_says_why():
    layers, text = tables.conv_layers({"cases": {"convnet_fwd_bwd": {"status": "failed"}}}, "tiny")
    assert layers is None and text.startswith("No per-layer convolution timings")


def test_huge_pages_table_pairs_only_cases_ok_in_both():
    on = {"cases": {"a": {"status": "ok", "s_per_iter": 2.0, "peak_mb": 10.0}, "b": {"status": "failed"}}}
    off = {"cases": {"a": {"status": "ok", "s_per_iter": 3.0, "peak_mb": 12.0},
                     "b": {"status": "ok", "s_per_iter": 1.0, "peak_mb": 1.0},
                     "c": {"status": "ok", "s_per_iter": 1.0, "peak_mb": 1.0}}}
    table = tables.huge_pages_table(on, off)
    assert list(table.index) == ["a"] and table.loc["a", "speed-up"] == 1.5
    assert table.loc["a", "peak MB, off"] == 12.0 and table.loc["a", "peak MB, on"] == 10.0
    assert tables.huge_pages_table(on, {"cases": {"b": off["cases"]["b"]}}).empty


def _fake_root(tmp_path, run_script):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "reference.json").write_text(json.dumps({"source": "ref", "cases": {}, "targets": []}))
    (tmp_path / "benchmarks" / "run.py").write_text(textwrap.dedent(run_script))
    return tmp_path


def test_load_benchmarks_reads_the_named_file(tmp_path):
    root = _fake_root(tmp_path, "raise SystemExit(1)\n")
    (root / "mine.json").write_text(json.dumps({"size": "full", "machine": MACHINE, "cases": {}}))
    loaded = page.load_benchmarks("mine.json", tmp_path / "out", "cpu", root=root)
    assert loaded.path == root / "mine.json" and loaded.note == ""
    assert loaded.comparable and loaded.size == "full" and loaded.reference["source"] == "ref"


def test_load_benchmarks_runs_the_tiny_one_when_none_exists(tmp_path):
    script = """\
        import json, sys
        out = sys.argv[sys.argv.index("--out") + 1]
        json.dump({"size": "tiny", "device": sys.argv[-1], "machine": {}, "cases": {}}, open(out, "w"))
        """
    root = _fake_root(tmp_path, script)
    loaded = page.load_benchmarks("", tmp_path / "out", "cpu", root=root)
    assert loaded.path == (tmp_path / "out" / "bench.json").resolve() and loaded.bench["device"] == "cpu"
    assert not loaded.comparable and "runs now into `out/`" in loaded.note


def test_load_benchmarks_fails_when_the_tiny_one_writes_nothing(tmp_path):
    root = _fake_root(tmp_path, "print('boom'); raise SystemExit(3)\n")
    with pytest.raises(RuntimeError, match=r"wrote no results \(exit code 3\):\nboom"):
        page.load_benchmarks("", tmp_path / "out", "cpu", root=root)


def test_machine_text_warns_below_full_size(tmp_path):
    bench = {"size": "tiny", "machine": {**MACHINE, "git_dirty": True}, "size_settings": {"width": 8, "side": 8}}
    text = page.machine_text(page.Benchmarks(tmp_path / "b.json", bench, {}))
    assert "read from `b.json` (2026-01-01)" in text and "commit `0123456789` (uncommitted changes)" in text
    assert "Load average at the start 0.5, 1.2" in text and "(width 8, 8x8 images" in text
    full = page.machine_text(page.Benchmarks(tmp_path / "b.json", {**bench, "size": "full"}, {}))
    assert "**no** target" in text and "**no** target" not in full and full.endswith("a busy machine inflates the times.")


def test_mtt_steps_frame_keeps_our_mtt_ipc10_cases_only():
    bench = {"cases": {
        "mtt_ipc10_s10": {"status": "ok", "s_per_iter": 1.0, "peak_mb": 100.0,
                          "settings": {"variant": "mtt", "ipc": 10, "syn_steps": 10, "memory": "recompute"}},
        "mtt_ipc1_s10": {"status": "ok", "s_per_iter": 1.0, "peak_mb": 100.0,
                         "settings": {"variant": "mtt", "ipc": 1, "syn_steps": 10, "memory": "graph"}},
        "ast_ipc10": {"status": "ok", "s_per_iter": 1.0, "peak_mb": 1.0, "settings": {"variant": "ast", "ipc": 10}}}}
    frame = page.mtt_steps_frame(bench)
    assert frame.to_dict("records") == [{"inner steps": 10, "mode": "ddlib, recompute", "s/iter": 1.0,
                                         "peak MB": 100.0}]
    assert page.mtt_steps_frame({"cases": {}}).empty
    assert "size tiny, in both memory modes" in page.mtt_steps_caption("tiny")
    assert "reference" not in page.mtt_steps_caption("full")


def test_flops_frame_and_figures():
    bench = {"cases": {"peak_matmul": {"status": "ok", "gflops": 100.0}, "dm": {"status": "ok", "gflops": 5.0},
                       "eval": {"status": "ok"}, "mtt": {"status": "failed", "gflops": 9.0}}}
    flops = page.flops_frame(bench)
    assert dict(zip(flops["case"], flops["kind"])) == {"peak_matmul": "measured peak", "dm": "achieved"}
    fig = page.flops_figure(flops, "tiny", 1)
    assert fig.axes[0].get_title() == "GFLOP/s per case (size tiny, 1 thread)"
    mtt = page.mtt_steps_frame({"cases": {"m": {"status": "ok", "s_per_iter": 1.0, "peak_mb": 2.0, "settings": {
        "variant": "mtt", "ipc": 10, "syn_steps": 10, "memory": "graph"}}}})
    fig = page.mtt_steps_figure(mtt)
    assert [ax.get_title() for ax in fig.axes] == ["MTT iteration at IPC 10: s/iter", "MTT iteration at IPC 10: peak MB"]
    assert fig.axes[1].get_legend() is None and fig.axes[0].get_ylim()[0] == 0
    plt.close("all")


def test_huge_pages_comparison_missing_other_size_and_found(tmp_path):
    on = {"size": "tiny", "machine": MACHINE, "cases": {"a": {"status": "ok", "s_per_iter": 1.0, "peak_mb": 1.0}}}
    shown = page.Benchmarks(tmp_path / "bench.json", on, {})
    table, text = page.huge_pages_comparison(shown)
    assert table is None and text.startswith("No `bench_huge_pages_off.json` of size tiny beside `bench.json`")
    off = {"size": "full", "machine": {"date": "2025-12-31", "git_sha": None}, "cases": on["cases"]}
    (tmp_path / "bench_huge_pages_off.json").write_text(json.dumps(off))
    assert page.huge_pages_comparison(shown)[0] is None
    (tmp_path / "bench_huge_pages_off.json").write_text(json.dumps({**off, "size": "tiny"}))
    table, text = page.huge_pages_comparison(shown)
    assert table.loc["a", "speed-up"] == 1.0 and "(2025-12-31, commit `unknown`) and on (2026-01-01)" in text
    (tmp_path / "bench_huge_pages_off.json").write_text(json.dumps({**off, "size": "tiny", "cases": {}}))
    assert page.huge_pages_comparison(shown) == (None, "`bench_huge_pages_off.json` shares no successful "
                                                       "case with `bench.json`.")
