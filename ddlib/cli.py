"""``python -m ddlib <stage> ...``: the heavy stages (experts, distill, evaluate) from a terminal or a cluster.

Each stage takes the notebooks' configuration (a scale preset plus overrides, or a JSON/YAML file
validated like every ddlib config) and writes to the stores the notebooks read, under the same
keys, so a notebook run afterwards finds and uses what the command trained::

    python -m ddlib experts --scale mini --set num_experts=8
    torchrun --standalone --nproc_per_node 4 -m ddlib experts --scale paper --device cuda
    python -m ddlib distill --scale smoke --method mtt --ipc 1
    python -m ddlib evaluate --scale smoke --method mtt --ipc 1 --num-eval 4

Under ``torchrun`` the process reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, joins the process group
(NCCL on CUDA, Gloo on the CPU) and uses ``cuda:LOCAL_RANK``; without it, it is one process. This is
the only module of ddlib that reads ``sys.argv``. Every argument is checked before any compute.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from ddlib.chapters.scales import SCALES
from ddlib.cli_config import EXPERT_KINDS, STAGES, RunConfig
from ddlib.cli_stages import run_stage
from ddlib.evaluation.protocols import PROTOCOLS
from ddlib.quickstart_checks import METHODS

__all__ = ["RunConfig", "STAGES", "EXPERT_KINDS", "parse_args", "main"]

def _value(text: str) -> Any:
    """A ``--set`` value as YAML reads it (``4`` an int, ``[1, 2]`` a list, ``null`` None), else the string."""
    try:
        import yaml
        return yaml.safe_load(text)
    except ImportError:  # pyyaml is optional: JSON covers numbers, lists and null
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    except Exception:  # not YAML (e.g. "a: b: c"): keep the text, the config check names it
        return text


def _read_config_file(path: str) -> dict[str, Any]:
    """The mapping in a ``.json``, ``.yaml`` or ``.yml`` file."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"--config {path!r}: no such file")
    text = file.read_text()
    if file.suffix in (".yaml", ".yml"):
        import yaml
        values = yaml.safe_load(text)
    elif file.suffix == ".json":
        values = json.loads(text)
    else:
        raise ValueError(f"--config {path!r}: expected a .json, .yaml or .yml file")
    if not isinstance(values, dict):
        raise ValueError(f"--config {path!r} holds a {type(values).__name__}; expected a mapping of "
                         f"{[f.name for f in dataclasses.fields(RunConfig)]}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ddlib", description="Run a heavy stage of the book (alone or under torchrun).",
        epilog="Values given on the command line override those of --config; --set adds to its 'settings'.")
    parser.add_argument("stage", choices=STAGES, help="experts: train the experts the chapters use; distill: "
                        "distil one set; evaluate: train evaluation networks on a set")
    parser.add_argument("--scale", help=f"scale preset, one of {list(SCALES)} (default smoke)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a ScaleSettings field, e.g. --set num_experts=8 (repeatable)")
    parser.add_argument("--config", help="JSON or YAML file with any of the RunConfig keys")
    parser.add_argument("--seed", type=int, help="run seed (default 0, as the notebooks)")
    parser.add_argument("--device", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--artifacts-dir", help="folder of the stores (default artifacts/<scale>, as make book)")
    parser.add_argument("--data-root", help="folder with the data sets")
    parser.add_argument("--kind", help=f"experts: one of {list(EXPERT_KINDS)} (default mtt)")
    parser.add_argument("--method", help=f"distill/evaluate: one of {list(METHODS)} (default mtt)")
    parser.add_argument("--ipc", type=int, help="distill/evaluate: images per class (default: the scale's first)")
    parser.add_argument("--iterations", type=int, help="distill: outer iterations (default: the scale's)")
    parser.add_argument("--protocol", help=f"evaluate: one of {list(PROTOCOLS)} (default mtt)")
    parser.add_argument("--num-eval", type=int, help="evaluate: networks, split among the ranks")
    parser.add_argument("--epochs", type=int, help="evaluate: epochs per network")
    parser.add_argument("--synthetic", help="evaluate: folder of a saved set (default: the distill stage's)")
    parser.add_argument("--threads", type=int, help="CPU threads per process (default 1 on the CPU, so that "
                        "stores do not depend on the number of processes)")
    parser.add_argument("--out", help="distill: folder of the set; evaluate: result JSON")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[str, RunConfig]:
    """``(stage, RunConfig)`` from the command line; ``SystemExit(2)`` with a message on a bad argument."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        values = _read_config_file(args.config) if args.config else {}
        settings = dict(values.get("settings") or {})
        for item in args.overrides:
            key, sep, text = item.partition("=")
            if not sep or not key:
                raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set num_experts=8")
            settings[key.strip()] = _value(text)
        flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)
                 if f.name != "settings" and getattr(args, f.name, None) is not None}
        config = RunConfig.from_dict({**values, **flags, "settings": settings})
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    return args.stage, config


def main(argv: Sequence[str] | None = None) -> int:
    """Run one stage; the exit status (0: done)."""
    stage, config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    run_stage(stage, config)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
