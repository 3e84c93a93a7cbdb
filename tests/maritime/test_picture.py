"""Tracks and detectors on generated scenarios with known ground truth (precision and recall 1.0,
including the cases that must not fire), on hand-made cases, and on the real recordings."""

from __future__ import annotations

from collections import Counter

import pytest
from shapely.geometry import Polygon

from kuroshio.maritime.decode import DecodeError, decode
from kuroshio.maritime.geo import GlobeLand, LandMask, flag, gates_of_first_island_chain, zones_from_geojson
from kuroshio.maritime.nmea import Reader
from kuroshio.maritime.picture import Event, Params, Picture
from kuroshio.maritime.scenario import T0, Scenario, east_asia

from .recordings import DATA, payloads, recording_files

# Taiwan, roughly (our own outline for the tests; the real land mask comes from Natural Earth or finer)
TAIWAN = Polygon([(121.0, 25.3), (121.9, 25.1), (122.0, 24.9), (121.8, 24.4), (121.6, 23.9), (121.4, 23.0),
                  (121.0, 22.5), (120.85, 21.9), (120.7, 22.3), (120.3, 22.55), (120.15, 23.0), (120.1, 23.5),
                  (120.3, 24.2), (120.7, 24.6), (121.0, 25.1)])


def run(scenario: Scenario, land: LandMask | None = None, params: Params | None = None) -> list[Event]:
    zones = [*zones_from_geojson({"type": "FeatureCollection", "features": scenario.zones}),
             *gates_of_first_island_chain()]
    picture = Picture(params, zones, land)
    reader = Reader(source="test")
    events: dict[tuple[str, int], Event] = {}
    for line in scenario.lines():
        for p in reader.feed(line):
            for e in picture.message(decode(p.payload, p.fill), p.time, p.source):
                events[(e.id, e.version)] = e
            for e in picture.tick():
                events[(e.id, e.version)] = e
    assert not reader.skipped
    return list({e.id: e for e in events.values()}.values())


def test_east_asia_scenario_precision_and_recall_are_one() -> None:
    scenario = east_asia()
    events = run(scenario, LandMask([TAIWAN]))
    missed = [t for t in scenario.truth if not any(t.matches(e) for e in events)]
    extra = [(e.kind, e.mmsi, e.other, e.zone, e.detail.get("anomaly")) for e in events
             if not any(t.matches(e) for t in scenario.truth)]
    assert not missed, f"missed: {missed}"
    assert not extra, f"false alarms: {extra}"


def test_east_asia_scenario_with_the_packaged_globe_land_mask() -> None:
    scenario = east_asia()
    globe = GlobeLand()
    assert globe.on_land(23.7, 121.0) and not globe.on_land(23.5, 122.3)  # Taiwan; the sea east of it
    events = run(scenario, globe)
    assert all(any(t.matches(e) for e in events) for t in scenario.truth)
    assert all(any(t.matches(e) for t in scenario.truth) for e in events)


def test_gap_is_reported_open_then_closed_with_its_class() -> None:
    s = Scenario()
    s.track(416000001, (23.5, 122.3), 10.0, 12.0, T0, 16, silent=(2, 15))  # 13 h
    s.track(416000002, (23.6, 122.5), 0.0, 0.5, T0, 16, every=600)  # the area stays received
    picture = Picture(Params(), [], None)
    reader = Reader()
    opened = closed = None
    for line in s.lines():
        for p in reader.feed(line):
            for e in picture.message(decode(p.payload, p.fill), p.time, p.source) + picture.tick():
                if e.kind == "gap" and e.mmsi == 416000001:
                    if e.open:
                        opened = (e.id, dict(e.detail), picture.clock)
                    else:
                        closed = (e.id, dict(e.detail), e)
    assert opened is not None and closed is not None and opened[0] == closed[0]
    assert opened[1]["class"] == "6h" and opened[2] - T0 < 9 * 3600  # reported while still open
    assert closed[1]["class"] == "12h" and closed[1]["hours"] >= 12.9
    assert closed[2].end is not None and closed[2].version == 2


def test_slow_in_port_is_not_loitering_without_a_land_mask_it_is() -> None:
    s = Scenario()
    s.track(416000010, (22.615, 120.280), 0.0, 0.1, T0, 4, every=300)
    assert [e.kind for e in run(s, LandMask([TAIWAN]))] == []
    assert [e.kind for e in run(s, None)] == ["loitering"]  # no land mask: everywhere is away from port


def test_flags_from_mids() -> None:
    assert flag(416000001) == "TW" and flag(431000001) == "JP" and flag(412000001) == "CN"
    assert flag(563000001) == "SG" and flag(636000001) == "LR" and flag(351000001) == "PA"
    assert flag(4160001) == "TW"  # coast station 00416xxxx
    assert flag(280123456) is None and flag(999999999) is None


def test_real_recordings_run_through_every_detector() -> None:
    land_file = DATA / "geo" / "ne_50m_land.geojson"
    files = recording_files()
    if not land_file.is_file() or not files:
        pytest.skip(f"real recordings or Natural Earth land absent under {DATA}")
    land = LandMask.from_geojson(land_file)
    kinds: Counter[str] = Counter()
    vessels = 0
    for f in files:
        picture = Picture(Params(), gates_of_first_island_chain(), land)  # each recording is its own feed
        for p in payloads(f, Reader(source=f.name)):
            try:
                msg = decode(p.payload, p.fill)
            except DecodeError:
                continue
            for e in picture.message(msg, p.time, p.source) + picture.tick():
                kinds[e.kind] += 1
        vessels += len(picture.vessels)
    assert vessels > 3000
    assert sum(kinds.values()) > 0 and kinds["on-land"] == 0  # inland waterways are not "on land"
