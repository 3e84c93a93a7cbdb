"""The node's maritime picture service: AIS lines in, events and intelligence out.

`MaritimeService(node)` reads the node's maritime configuration (sharing policy, land mask, zones,
detector parameters), feeds lines from any number of sources through the reader, the decoder and
the picture, keeps positions in the track file, and `publish()`es what changed — vessels involved in
events, the events (a new version each time one opens, grows or closes), `involves` relationships and
the day's sightings of those vessels by the node's receivers — through the one way in, marked by
the node's maritime policy. Partners receive them by federation like any other intelligence.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..markings.definitions import TLP2, derived_releasable_to
from ..node import Node
from ..stix import timestamps
from .decode import POSITION_TYPES, DecodeError, decode
from .geo import Land, Zone, gates_of_first_island_chain, land_for, zones_from_geojson
from .intel import event_object, relationships, sighting_object, stamp, vessel_object
from .nmea import Reader
from .picture import Event, Params, Picture, Vessel
from .tracks import Tracks, open_tracks


def load_zones(folder: Path, *, gates: bool = True) -> list[Zone]:
    """The node's zones: every GeoJSON file of its zones folder, and the island-chain gates."""
    zones: list[Zone] = gates_of_first_island_chain() if gates else []
    if folder.is_dir():
        for f in sorted(folder.glob("*.geojson")):
            doc = orjson.loads(f.read_bytes())
            zones += zones_from_geojson(doc, name=None if doc.get("type") == "FeatureCollection" and
                                        len(doc.get("features", [])) > 1 else f.stem)
    return zones


@dataclass
class Stats:
    lines: int = 0
    messages: int = 0
    positions: int = 0
    events: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    published: int = 0


class MaritimeService:
    def __init__(self, node: Node, *, land: Land | None = None, zones: list[Zone] | None = None,
                 keep_tracks: bool = True) -> None:
        self.node = node
        cfg = node.config.maritime
        self.cfg = cfg
        if land is None:
            land = land_for(cfg.land, node.config.home)
        if zones is None:
            zones = load_zones(node.config.path(cfg.zones), gates=cfg.island_chain_gates)
        params = Params(**{k: float(v) for k, v in cfg.params.items()})
        self.picture = Picture(params, zones, land)
        self.readers: dict[str, Reader] = {}
        self.stats = Stats()
        self.tracks: Tracks | None = open_tracks(node) if keep_tracks else None
        self._positions: list[tuple[int, float, float, float, float | None, float | None, str]] = []
        self._changed: dict[str, Event] = {}  # event id -> latest state, to publish
        self._heard: dict[tuple[int, int], list[float]] = {}  # (mmsi, day number) -> [count, first, last]
        self._heard_since = 0  # the earliest day _heard may hold (older days are dropped when a day ends)
        self.principal = node.operator()
        self.collection = node.collection(node.config.default_api_root, cfg.collection)
        self.markings, self._marking_defs = self._policy()
        self._published_defs = False
        self._last_version = ""

    def close(self) -> None:
        if self.tracks is not None:
            self.tracks.close()

    def _policy(self) -> tuple[list[str], list[dict[str, Any]]]:
        refs = [TLP2[self.cfg.marking]]
        recipients = []
        for name in self.cfg.releasable_to:
            org = self.node.store.organisation(name)
            if org is None:
                raise ValueError(f"maritime.releasable_to names '{name}', which is not an organisation of this node: "
                                 "add it (kuroshio org add / partner add) or fix node.toml")
            recipients.append((org.identity_id, org.name, org.country))
        if not recipients:
            return refs, []
        md = derived_releasable_to(recipients, created_by=self.node.config.identity)
        return [*refs, md["id"]], [md]

    # -- input -------------------------------------------------------------------------------------

    def feed(self, lines: Iterable[str | bytes], source: str = "") -> int:
        """Take lines from one source; returns the events they produced."""
        reader = self.readers.get(source)
        if reader is None:
            reader = self.readers[source] = Reader(source=source)
        picture = self.picture
        found = 0
        stats = self.stats
        for line in lines:
            stats.lines += 1
            for p in reader.feed(line):
                try:
                    msg = decode(p.payload, p.fill)
                except DecodeError as exc:
                    stats.skipped[exc.reason] += 1
                    continue
                stats.messages += 1
                t = p.time if p.time is not None else (picture.clock or time.time())
                events = picture.message(msg, t, p.source)
                if msg["msg_type"] in POSITION_TYPES and "lat" in msg:
                    stats.positions += 1
                    self._keep(msg, t, p.source)
                for e in events + picture.tick():
                    self._changed[e.id] = e
                    stats.events[e.kind] += 1
                    found += 1
        return found

    def _keep(self, msg: dict[str, Any], t: float, source: str) -> None:
        mmsi = msg["mmsi"]
        v = self.picture.vessels.get(mmsi)
        if v is None or v.t != t:
            return  # not accepted into the track (duplicate, stale, jump)
        if self.tracks is not None:
            self._positions.append((mmsi, t, v.lat, v.lon, msg.get("speed"), msg.get("course"), source))
        day = int(t // 86400)
        heard = self._heard.get((mmsi, day))
        if heard is None:
            self._heard[(mmsi, day)] = [1, t, t]
        else:
            heard[0] += 1
            heard[2] = max(heard[2], t)

    # -- output ------------------------------------------------------------------------------------

    def publish(self) -> int:
        """Keep positions; publish changed events with their vessels, relationships and sightings."""
        self.close_readers(final=False)
        if self.tracks is not None and self._positions:
            batch, self._positions = self._positions, []
            vessels = [(v.mmsi, v.name, v.callsign, v.imo, v.ship_type, v.flag or "", v.destination, v.first, v.t)
                       for v in {self.picture.vessels[p[0]] for p in batch if p[0] in self.picture.vessels}]
            self.tracks.append(batch, vessels)
            self.tracks.prune(self.cfg.keep_days, self.picture.clock)
        if not self._changed:
            return 0
        changed, self._changed = list(self._changed.values()), {}
        me = self.node.config.identity
        now = self._last_version = timestamps.version_after(self._last_version)  # every publication is later
        objects: list[dict[str, Any]] = []
        if not self._published_defs:
            objects += self._marking_defs
        involved: dict[int, Vessel] = {}
        for e in changed:
            for m in (e.mmsi, e.other):
                if m is not None and m in self.picture.vessels:
                    involved[m] = self.picture.vessels[m]
        for v in involved.values():
            objects.append(vessel_object(v, node_identity=me, markings=self.markings, modified=now))
        for e in changed:
            eo = event_object(e, self.picture.vessels, self.picture.params, node_identity=me, markings=self.markings,
                              modified=now)
            objects.append(eo)
            objects += relationships(eo, node_identity=me, markings=self.markings)
        for (mmsi, day), (count, first, last) in self._heard.items():
            if mmsi in involved:
                objects.append(sighting_object(involved[mmsi], int(count), node_identity=me,
                                               day=time.strftime("%Y-%m-%d", time.gmtime(day * 86400)), first=first,
                                               last=last, markings=self.markings, modified=now,
                                               created=stamp(first)))
        today = int(self.picture.clock // 86400)
        if today - 1 > self._heard_since:  # once a day: days that are over no longer change
            self._heard_since = today - 1
            for key in [k for k in self._heard if k[1] < self._heard_since]:
                del self._heard[key]
        record = self.node.ingest(self.principal, self.collection, objects)
        if record.failure_count:
            failures = orjson.loads(record.details).get("failures", [])
            raise RuntimeError("the node refused maritime intelligence: " +
                               "; ".join(f.get("message", "") for f in failures[:3]))
        self._published_defs = True
        self.stats.published += record.success_count
        return record.success_count

    def close_readers(self, *, final: bool = True) -> None:
        for reader in self.readers.values():
            if final:
                reader.close()
            self.stats.skipped.update(reader.skipped)
            reader.skipped.clear()
