"""The dependency rule from DESIGN.md, checked on the source: a server never needs training code."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name.split(".")[0] for name in names}


def python_files(package: str) -> list[pathlib.Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("bot", {"training"}),
        ("model", {"training", "bot", "flask", "telegram", "requests"}),
    ],
)
def test_package_does_not_import(package, forbidden):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & forbidden)
        for path in python_files(package)
        if imported_modules(path) & forbidden
    }
    assert offenders == {}


def test_engine_and_stores_import_no_platform_sdk():
    core = [p for p in python_files("bot") if p.parent.name == "stores" or p.stem in {"engine", "batching", "settings"}]
    offenders = {str(p.relative_to(ROOT)): sorted(imported_modules(p) & {"flask", "telegram"}) for p in core}
    assert {k: v for k, v in offenders.items() if v} == {}
