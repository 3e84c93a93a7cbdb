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


def test_demo_partners_exchange_what_their_markings_allow(tmp_path: Path) -> None:
    from kuroshio.demo import link_nodes, prepare_jpn
    from kuroshio.federation.pull import pull

    from .conftest import RunningServer

    console = Console(file=io.StringIO())
    jpn, _ = prepare_jpn(tmp_path / "JPN", 0, console)
    jpn_org = jpn.store.organisation("JPN")
    twn, _ = prepare_demo(tmp_path / "TWN", 0, tmp_path / "no-data", console,
                          jpn_identity=orjson.loads(jpn.store.organisation_identity(jpn_org.id)))
    try:
        with RunningServer(twn) as s_twn, RunningServer(jpn) as s_jpn:
            twn.config.port = int(s_twn.base.rsplit(":", 1)[1])
            jpn.config.port = int(s_jpn.base.rsplit(":", 1)[1])
            link_nodes(twn, jpn)
            pull(jpn, jpn.config.partner("TWN"))
            pull(twn, twn.config.partner("JPN"))

            def held(node: object) -> dict[str, dict]:
                coll = node.collection("intel", "shared")
                return {r.id: orjson.loads(r.raw) for r in
                        node.store.query(node.operator(), coll, ObjectFilter(limit=1000)).rows}

            at_jpn, at_twn = held(jpn), held(twn)
            assert _id("indicator", "amber-jpn") in at_jpn and _id("indicator", "ip") in at_jpn
            assert _id("note", "red") not in at_jpn and _id("indicator", "source") not in at_jpn
            assert "description" not in at_jpn[_id("report", "report")]
            assert _id("report", "jpn-report") in at_twn

            # JPN's AMBER indicator for TWN; TWN's sensor log; the sightings go back to JPN
            import time

            from kuroshio.demo import correlate_demo, jpn_for_twn, sensor_log

            record = jpn.ingest(jpn.operator(), jpn.collection("intel", "shared"),
                                jpn_for_twn(jpn.config.identity, twn.config.identity))
            assert record.failure_count == 0, record.details
            pull(twn, twn.config.partner("JPN"))
            log = tmp_path / "sensor-eve.json"
            log.write_bytes(b"\n".join(sensor_log(time.time_ns() // 1000)))
            counts = correlate_demo(twn, log, console)
            assert counts["matches"] == 5 and counts["sightings"] == 4  # the HTTP event: C2 address and domain
            pull(jpn, jpn.config.partner("TWN"))
            sightings = {o["sighting_of_ref"]: o for o in held(jpn).values() if o["type"] == "sighting"}
            assert sightings[_id("indicator", "jpn-amber")]["count"] == 1
            assert sightings[_id("indicator", "jpn-ais")]["count"] == 2
            assert sightings[_id("indicator", "ip")]["count"] == 1

            # TWN's AIS picture: events go to JPN (TLP:AMBER releasable to JPN)
            from kuroshio.demo import maritime_demo

            events = maritime_demo(twn, tmp_path / "no-data", console)
            assert events["gap"] >= 1 and events["transit"] >= 1
            pull(jpn, jpn.config.partner("TWN"))
            received = [o for o in held(jpn).values() if o["type"] == "maritime-event"]
            assert {e["event_type"] for e in received} >= {"gap", "transit", "encounter", "spoofing"}
    finally:
        twn.close()
        jpn.close()
