"""The dependency rules from DESIGN.md, checked on the source: the floors of `bot/` as folders, a server that
never needs training code, and adapters that reach the conversation store only through the layers below."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PLATFORM_SDKS = {"flask", "werkzeug", "telegram", "requests", "httpx"}


def imported_modules(path: pathlib.Path, depth: int = 1) -> set[str]:
    """Every module `path` imports, cut to its first `depth` dotted parts (relative imports are not used)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {".".join(name.split(".")[:depth]) for name in names}


def python_files(folder: str) -> list[pathlib.Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def offenders(folder: str, forbidden: set[str], depth: int = 1) -> dict[str, list[str]]:
    found = {}
    for path in python_files(folder):
        bad = sorted(imported_modules(path, depth) & forbidden)
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


@pytest.mark.parametrize("folder, forbidden, depth", [
    ("model", {"training", "bot", *PLATFORM_SDKS}, 1),
    ("bot", {"training"}, 1),
    # the floors of bot/, bottom up: infra < engine < conversation < adapters < app
    ("bot/infra", {"bot.engine", "bot.conversation", "bot.adapters", "bot.app"}, 2),
    ("bot/engine", {"bot.conversation", "bot.adapters", "bot.app"}, 2),
    ("bot/engine", PLATFORM_SDKS, 1),
    ("bot/conversation", {"bot.adapters", "bot.app"}, 2),
    ("bot/conversation", PLATFORM_SDKS, 1),
    ("bot/adapters", {"bot.app"}, 2),
])
def test_a_floor_imports_only_what_lies_below_it(folder, forbidden, depth):
    assert offenders(folder, forbidden, depth) == {}


def test_the_floors_are_the_folders_of_bot():
    floors = {p.name for p in (ROOT / "bot").iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert floors == {"infra", "engine", "conversation", "adapters", "app"}
    loose = {p.name for p in (ROOT / "bot").glob("*.py")}
    assert loose <= {"__init__.py", "gunicorn_conf.py"}  # the second: the earlier gunicorn command's name


def test_no_adapter_touches_the_conversation_store():
    # Adapters call the conversation layer; persona, settings and memory are its business (and the engine's).
    touching = {}
    for path in python_files("bot/adapters"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        lines = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "store"]
        if lines:
            touching[str(path.relative_to(ROOT))] = lines
    assert touching == {}


def test_the_rule_checks_catch_a_violation(tmp_path):
    # The checks above can fail: a file importing flask is found.
    bad = tmp_path / "pkg" / "engine.py"
    bad.parent.mkdir()
    bad.write_text("import flask\nfrom bot.app import create_app\n")
    assert imported_modules(bad) == {"flask", "bot"}
    assert imported_modules(bad, depth=2) == {"flask", "bot.app"}
