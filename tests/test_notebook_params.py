"""Chapter parameters: one shared check, typed and commented cells that papermill can list."""
from pathlib import Path

import jupytext
import papermill
import pytest
import torch

from ddlib import chapter_params
from ddlib.chapters.notebook_params import parse_ipcs

NOTEBOOKS = sorted(Path(__file__).resolve().parent.parent.joinpath("notebooks").glob("*.py"))


@pytest.mark.parametrize("value, expected", [([1, 10], (1, 10)), ((50,), (50,)), (10, (10,)), ("1,10", (1, 10)),
                                             ("[1, 10]", (1, 10)), (" 5 ", (5,)), ("", ()), ([], ())])
def test_ipcs_in_every_form_papermill_passes(value, expected):
    assert parse_ipcs(value) == expected


@pytest.mark.parametrize("value", [0, -1, "0", "1,x", [1, 0], [1.5], ["1"], True, [1, 1], None, {"a": 1}])
def test_bad_ipcs_name_the_value(value):
    with pytest.raises(ValueError, match=r"ipcs=.*expected"):
        parse_ipcs(value)


def test_good_parameters_give_the_scale_settings(tmp_path):
    params = chapter_params("smoke", dataset="MNIST5K", ipcs="1,3", seed=2, device="cpu", out_dir=tmp_path / "out",
                            artifacts_dir=tmp_path / "art")
    assert (params.dataset, params.ipcs, params.seed, params.device) == ("mnist5k", (1, 3), 2, torch.device("cpu"))
    assert (tmp_path / "out").is_dir() and (tmp_path / "art").is_dir()
    assert params.settings().ipcs == (1, 3) and params.settings(num_eval=4).num_eval == 4
    assert chapter_params("smoke", out_dir=tmp_path / "o").settings().ipcs == (1, 2)  # [] -> the scale's
    assert params.to_dict()["ipcs"] == [1, 3] and params.to_dict()["out_dir"] == str(tmp_path / "out")


@pytest.mark.parametrize("changes, message", [
    ({"scale": "huge"}, r"scale='huge': expected one of paper, mini, smoke"),
    ({"scale": None}, r"scale=None"),
    ({"dataset": "cifar11"}, r"cifar11"),
    ({"seed": -1}, r"seed=-1: expected an int >= 0"),
    ({"seed": "3"}, r"seed='3'"),
    ({"device": "gpu"}, r"device='gpu'"),
    ({"ipcs": 0}, r"ipcs=0"),
    ({"data_root": "/no/such/folder"}, r"data_root='/no/such/folder': no such folder"),
])
def test_bad_parameters_fail_before_any_compute(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        chapter_params(**{"scale": "smoke", "out_dir": tmp_path / "out", **changes})


def test_unwritable_output_folder_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match=r"out_dir='.*file/results': the folder cannot be created or written"):
        chapter_params("smoke", out_dir=blocker / "results")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_is_typed_and_commented(path, tmp_path, caplog):
    notebook = tmp_path / f"{path.stem}.ipynb"
    jupytext.write(jupytext.read(path), notebook)
    found = papermill.inspect_notebook(str(notebook))
    assert "Unable to parse" not in caplog.text  # papermill would skip such a line's type and help
    assert {"scale", "seed", "device", "out_dir"} <= set(found)
    for name, info in found.items():
        assert info["inferred_type_name"] not in ("None", ""), (path.stem, name)
        assert info["help"].strip(), (path.stem, name)
    assert "ddlib.chapter_params(" in path.read_text()  # the shared check runs in the first code cell


def test_library_messages_shown_once(tmp_path, capsys):
    import logging

    from ddlib.chapters.notebook_params import show_library_messages

    library = logging.getLogger("ddlib")
    before = list(library.handlers), library.level
    try:
        chapter_params("smoke", out_dir=tmp_path / "a")
        show_library_messages()  # a second call attaches no second handler
        logging.getLogger("ddlib.methods.distill_loop").info("resumed from checkpoint at iteration %d", 40)
        out = capsys.readouterr().out
        assert out.count("[ddlib] resumed from checkpoint at iteration 40") == 1
    finally:
        library.handlers[:], library.level = before[0], before[1]
