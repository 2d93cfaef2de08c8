"""The package's import structure: no cycles, the layer order, no private names across packages.

The import graph is built from the source with :mod:`ast`, counting imports inside functions too,
so an import hidden in a function cannot hide a cycle. The layer order is the import-linter
contract in pyproject.toml (one definition; `make lint` runs import-linter on it too).
"""

from __future__ import annotations

import ast
import inspect
from collections import defaultdict
from pathlib import Path

import pytest
import tomllib

import cellscribe
from cellscribe import errors

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "python" / "cellscribe"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports() -> list[tuple[str, str, str, int]]:
    """``(importer, imported module, imported name or "", line)`` for every cellscribe import."""
    found = []
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("cellscribe"):
                    continue
                for alias in node.names:
                    as_module = f"{target}.{alias.name}"
                    if as_module in MODULES:
                        found.append((module, as_module, "", node.lineno))
                    else:
                        found.append((module, target, alias.name, node.lineno))
            elif isinstance(node, ast.Import):
                found.extend((module, a.name, "", node.lineno) for a in node.names if a.name.startswith("cellscribe"))
    return found


IMPORTS = _imports()


def _unit(module: str) -> str:
    """The top-level package or module a module belongs to (``cellscribe.engine.runner`` -> ``engine``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycle_between_modules() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for importer, imported, _, _ in IMPORTS:
        if imported in MODULES and imported != importer:
            graph[importer].add(imported)
    # depth-first search for a back edge; report the cycle it closes
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_follow_the_layer_order() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    level = {name.strip(): i for i, layer in enumerate(contract["layers"]) for name in layer.split("|")}
    units = {_unit(m) for m in MODULES} - {"", "__main__"}
    assert units <= set(level), f"not in any layer of pyproject.toml: {sorted(units - set(level))}"
    wrong = sorted({f"{importer} (line {line}) imports {imported}"
                    for importer, imported, _, line in IMPORTS
                    if _unit(importer) in level and _unit(imported) in level
                    and _unit(importer) != _unit(imported) and level[_unit(importer)] > level[_unit(imported)]})
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_private_name_crosses_a_package_border() -> None:
    crossing = []
    for importer, imported, name, line in IMPORTS:
        if _unit(importer) in ("", _unit(imported)):
            continue  # the package root and imports within one package are free
        path = imported.split(".")[1:] + ([name] if name else [])
        if any(p.startswith("_") and not (p.startswith("__") and p.endswith("__")) for p in path):
            crossing.append(f"{importer} (line {line}) imports {imported}{'.' + name if name else ''}")
    assert not crossing, "private names used across package borders:\n" + "\n".join(sorted(crossing))


def test_every_error_users_catch_lives_in_cellscribe_errors() -> None:
    defined_elsewhere = []
    for module, path in MODULES.items():
        if module == "cellscribe.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    (isinstance(b, ast.Name) and b.id.endswith("Error")) for b in node.bases):
                defined_elsewhere.append(f"{module}.{node.name}")
    assert not defined_elsewhere, f"error classes outside cellscribe.errors: {defined_elsewhere}"
    classes = {n for n, c in vars(errors).items() if inspect.isclass(c) and issubclass(c, errors.CellscribeError)}
    assert classes == set(errors.__all__)


@pytest.mark.parametrize("name", ["CellscribeError", "InputError", "MarkerInputError"])
def test_the_common_errors_are_also_at_the_top(name: str) -> None:
    assert getattr(cellscribe, name) is getattr(errors, name)
