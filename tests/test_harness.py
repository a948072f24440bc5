"""benchmarks.harness: the one way a benchmark writes its result and a docs block."""

from __future__ import annotations

import json

import pytest

from benchmarks.harness import put_block, write_results


def test_write_results_writes_json_and_markdown_beside_it(tmp_path):
    path = write_results(tmp_path / "deep" / "run-x", {"rate": float("1.5")}, "| a |\n|---|")
    assert path == tmp_path / "deep" / "run-x.json"
    assert json.loads(path.read_text()) == {"rate": 1.5}
    assert path.with_suffix(".md").read_text() == "| a |\n|---|\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["run-x.json", "run-x.md"]  # no temporary file left


def test_put_block_replaces_only_between_its_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- x:start -->\nold\n<!-- x:end -->\noutro\n")
    put_block(page, ("<!-- x:start -->", "<!-- x:end -->"), ["new 1", "new 2"])
    assert page.read_text() == "intro\n<!-- x:start -->\nnew 1\nnew 2\n<!-- x:end -->\noutro\n"
    with pytest.raises(SystemExit, match="no <!-- y:start -->"):
        put_block(page, ("<!-- y:start -->", "<!-- y:end -->"), ["z"])
