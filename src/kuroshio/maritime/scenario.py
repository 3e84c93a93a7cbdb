"""Synthetic vessels with known behaviour, rendered as real NMEA sentences with tag blocks: the ground
truth for the detectors' tests, the demo, and later exercises.

`east_asia()` scripts the situations partners watch around Taiwan — a vessel going dark east of
Taiwan, a rendezvous in the Taiwan Strait, an incursion into a 12-nm buffer, spoofed jumps, a
duplicated MMSI, a transit of the Yonaguni–Taiwan gap — together with the cases that must not fire
(slow vessels in port, short silences, silences out of reception, retransmissions, timestamp errors,
vessels passing at speed). `Scenario.lines()` renders them as `\\s:receiver,c:time*hh\\!AIVDM…`
sentences in time order; `Scenario.truth` lists the events a correct detector finds, no more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .geo import NM

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z

_ARMOUR = "0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVW`abcdefghijklmnopqrstuvw"
_TEXT = "@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_ !\"#$%&'()*+,-./0123456789:;<=>?"


class _BitWriter:
    def __init__(self) -> None:
        self.n = 0
        self.size = 0

    def put(self, value: int, width: int) -> None:
        self.n = (self.n << width) | (value & ((1 << width) - 1))
        self.size += width

    def text(self, s: str, chars: int) -> None:
        s = s.upper()[:chars].ljust(chars, "@")
        for c in s:
            self.put(_TEXT.index(c) if c in _TEXT else 0, 6)

    def armour(self) -> tuple[str, int]:
        fill = (-self.size) % 6
        n = self.n << fill
        chars = (self.size + fill) // 6
        return "".join(_ARMOUR[(n >> (6 * (chars - 1 - i))) & 63] for i in range(chars)), fill


def position_payload(mmsi: int, lat: float, lon: float, sog: float, cog: float, second: int, status: int = 0) -> tuple[str, int]:
    """A type 1 position report."""
    w = _BitWriter()
    w.put(1, 6)
    w.put(0, 2)
    w.put(mmsi, 30)
    w.put(status, 4)
    w.put(-128, 8)
    w.put(min(1022, round(sog * 10)), 10)
    w.put(1, 1)
    w.put(round(lon * 600000), 28)
    w.put(round(lat * 600000), 27)
    w.put(round(cog * 10) % 3600, 12)
    w.put(round(cog) % 360, 9)
    w.put(second % 60, 6)
    w.put(0, 2)
    w.put(0, 3)
    w.put(0, 1)
    w.put(0, 19)
    return w.armour()


def static_payload(mmsi: int, name: str, *, imo: int = 0, callsign: str = "", ship_type: int = 70,
                   destination: str = "") -> tuple[str, int]:
    """A type 5 static and voyage report (two sentences)."""
    w = _BitWriter()
    w.put(5, 6)
    w.put(0, 2)
    w.put(mmsi, 30)
    w.put(0, 2)
    w.put(imo, 30)
    w.text(callsign, 7)
    w.text(name, 20)
    w.put(ship_type, 8)
    for v, width in ((100, 9), (20, 9), (10, 6), (10, 6)):
        w.put(v, width)
    w.put(1, 4)
    for v, width in ((1, 4), (1, 5), (0, 5), (0, 6)):
        w.put(v, width)
    w.put(80, 8)
    w.text(destination, 20)
    w.put(0, 1)
    w.put(0, 1)
    return w.armour()


def _checksum(body: str) -> str:
    x = 0
    for c in body.encode():
        x ^= c
    return f"{x:02X}"


def sentences(payload: str, fill: int, *, time: float, source: str, channel: str = "A", seq: int = 0) -> list[str]:
    """NMEA lines for a payload (split into parts of at most 60 characters), each with a tag block."""
    parts = [payload[i:i + 60] for i in range(0, len(payload), 60)] or [""]
    out = []
    for i, part in enumerate(parts, 1):
        body = f"AIVDM,{len(parts)},{i},{seq if len(parts) > 1 else ''},{channel},{part},{fill if i == len(parts) else 0}"
        tag = f"s:{source},c:{int(time)}"
        out.append(f"\\{tag}*{_checksum(tag)}\\!{body}*{_checksum(body)}")
    return out


def move(lat: float, lon: float, course: float, metres: float) -> tuple[float, float]:
    """The position `metres` away along `course` (degrees true), on a sphere."""
    r = 6_371_008.8
    d = metres / r
    p1, l1, th = math.radians(lat), math.radians(lon), math.radians(course)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(th))
    l2 = l1 + math.atan2(math.sin(th) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180


@dataclass
class Truth:
    kind: str
    mmsi: int
    other: int | None = None
    zone: str | None = None
    anomaly: str | None = None

    def matches(self, event: Any) -> bool:
        if event.kind != self.kind:
            return False
        if self.kind == "encounter":
            return {event.mmsi, event.other} == {self.mmsi, self.other}
        if event.mmsi != self.mmsi:
            return False
        if self.zone is not None and event.zone != self.zone:
            return False
        return self.anomaly is None or event.detail.get("anomaly") == self.anomaly


@dataclass
class Scenario:
    """Timed messages (time, payload, fill, receiver) and the events they must produce."""

    messages: list[tuple[float, str, int, str]] = field(default_factory=list)
    truth: list[Truth] = field(default_factory=list)
    zones: list[dict[str, Any]] = field(default_factory=list)  # GeoJSON features the scenario needs

    def track(self, mmsi: int, start: tuple[float, float], course: float, knots: float, t0: float, hours: float,
              *, every: float = 60.0, receiver: str = "rTWN1", silent: tuple[float, float] | None = None) -> tuple[float, float]:
        """A vessel steaming; no transmissions between the hours `silent` (from, to). Returns the end."""
        lat, lon = start
        steps = int(hours * 3600 / every)
        for i in range(steps + 1):
            t = t0 + i * every
            h = (t - t0) / 3600
            if silent is None or not (silent[0] <= h < silent[1]):
                self.position(mmsi, lat, lon, knots, course, t, receiver)
            lat, lon = move(lat, lon, course, knots * NM / 3600 * every)
        return lat, lon

    def position(self, mmsi: int, lat: float, lon: float, knots: float, course: float, t: float,
                 receiver: str = "rTWN1") -> None:
        self.messages.append((t, *position_payload(mmsi, lat, lon, knots, course, int(t) % 60), receiver))

    def static(self, mmsi: int, name: str, t: float, receiver: str = "rTWN1", **extra: Any) -> None:
        self.messages.append((t, *static_payload(mmsi, name, **extra), receiver))

    def lines(self) -> list[str]:
        out = []
        for seq, (t, payload, fill, receiver) in enumerate(sorted(self.messages, key=lambda m: m[0])):
            out += sentences(payload, fill, time=t, source=receiver, seq=seq % 10)
        return out


def east_asia() -> Scenario:
    """Situations around Taiwan over 14 hours, with their ground truth (see the module's docstring).
    Vessels that must not be reported going dark either transmit to the end or stop where nothing
    is heard afterwards."""
    s = Scenario()
    day = T0
    # 1. going dark east of Taiwan: 8 h silent while the area is still heard (it transits the
    #    Yonaguni-Taiwan gap while silent: the gate sees the move from before to after)
    s.track(416000001, (23.50, 122.30), 10.0, 12.0, day, 14, silent=(3, 11))
    s.truth += [Truth("gap", 416000001), Truth("transit", 416000001, zone="Yonaguni-Taiwan")]
    s.track(416000002, (24.20, 122.60), 350.0, 0.5, day, 14, every=300)  # drifts nearby: the area is heard
    s.truth.append(Truth("loitering", 416000002))
    s.track(416000003, (23.20, 123.00), 180.0, 12.0, day, 10, silent=(2, 5))  # 3 h silent: no gap
    s.track(416000004, (30.50, 140.50), 90.0, 12.0, day, 14, silent=(3, 11))  # nobody hears that area: no gap
    # 2. rendezvous in the Taiwan Strait: two vessels 200 m apart at 1 kn for 3.5 h
    s.track(412000001, (24.30, 119.60), 45.0, 1.0, day, 3.5, every=120)
    lat, lon = move(24.30, 119.60, 135.0, 200.0)
    s.track(413000002, (lat, lon), 45.0, 1.0, day, 3.5, every=120)
    s.truth += [Truth("encounter", 412000001, 413000002), Truth("loitering", 412000001), Truth("loitering", 413000002)]
    # ... not: two vessels moored side by side in Kaohsiung harbour (in port)
    s.track(416000010, (22.615, 120.280), 0.0, 0.1, day, 4, every=300)
    s.track(416000011, (22.616, 120.281), 0.0, 0.1, day, 4, every=300)
    # ... not: two vessels passing each other at speed
    s.track(416000012, (24.00, 119.90), 0.0, 14.0, day, 1)
    s.track(416000013, (24.23, 119.90), 180.0, 14.0, day, 1)
    # 3. incursion into the 12-nm buffer around a named feature (Pengjia Islet, 25.63 N 122.08 E)
    s.zones.append({"type": "Feature", "properties": {"name": "Pengjia 12nm", "buffer_nm": 12},
                    "geometry": {"type": "Point", "coordinates": [122.08, 25.63]}})
    s.track(412000020, (25.30, 122.08), 0.0, 10.0, day, 14)  # north, through the buffer and on
    s.truth += [Truth("zone-entry", 412000020, zone="Pengjia 12nm"), Truth("zone-exit", 412000020, zone="Pengjia 12nm"),
                Truth("zone-dwell", 412000020, zone="Pengjia 12nm")]
    # 4. a spoofed jump: one position 100 km away in the middle of a voyage
    end = s.track(416000030, (22.00, 121.50), 90.0, 12.0, day, 1)
    far = move(*end, 0.0, 100_000)
    s.position(416000030, far[0], far[1], 12.0, 90.0, day + 3660)
    s.track(416000030, move(*end, 90.0, 400), 90.0, 12.0, day + 3720, 1)
    s.truth.append(Truth("spoofing", 416000030))
    # ... not: a retransmission of the same position; a time stamp two seconds off
    s.track(416000031, (22.50, 121.80), 90.0, 12.0, day, 1)
    s.position(416000031, 22.50, 121.80, 12.0, 90.0, day + 20)
    s.position(416000031, *move(22.50, 121.80, 90.0, 2500), 12.0, 90.0, day + 62)
    # 5. one MMSI in two places: two transmitters 100 km apart, alternating (the first jump cannot be
    #    told from spoofing; from the first return on it is two transmitters)
    for i in range(144):
        t = day + 7200 + i * 300
        s.position(416000040, *move(25.30, 122.30, 90.0, i * 5 * NM / 12), 5.0, 90.0, t)
        s.position(416000040, *move(24.20, 122.90, 180.0, i * 30), 1.0, 180.0, t + 150)
    s.truth += [Truth("spoofing", 416000040), Truth("identity", 416000040, anomaly="two-places-at-once")]
    # 6. a transit of the Yonaguni-Taiwan gap, northbound
    s.track(412000050, (24.20, 122.40), 0.0, 12.0, day, 14)
    s.truth.append(Truth("transit", 412000050, zone="Yonaguni-Taiwan"))
    # 7. identities: an MMSI with no valid MID; a name change; an IMO number under another flag
    s.track(280123456, (21.50, 120.00), 270.0, 10.0, day, 0.5)
    s.truth.append(Truth("identity", 280123456, anomaly="invalid-mid"))
    s.static(416000060, "HAI AN 7", day + 60, imo=9300001)
    s.track(416000060, (22.80, 119.50), 0.0, 9.0, day, 0.5)
    s.static(416000060, "OCEAN STAR", day + 1500, imo=9300001)
    s.truth.append(Truth("identity", 416000060, anomaly="name-change"))
    s.static(667000061, "OCEAN STAR", day + 5400, imo=9300001)
    s.track(667000061, (22.90, 119.40), 0.0, 9.0, day + 5400, 0.5)
    s.truth.append(Truth("identity", 667000061, anomaly="flag-change"))
    # 8. positions that run from the sea well inside Taiwan (a spoofed track); not: a vessel that is
    #    always "on land" (an inland waterway the coastline-based mask counts as land)
    s.track(416000070, (23.70, 121.75), 270.0, 12.0, day, 2)
    s.truth.append(Truth("on-land", 416000070))
    s.track(416000071, (23.20, 120.60), 0.0, 5.0, day, 1)
    return s
