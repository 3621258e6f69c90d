"""Shared fixtures: the smoke-scale book build that notebook and browser tests inspect."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# The tests use tiny tensors: one intra-op thread is as fast and does not collapse when the
# machine is shared (two threads on a loaded 2-core machine made single tests 40x slower).
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SMOKE_BUILD = ROOT / "_build" / "smoke"
DRY_RUN_BUILD = ROOT / "_build" / "paper-dry-run"
# The dry run `make test` makes: every chapter at paper shapes on fake CIFAR-10 files, IPC 1 (the
# Makefile's DRY_RUN_IPCS), so that it fits the test budget on two CPU cores.
DRY_RUN_COMMAND = ["--scale", "paper", "--dry-run", "--device", "cpu", "--ipcs", "1", "--no-build",
                   "--build-dir", "_build/paper-dry-run"]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
# ... and the chapters it runs again on fake CIFAR-100 files (the Makefile's TEST_CIFAR100_CHAPTERS).
DRY_RUN_CIFAR100_BUILD = ROOT / "_build" / "paper-dry-run-cifar100"
DRY_RUN_CIFAR100_CHAPTERS = ("01_data_and_models", "02_baselines")
DRY_RUN_CIFAR100_COMMAND = ["--scale", "paper", "--dry-run", "--device", "cpu", "--ipcs", "1", "--no-build",
                            "--build-dir", "_build/paper-dry-run-cifar100", "--dataset", "cifar100",
                            "--only", *DRY_RUN_CIFAR100_CHAPTERS]


@pytest.fixture(scope="session")
def smoke_build():
    """The smoke build made by `make test` before pytest; built here when pytest runs alone.

    The pipeline caches executed notebooks, so a fresh build only runs what changed.
    """
    html = SMOKE_BUILD / "html"
    executed = [SMOKE_BUILD / "src" / "book" / "notebooks" / f"{nb.stem}.ipynb" for nb in NOTEBOOKS]
    if not html.exists() or not all(p.exists() for p in executed):
        cmd = [sys.executable, str(ROOT / "scripts" / "build_book.py"), "--scale", "smoke", "--device", "cpu",
               "--build-dir", "_build/smoke"]
        subprocess.run(cmd, cwd=ROOT, check=True)
    return SMOKE_BUILD


@pytest.fixture(scope="session")
def dry_run_build():
    """The paper-scale dry run made by `make test` before pytest; made here when pytest runs alone."""
    executed = [DRY_RUN_BUILD / "src" / "book" / "notebooks" / f"{nb.stem}.ipynb" for nb in NOTEBOOKS]
    if not all(p.exists() for p in executed):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "build_book.py"), *DRY_RUN_COMMAND], cwd=ROOT,
                       check=True)
    return DRY_RUN_BUILD


@pytest.fixture(scope="session")
def dry_run_cifar100_build():
    """The CIFAR-100 dry run of DRY_RUN_CIFAR100_CHAPTERS made by `make test`; made here when pytest runs alone."""
    executed = [DRY_RUN_CIFAR100_BUILD / "src" / "book" / "notebooks" / f"{stem}.ipynb"
                for stem in DRY_RUN_CIFAR100_CHAPTERS]
    if not all(p.exists() for p in executed):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "build_book.py"), *DRY_RUN_CIFAR100_COMMAND],
                       cwd=ROOT, check=True)
    return DRY_RUN_CIFAR100_BUILD
