"""The Performance page's profile section: table, sentences and caption computed from the measurement file."""
import json

import pytest

from ddlib.chapters import performance_profile as pp


def side(wall, conv, flops, untraced=0.01, status="ok"):
    rest = wall - conv - untraced * wall
    owner = {"convolution": {"seconds": conv, "share": conv / wall},
             "norm": {"seconds": rest, "share": rest / wall},
             "untraced": {"seconds": untraced * wall, "share": untraced}}
    return {"status": status, "wall_s": wall, "flops_per_iter": flops, "owner_categories": owner,
            "categories": {**owner, "untraced": {"seconds": untraced * wall, "share": untraced}}}


def result(**changes):
    sides = {"ddlib_recompute": side(12.0, 6.0, 1.2e12), "ddlib_graph": side(10.0, 4.0, 9e11, untraced=0.02),
             "reference": side(10.0, 5.0, 9e11)}
    sides.update(changes)
    return {"date": "2026-11-30T10:00:00+00:00", "sides": sides,
            "settings": {"width": 128, "ipc": 10, "syn_steps": 10, "threads": 2, "repeats": 2},
            "machine": {"cpu_model": "Test CPU", "logical_cpus": 2, "torch_version": "2.x"}}


def test_table_has_seconds_and_shares_per_side_and_the_arithmetic():
    table = pp.profile_table(result())
    conv = "convolution (forward, backward, double backward)"
    assert table.loc[conv, "ddlib, recompute s"] == 6.0 and table.loc[conv, "ddlib, recompute share"] == 0.5
    assert table.loc[conv, "reference (MTT code) share"] == 0.5
    assert table.loc["iteration (wall)", "ddlib, graph s"] == 10.0
    assert table.loc["GFLOP per iteration", "ddlib, recompute s"] == pytest.approx(1200.0)
    assert table.loc["matmul / linear", "ddlib, graph s"] == 0.0  # a category a side never hit counts as zero


def test_text_computes_shares_extra_arithmetic_and_what_0_6x_would_leave():
    text = pp.profile_text(result())
    assert "Convolutions take 50% of ddlib's iteration with recomputation, 40% in graph mode and 50%" in text
    assert "Graph mode does the same arithmetic as the reference (900 against 900 GFLOP" in text
    assert "recomputation does 33% more" in text and "at most 2.0% of an iteration" in text
    assert "1.20x (recompute) and 1.00x (graph)" in text
    # 0.6 x 10 s = 6 s; recompute's convolutions take 6 s and leave 0 s for a rest that now takes 6 s
    assert "0.6x the reference's iteration is 6.0 s" in text and "leave 0.0 s for the rest, now 6.0 s" in text


def test_text_refuses_a_failed_side():
    text = pp.profile_text(result(reference={"status": "error"}))
    assert text.startswith("The profile is incomplete")


def test_caption_and_loader_name_the_source(tmp_path):
    assert pp.load_profile(tmp_path) is None
    committed = tmp_path / "benchmarks" / "measured" / "profile_iteration.json"
    committed.parent.mkdir(parents=True)
    committed.write_text(json.dumps(result()))
    loaded = pp.load_profile(tmp_path)
    assert loaded["source"]["origin"] == "committed"
    caption = pp.profile_caption(loaded)
    assert "ConvNet-128, IPC 10, 10 student steps, 2 threads" in caption and "2026-11-30 on Test CPU" in caption
    assert caption.endswith("the measurement committed with the book.")
    fresh = tmp_path / "benchmarks" / "results" / "profile_iteration.json"
    fresh.parent.mkdir(parents=True)
    fresh.write_text(json.dumps(result()))
    assert pp.load_profile(tmp_path)["source"]["origin"] == "this build"
