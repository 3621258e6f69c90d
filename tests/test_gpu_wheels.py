"""benchmarks/gpu_wheels.py picks the wheels the GPU machine lacks (the download itself needs the index)."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("gpu_wheels", ROOT / "benchmarks" / "gpu_wheels.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_wheel_names_normalize_to_the_project():
    gw = _module()
    assert gw.wheel_project("jupyter_client-8.10.0-py3-none-any.whl") == "jupyter-client"
    assert gw.wheel_project("Nest_Asyncio2-1.7.4-py3-none-any.whl") == "nest-asyncio2"
    assert gw.wheel_project("pyzmq-27.3.0-cp312-abi3-manylinux_2_28_x86_64.whl") == "pyzmq"
    with pytest.raises(ValueError, match="'papermill.tar.gz' is not a wheel file name"):
        gw.wheel_project("papermill.tar.gz")


def test_only_projects_the_device_lacks_are_carried():
    gw = _module()
    files = ["numpy-2.5.5-cp312-cp312-manylinux_2_28_x86_64.whl", "papermill-2.7.0-py3-none-any.whl",
             "typing_extensions-4.16.0-py3-none-any.whl", "jupyter_core-5.9.1-py3-none-any.whl"]
    assert gw.wheels_to_carry(files, {"numpy", "typing-extensions"}) == [
        "jupyter_core-5.9.1-py3-none-any.whl", "papermill-2.7.0-py3-none-any.whl"]


def test_two_versions_of_one_project_are_refused():
    gw = _module()
    with pytest.raises(ValueError, match="two wheels of tornado"):
        gw.wheels_to_carry(["tornado-6.5-cp39-abi3-any.whl", "tornado-6.6-cp39-abi3-any.whl"], set())


def test_the_device_list_holds_torch_but_not_the_dry_runs_packages():
    """The committed list of the machine's packages is what decides; the dry run's must not be in it."""
    gw = _module()
    device = gw.read_device_packages(ROOT / "benchmarks" / "gpu_device_packages.txt")
    assert {"torch", "torchvision", "numpy", "pandas", "scikit-learn", "seaborn", "tqdm"} <= device
    assert not device & {"papermill", "jupytext", "ipykernel", "mlxtend", "nbclient", "pyzmq"}


def test_versions_come_from_the_requirements_pins(tmp_path):
    gw = _module()
    assert gw.pinned(("papermill", "ipykernel"), ROOT / "requirements.txt")[0].startswith("papermill==")
    req = tmp_path / "requirements.txt"
    req.write_text("papermill==2.7.0  # comment\njupytext>=1\n")
    assert gw.pinned(("papermill",), req) == ["papermill==2.7.0"]
    with pytest.raises(ValueError, match="jupytext: no NAME==VERSION pin"):
        gw.pinned(("papermill", "jupytext"), req)
