"""The ingest path: the same envelope gives the same stored result inline and across worker processes."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from kuroshio.ingest import Preparer, ingest
from kuroshio.node import Node
from kuroshio.store import ObjectFilter

TS = "2026-01-01T00:00:00.000Z"


def envelope(n: int, start: int = 0) -> list[Any]:
    out: list[Any] = []
    for i in range(start, start + n):
        obj = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.UUID(int=i + 1, version=4)}",
               "created": TS, "modified": TS, "pattern_type": "stix", "valid_from": TS,
               "pattern": f"[domain-name:value = 'host{i}.example.org']"}
        if i % 97 == 0:
            obj["pattern"] = "[domain-name:value = ]"  # invalid: rejected alone
        out.append(obj)
    return out


def stored(node: Node, alias: str) -> list[bytes]:
    coll = node.collection("intel", alias)
    rows = node.store.query(node.operator(), coll, ObjectFilter(limit=10000)).rows
    return [r.raw for r in rows if r.raw is not None]


def test_worker_processes_give_the_same_result_in_the_same_order(node: Node) -> None:
    node.store.add_collection("intel", "inline", "inline")
    node.store.add_collection("intel", "parallel", "parallel")
    home = node.store.organisation("TWN")
    for alias in ("inline", "parallel"):
        coll = node.collection("intel", alias)
        node.store.grant(coll.id, home.id, can_read=True, can_write=True)
    objects = envelope(1500)
    operator = node.operator()
    inline = ingest(node.store, operator, node.collection("intel", "inline"), objects, preparer=Preparer(0))
    pool = Preparer(2)
    try:
        parallel = ingest(node.store, operator, node.collection("intel", "parallel"), objects, preparer=pool,
                          body=orjson.dumps({"objects": objects}))
        again = ingest(node.store, operator, node.collection("intel", "parallel"), objects, preparer=pool)
    finally:
        pool.close()
    assert (inline.success_count, inline.failure_count) == (parallel.success_count, parallel.failure_count) == (1484, 16)
    assert orjson.loads(inline.details)["failures"] == orjson.loads(parallel.details)["failures"]
    assert stored(node, "inline") == stored(node, "parallel")  # same canonical objects, same date_added order
    assert again.success_count == 1484 and again.failure_count == 16
