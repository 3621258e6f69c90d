import json
import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from ddlib.results.records import Record, append_records, paper_results, read_records, side_by_side
from ddlib.results.measurement import collect_provenance


def record(value=50.0, seed=0, method="Random", ipc=10, scale="mini"):
    return Record(paper="AST", experiment="Table 3", method=method, dataset="mnist5k", ipc=ipc,
                  arch="ConvNet", seed=seed, metric="test_acc", value=value, scale=scale,
                  config={"epochs": 3}, provenance=collect_provenance("cpu", 1.5))


def test_round_trip(tmp_path):
    path = append_records(tmp_path / "r.jsonl", [record(50.0), record(60.0, seed=1)])
    append_records(path, [record(70.0, seed=2)])
    frame = read_records(tmp_path)
    assert frame["value"].tolist() == [50.0, 60.0, 70.0]
    assert frame["seed"].tolist() == [0, 1, 2]
    assert frame["config"][0] == {"epochs": 3}
    assert frame["device"][0] == "cpu" and frame["wall_time_s"][0] == 1.5
    assert len(frame["git_sha"][0]) >= 7


def test_provenance_fields():
    prov = collect_provenance("cpu", 2.0)
    for key in ("git_sha", "ddlib_version", "torch_version", "device", "wall_time_s", "peak_memory_mb"):
        assert key in prov
    assert prov["peak_memory_mb"] > 0


def test_record_validation():
    with pytest.raises(ValueError, match="scale='huge'"):
        record(scale="huge")
    with pytest.raises(ValueError, match="ipc=0"):
        record(ipc=0)
    with pytest.raises(ValueError, match="value='x'"):
        record(value="x")


def test_append_is_atomic_under_kill(tmp_path):
    """A writer killed mid-run leaves only whole lines."""
    target = tmp_path / "r.jsonl"
    script = textwrap.dedent(f"""
        from ddlib.results.records import Record, append_records
        rec = Record(paper="AST", experiment="x", method="m", dataset="d", ipc=1, arch="a", seed=0,
                     metric="m", value=1.0, scale="smoke", config={{"pad": "x" * 200000}})
        while True:
            append_records({str(target)!r}, [rec])
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(200):
            if target.exists() and target.stat().st_size > 2_000_000:
                break
            proc.poll()
            assert proc.returncode is None
            import time; time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    text = target.read_text()
    assert text.endswith("\n")
    assert all(json.loads(line)["value"] == 1.0 for line in text.splitlines())


def test_partial_line_is_refused(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"paper": "AST"')
    with pytest.raises(ValueError, match="partial line"):
        append_records(path, [record()])


def test_read_rejects_malformed(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"paper": "AST"}\n')
    with pytest.raises(ValueError, match="lacks fields"):
        read_records(tmp_path)


def test_paper_results_keep_source_and_flag_unverified():
    frame = paper_results()
    assert {"paper", "table", "dataset", "ipc", "method", "value", "source"} <= set(frame.columns)
    row = frame[(frame["paper"] == "AST") & (frame["table"] == "Table 3") & (frame["method"] == "Random")
                & (frame["dataset"] == "CIFAR-10") & (frame["ipc"] == "1")]
    assert row["value"].item() == 14.4
    assert frame[frame["paper"] == "TGDD"]["unverified"].all()
    assert not frame[frame["paper"] == "AST"]["unverified"].any()


def test_side_by_side_names_scale_and_puts_paper_values(tmp_path):
    append_records(tmp_path / "r.jsonl", [record(50.0, seed=0, ipc=1), record(60.0, seed=1, ipc=1)])
    table = side_by_side(read_records(tmp_path), "AST", "Table 3", paper_datasets=["CIFAR-10", "CIFAR-100"])
    row = table.iloc[0]
    assert row["ours"] == "55.0 ± 5.0" and row["n"] == 2 and row["scale"] == "mini"
    assert row["paper: CIFAR-10"] == "14.4 ± 2.0"
    assert row["paper: CIFAR-100"] == "4.2 ± 0.3"


# -- one file per run: reruns keep earlier runs, readers take the newest complete one ---------------
def _run(out_dir, value, *, finish=True, dataset="mnist5k", paper="AST", **params):
    from ddlib.chapters.scales import Recorder

    rec = Recorder(out_dir, paper, "mini", dataset, "cpu", params=params)
    rec.add("Table 3", "Random", "test_acc", value, ipc=1, eval_index=0, distill_seed=7)
    if finish:
        rec.finish()
    return rec


def test_rerun_keeps_earlier_run_and_folder_read_takes_the_newest(tmp_path):
    first, second = _run(tmp_path, 1.0, seed=0), _run(tmp_path, 2.0, seed=0)
    files = sorted((tmp_path / "runs").glob("*.jsonl"))
    assert len(files) == 2 and first.path != second.path and all(f.exists() for f in (first.path, second.path))
    assert first.run_key == second.run_key and first.run_id != second.run_id  # same parameters, two runs
    newest = read_records(tmp_path)
    assert newest["value"].tolist() == [2.0] and newest["run_id"].tolist() == [second.run_id]
    every = read_records(tmp_path, runs="all")
    assert sorted(every["value"]) == [1.0, 2.0] and every["run_id"].nunique() == 2
    with pytest.raises(ValueError, match="runs='latest'"):
        read_records(tmp_path, runs="latest")


def test_newest_is_chosen_per_paper_scale_and_dataset(tmp_path):
    _run(tmp_path, 1.0, dataset="mnist5k")
    _run(tmp_path, 2.0, dataset="imagenette")
    _run(tmp_path, 3.0, dataset="mnist5k")
    frame = read_records(tmp_path)
    assert dict(zip(frame["dataset"], frame["value"])) == {"mnist5k": 3.0, "imagenette": 2.0}


def test_partial_run_is_ignored_unless_asked_or_named(tmp_path):
    done = _run(tmp_path, 1.0)
    failed = _run(tmp_path, 2.0, finish=False)  # a chapter that stopped midway
    assert failed.path.name.endswith(".partial.jsonl")
    assert read_records(tmp_path)["value"].tolist() == [1.0]
    assert read_records(tmp_path, partial=True)["value"].tolist() == [2.0]
    assert read_records(failed.path)["value"].tolist() == [2.0]  # a notebook reads back its own run
    assert done.path.exists()


def test_records_carry_the_run_fields(tmp_path):
    rec = _run(tmp_path, 1.0, seed=5, ipcs=[1, 10])
    row = read_records(rec.path).iloc[0]
    assert row["seed"] == 5 and row["eval_index"] == 0 and row["distill_seed"] == 7
    assert row["params"] == {"seed": 5, "ipcs": [1, 10], "scale": "mini", "dataset": "mnist5k", "device": "cpu"}
    assert row["run_key"] == rec.run_key and row["run_id"] == rec.run_id and rec.path.stem == rec.run_id
    assert _run(tmp_path, 1.0, seed=6).run_key != rec.run_key  # another seed: another key


def test_old_files_without_run_fields_still_read(tmp_path):
    append_records(tmp_path / "ast.jsonl", [record(50.0)])
    frame = read_records(tmp_path)
    assert frame["run_id"].tolist() == [""] and frame["eval_index"].isna().all() and frame["params"][0] == {}


def test_two_concurrent_recorders_write_two_intact_files(tmp_path):
    import threading

    from ddlib.chapters.scales import Recorder

    barrier = threading.Barrier(2)
    recorders = []

    def write(value):
        rec = Recorder(tmp_path, "AST", "mini", "mnist5k", "cpu", params={"seed": int(value)})
        recorders.append(rec)
        barrier.wait()
        for i in range(25):
            rec.add("Table 3", "Random", "test_acc", value, ipc=1, eval_index=i)
        rec.finish()

    threads = [threading.Thread(target=write, args=(v,)) for v in (1.0, 2.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files = sorted((tmp_path / "runs").glob("*.jsonl"))
    assert len(files) == 2 and not list((tmp_path / "runs").glob("*.partial.jsonl"))
    for rec in recorders:
        rows = [json.loads(line) for line in rec.path.read_text().splitlines()]
        assert len(rows) == 25 and {r["value"] for r in rows} == {float(rec.seed)}
        assert [r["eval_index"] for r in rows] == list(range(25)) and {r["run_id"] for r in rows} == {rec.run_id}


def test_record_run_field_validation():
    with pytest.raises(ValueError, match="eval_index=-1"):
        dataclasses_replace(record(), eval_index=-1)
    with pytest.raises(ValueError, match="distill_seed=1.5"):
        dataclasses_replace(record(), distill_seed=1.5)
    with pytest.raises(ValueError, match="seed=True"):
        dataclasses_replace(record(), seed=True)
    import numpy as np

    assert dataclasses_replace(record(), seed=np.int64(3)).seed == 3


def dataclasses_replace(rec, **changes):
    import dataclasses

    return dataclasses.replace(rec, **changes)
