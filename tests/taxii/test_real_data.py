"""The real third-party data through the TAXII door: every valid bundle loads, every invalid object is refused alone."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from kuroshio.node import published_at_init
from kuroshio.stix.validate import validate

from ..conftest import PASSWORD, RunningServer

TAXII = "application/taxii+json;version=2.1"


def load(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def post(server: RunningServer, alias: str, objects: list[Any]) -> dict[str, Any]:
    coll = server.node.collection("intel", alias)
    statuses: dict[str, Any] = {"success_count": 0, "failure_count": 0, "failures": [], "successes": []}
    with httpx.Client(base_url=server.base, auth=("alice", PASSWORD), timeout=120) as http:
        for i in range(0, len(objects), 1000):
            resp = http.post(f"/intel/collections/{coll.id}/objects/", content=orjson.dumps({"objects": objects[i:i + 1000]}),
                             headers={"Content-Type": TAXII, "Accept": TAXII})
            assert resp.status_code == 202, resp.text
            status = resp.json()
            assert status["status"] == "complete"
            for key in ("success_count", "failure_count"):
                statuses[key] += status[key]
            statuses["failures"] += status.get("failures", [])
            statuses["successes"] += status.get("successes", [])
    return statuses


def conflicting_repeats(objects: list[Any]) -> int:
    """Objects that repeat an earlier (id, version) with different content (a producer error)."""
    first: dict[tuple[str, str], Any] = {}
    count = 0
    for o in objects:
        key = (o["id"], o.get("modified") or o.get("created") or "")
        if key in first and first[key] != o:
            count += 1
        first.setdefault(key, o)
    return count


@pytest.mark.slow
def test_every_real_bundle_loads(server: RunningServer, data_dir: Path) -> None:
    # invalid objects per the OASIS validator: ATLAS 2 (modified < created), Attack Flow 4 (empty lists, defanged URLs)
    # interop-objectmarking-test: its campaign uses a marking definition defined nowhere: unknown, so refused
    invalid = {"stix-atlas.json": 2, "swift-heist.json": 1, "notpetya.json": 1, "cisa-iranian-apt.json": 2,
               "interop-objectmarking-test.json": 1}
    for path in sorted((data_dir / "stix").glob("*/*.json*")):
        if path.parent.name == "taxii":
            continue
        doc = load(path)
        objects = doc["objects"] if doc.get("type") == "bundle" else [doc]
        # a client sending a bundle in several envelopes sends the marking definitions first: an object
        # whose marking the node does not know yet is refused (docs/releasability.md)
        objects.sort(key=lambda o: o.get("type") != "marking-definition")
        custom = path.parent.name in ("attack", "atlas", "attack-flow")
        status = post(server, "reference" if custom else "shared", objects)
        conflicts = conflicting_repeats(objects)  # ATLAS reuses 34 ids with other content: refused, not overwritten
        assert status["failure_count"] == invalid.get(path.name, 0) + conflicts, (path.name, status["failures"][:3])
        for failure in status["failures"]:
            assert "[rule:" in failure["message"] or "same id and version" in failure["message"]
        assert status["success_count"] == len(objects) - status["failure_count"]


def test_invalid_objects_are_refused_alone(server: RunningServer, data_dir: Path) -> None:
    cases = load(data_dir / "stix-invalid" / "stix21-validator-invalid-cases.json")["cases"]
    bad = [c["instance"] for c in cases if c["invalid_in_default_mode"]]
    good = load(data_dir / "stix" / "oasis-examples" / "poisonivy.json")["objects"]
    mixed: list[Any] = []
    for i, obj in enumerate(good):
        mixed.append(obj)
        if i < len(bad):
            mixed.append(bad[i])
    mixed.extend(bad[len(good):])
    status = post(server, "reference", mixed)
    assert status["failure_count"] == len(bad) == 152
    assert status["success_count"] == len(good)
    assert {s["id"] for s in status["successes"]} == {o["id"] for o in good}
    for failure in status["failures"]:
        assert "[rule:" in failure["message"]
    # what was stored is exactly the valid objects
    with httpx.Client(base_url=server.base, auth=("alice", PASSWORD), timeout=60) as http:
        coll = server.node.collection("intel", "reference")
        got = http.get(f"/intel/collections/{coll.id}/objects/", params={"limit": 10000, "match[version]": "all"},
                       headers={"Accept": TAXII}).json()["objects"]
    predefined = {o["id"] for o in published_at_init()}
    assert {o["id"] for o in got} - predefined == {o["id"] for o in good}
    assert all(validate(o, allow_custom=True) is None for o in got)
