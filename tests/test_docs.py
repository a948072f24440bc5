"""The README a newcomer reads in five minutes, the docs beside it, and every citation resolving to a file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
CITED = re.compile(r"`((?:benchmarks/results|gankit|exported|benchmarks)/[^`*\s]+\.(?:json|md|png|py|onnx))`")


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_every_link_and_cited_file_exists(page: Path):
    text = page.read_text()
    missing = [t for t in LINK.findall(text) if not t.startswith("http") and not (page.parent / t).exists()]
    missing += [t for t in CITED.findall(text) if not (ROOT / t).exists()]
    assert missing == []


def test_every_docs_page_is_reachable_from_the_readme():
    """Following links from the README reaches every page in docs/."""
    seen, todo = set(), [README]
    while todo:
        page = todo.pop()
        for target in LINK.findall(page.read_text()):
            path = (page.parent / target).resolve()
            if path.suffix == ".md" and path.is_file() and path not in seen:
                seen.add(path)
                todo.append(path)
    assert {p.resolve() for p in PAGES} <= seen
