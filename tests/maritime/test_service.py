"""The maritime service on real nodes: events detected at TWN reach JPN under the configured markings,
and nowhere else; positions kept for track queries; the `ais` commands."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kuroshio.maritime.geo import LandMask, gates_of_first_island_chain, zones_from_geojson
from kuroshio.maritime.scenario import T0, east_asia
from kuroshio.maritime.service import MaritimeService
from kuroshio.markings.definitions import TLP2
from kuroshio.node import Node
from kuroshio.store import ObjectFilter

from ..federation.test_sync import Federation
from .test_picture import TAIWAN


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    f = Federation(tmp_path)
    f.link("TWN", "JPN")
    f.link("TWN", "PHL")
    yield f
    f.close()


def held(node: Node, kind: str) -> list[dict[str, Any]]:
    page = node.store.query(node.operator(), node.collection("intel", "shared"), ObjectFilter(types=[kind], limit=10000))
    return [orjson.loads(r.raw) for r in page.rows]


def test_events_detected_at_twn_reach_jpn_and_not_phl(fed: Federation) -> None:
    twn, jpn, phl = (fed.nodes[o] for o in ("TWN", "JPN", "PHL"))
    twn.config.maritime.releasable_to = ["JPN"]  # TLP:AMBER, releasable to JPN (PHL is a partner too)
    twn.config.save()
    scenario = east_asia()
    zones = [*zones_from_geojson({"type": "FeatureCollection", "features": scenario.zones}),
             *gates_of_first_island_chain()]
    svc = MaritimeService(twn, land=LandMask([TAIWAN]), zones=zones)
    try:
        found = svc.feed(scenario.lines(), "rTWN1")
        assert found > 10
        assert svc.publish() > 0
        # positions kept: a track by vessel, an area and time window
        assert svc.tracks is not None
        assert len(svc.tracks.track(412000050)) > 100
        assert {p.mmsi for p in svc.tracks.area(24.0, 122.0, 25.0, 123.0, T0, T0 + 3600)} >= {412000050, 416000002}
    finally:
        svc.close()
    events = held(twn, "maritime-event")
    kinds = {e["event_type"] for e in events}
    assert {"gap", "encounter", "loitering", "transit", "spoofing", "identity", "zone-entry", "on-land"} <= kinds
    gap = next(e for e in events if e["event_type"] == "gap" and e["vessel_refs"])
    assert gap["status"] == "closed" and gap["parameters"]["gap_hours"] == 6.0 and gap["evidence"]["class"] == "6h"
    assert TLP2["amber"] in gap["object_marking_refs"] and len(gap["object_marking_refs"]) == 2

    fed.pull("JPN", "TWN")
    fed.pull("PHL", "TWN")
    at_jpn = {e["id"] for e in held(jpn, "maritime-event")}
    assert at_jpn == {e["id"] for e in events}
    assert {v["mmsi"] for v in held(jpn, "vessel")} >= {416000001, 412000050}
    assert held(jpn, "relationship") and held(jpn, "sighting")
    for kind in ("maritime-event", "vessel", "relationship", "sighting"):
        assert held(phl, kind) == [], kind


def test_open_gap_is_published_then_closed_as_a_new_version(tmp_path: Path) -> None:
    from kuroshio.maritime.scenario import Scenario

    node = Node.init(tmp_path / "TWN", "TWN")
    try:
        s = Scenario()
        s.track(416000001, (23.5, 122.3), 10.0, 12.0, T0, 16, silent=(2, 15))
        s.track(416000002, (23.6, 122.5), 0.0, 0.5, T0, 16, every=600)  # keeps the area received
        lines = s.lines()
        cut = next(i for i, line in enumerate(lines) if f"c:{T0 + 10 * 3600}" in line)
        svc = MaritimeService(node, keep_tracks=False)
        svc.feed(lines[:cut], "rx")
        svc.publish()
        (gap,) = [e for e in held(node, "maritime-event") if e["event_type"] == "gap"]
        assert gap["status"] == "open" and "end_time" not in gap
        svc.feed(lines[cut:], "rx")
        svc.publish()
        svc.close()
        (gap,) = [e for e in held(node, "maritime-event") if e["event_type"] == "gap"]
        assert gap["status"] == "closed" and gap["evidence"]["class"] == "12h"
        page = node.store.query(node.operator(), node.collection("intel", "shared"),
                                ObjectFilter(ids=[gap["id"]], versions=("all",)))
        assert len(page.rows) == 2
    finally:
        node.close()


def kuroshio(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}  # tables as wide as their content
    return subprocess.run([sys.executable, "-m", "kuroshio.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_ais_commands(tmp_path: Path) -> None:
    home = tmp_path / "node"
    Node.init(home, "TWN").close()
    nmea = tmp_path / "scenario.nmea"
    r = kuroshio("ais", "scenario", str(nmea))
    assert r.returncode == 0, r.stderr
    zone = tmp_path / "box.geojson"
    zone.write_text('{"type": "Polygon", "coordinates": [[[121.9, 25.4], [122.3, 25.4], [122.3, 25.9], '
                    '[121.9, 25.9], [121.9, 25.4]]]}')
    assert kuroshio("ais", "zones", str(home), "add", "patrol-box", str(zone)).returncode == 0
    r = kuroshio("ais", "zones", str(home), "add", "bad", str(tmp_path / "missing.geojson"))
    assert r.returncode == 1 and "missing.geojson" in r.stderr
    r = kuroshio("ais", "zones", str(home), "list")
    assert "patrol-box" in r.stdout and "Miyako Strait" in r.stdout
    r = kuroshio("ais", "ingest", str(home), str(nmea))
    assert r.returncode == 0, r.stderr
    assert "messages" in r.stdout and "events" in r.stdout
    r = kuroshio("ais", "events", str(home), "--kind", "zone-entry")
    assert r.returncode == 0 and "patrol-box" in r.stdout
    r = kuroshio("ais", "events", str(home), "--area", "24,122,25,123", "--kind", "transit")
    assert r.returncode == 0 and "Yonaguni-Taiwan" in r.stdout
    r = kuroshio("ais", "track", str(home), "--mmsi", "412000050", "--since", "2026-01-01T01:00:00Z",
                 "--until", "2026-01-01T01:10:00Z", "--json")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 11  # a position a minute
    r = kuroshio("ais", "track", str(home), "--area", "24,122,25,123", "--limit", "5")
    assert r.returncode == 0 and "5 positions" in r.stdout
    assert kuroshio("ais", "track", str(home)).returncode == 1
    assert kuroshio("ais", "zones", str(home), "remove", "patrol-box").returncode == 0
    assert "patrol-box" not in kuroshio("ais", "zones", str(home), "list").stdout


def _wait_for_events(home: Path, kind: str, deadline: float) -> list[dict[str, Any]]:
    import time

    while time.monotonic() < deadline:
        node = Node.open(home)
        try:
            found = [e for e in held(node, "maritime-event") if e["event_type"] == kind]
        finally:
            node.close()
        if found:
            return found
        time.sleep(0.5)
    return []


def _wait_for_udp_listener(port: int, deadline: float) -> None:
    """Until a socket is bound to the UDP port (Linux: /proc/net/udp; elsewhere a fixed wait)."""
    import time

    table = Path("/proc/net/udp")
    if not table.exists():
        time.sleep(5)
        return
    while time.monotonic() < deadline:
        rows = table.read_text().splitlines()[1:]
        if any(int(row.split()[1].rsplit(":", 1)[1], 16) == port for row in rows):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on UDP port {port}")


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_ais_ingest_from_network_feeds(tmp_path: Path, transport: str) -> None:
    import signal
    import socket
    import threading
    import time

    home = tmp_path / "node"
    node = Node.init(home, "TWN")
    node.config.maritime.publish_seconds = 0.5
    node.config.save()
    node.close()
    lines = [line.encode() for line in east_asia().lines()]
    if transport == "tcp":
        server = socket.create_server(("127.0.0.1", 0))
        port = server.getsockname()[1]

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                for i in range(0, len(lines), 200):
                    conn.sendall(b"\n".join(lines[i:i + 200]) + b"\n")
                time.sleep(30)

        threading.Thread(target=serve, daemon=True).start()
        source = f"tcp://127.0.0.1:{port}"
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        source = f"udp://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "kuroshio.cli", "ais", "ingest", str(home), source],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "250"})
    try:
        if transport == "udp":
            _wait_for_udp_listener(port, time.monotonic() + 60)  # datagrams sent before the bind are lost
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for i in range(0, len(lines), 20):
                    sender.sendto(b"\r\n".join(lines[i:i + 20]), ("127.0.0.1", port))
                    time.sleep(0.001)
        found = _wait_for_events(home, "transit", time.monotonic() + 60)
        assert found, "no transit event published from the network feed"
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "messages" in stdout


def test_replay_speed_paces_files_by_their_receive_times(tmp_path: Path) -> None:
    import time

    from kuroshio.maritime.scenario import Scenario

    home = tmp_path / "node"
    node = Node.init(home, "TWN")
    node.config.maritime.land = "none"
    node.config.save()
    node.close()
    s = Scenario()
    s.track(416000001, (23.5, 122.3), 10.0, 12.0, T0, 0.05, every=60)  # 3 minutes of data: 4 positions
    nmea = tmp_path / "three-minutes.nmea"
    nmea.write_text("\n".join(s.lines()) + "\n")
    started = time.monotonic()
    r = kuroshio("ais", "ingest", str(home), str(nmea), "--replay-speed", "90")
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    assert elapsed >= 2.0  # 180 s of data at 90 times the recorded pace
    started = time.monotonic()
    assert kuroshio("ais", "ingest", str(home), str(nmea)).returncode == 0
    assert time.monotonic() - started < elapsed  # as fast as it can without --replay-speed
