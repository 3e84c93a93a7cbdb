"""Maritime intelligence in STIX 2.1: vessels and detected events as objects of two extension
definitions of our own (new SDO types `vessel` and `maritime-event`), linked by relationships
(`involves`) and sightings (a node's receivers heard the vessel), marked by the node's maritime
sharing policy. They enter the one way in like any other intelligence: validated, marked, signed,
audited, stored and shared with partners.

Ids are derived from the publishing node and what they describe (an MMSI, a detector's event), so each
update is a new version of the same object, and two nodes never claim the same id.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..markings.definitions import DEFINED, KUROSHIO_IDENTITY
from ..stix import timestamps
from .picture import Event, Params, Vessel

VESSEL_EXTENSION = "extension-definition--4a1c5d3e-6f7b-4c2d-9e8a-1b2c3d4e5f60"
EVENT_EXTENSION = "extension-definition--7e2d9c4b-3a5f-4e6d-8c1b-2a3b4c5d6e70"
_NS = uuid.UUID("c1e8f0a2-5b3d-4f7e-9a6c-8d2b4e6f1a35")

EVENT_NAMES = {
    "gap": "AIS gap", "loitering": "Loitering", "encounter": "Encounter", "zone-entry": "Zone entry",
    "zone-exit": "Zone exit", "zone-dwell": "Zone dwell", "transit": "Strait transit", "spoofing": "Kinematic spoofing",
    "on-land": "Position on land", "identity": "Identity anomaly",
}


def definitions() -> list[dict[str, Any]]:
    """The two extension definitions (published by every node, identical everywhere)."""
    base = {"type": "extension-definition", "spec_version": "2.1", "created_by_ref": KUROSHIO_IDENTITY,
            "created": DEFINED, "modified": DEFINED, "version": "1.0.0", "extension_types": ["new-sdo"]}
    return [
        {**base, "id": VESSEL_EXTENSION, "name": "Kuroshio vessel",
         "description": "A vessel as AIS shows it: MMSI, IMO number, name, call sign, flag (from the MMSI's MID), "
                        "ship type, dimensions, destination, when it was first and last heard.",
         "schema": "https://kuroshio.invalid/extensions/vessel/v1 (see docs/maritime.md)"},
        {**base, "id": EVENT_EXTENSION, "name": "Kuroshio maritime event",
         "description": "An event a detector found in AIS tracks (gap, loitering, encounter, zone entry/exit/dwell, "
                        "strait transit, kinematic spoofing, position on land, identity anomaly): its kind, status, "
                        "time, place, zone, the detector's parameters and the evidence, and the vessels involved.",
         "schema": "https://kuroshio.invalid/extensions/maritime-event/v1 (see docs/maritime.md)"},
    ]


def vessel_id(node_identity: str, mmsi: int) -> str:
    return f"vessel--{uuid.uuid5(_NS, f'{node_identity}|vessel|{mmsi}')}"


def event_id(node_identity: str, event: Event) -> str:
    return f"maritime-event--{uuid.uuid5(_NS, f'{node_identity}|event|{event.id}')}"


def stamp(seconds: float) -> str:
    return timestamps.millis(int(seconds * 1_000_000))


def vessel_object(v: Vessel, *, node_identity: str, markings: list[str], modified: str) -> dict[str, Any]:
    label = v.name or f"MMSI {v.mmsi}"
    obj: dict[str, Any] = {
        "type": "vessel", "spec_version": "2.1", "id": vessel_id(node_identity, v.mmsi), "created": stamp(v.first),
        "modified": modified, "created_by_ref": node_identity, "name": label, "mmsi": v.mmsi,
        "first_seen": stamp(v.first), "last_seen": stamp(v.t), "object_marking_refs": markings,
        "extensions": {VESSEL_EXTENSION: {"extension_type": "new-sdo"}},
    }
    if v.imo:
        obj["imo"] = v.imo
    if v.callsign:
        obj["callsign"] = v.callsign
    if v.flag:
        obj["flag"] = v.flag
    if v.ship_type:
        obj["ship_type"] = v.ship_type
    if v.dims and (v.dims[0] + v.dims[1]):
        obj["length_m"] = v.dims[0] + v.dims[1]
        obj["beam_m"] = v.dims[2] + v.dims[3]
    if v.destination:
        obj["destination"] = v.destination
    return obj


def event_object(e: Event, vessels: dict[int, Vessel], params: Params, *, node_identity: str, markings: list[str],
                 modified: str) -> dict[str, Any]:
    involved = [m for m in (e.mmsi, e.other) if m is not None]
    names = [(vessels[m].name or f"MMSI {m}") if m in vessels else f"MMSI {m}" for m in involved]
    what = EVENT_NAMES.get(e.kind, e.kind)
    if e.kind == "identity":
        what += f" ({e.detail.get('anomaly', '')})"
    obj: dict[str, Any] = {
        "type": "maritime-event", "spec_version": "2.1", "id": event_id(node_identity, e), "created": stamp(e.start),
        "modified": modified, "created_by_ref": node_identity,
        "name": f"{what}: {' and '.join(names)}" + (f" ({e.zone})" if e.zone else ""),
        "event_type": e.kind, "status": "open" if e.open else "closed", "start_time": stamp(e.start),
        "latitude": round(e.lat, 6), "longitude": round(e.lon, 6),
        "vessel_refs": [vessel_id(node_identity, m) for m in involved],
        "parameters": _parameters(e.kind, params), "evidence": _evidence(e.detail),
        "object_marking_refs": markings, "extensions": {EVENT_EXTENSION: {"extension_type": "new-sdo"}},
    }
    if e.end is not None:
        obj["end_time"] = stamp(e.end)
    if e.zone:
        obj["zone"] = e.zone
    return obj


def relationships(event_obj: dict[str, Any], *, node_identity: str, markings: list[str]) -> list[dict[str, Any]]:
    """`maritime-event involves vessel`, one per vessel (stable ids: republished versions dedupe)."""
    out = []
    for ref in event_obj["vessel_refs"]:
        out.append({
            "type": "relationship", "spec_version": "2.1",
            "id": f"relationship--{uuid.uuid5(_NS, event_obj['id'] + '|' + ref)}", "created": event_obj["created"],
            "modified": event_obj["created"], "created_by_ref": node_identity, "relationship_type": "involves",
            "source_ref": event_obj["id"], "target_ref": ref, "object_marking_refs": markings,
        })
    return out


def sighting_object(v: Vessel, heard: int, *, node_identity: str, day: str, first: float, last: float,
                    markings: list[str], modified: str, created: str) -> dict[str, Any]:
    """The node's receivers heard the vessel `heard` times on `day` (one sighting per vessel and day)."""
    return {
        "type": "sighting", "spec_version": "2.1",
        "id": f"sighting--{uuid.uuid5(_NS, f'{node_identity}|heard|{v.mmsi}|{day}')}", "created": created,
        "modified": modified, "created_by_ref": node_identity, "sighting_of_ref": vessel_id(node_identity, v.mmsi),
        "where_sighted_refs": [node_identity], "first_seen": stamp(first), "last_seen": stamp(last), "count": heard,
        "object_marking_refs": markings,
    }


_PARAMS = {
    "gap": ("gap_hours", "gap_long_hours", "reception_cell_deg"),
    "loitering": ("slow_knots", "loitering_hours", "port_km"),
    "encounter": ("encounter_metres", "slow_knots", "encounter_hours", "port_km"),
    "spoofing": ("spoofing_knots", "min_jump_seconds", "min_jump_metres", "duplicate_metres"),
    "on-land": ("land_margin_metres", "land_from_sea_hours"),
}


def _parameters(kind: str, params: Params) -> dict[str, float]:
    return {k: getattr(params, k) for k in _PARAMS.get(kind, ())}


def _evidence(detail: dict[str, Any]) -> dict[str, Any]:
    """The detector's evidence as STIX-safe values (no floats where an integer is meant, no None)."""
    out: dict[str, Any] = {}
    for k, v in detail.items():
        if v is None or k == "reported":
            continue
        out[k] = v
    return out
