"""The package is built in floors: each imports only from the floors below it, never from above, and
no two modules import each other, however indirectly. Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bertvault"

# Lowest first. Modules of one floor may use each other; a floor may use any floor below it.
FLOORS = [
    {"__init__", "__version__", "errors", "paths", "sizes", "hfuri", "relpath"},
    {"io"},
    {"registry"},
    {"formats"},
    {"cache"},
    {"fetch"},
    {"sources"},
    {"provenance"},
    {"convert"},
    {"data"},
    {"train"},
    {"push"},
    {"demo"},
    {"cli", "__main__"},
]
# Beyond the floors: data reaches downloads and uploads only through sources and the command.
FORBIDDEN = {("data", "fetch"), ("data", "push")}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> dict[str, set[str]]:
    """module -> bertvault modules it imports (anywhere in its body)."""
    found: dict[str, set[str]] = {}
    for file in PACKAGE.rglob("*.py"):
        module = ".".join(file.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        names: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names if a.name.startswith("bertvault"))
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bertvault"):
                names.update(f"{node.module}.{a.name}" if node.module == "bertvault" else node.module
                             for a in node.names)
        found[module] = names
    return found


def _floor(part: str) -> int:
    return next(i for i, floor in enumerate(FLOORS) if part in floor)


def test_every_package_has_a_floor() -> None:
    parts = {_part(m) for m in _imports()}
    assert parts <= set().union(*FLOORS), f"give these a floor: {sorted(parts - set().union(*FLOORS))}"


def test_no_package_imports_one_above_it() -> None:
    wrong = sorted(
        f"{module} imports {name}"
        for module, names in _imports().items()
        for name in names
        if _floor(_part(name)) > _floor(_part(module))
        or (_part(module), _part(name)) in FORBIDDEN
    )
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_between_packages() -> None:
    edges: dict[str, set[str]] = {}
    for module, names in _imports().items():
        edges.setdefault(_part(module), set()).update(_part(n) for n in names if _part(n) != _part(module))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n}))
                   for n in edges.get(start, ()))

    cycles = sorted(part for part in edges if reaches(part, part, {part}))
    assert not cycles, f"packages in an import cycle: {cycles}"


@pytest.mark.parametrize("package", ["formats", "io", "registry"])
def test_the_low_floors_import_nothing_heavy_at_import_time(package: str) -> None:
    """Listing formats or reading manifests must not drag in torch, TensorFlow or transformers."""
    import subprocess
    import sys

    code = (f"import sys, bertvault.{package}, pkgutil, importlib\n"
            f"heavy = [m for m in ('torch', 'tensorflow', 'transformers') if m in sys.modules]\n"
            f"print(','.join(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
