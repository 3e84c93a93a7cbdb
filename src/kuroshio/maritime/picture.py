"""The maritime picture: one track per vessel and the detectors that watch them.

`Picture.message(msg, time, source)` takes a decoded AIS message (decode.py) and returns the events it
opens, updates or closes; `Picture.tick(time)` reports gaps that are still open. Parameters (`Params`)
default to published practice — Global Fishing Watch's definitions of AIS gaps, loitering and
encounters — and every event carries the parameters and the evidence it was found with.

Events: `gap` (no position for 6 h, class `12h` from 12 h; reported while open, closed when the vessel
reappears; only where the area was still being received), `loitering` (average speed under 2 kn for
2 h, away from port), `encounter` (two vessels within 500 m, both under 2 kn, for 2 h, away from port),
`zone-entry` / `zone-exit` / `zone-dwell`, `transit` (a gate line crossed, with its direction),
`spoofing` (an implied speed above 50 kn between fixes, after dropping duplicated and stale
retransmissions and timestamp errors), `on-land` (a position well inside land), `identity` (one MMSI in
two places at once, an MMSI without a valid MID, a name change, an IMO number under another flag).
"""

from __future__ import annotations

import math
import time as _time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .decode import POSITION_TYPES
from .geo import KNOT, Land, Zone, distance_m, flag, is_ship_station, valid_position

EVENT_NAMESPACE = uuid.UUID("0d9f4d2e-3c59-4c55-8a61-6b7a3f0e2c11")
HOUR = 3600.0


@dataclass
class Params:
    """Detector parameters; the defaults follow Global Fishing Watch's published definitions."""

    gap_hours: float = 6.0  # an AIS gap: no position for this long
    gap_long_hours: float = 12.0  # the longer gap class
    reception_cell_deg: float = 1.0  # "within reception": the area (cell) was still heard during the gap
    slow_knots: float = 2.0  # loitering and encounters: average speed below this
    loitering_hours: float = 2.0
    encounter_metres: float = 500.0
    encounter_hours: float = 2.0
    port_km: float = 10.0  # "away from port": no land within this distance (needs a land mask)
    spoofing_knots: float = 50.0  # an implied speed above this between consecutive fixes
    min_jump_seconds: float = 30.0  # closer fixes: receive-time errors (satellite relays), not movement
    min_jump_metres: float = 2000.0  # smaller jumps are position noise
    duplicate_metres: float = 10.0  # a retransmission: the same position again within a minute
    land_margin_metres: float = 2000.0  # "on land": land this far around too (coastline resolution)
    land_from_sea_hours: float = 6.0  # ... for a vessel that was at sea this recently (not an inland vessel)
    stale_seconds: float = 0.0  # a fix older than the last one by more than this is stale

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Event:
    kind: str
    mmsi: int
    start: float  # seconds since the epoch
    lat: float
    lon: float
    end: float | None = None  # None while open
    other: int | None = None  # the other vessel (encounter, identity)
    zone: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    version: int = 1  # how often it was reported (open, then closed …)

    def __post_init__(self) -> None:
        if not self.id:
            key = f"{self.kind}|{self.mmsi}|{self.other}|{self.zone}|{self.start:.3f}"
            self.id = str(uuid.uuid5(EVENT_NAMESPACE, key))

    @property
    def open(self) -> bool:
        return self.end is None


class Vessel:
    """What is known of one MMSI: last position, static and voyage data, detector state."""

    __slots__ = (
        "callsign",
        "destination",
        "dims",
        "dup_day",
        "enc_t",
        "encounters",
        "first",
        "fixes",
        "flag",
        "gap",
        "ghost",
        "ghost_left",
        "imo",
        "land_day",
        "lat",
        "loiter",
        "lon",
        "mmsi",
        "name",
        "port",
        "sea_t",
        "ship_type",
        "slow_cell",
        "slow_since",
        "sog",
        "source",
        "t",
        "zones",
    )

    def __init__(self, mmsi: int) -> None:
        self.mmsi = mmsi
        self.flag = flag(mmsi)
        self.name = self.callsign = self.destination = ""
        self.imo = self.ship_type = 0
        self.dims: tuple[int, int, int, int] | None = None
        self.t = self.first = 0.0
        self.lat = self.lon = 0.0
        self.sog = 0.0
        self.fixes = 0
        self.source = ""
        self.zones: set[str] = set()
        self.gap: Event | None = None
        self.loiter: Event | None = None
        self.slow_since: float | None = None
        self.ghost: tuple[float, float, float] | None = None  # a far position rejected as a jump
        self.ghost_left = False  # a normal fix came after the ghost
        self.land_day = -1
        self.sea_t = 0.0  # the last time a position was at sea
        self.dup_day = -1
        self.encounters: dict[int, Event] = {}
        self.enc_t = 0.0  # when neighbours were last searched for encounters
        self.port: tuple[float, float, bool] | None = None  # (lat, lon, away from port) last checked
        self.slow_cell: tuple[int, int] | None = None  # the ~1 km cell it is filed under while slow


class Picture:
    """Tracks and detectors over a stream of decoded AIS messages in (roughly) time order."""

    def __init__(self, params: Params | None = None, zones: Iterable[Zone] = (), land: Land | None = None) -> None:
        self.params = params or Params()
        self.areas = [z for z in zones if z.kind == "area"]
        self.gates = [z for z in zones if z.kind == "gate"]
        self.land = land
        self.vessels: dict[int, Vessel] = {}
        self.clock = 0.0  # the latest time seen
        self.heard: dict[tuple[int, int], float] = {}  # reception cell -> last time a position was heard there
        self.slow_cells: dict[tuple[int, int], set[int]] = {}  # ~1 km cells -> slow vessels in them
        self.imo_flags: dict[int, tuple[int, str | None]] = {}  # IMO -> (MMSI, flag) last seen with it
        self.entered: dict[tuple[int, str], float] = {}  # (MMSI, zone) -> when it entered
        self.counts: dict[str, int] = {}
        self._last_tick = 0.0

    # -- input ---------------------------------------------------------------------------------------

    def message(self, msg: dict[str, Any], time: float | None, source: str = "") -> list[Event]:
        """Take one decoded message received at `time` (None: the latest time seen)."""
        t = time if time is not None else (self.clock or _time.time())  # untimed feeds: as received
        if t > self.clock:
            self.clock = t
        kind = msg["msg_type"]
        mmsi = msg["mmsi"]
        if kind in POSITION_TYPES:
            return self._position(mmsi, msg, t, source)
        if kind in (5, 19, 24):
            return self._static(mmsi, msg, t)
        return []

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def _static(self, mmsi: int, msg: dict[str, Any], t: float) -> list[Event]:
        v = self.vessels.get(mmsi)
        if v is None:
            v = self.vessels[mmsi] = Vessel(mmsi)
        events: list[Event] = []
        name = msg.get("shipname")
        if name and name != v.name:
            if v.name:
                events.append(Event("identity", mmsi, t, v.lat, v.lon, end=t, detail={
                    "anomaly": "name-change", "from": v.name, "to": name}))
            v.name = name
        for key, attr in (("callsign", "callsign"), ("destination", "destination")):
            if msg.get(key):
                setattr(v, attr, msg[key])
        if msg.get("ship_type"):
            v.ship_type = msg["ship_type"]
        if "to_bow" in msg:
            v.dims = (msg["to_bow"], msg["to_stern"], msg["to_port"], msg["to_starboard"])
        imo = msg.get("imo")
        if imo and 1_000_000 <= imo <= 9_999_999:
            v.imo = imo
            seen = self.imo_flags.get(imo)
            if seen is not None and seen[0] != mmsi and seen[1] != v.flag:
                events.append(Event("identity", mmsi, t, v.lat, v.lon, end=t, other=seen[0], detail={
                    "anomaly": "flag-change", "imo": imo, "from": seen[1], "to": v.flag}))
            self.imo_flags[imo] = (mmsi, v.flag)
        return events

    def _position(self, mmsi: int, msg: dict[str, Any], t: float, source: str) -> list[Event]:
        lat, lon = msg.get("lat"), msg.get("lon")
        if not valid_position(lat, lon):
            self._count("no-position")
            return []
        sog = msg.get("speed", 102.3)
        p = self.params
        v = self.vessels.get(mmsi)
        events: list[Event] = []
        if v is None:
            v = self.vessels[mmsi] = Vessel(mmsi)
        if v.fixes == 0:
            if v.flag is None and is_ship_station(mmsi):
                events.append(Event("identity", mmsi, t, lat, lon, end=t, detail={
                    "anomaly": "invalid-mid", "mid": mmsi // 1_000_000}))
            v.first = t
            self._accept(v, lat, lon, sog, t, source)
            events += self._place(v, None, None, t)
            return events
        dt = t - v.t
        if dt < -p.stale_seconds:
            self._count("stale")
            return []
        d = distance_m(v.lat, v.lon, lat, lon)
        if dt < 60 and d <= p.duplicate_metres:
            self._count("duplicate")
            return []
        if d >= p.min_jump_metres:
            if dt < p.min_jump_seconds:
                self._count("timestamp-error")
                return []
            implied = d / dt / KNOT
            if implied > p.spoofing_knots:
                return self._jump(v, lat, lon, t, d, dt, implied)
        events += self._reception_gap(v, lat, lon, t)
        prev_lat, prev_lon = v.lat, v.lon
        self._accept(v, lat, lon, sog, t, source)
        if v.ghost is not None:
            v.ghost_left = True
        events += self._place(v, prev_lat, prev_lon, t)
        return events

    def _accept(self, v: Vessel, lat: float, lon: float, sog: float, t: float, source: str) -> None:
        v.lat, v.lon, v.sog, v.t, v.source = lat, lon, sog, max(t, v.t), source or v.source
        v.fixes += 1
        cell = (math.floor(lat / self.params.reception_cell_deg), math.floor(lon / self.params.reception_cell_deg))
        if self.heard.get(cell, 0.0) < t:
            self.heard[cell] = t

    def _jump(self, v: Vessel, lat: float, lon: float, t: float, d: float, dt: float, implied: float) -> list[Event]:
        """A fix too far from the track to be reached: spoofing, or a second transmitter."""
        p = self.params
        ghost = v.ghost
        if ghost is not None and distance_m(ghost[0], ghost[1], lat, lon) <= max(5000.0, (t - ghost[2]) * 30 * KNOT):
            if v.ghost_left:  # back and forth between two places: two transmitters, one MMSI
                v.ghost = (lat, lon, t)
                v.ghost_left = False
                day = int(t // 86400)
                if v.dup_day == day:
                    return []
                v.dup_day = day
                return [Event("identity", v.mmsi, t, lat, lon, end=t, detail={
                    "anomaly": "two-places-at-once", "track": [v.lat, v.lon], "other_position": [lat, lon],
                    "distance_m": round(d)})]
            # the vessel really is over there now (it stayed): the track follows it
            v.ghost = None
            prev_lat, prev_lon = v.lat, v.lon
            self._accept(v, lat, lon, v.sog, t, v.source)
            return self._place(v, prev_lat, prev_lon, t)
        v.ghost = (lat, lon, t)
        v.ghost_left = False
        return [Event("spoofing", v.mmsi, t, lat, lon, end=t, detail={
            "from": [v.lat, v.lon], "to": [lat, lon], "distance_m": round(d), "seconds": round(dt, 1),
            "implied_knots": round(implied, 1), "threshold_knots": p.spoofing_knots})]

    def _reception_gap(self, v: Vessel, lat: float, lon: float, t: float) -> list[Event]:
        p = self.params
        silent = t - v.t
        if silent < p.gap_hours * HOUR:
            return []
        if v.gap is not None:  # reported open: now closed
            gap, v.gap = v.gap, None
            gap.end = t
            gap.version += 1
            gap.detail.update(hours=round(silent / HOUR, 2), reappeared=[lat, lon],
                              **{"class": "12h" if silent >= p.gap_long_hours * HOUR else "6h"})
            return [gap]
        if not self._received(v, v.t):
            self._count("gap-out-of-reception")
            return []
        return [Event("gap", v.mmsi, v.t, v.lat, v.lon, end=t, detail={
            "hours": round(silent / HOUR, 2), "class": "12h" if silent >= p.gap_long_hours * HOUR else "6h",
            "reappeared": [lat, lon], "threshold_hours": p.gap_hours})]

    def _received(self, v: Vessel, since: float) -> bool:
        """Whether the area of the vessel's last position was heard well after it fell silent."""
        size = self.params.reception_cell_deg
        cell = (math.floor(v.lat / size), math.floor(v.lon / size))
        return self.heard.get(cell, 0.0) >= since + self.params.gap_hours * HOUR / 2

    def _away_from_port(self, lat: float, lon: float) -> bool:
        return self.land is None or not self.land.near_land(lat, lon, self.params.port_km * 1000)

    def _place(self, v: Vessel, prev_lat: float | None, prev_lon: float | None, t: float) -> list[Event]:
        """Detectors that look at where the vessel is now: zones, gates, land, slowness."""
        events: list[Event] = []
        lat, lon = v.lat, v.lon
        for z in self.areas:
            inside = z.contains(lat, lon)
            if inside and z.name not in v.zones:
                v.zones.add(z.name)
                events.append(Event("zone-entry", v.mmsi, t, lat, lon, end=t, zone=z.name))
                self.entered[(v.mmsi, z.name)] = t
            elif not inside and z.name in v.zones:
                v.zones.discard(z.name)
                entered = self.entered.pop((v.mmsi, z.name), t)
                events.append(Event("zone-exit", v.mmsi, t, lat, lon, end=t, zone=z.name))
                events.append(Event("zone-dwell", v.mmsi, entered, lat, lon, end=t, zone=z.name,
                                    detail={"hours": round((t - entered) / HOUR, 2)}))
        if prev_lat is not None and prev_lon is not None:
            for g in self.gates:
                side = g.crossing(prev_lat, prev_lon, lat, lon)
                if side:
                    events.append(Event("transit", v.mmsi, t, lat, lon, end=t, zone=g.name, detail={
                        "direction": _compass(prev_lat, prev_lon, lat, lon), "side": side,
                        "from": [prev_lat, prev_lon], "to": [lat, lon]}))
        if self.land is not None:
            # a vessel that was at sea and is now well inside land; one that is always "on land" sails
            # inland waterways (rivers are land in coastline-based masks)
            if not self.land.on_land(lat, lon):
                v.sea_t = t
            else:
                day = int(t // 86400)
                if v.land_day != day and v.sea_t and t - v.sea_t <= self.params.land_from_sea_hours * HOUR \
                        and self.land.well_inside(lat, lon, self.params.land_margin_metres):
                    v.land_day = day
                    events.append(Event("on-land", v.mmsi, t, lat, lon, end=t, detail={
                        "margin_m": self.params.land_margin_metres, "at_sea_hours_before": round((t - v.sea_t) / HOUR, 2)}))
        events += self._slow(v, t)
        return events

    def _slow(self, v: Vessel, t: float) -> list[Event]:
        p = self.params
        events: list[Event] = []
        slow = v.sog < p.slow_knots and self._vessel_away_from_port(v)
        cell = (math.floor(v.lat * 100), math.floor(v.lon * 100))  # ~1 km
        if not slow:
            if v.slow_since is not None:
                self._unslow(v)
                if v.loiter is not None:
                    v.loiter.end = t
                    v.loiter.version += 1
                    events.append(v.loiter)
                    v.loiter = None
                for other, enc in list(v.encounters.items()):
                    events += self._end_encounter(v, other, enc, t)
            return events
        if v.slow_since is None:
            v.slow_since = t
        if v.slow_cell != cell:
            self._file_slow(v, cell)
        duration = t - v.slow_since
        if duration >= p.loitering_hours * HOUR and v.loiter is None:
            v.loiter = Event("loitering", v.mmsi, v.slow_since, v.lat, v.lon, detail={
                "hours": round(duration / HOUR, 2), "threshold_knots": p.slow_knots, "threshold_hours": p.loitering_hours})
            events.append(v.loiter)
        elif v.loiter is not None:
            v.loiter.detail["hours"] = round(duration / HOUR, 2)
        if v.encounters or t - v.enc_t >= 300.0:  # new encounters need 2 h: looking every 5 min is enough
            v.enc_t = t
            events += self._encounters(v, cell, t)
        return events

    def _vessel_away_from_port(self, v: Vessel) -> bool:
        """Away from port, re-checked only when the vessel has moved a kilometre since the last check."""
        if self.land is None:
            return True
        if v.port is None or abs(v.lat - v.port[0]) > 0.01 or abs(v.lon - v.port[1]) > 0.01:
            v.port = (v.lat, v.lon, self._away_from_port(v.lat, v.lon))
        return v.port[2]

    def _unslow(self, v: Vessel) -> None:
        v.slow_since = None
        self._file_slow(v, None)

    def _file_slow(self, v: Vessel, cell: tuple[int, int] | None) -> None:
        """File a slow vessel under its ~1 km cell (None: under none), taking it out of the one before."""
        if v.slow_cell is not None:
            members = self.slow_cells.get(v.slow_cell)
            if members is not None:
                members.discard(v.mmsi)
                if not members:
                    del self.slow_cells[v.slow_cell]
        if cell is not None:
            self.slow_cells.setdefault(cell, set()).add(v.mmsi)
        v.slow_cell = cell

    def _encounters(self, v: Vessel, cell: tuple[int, int], t: float) -> list[Event]:
        p = self.params
        events: list[Event] = []
        near: set[int] = set()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                members = self.slow_cells.get((cell[0] + dy, cell[1] + dx))
                if members:
                    near |= members
        near.discard(v.mmsi)
        for other_mmsi in near:
            o = self.vessels.get(other_mmsi)
            if o is None or o.slow_since is None or t - o.t > HOUR:
                continue
            if distance_m(v.lat, v.lon, o.lat, o.lon) > p.encounter_metres:
                continue
            enc = v.encounters.get(other_mmsi)
            if enc is None:
                a, b = sorted((v.mmsi, other_mmsi))
                enc = Event("encounter", a, max(v.slow_since or t, o.slow_since or t), v.lat, v.lon, other=b,
                            detail={"threshold_metres": p.encounter_metres, "threshold_knots": p.slow_knots,
                                    "threshold_hours": p.encounter_hours, "reported": False})
                v.encounters[other_mmsi] = enc
                o.encounters[v.mmsi] = enc
            hours = (t - enc.start) / HOUR
            enc.detail["hours"] = round(hours, 2)
            if hours >= p.encounter_hours and not enc.detail["reported"]:
                enc.detail["reported"] = True
                events.append(enc)
        for other_mmsi, enc in list(v.encounters.items()):
            o = self.vessels.get(other_mmsi)
            if o is not None and (o.slow_since is None or distance_m(v.lat, v.lon, o.lat, o.lon) > p.encounter_metres):
                events += self._end_encounter(v, other_mmsi, enc, t)
        return events

    def _end_encounter(self, v: Vessel, other: int, enc: Event, t: float) -> list[Event]:
        v.encounters.pop(other, None)
        o = self.vessels.get(other)
        if o is not None:
            o.encounters.pop(v.mmsi, None)
        if enc.detail.get("reported"):
            enc.end = t
            enc.version += 1
            return [enc]
        return []

    # -- time passing ------------------------------------------------------------------------------

    def tick(self, now: float | None = None, every: float = 600.0) -> list[Event]:
        """Gaps still open at `now` (default: the latest time seen), checked at most every `every` s."""
        now = self.clock if now is None else now
        if now - self._last_tick < every:
            return []
        self._last_tick = now
        threshold = self.params.gap_hours * HOUR
        events = []
        for v in self.vessels.values():
            if v.gap is None and v.fixes and now - v.t >= threshold and self._received(v, v.t):
                v.gap = Event("gap", v.mmsi, v.t, v.lat, v.lon, detail={
                    "hours": round((now - v.t) / HOUR, 2), "class": "12h" if now - v.t >= self.params.gap_long_hours
                    * HOUR else "6h", "threshold_hours": self.params.gap_hours})
                events.append(v.gap)
        return events


def _compass(lat1: float, lon1: float, lat2: float, lon2: float) -> str:
    """The direction of a move, as one of eight compass points."""
    y = math.sin(math.radians(lon2 - lon1)) * math.cos(math.radians(lat2))
    x = math.cos(math.radians(lat1)) * math.sin(math.radians(lat2)) - \
        math.sin(math.radians(lat1)) * math.cos(math.radians(lat2)) * math.cos(math.radians(lon2 - lon1))
    bearing = (math.degrees(math.atan2(y, x)) + 360) % 360
    return ("northbound", "northeastbound", "eastbound", "southeastbound", "southbound", "southwestbound",
            "westbound", "northwestbound")[int((bearing + 22.5) // 45) % 8]
