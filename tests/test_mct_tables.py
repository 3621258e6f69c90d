"""The MCT chapter's display tables (ddlib.chapters.mct_tables): settings, storage and convergence as text."""
from __future__ import annotations

import pandas as pd
import pytest

import ddlib
from ddlib.chapters import mct_tables as mctt
from ddlib.results.recorder import Recorder


def test_display_value_writes_every_kind_of_cell():
    assert [mctt.display_value(v) for v in (None, [1, 10], (0, 1), 1e-07, 100.0, 0.01, True, False, 5, "tesla")] \
        == ["–", "1, 10", "0, 1", "1e-07", "100", "0.01", "yes", "no", "5", "tesla"]
    assert mctt.display_value(None, "all") == "all"


def test_scale_table_names_what_none_means():
    paper, smoke = ddlib.scale_settings("paper", num_eval=3), ddlib.scale_settings("smoke")
    table = mctt.scale_table(paper, smoke, "smoke")
    assert list(table.columns) == ["paper scale", "this run (smoke)"]
    assert list(table.index) == list(mctt.SCALE_FIELDS)
    assert table.loc["train_per_class"].tolist() == ["all", "20"]
    assert table.loc["syn_steps"].tolist() == ["per IPC (next table)", "2"]
    assert table.loc["ablation_iterations"].tolist() == ["as iterations", "2"]
    assert table.loc["ipcs"].tolist() == ["1, 10, 50", "1, 2"]
    assert table.loc["num_eval"].tolist() == ["3", "1"]  # the chapter's override reaches the table
    assert not table.isin(["None", "nan"]).any().any()
    with pytest.raises(ValueError, match=r"fields \['dm_iter'\] are not ScaleSettings fields"):
        mctt.scale_table(paper, smoke, "smoke", fields=("dataset", "dm_iter"))


def test_distiller_table_puts_the_published_rows_beside_this_runs():
    table = mctt.distiller_table(ddlib.scale_settings("smoke"), [2, 1], scale="smoke")
    expected = [(m, i, s) for m in ("MTT", "MCT") for i, s in
                ((1, "paper (CIFAR-10)"), (1, "this run (smoke)"), (2, "this run (smoke)"),
                 (10, "paper (CIFAR-10)"), (50, "paper (CIFAR-10)"))]
    assert list(table.index) == expected
    assert list(table.columns) == list(mctt.DISTILLER_FIELDS)
    mtt, mct = table.loc[("MTT", 1, "paper (CIFAR-10)")], table.loc[("MCT", 1, "paper (CIFAR-10)")]
    # MTT's table at CIFAR-10 IPC 1, MCT's run file there with its code's choices
    assert mtt[["syn_steps", "lr_img", "zca", "batch_syn", "gradient"]].tolist() == ["50", "100", "yes", "all", "exact"]
    assert mct[["syn_steps", "expert_epochs", "max_start_epoch", "lr_img", "lr_lr"]].tolist() \
        == ["60", "6", "4", "1000", "1e-07"]
    assert mct[["sampling", "gradient", "zca", "lr_teacher"]].tolist() == ["continuous", "tesla", "no", "0.01"]
    run = table.loc[("MCT", 2, "this run (smoke)")]
    assert run[["syn_steps", "iterations", "memory", "gradient"]].tolist() == ["2", "2", "graph", "tesla"]


def storage_records(tmp_path):
    rec = Recorder(tmp_path, "MCT", "smoke", "mnist5k", "cpu")
    full, two = "MTT: full buffer", "MCT: 2 models"
    rec.add("Table (b)", full, "measured_mb", 0.04187, config={"stored_epochs": list(range(16))})
    rec.add("Table (b)", full, "computed_mb", 0.04)
    rec.add("Table (b)", two, "measured_mb", 0.0052, config={"stored_epochs": [0, 15]})
    rec.add("Table (b)", two, "computed_mb", 0.005)
    for name, mtt_mb, mct_mb in (("CIFAR-10", 6225.78, 244.42), ("TinyImageNet (depth 3)", 37706.04, 1478.9)):
        rec.add("Table (b)", full, "buffer_storage_mb", mtt_mb, config={"for_dataset": name})
        rec.add("Table (b)", two, "buffer_storage_mb", mct_mb, config={"for_dataset": name})
    rec.add("Table (d)", "MCT", "test_acc", 50.0)  # another experiment: ignored
    return ddlib.read_records(rec.path)


def test_storage_tables_flatten_ours_beside_the_authors(tmp_path):
    published = pd.DataFrame({"method": ["MTT", "DATM"], "dataset": ["CIFAR-10", "CIFAR-10"],
                              "value": [6244.41, 2497.76]})
    rows = {"MTT": "MTT: full buffer", "DATM": "DATM (authors only)"}
    run, paper = mctt.storage_tables(storage_records(tmp_path), "Table (b)", published, rows)
    assert list(run.columns) == ["stored epochs", "measured on disk (MB)", "computed from tensor sizes (MB)"]
    assert run.loc["MTT: full buffer"].tolist() == ["all 16 (0 to 15)", "0.0419", "0.04"]
    assert run.loc["MCT: 2 models"].tolist() == ["0, 15", "0.0052", "0.005"]
    assert list(paper.columns) == ["ours: computed from tensor sizes (MB)", "paper: authors' code (MB)"]
    assert list(paper.index) == [("CIFAR-10", "MTT: full buffer"), ("CIFAR-10", "MCT: 2 models"),
                                 ("CIFAR-10", "DATM (authors only)"),
                                 ("TinyImageNet (depth 3)", "MTT: full buffer"),
                                 ("TinyImageNet (depth 3)", "MCT: 2 models")]
    assert paper.loc[("CIFAR-10", "MTT: full buffer")].tolist() == ["6226", "6244"]  # whole MB
    assert paper.loc[("CIFAR-10", "MCT: 2 models")].tolist() == ["244", "–"]  # the authors give none
    assert paper.loc[("CIFAR-10", "DATM (authors only)")].tolist() == ["–", "2498"]
    with pytest.raises(ValueError, match=r"published methods \['DATM'\] have no row"):
        mctt.storage_tables(storage_records(tmp_path / "again"), "Table (b)", published, {"MTT": "x"})


def test_convergence_table_one_column_per_method():
    frame = pd.DataFrame({"method": ["MTT", "MTT", "MTT", "MTT", "MCT", "MCT", "MCT"],
                          "distill_seed": [0, 1, 0, 1, 0, 1, 0],
                          "iteration": [0, 0, 2, 2, 0, 0, 5],
                          "value": [10.0, 12.0, 40.0, 50.0, 10.0, 12.0, 61.25]})
    table = mctt.convergence_table(frame)
    assert list(table.columns) == ["MTT", "MCT"] and list(table.index) == [0, 2, 5]
    assert table.loc[2, "MTT"] == "45.0 ± 7.1"  # sd of 40 and 50 (n - 1): 7.07
    assert table.loc[0, "MCT"] == "11.0 ± 1.4" and table.loc[5, "MCT"] == "61.2"  # one seed: no sd
    assert table.loc[2, "MCT"] == "–" and table.loc[5, "MTT"] == "–"
    with pytest.raises(ValueError, match=r"lacks columns \['distill_seed'\]"):
        mctt.convergence_table(frame.drop(columns="distill_seed"))


def _path_records(tmp_path):
    """Two experts per path; SGD falls at epoch 2 (by 10 and by 5 points), the convexified path never."""
    from ddlib.chapters import mct_experiments as mcx

    rec = Recorder(tmp_path, "MCT", "smoke", "mnist5k", "cpu")
    curves = {"SGD": [[10.0, 30.0, 20.0, 40.0], [10.0, 25.0, 20.0, 30.0]],
              "convex": [[10.0, 20.0, 30.0, 40.0], [10.0, 15.0, 20.0, 30.0]]}
    for method, per_expert in curves.items():
        for k, accs in enumerate(per_expert):
            for epoch, acc in enumerate(accs):
                rec.add("Figure (a)", method, "test_acc", acc, config={"epoch": epoch, "expert": k})
            for metric, value in mcx.oscillation(accs).items():
                rec.add("Figure (a)", method, metric, value, config={"expert": k})
    return rec


def test_path_statistics_sums_the_drops_over_experts(tmp_path):
    rec = _path_records(tmp_path)
    curves, per_expert, stats = mctt.path_statistics(ddlib.read_records(rec.path), "Figure (a)")
    assert len(curves) == 16 and sorted(set(curves["epoch"])) == [0, 1, 2, 3]
    assert per_expert.loc[("SGD", 1), "total_drop"] == pytest.approx(5.0)
    assert stats.loc["SGD", ["experts", "drops", "total_drop", "max_drop"]].tolist() == [2, 2, 15.0, 10.0]
    assert stats.loc["convex", ["drops", "total_drop"]].tolist() == [0, 0.0]
    assert stats.loc["SGD", "net_gain"] == pytest.approx(25.0)  # (30 + 20) / 2
    assert stats.loc["convex", "final test_acc"] == pytest.approx(35.0)  # last epoch, mean over experts
    with pytest.raises(ValueError, match="no test_acc records of 'Figure \\(z\\)'"):
        mctt.path_statistics(ddlib.read_records(rec.path), "Figure (z)")


def test_path_table_names_and_rounds_the_columns(tmp_path):
    stats = mctt.path_statistics(ddlib.read_records(_path_records(tmp_path).path), "Figure (a)").stats
    stats.loc["SGD", "final test_acc"] = 35.04
    stats.loc["SGD", "net_gain"] = 1.23456
    table = mctt.path_table(stats)
    assert list(table.columns) == ["experts", "drops (count, all experts)", "total drop (pp, all experts)",
                                   "largest drop (pp)", "gain epoch 0 to K (pp, mean)",
                                   "final test accuracy (%, mean)"]
    assert table.loc["SGD", "final test accuracy (%, mean)"] == 35.0
    assert table.loc["SGD", "gain epoch 0 to K (pp, mean)"] == 1.23
    assert table["drops (count, all experts)"].dtype.kind == "i"


def test_agreement_table_one_row_per_start_and_iteration(tmp_path):
    rec = Recorder(tmp_path, "MCT", "smoke", "mnist5k", "cpu")
    for images in ("initial", "distilled"):
        for iteration in (2, 1):
            for metric, value in (("cosine", iteration / 10), ("relative_difference", iteration / 5)):
                rec.add("Table (f)", "MCT", metric, value + (images == "distilled"), ipc=1,
                        images=images, iteration=iteration)
    table = mctt.agreement_table(ddlib.read_records(rec.path), "Table (f)")
    assert list(table.index) == [("initial", 2), ("initial", 1), ("distilled", 2), ("distilled", 1)]
    assert table.loc[("distilled", 1), "cosine"] == pytest.approx(1.1)
    assert table.loc[("initial", 2), "relative_difference"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="no records of 'Table \\(g\\)'"):
        mctt.agreement_table(ddlib.read_records(rec.path), "Table (g)")
