"""STIX identifiers: `type--UUID` format, the type an id names, and deterministic SCO ids."""

from __future__ import annotations

import hashlib
import re
import uuid

import orjson

# RFC 4122 UUID of version 1-5 (the variant the STIX 2.1 specification and the OASIS schemas require).
_ID = re.compile(
    r"([a-z][a-z0-9-]+[a-z0-9])--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-5][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}\Z"
)
TYPE_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*-?\Z")

# Namespace for deterministic SCO ids (STIX 2.1 part 1, section 2.9).
SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")


def id_type(value: object) -> str | None:
    """Return the object type an identifier names, or None if it is not a STIX identifier."""
    if type(value) is not str:
        return None
    m = _ID.match(value)
    return m.group(1) if m else None


def uuid_version(value: str) -> int:
    return int(value[-22], 16)  # the version nibble of the UUID part


def new_id(object_type: str) -> str:
    return f"{object_type}--{uuid.uuid4()}"


def sco_id(object_type: str, contributing: dict[str, object], *, plain: bool = False) -> str:
    """The deterministic id of a cyber-observable: UUIDv5 over the RFC 8785 form of its ID contributing
    properties (STIX 2.1 part 1, section 2.9), so the same observable seen twice has one id.
    (uuid.uuid5 computed directly: sensors' logs make one per observable.) `plain`: the caller built
    `contributing` with ASCII keys and values that are strings, integers below 2**53, and lists and
    objects of those only, whose sorted JSON is already the RFC 8785 form (canonical() checks that)."""
    from .canonical import canonical

    form = orjson.dumps(contributing, option=orjson.OPT_SORT_KEYS) if plain else canonical(contributing)
    digest = bytearray(hashlib.sha1(_SCO_NAMESPACE_BYTES + form).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{object_type}--{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_SCO_NAMESPACE_BYTES = SCO_NAMESPACE.bytes
