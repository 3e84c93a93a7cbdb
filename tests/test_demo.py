"""The demo node: prepared as `make demo` prepares it, and showing releasability to the JPN liaison."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
from rich.console import Console

from kuroshio.demo import _id, prepare_demo
from kuroshio.store import ObjectFilter


def test_demo_node_shows_releasability(tmp_path: Path) -> None:
    console = Console(file=io.StringIO())
    node, creds = prepare_demo(tmp_path / "node", 0, tmp_path / "no-data", console)
    try:
        assert creds["token"].startswith("ksh_")
        store = node.store
        shared = node.collection("intel", "shared")

        def objects(user: str) -> dict[str, dict]:
            principal = store.principal(store.user(user))
            rows = store.query(principal, shared, ObjectFilter(limit=1000)).rows
            return {r.id: orjson.loads(r.raw) for r in rows}

        analyst, liaison = objects("analyst"), objects("liaison")
        report, source = _id("report", "report"), _id("indicator", "source")
        assert "human source" in analyst[report]["description"] and source in analyst
        assert source not in liaison and "description" not in liaison[report]
        assert source not in liaison[report]["object_refs"] and liaison[report]["name"] == analyst[report]["name"]
    finally:
        node.close()
    # preparing again re-uses the node and changes nothing
    node, _ = prepare_demo(tmp_path / "node", 0, tmp_path / "no-data", console)
    node.close()
