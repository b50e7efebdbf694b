"""The README and docs/ stay true to the tree: links resolve, and docs/settings.md names every variable read."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
VARIABLE = re.compile(r"\b(?:TALKLIKE|TELEGRAM|MESSENGER)_[A-Z0-9_]+\b")
NOT_VARIABLES = {"MESSENGER_SHARE"}  # a constant of the demo data generator


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as dashes."""
    found = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return found


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_settings_page_names_every_variable_the_code_reads_and_no_other():
    code = set()
    for folder in ("bot", "model", "training", "talklike"):
        for source in (ROOT / folder).rglob("*.py"):
            code |= set(VARIABLE.findall(source.read_text(encoding="utf-8")))
    code -= NOT_VARIABLES
    documented = set(VARIABLE.findall((ROOT / "docs" / "settings.md").read_text(encoding="utf-8")))
    assert sorted(code - documented) == []
    assert sorted(documented - code) == []


def test_the_readme_is_short_and_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 120  # a five-minute read; the reference lives in docs/
    assert "make demo" in readme and "make test" in readme
    # The safe path comes before deployment details: loopback console first, the token for public binds.
    assert readme.index("127.0.0.1") < readme.index("TALKLIKE_CONSOLE_TOKEN")
