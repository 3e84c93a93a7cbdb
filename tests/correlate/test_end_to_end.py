"""End to end over real nodes on 127.0.0.1: JPN publishes an indicator, TWN's Suricata sees it, JPN's
analysts see the sighting — and PHL, linked to both but not named, sees neither."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kuroshio.correlate.observations import read_eve
from kuroshio.correlate.service import Correlator
from kuroshio.markings.definitions import TLP2, releasable_to
from kuroshio.principals import Role
from kuroshio.store import ObjectFilter

from ..federation.test_sync import T1, Federation, three_nodes

DATA = Path(os.environ.get("KUROSHIO_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
EVE = DATA / "logs" / "suricata" / "surevego_eve.json"

# a few EVE lines of our own (the real sample is used when present)
OWN_EVE = [
    orjson.dumps({"timestamp": f"2026-11-29T0{i}:00:00.000000+0900", "event_type": "dns", "src_ip": "10.1.0.5",
                  "src_port": 5353 + i, "dest_ip": "10.1.0.1", "dest_port": 53, "proto": "UDP",
                  "dns": {"type": "query", "rrname": "prod.debian.map.fastly.net", "rrtype": "A"}})
    for i in range(3)
] + [b'{"timestamp": "garbage"', b"not json at all"]


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    f = three_nodes(tmp_path)
    yield f
    f.close()


def _publish(node: Any, objects: list[dict[str, Any]]) -> None:
    record = node.ingest(node.operator(), node.collection("intel", "shared"), objects)
    assert record.failure_count == 0, record.details


def _as_user(node: Any, username: str, org: str) -> dict[str, dict[str, Any]]:
    node.add_user(username, Role.READER, org=org, password="a-long-password-1")
    principal = node.store.principal(node.store.user(username))
    page = node.store.query(principal, node.collection("intel", "shared"), ObjectFilter(limit=10000))
    return {r.id: orjson.loads(r.raw) for r in page.rows}


@pytest.mark.parametrize("source", ["own", "real"])
def test_indicator_at_jpn_seen_at_twn_sighting_back_at_jpn_only(fed: Federation, source: str) -> None:
    if source == "real" and not EVE.is_file():
        pytest.skip(f"real Suricata sample absent ({EVE}): set KUROSHIO_DATA to the shared data folder")
    twn, jpn = fed.nodes["TWN"], fed.nodes["JPN"]
    rel_twn = releasable_to(f"marking-definition--{uuid.uuid4()}", [(twn.config.identity, "TWN", "TW")],
                            created_by=jpn.config.identity, created=T1)
    ind = {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": T1, "modified": T1,
        "created_by_ref": jpn.config.identity, "name": "CDN host abused for staging",
        "pattern": "[domain-name:value = 'prod.debian.map.fastly.net']", "pattern_type": "stix",
        "valid_from": "2016-01-01T00:00:00Z", "object_marking_refs": [TLP2["amber"], rel_twn["id"]],
    }
    _publish(jpn, [rel_twn, ind])
    fed.pull("TWN", "JPN")
    assert ind["id"] in fed.objects("TWN")

    correlator = Correlator(twn)
    try:
        assert ind["id"] in correlator.refresh()
        lines = EVE.read_bytes().splitlines() if source == "real" else OWN_EVE
        hits = correlator.observe(read_eve(lines))
        assert hits >= 1
        assert correlator.flush() == 1
    finally:
        correlator.close()

    fed.pull("JPN", "TWN")
    at_jpn = [o for o in fed.objects("JPN").values() if o["type"] == "sighting"]
    assert len(at_jpn) == 1
    sighting = at_jpn[0]
    assert sighting["sighting_of_ref"] == ind["id"]
    assert sighting["where_sighted_refs"] == [twn.config.identity]
    assert sighting["count"] == hits
    assert TLP2["amber"] in sighting["object_marking_refs"]
    # JPN's analysts see it, with its evidence
    seen = _as_user(jpn, "analyst", "JPN")
    assert sighting["id"] in seen
    assert all(ref in seen for ref in sighting["observed_data_refs"])

    # PHL is linked to JPN and pinned at TWN, but neither the indicator nor the sighting is for it
    fed.pull("PHL", "JPN")
    at_phl = fed.objects("PHL")
    assert ind["id"] not in at_phl
    assert not [o for o in at_phl.values() if o["type"] in ("sighting", "observed-data")]

    # the next day's log updates the same sighting with a new version at TWN
    correlator = Correlator(twn)
    try:
        correlator.refresh()
        correlator.observe(read_eve(OWN_EVE))
        correlator.flush()
    finally:
        correlator.close()
    fed.pull("JPN", "TWN")
    sightings = {o["id"]: o for o in fed.objects("JPN").values() if o["type"] == "sighting"}
    if source == "own":  # the same day: a new version of the same sighting, with the new total
        assert list(sightings) == [sighting["id"]]
        assert sightings[sighting["id"]]["count"] == 2 * hits
        assert fed.versions("JPN", sighting["id"]) == 2
    else:  # the sample is from 2017: our lines are another day, another sighting
        assert len(sightings) == 2
        assert sightings[sighting["id"]]["count"] == hits
