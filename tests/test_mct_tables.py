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
