"""TAXII 2.1 URL filters (section 3.5): added_after, limit, next and match[...] parsed into an ObjectFilter."""

from __future__ import annotations

import base64
import binascii

from starlette.datastructures import QueryParams

from ..stix import timestamps
from ..stix.identifiers import TYPE_NAME, id_type
from ..store import ObjectFilter
from .errors import bad_request

# Which parameters each endpoint understands.
OBJECTS = frozenset({"added_after", "limit", "next", "match[id]", "match[type]", "match[version]", "match[spec_version]"})
OBJECT = frozenset({"added_after", "limit", "next", "match[version]", "match[spec_version]"})
DELETE = frozenset({"match[version]", "match[spec_version]"})
VERSIONS = frozenset({"added_after", "limit", "next", "match[spec_version]"})
MANIFEST = OBJECTS
_SPEC_VERSIONS = frozenset({"2.0", "2.1"})


def encode_next(cursor: int) -> str:
    return base64.urlsafe_b64encode(f"k1:{cursor}".encode()).decode().rstrip("=")


def _decode_next(value: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        tag, _, number = raw.partition(":")
        if tag != "k1":
            raise ValueError
        cursor = int(number)
        if cursor < 0:
            raise ValueError
        return cursor
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad_request("The 'next' value is not one this server issued: start again without 'next'.") from None


def _values(params: QueryParams, name: str) -> list[str]:
    out = []
    for raw in params.getlist(name):
        out.extend(v.strip() for v in raw.split(",") if v.strip())
    if not out:
        raise bad_request(f"'{name}' needs at least one value.")
    return out


def parse(params: QueryParams, allowed: frozenset[str], *, default_limit: int, max_limit: int) -> ObjectFilter:
    for key in params:
        if key not in allowed:
            raise bad_request(
                f"'{key}' is not a filter this endpoint supports; supported: {', '.join(sorted(allowed))}.")
    flt = ObjectFilter(limit=default_limit)
    if "added_after" in params:
        value = params["added_after"]
        if timestamps.check(value) is not None:
            raise bad_request(f"added_after '{value[:64]}' is not a timestamp of the form YYYY-MM-DDTHH:mm:ss[.s+]Z.")
        # date_added values are whole microseconds, so truncating finer digits keeps "strictly after" exact
        flt.added_after = timestamps.to_micros(value)
    if "limit" in params:
        value = params["limit"]
        if not value.isdigit() or int(value) < 1:
            raise bad_request(f"limit '{value[:32]}' must be a positive integer.")
        flt.limit = min(int(value), max_limit)
    if "next" in params:
        flt.cursor = _decode_next(params["next"])
    if "match[id]" in params:
        ids = _values(params, "match[id]")
        for v in ids:
            if id_type(v) is None:
                raise bad_request(f"match[id] value '{v[:100]}' is not a STIX identifier.")
        flt.ids = ids
    if "match[type]" in params:
        types = _values(params, "match[type]")
        for v in types:
            if not TYPE_NAME.match(v):
                raise bad_request(f"match[type] value '{v[:100]}' is not a STIX object type.")
        flt.types = types
    if "match[version]" in params:
        versions = []
        for v in _values(params, "match[version]"):
            if v in ("first", "last", "all"):
                versions.append(v)
            elif timestamps.check(v) is None:
                versions.append(timestamps.key(v))
            else:
                raise bad_request(f"match[version] value '{v[:64]}' must be first, last, all or a timestamp.")
        flt.versions = versions
    if "match[spec_version]" in params:
        specs = _values(params, "match[spec_version]")
        for v in specs:
            if v not in _SPEC_VERSIONS:
                raise bad_request(f"match[spec_version] value '{v[:32]}' must be 2.0 or 2.1.")
        flt.spec_versions = specs
    return flt
