"""The pins agree across requirements.txt, pyproject.toml and environment.yml; layout holds."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)$")


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.strip().lstrip("- ").strip()
        match = PIN.match(line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def requirements():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return _pins(l for l in lines if l.strip() and not l.startswith("#"))


def test_every_requirement_is_pinned_exactly():
    lines = [l.strip() for l in (ROOT / "requirements.txt").read_text().splitlines()]
    entries = [l for l in lines if l and not l.startswith("#")]
    assert entries and all(PIN.match(l) for l in entries), entries
    assert requirements()["torch"] == "2.14.1"
    assert requirements()["torchvision"] == "0.29.1"
    assert requirements()["jupyter-book"] == "1.0.4.post1"


def test_environment_yml_lists_the_same_pins():
    env = _pins((ROOT / "environment.yml").read_text().splitlines())
    assert env == requirements()


def test_pyproject_dependencies_and_extras_match_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        listed += extra
    assert _pins(listed) == requirements()


def test_import_ddlib_does_not_import_torchvision():
    code = "import sys, ddlib; ddlib.load_dataset('digits'); print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_layout_fixed_by_the_design():
    for name in ("book", "notebooks", "ddlib", "tests", "_config.yml", "_toc.yml", "environment.yml",
                 "README.md", "pyproject.toml", "Makefile", ".ci/run", ".gitignore"):
        assert (ROOT / name).exists(), name
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    ignored = (ROOT / ".gitignore").read_text()
    for pattern in (".venv", "_build", "artifacts"):
        assert pattern in ignored


def test_every_ddlib_module_has_its_api_reference_section():
    api = "".join(page.read_text() for page in sorted((ROOT / "book" / "api").glob("*.md")))
    modules = sorted(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for path in (ROOT / "ddlib").rglob("*.py") if path.name != "__init__.py" or path.parent.name == "data")
    modules = [m for m in modules if not m.startswith("ddlib.models.")]  # the zoo has one section, ddlib.models
    missing = [m for m in modules if f".. automodule:: {m}\n" not in api]
    assert not missing, f"book/api/ has no automodule section for {missing}"
    for layer in ("core", "data", "models", "trajectories", "methods", "evaluation", "results", "chapters"):
        page = (ROOT / "book" / "api" / f"{layer}.md").read_text()  # one page per subpackage
        assert all(m.startswith(f"ddlib.{layer}") for m in re.findall(r"automodule:: (\S+)", page)), layer
