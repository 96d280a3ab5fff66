"""Each install works alone: every package a stage imports is declared in pyproject.toml, in
the base dependencies or in that stage's extra (a dependency of one of those counts too)."""

from __future__ import annotations

import ast
import contextlib
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGE_EXTRAS = {
    "jodkit": (),
    "scaling": (),
    "alignment": (),
    "study": ("study",),
    "annotation_app": ("app",),
    "training": ("train",),
}
"""The extras each package may rely on besides the base install."""


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")


def _with_their_dependencies(names: set[str]) -> set[str]:
    """``names`` and what each of them requires (one level): imports of those are safe."""
    out = set(names)
    for name in names:
        with contextlib.suppress(PackageNotFoundError):
            out |= {_name(r) for r in requires(name) or [] if "extra ==" not in r}
    return out


def _imported_distributions(package: str) -> dict[str, str]:
    """Third-party distribution -> one file of ``package`` that imports it."""
    distributions = packages_distributions()
    found: dict[str, str] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in STAGE_EXTRAS or top == "__future__":
                    continue
                for distribution in distributions.get(top, [top]):
                    found.setdefault(_name(distribution), str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", sorted(STAGE_EXTRAS))
def test_every_import_is_declared_for_its_install(package):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    for extra in STAGE_EXTRAS[package]:
        declared |= {_name(r) for r in project["optional-dependencies"][extra]}
    allowed = _with_their_dependencies(declared)
    undeclared = {d: f for d, f in _imported_distributions(package).items() if d not in allowed}
    assert undeclared == {}, f"imported but not declared for {package}'s install: {undeclared}"
