"""start_chapter: one call sets a chapter up in the order every notebook relies on."""
import pytest
import torch

import ddlib
from ddlib.chapters.session import start_chapter


@pytest.fixture
def params(tmp_path):
    return ddlib.chapter_params("smoke", device="cpu", out_dir=tmp_path / "out",
                                artifacts_dir=tmp_path / "art", messages=False)


def test_start_chapter_loads_scale_data_and_records_params(params):
    threads = torch.get_num_threads()
    try:
        run = start_chapter("MCT", params, num_eval=2, record_params={"extra": 7})
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert run.settings.num_eval == 2
    assert run.data.name == run.settings.dataset
    assert run.seeds == tuple(run.settings.seeds) and run.ipcs == tuple(run.settings.ipcs)
    assert run.device == torch.device("cpu")
    assert run.recorder.params["extra"] == 7 and run.recorder.params["seeds"] == list(run.seeds)
    assert run.recorder.path.parent.parent == params.out_dir


def test_notebook_ipcs_win_over_chapter_override(tmp_path):
    params = ddlib.chapter_params("smoke", ipcs="2", device="cpu", out_dir=tmp_path / "o",
                                  artifacts_dir=tmp_path / "a", messages=False)
    run = start_chapter("AST", params, single_thread=False, ipcs=(1,))
    assert run.ipcs == (2,)


def test_bad_override_and_method_fail_before_loading(params):
    with pytest.raises((ValueError, TypeError), match="no_such_field"):
        start_chapter("MCT", params, no_such_field=1)
    with pytest.raises(ValueError, match="method=''"):
        start_chapter("", params)
