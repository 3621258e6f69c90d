"""``python -m ddlib``: argument checks (before any compute), config files, and the store a notebook then reads."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ddlib
from ddlib.cli import parse_args
from ddlib.cli_config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


def error_of(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train"], "invalid choice: 'train'"),
    (["experts", "--scale", "huge"], "scale='huge': expected one of ['paper', 'mini', 'smoke']"),
    (["distill", "--method", "mttt"], "method='mttt': expected one of"),
    (["evaluate", "--protocol", "dc"], "protocol='dc': expected one of"),
    (["experts", "--kind", "adam"], "kind='adam': expected one of ['mtt', 'ast', 'tgdd']"),
    (["experts", "--set", "num_expert=3"], "unknown key(s) ['num_expert'] for ScaleSettings; valid keys are"),
    (["experts", "--set", "num_experts"], "--set 'num_experts': expected KEY=VALUE"),
    (["experts", "--set", "num_experts=many"], "ScaleSettings.num_experts = 'many' has type str"),
    (["distill", "--ipc", "0"], "ipc=0: expected an int >= 1"),
    (["experts", "--device", "tpu"], "device='tpu': expected 'auto', 'cpu' or 'cuda'"),
    (["experts", "--config", "/nonexistent.yaml"], "--config '/nonexistent.yaml': no such file"),
])
def test_bad_arguments_stop_before_any_compute_naming_the_value(argv, message, capsys):
    assert message in error_of(argv, capsys)


def test_a_config_file_is_validated_and_the_flags_override_it(tmp_path, capsys):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("scale: mini\nseed: 3\nsettings:\n  num_experts: 8\n  ipcs: [1, 10]\n")
    stage, config = parse_args(["experts", "--config", str(yaml_file), "--seed", "4", "--set", "width=32"])
    assert stage == "experts" and config.scale == "mini" and config.seed == 4
    settings = config.scale_settings
    assert (settings.num_experts, settings.ipcs, settings.width, settings.dataset) == (8, (1, 10), 32, "mnist5k")
    assert config.artifacts == Path("artifacts") / "mini"  # the folder make book gives the notebooks
    json_file = tmp_path / "run.json"
    json_file.write_text(json.dumps({"scale": "smoke", "epoch": 3}))
    assert "unknown key(s) ['epoch'] for RunConfig" in error_of(["evaluate", "--config", str(json_file)], capsys)


def test_run_config_defaults_follow_the_scale():
    config = RunConfig(scale="smoke", settings={"ipcs": [2, 5]})
    assert config.run_ipc == 2 and config.artifacts == Path("artifacts/smoke")
    assert RunConfig(ipc=3).run_ipc == 3


def test_python_m_ddlib_experts_writes_the_store_the_notebook_cache_reads(tmp_path, monkeypatch):
    overrides = {"num_experts": 2, "expert_epochs_total": 1, "train_per_class": 2, "test_per_class": 1}
    argv = [sys.executable, "-m", "ddlib", "experts", "--scale", "smoke", "--device", "cpu",
            "--artifacts-dir", str(tmp_path), *[a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "experts: 2 mtt experts in" in result.stdout
    settings = ddlib.scale_settings("smoke", **overrides)
    data = ddlib.load_scaled_dataset(settings)
    monkeypatch.setattr("ddlib.chapters.scales.generate_experts", lambda *a, **k: pytest.fail("trained again"))
    store = ddlib.cached_experts(tmp_path, data, settings.expert_config("mtt"), settings.num_experts, 0)
    assert len(store) == 2 and store.root.parent == tmp_path
    assert sorted(p.name for p in store.root.iterdir()) == [".lock", "expert_000.pt", "expert_001.pt",
                                                             "manifest.json"]
