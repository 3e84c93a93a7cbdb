"""Sightings: matches aggregated into one STIX `sighting` per indicator, sensor organisation and UTC
day — `count`, `first_seen`, `last_seen`, a few observed-data objects as evidence — and the markings
they carry.

A sighting's id is derived from (indicator, sensor organisation, day), so every node and every run
updates the same object: each publication is a new version (a later `modified`) with the new totals.
Markings (docs/correlation.md): the indicator's TLP level (or the operator's `sighting_marking`),
and, for AMBER, AMBER+STRICT and RED, a releasable-to marking naming the indicator's originator, so
the partner that published an indicator learns that it was seen, and nobody the indicator did not
reach does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..markings.definitions import PREDEFINED, TLP2, TLP_LEVELS, derived_releasable_to
from ..stix import timestamps
from .evaluate import Observed

# Namespace of the derived ids of sightings.
SIGHTING_NAMESPACE = uuid.UUID("5b0c8a53-1a7e-4f0c-9d0e-4f1f3b0f6a21")


stamp = timestamps.from_micros  # microseconds since the epoch as a STIX timestamp


def day_of(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%Y-%m-%d")


def sighting_id(indicator_id: str, sensor_identity: str, day: str) -> str:
    return f"sighting--{uuid.uuid5(SIGHTING_NAMESPACE, f'{indicator_id}|{sensor_identity}|{day}')}"


def strictest_tlp(marking_refs: Any, default: str) -> str:
    """The most restrictive TLP level among marking references, else `default`."""
    levels = [PREDEFINED[r].level for r in marking_refs or () if r in PREDEFINED and PREDEFINED[r].kind == "tlp"]
    if not levels:
        return default
    return max(levels, key=TLP_LEVELS.index)


@dataclass
class IndicatorFacts:
    """What a sighting needs to know of the indicator it reports."""

    level: str  # its TLP level (its collection's default marking when it has none)
    originator: str | None  # created_by_ref


@dataclass
class Tally:
    """One sighting as it stands: totals and evidence, and whether it changed since it was published."""

    id: str
    indicator: str
    sensor: str  # the sensor organisation's identity id
    day: str
    created: str
    first_seen: int = 0
    last_seen: int = 0
    count: int = 0
    modified: str = ""  # the version last published ("" : never)
    evidence: list[str] = field(default_factory=list)  # observed-data ids published with it
    pending: list[Observed] = field(default_factory=list)  # evidence not yet published
    changed: bool = False

    @classmethod
    def from_stored(cls, obj: dict[str, Any], indicator: str, sensor: str, day: str) -> Tally:
        first = obj.get("first_seen")
        last = obj.get("last_seen")
        return cls(
            id=obj["id"], indicator=indicator, sensor=sensor, day=day, created=obj["created"],
            first_seen=timestamps.to_micros(first) if first else 0, last_seen=timestamps.to_micros(last) if last else 0,
            count=int(obj.get("count", 0)), modified=obj.get("modified", ""),
            evidence=list(obj.get("observed_data_refs", [])),
        )

    def add(self, obs: Observed, examples: int) -> None:
        n = obs.count
        self.count += n
        self.first_seen = obs.first if not self.first_seen else min(self.first_seen, obs.first)
        self.last_seen = max(self.last_seen, obs.last)
        if len(self.evidence) + len(self.pending) < examples:
            self.pending.append(obs)
        self.changed = True


class SightingWriter:
    """Turns tallies into the STIX objects to publish (sighting, evidence, releasable-to markings)."""

    def __init__(self, own_identity: str, *, release_to_originator: bool = True, level: str = "",
                 names: dict[str, tuple[str, str | None]] | None = None) -> None:
        self.own = own_identity
        self.release_to_originator = release_to_originator
        self.level = level  # operator's override of the TLP level
        self.names = names or {}  # identity id -> (name, country) for releasable-to recipients

    def markings(self, facts: IndicatorFacts) -> tuple[list[str], list[dict[str, Any]]]:
        """Marking refs for a sighting of this indicator, and marking definitions they need."""
        level = self.level or facts.level
        refs = [TLP2[level]]
        defs: list[dict[str, Any]] = []
        origin = facts.originator
        if self.release_to_originator and origin and origin != self.own and level not in ("clear", "green"):
            name, country = self.names.get(origin, (origin, None))
            md = derived_releasable_to([(origin, name, country)], created_by=self.own)
            defs.append(md)
            refs.append(md["id"])
        return refs, defs

    def objects(self, tally: Tally, facts: IndicatorFacts, now_us: int) -> list[dict[str, Any]]:
        """The objects that publish this tally's new version: evidence first, then the sighting."""
        refs, defs = self.markings(facts)
        out: list[dict[str, Any]] = list(defs)
        modified = timestamps.version_after(tally.modified, now_us)
        for obs in tally.pending:
            scos = [dict(o, object_marking_refs=refs) for o in obs.objects.values()
                    if o.get("type") != "observed-data" and "id" in o]
            od_id = f"observed-data--{uuid.uuid4()}"
            out.extend(scos)
            out.append({
                "type": "observed-data", "spec_version": "2.1", "id": od_id, "created": modified,
                "modified": modified, "created_by_ref": self.own, "first_observed": stamp(obs.first),
                "last_observed": stamp(obs.last), "number_observed": obs.count,
                "object_refs": [o["id"] for o in scos], "object_marking_refs": refs,
            })
            tally.evidence.append(od_id)
        sighting: dict[str, Any] = {
            "type": "sighting", "spec_version": "2.1", "id": tally.id, "created": tally.created, "modified": modified,
            "created_by_ref": self.own, "sighting_of_ref": tally.indicator, "where_sighted_refs": [tally.sensor],
            "first_seen": stamp(tally.first_seen), "last_seen": stamp(tally.last_seen), "count": tally.count,
            "object_marking_refs": refs,
        }
        if tally.evidence:
            sighting["observed_data_refs"] = list(tally.evidence)
        out.append(sighting)
        return out

    def published(self, tally: Tally, objects: list[dict[str, Any]]) -> None:
        tally.modified = objects[-1]["modified"]
        tally.pending.clear()
        tally.changed = False
