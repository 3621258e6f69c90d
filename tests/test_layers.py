"""ddlib's subpackages form layers: every import points down (or sideways inside a subpackage), no cycles.

The order, bottom to top, is :data:`LAYERS`; ``ddlib/__init__.py`` and the entry points
(the one-call ``ddlib.quickstart*``, the command line ``ddlib.cli*`` and ``ddlib.__main__``) sit on top. Every ``import`` and ``from ... import`` of every module counts,
also the ones inside functions.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ddlib"
LAYERS = ("core", "data", "models", "trajectories", "methods", "evaluation", "results", "chapters")
TOP = len(LAYERS)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """Layer index of a ddlib module; the top package and its direct modules are on top."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else TOP


def imports_of(path: Path) -> set[str]:
    """The ddlib modules ``path`` imports (relative imports resolved), with the imported names'
    modules where ``from pkg import module`` imports a module."""
    tree = ast.parse(path.read_text())
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "ddlib"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "ddlib":
                continue
            found.add(target)
            for alias in node.names:  # `from ddlib.core import config` imports the module ddlib.core.config
                candidate = PACKAGE.parent / Path(*f"{target}.{alias.name}".split("."))
                if candidate.with_suffix(".py").exists() or (candidate / "__init__.py").exists():
                    found.add(f"{target}.{alias.name}")
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {module_name(p): imports_of(p) for p in MODULES}


def test_the_layers_exist_and_the_flat_folder_is_gone():
    for name in LAYERS:
        assert (PACKAGE / name / "__init__.py").exists(), name
    entry_points = ("__init__", "__main__")  # and the one-call API (quickstart*) and the command line (cli*)
    flat = sorted(p.stem for p in PACKAGE.glob("*.py")
                  if p.stem not in entry_points and not p.stem.startswith(("quickstart", "cli")))
    assert not flat, f"modules outside the layers: {flat}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    wrong = sorted(t for t in GRAPH[module] if layer(t) > layer(module))
    assert not wrong, f"{module} (layer {layer(module)}) imports from a higher layer: {wrong}"


def test_no_import_cycles():
    graph = {m: {t for t in targets if t in GRAPH and t != m} for m, targets in GRAPH.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
