"""The paper-scale dry run: paper shapes and settings, minimal counts, fake CIFAR files in the real format."""
import json
import pickle

import pytest
import torch

import ddlib
from ddlib.chapters.dry_run import DRY_RUN_COUNTS, dry_run_overrides, probe_iterations
from ddlib.data import load_dataset
from ddlib.data.fake_files import write_fake_cifar
from ddlib.results.records import read_records

from conftest import DRY_RUN_CIFAR100_CHAPTERS, NOTEBOOKS, ROOT


def folders(tmp_path):
    return {"out_dir": tmp_path / "out", "artifacts_dir": tmp_path / "art", "device": "cpu", "messages": False}


def test_overrides_keep_an_ipc_worth_of_real_images_per_class():
    assert dry_run_overrides("cifar10", (1,))["train_per_class"] == 20  # 200 images in all
    assert dry_run_overrides("cifar10", (1, 10, 50))["train_per_class"] == 50  # IPC 50 starts from 50 real ones
    assert dry_run_overrides("cifar100", (1,))["train_per_class"] == 2
    assert dry_run_overrides("cifar100", (10,))["train_per_class"] == 10
    with pytest.raises(ValueError, match=r"ipcs=\(\)"):
        dry_run_overrides("cifar10", ())


def test_probes_time_three_iterations_after_the_first_or_what_a_short_run_has():
    assert [probe_iterations(n) for n in (5000, 4, 3, 2, 1)] == [3, 3, 2, 1, 1]
    assert probe_iterations(10, default=5) == 5


def test_dry_run_keeps_paper_shapes_and_cuts_counts(tmp_path):
    settings = ddlib.chapter_params("paper", dry_run=True, **folders(tmp_path)).settings()
    paper = ddlib.scale_settings("paper")
    assert (settings.dataset, settings.width, settings.ipcs) == (paper.dataset, 128, (1, 10, 50))
    assert (settings.num_experts, settings.iterations, settings.num_eval, settings.eval_epochs) == (1, 2, 1, 1)
    assert settings.seeds == (0,) and settings.train_per_class == 50
    for ipc, steps, zca in ((1, 50, True), (10, 30, True), (50, 30, False)):  # MTT's CIFAR-10 table
        config = settings.mtt_config(ipc)
        assert (config.syn_steps, config.zca, config.max_start_epoch) == (steps, zca, 1)
        assert config.max_start_epoch + config.expert_epochs <= settings.expert_epochs_total
    # a chapter's own override cannot undo a dry run's counts
    params = ddlib.chapter_params("paper", dry_run=True, ipcs="1", **folders(tmp_path))
    assert params.settings(num_eval=5).num_eval == DRY_RUN_COUNTS["num_eval"]
    assert params.settings().ipcs == (1,) and params.settings().train_per_class == 20


def test_dry_run_only_at_paper_scale(tmp_path):
    with pytest.raises(ValueError, match=r"dry_run=True with scale='mini'.*scale='paper'"):
        ddlib.chapter_params("mini", dry_run=True, **folders(tmp_path))
    with pytest.raises(ValueError, match=r"dry_run='yes': expected True or False"):
        ddlib.chapter_params("paper", dry_run="yes", **folders(tmp_path))
    assert ddlib.chapter_params("paper", **folders(tmp_path)).settings().iterations == 5000


@pytest.mark.parametrize("name, classes, files", [
    ("cifar10", 10, ["batches.meta", "data_batch_1", "data_batch_5", "test_batch"]),
    ("cifar100", 100, ["meta", "test", "train"]),
])
def test_fake_cifar_files_read_by_the_real_loader(tmp_path, name, classes, files):
    root = write_fake_cifar(tmp_path, name, train_per_class=3, test_per_class=2, seed=1)
    folder = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert {f for f in files} <= {p.name for p in folder.iterdir()}
    with open(folder / files[-1], "rb") as f:  # torchvision's layout: uint8 rows of 3,072 pixels
        batch = pickle.load(f, encoding="bytes")
    assert batch[b"data"].dtype.name == "uint8" and batch[b"data"].shape[1] == 3072
    data = load_dataset(name, data_root=root)
    assert data.images_train.shape == (3 * classes, 3, 32, 32) and data.images_test.shape == (2 * classes, 3, 32, 32)
    assert torch.bincount(data.labels_train).tolist() == [3] * classes
    assert torch.bincount(data.labels_test).tolist() == [2] * classes
    again = load_dataset(name, data_root=write_fake_cifar(tmp_path / "again", name, train_per_class=3,
                                                          test_per_class=2, seed=1))
    assert torch.equal(again.images_train, data.images_train)  # the seed decides the files


def test_fake_cifar_rejects_bad_input_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r"name='svhn': expected one of \['cifar10', 'cifar100'\]"):
        write_fake_cifar(tmp_path, "svhn", train_per_class=1, test_per_class=1)
    with pytest.raises(ValueError, match=r"train_per_class=0: expected an int >= 1"):
        write_fake_cifar(tmp_path, "cifar10", train_per_class=0, test_per_class=1)
    assert not any(tmp_path.iterdir())


def test_started_dry_run_loads_paper_shapes_and_marks_its_records(tmp_path):
    root = write_fake_cifar(tmp_path / "data", "cifar10", train_per_class=40, test_per_class=8)  # more than used
    params = ddlib.chapter_params("paper", dry_run=True, ipcs=1, data_root=str(root), **folders(tmp_path))
    run = ddlib.start_chapter("MTT", params)
    assert run.data.name == "cifar10" and run.data.images_train.shape == (200, 3, 32, 32)
    assert run.data.images_test.shape == (50, 3, 32, 32)
    assert run.recorder.params["dry_run"] is True and run.recorder.scale == "paper"


def check_dry_run_notebook(build, stem: str, dataset: str) -> None:
    """Every code cell of the executed dry-run notebook ran without an error; its records are of ``dataset``."""
    executed = json.loads((build / "src" / "book" / "notebooks" / f"{stem}.ipynb").read_text())
    code_cells = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert code_cells and all(c.get("execution_count") for c in code_cells), "a code cell did not run"
    assert not [o for c in code_cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    parameters = executed["metadata"]["papermill"]["parameters"]
    assert parameters["scale"] == "paper" and parameters["dry_run"] is True
    records = read_records(build / "results" / stem)
    if len(records):  # chapters that record anything record it on the fake files, at paper scale
        assert set(records["scale"]) == {"paper"} and set(records["dataset"]) <= {dataset}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapter_ran_its_paper_dry_run(dry_run_build, notebook):
    check_dry_run_notebook(dry_run_build, notebook.stem, "cifar10")


@pytest.mark.parametrize("stem", DRY_RUN_CIFAR100_CHAPTERS)
def test_chapters_ran_their_dry_run_on_cifar100(dry_run_cifar100_build, stem):
    check_dry_run_notebook(dry_run_cifar100_build, stem, "cifar100")
    if stem != "01_data_and_models":  # the data chapter records nothing
        assert set(read_records(dry_run_cifar100_build / "results" / stem)["dataset"]) == {"cifar100"}


def test_make_test_runs_the_cifar100_chapters_the_tests_check():
    makefile = (ROOT / "Makefile").read_text()
    line = next(x for x in makefile.splitlines() if x.startswith("TEST_CIFAR100_CHAPTERS ?="))
    assert [f"{s.split('_', 1)[1]}" for s in DRY_RUN_CIFAR100_CHAPTERS] == line.split("?=")[1].split()


def test_mct_experts_cover_its_longest_window_in_a_dry_run(tmp_path):
    from ddlib.chapters.mct_chapter import chapter_plan

    for dry_run, epochs in ((True, 10), (False, 50)):  # MCT's run file: start epoch <= 4, then 6 epochs matched
        params = ddlib.chapter_params("paper", dry_run=dry_run, ipcs=1, **folders(tmp_path))
        plan = chapter_plan(params.settings(), "paper", tmp_path / "art")
        config = plan.config(1, mct=True)
        assert (config.max_start_epoch, config.expert_epochs) == (4, 6)
        assert plan.expert_config().epochs == epochs
