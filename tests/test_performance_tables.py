"""The Performance chapter's table: our figures beside the reference's, ratios only at full size."""
import math

from ddlib.chapters.performance_tables import benchmark_table, case_note, reference_of

REFERENCE = {"cases": {"mtt_ipc10": {"s_per_iter": 10.0, "peak_gb": 2.0}}}
BENCH = {"cases": {
    "mtt_ipc10_s10": {"status": "ok", "ref": "mtt_ipc10", "s_per_iter": 5.0, "peak_mb": 512.0, "cpu_s_per_iter": 9.0,
                      "baseline_mb": 300.0, "gflops": 12.0, "settings": {"syn_steps": 10, "nominal_steps": 10}},
    "eval_batched": {"status": "ok", "s_per_iter": 1.0, "peak_mb": 100.0, "s_protocol_1000_epochs_estimate": 600.0},
    "dm_ipc10": {"status": "failed", "reason": "out of memory"},
}}


def test_reference_and_ratios_at_full_size():
    assert reference_of(BENCH["cases"]["mtt_ipc10_s10"], REFERENCE) == (10.0, 2048.0)
    assert reference_of(BENCH["cases"]["eval_batched"], REFERENCE) == (None, None)
    table = benchmark_table(BENCH, REFERENCE, comparable=True)
    assert table.loc["mtt_ipc10_s10", "time / ref"] == 0.5 and table.loc["mtt_ipc10_s10", "memory / ref"] == 0.25
    assert table.loc["dm_ipc10", "note"] == "out of memory" and math.isnan(table.loc["dm_ipc10", "s/iter"])
    assert table.loc["eval_batched", "note"] == "10.0 min for 1000 epochs x 5 networks"


def test_no_ratio_at_tiny_size_and_notes():
    table = benchmark_table(BENCH, REFERENCE, comparable=False)
    assert table["time / ref"].isna().all() or all(v is None or math.isnan(v) for v in table["time / ref"])
    assert case_note({"settings": {"syn_steps": 2, "nominal_steps": 10}}) == "2 inner steps (tiny)"
    expected = "2.00 ms/image; 100 s per 50k-image epoch"
    assert case_note({"s_per_image": 0.002, "s_per_cifar10_epoch_estimate": 100.0}) == expected
