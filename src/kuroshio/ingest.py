"""The one way in for objects: validate an envelope, stamp its origin, canonicalise, and store it.

Every input (TAXII POST, `kuroshio import`, derived intelligence later) goes through `ingest()`,
so validation, provenance rules and storage are the same whatever the door (DESIGN.md data flow).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .principals import Principal
from .stix import timestamps
from .stix.canonical import CanonicalError, canonical
from .stix.validate import SPECS, validate
from .store import Collection, Outcome, PreparedObject, StatusRecord, Store

# Object kinds that carry created_by_ref and are stamped with the publisher's organisation.
_STAMPED_KINDS = frozenset({"sdo", "sro", "language-content", "extension-definition"})


@dataclass(frozen=True, slots=True)
class Prepared:
    objects: list[PreparedObject]
    failures: list[Outcome]


def prepare(principal: Principal, collection: Collection, objects: Iterable[Any]) -> Prepared:
    """Validate and canonicalise objects for `collection`, applying the provenance rules for `principal`."""
    ok: list[PreparedObject] = []
    failures: list[Outcome] = []
    allow_custom = collection.allow_custom
    own = principal.org.identity_id
    known = principal.known_identities
    for obj in objects:
        problem = validate(obj, allow_custom=allow_custom)
        if problem is not None:
            failures.append(_failure(obj, str(problem)))
            continue
        t = obj["type"]
        creator = obj.get("created_by_ref")
        spec = SPECS.get(t)
        kind = spec.kind if spec is not None else ("sdo" if "created" in obj else "sco")
        if creator is None:
            if kind in _STAMPED_KINDS:
                obj = {**obj, "created_by_ref": own}
                creator = own
        elif creator != own and creator in known:
            failures.append(_failure(
                obj, f"{obj['id']}: property 'created_by_ref' names {creator}, an organisation known to this node; "
                     f"you publish as {own} and cannot publish in another organisation's name [rule: impersonation]"))
            continue
        try:
            raw = canonical(obj)
        except CanonicalError as exc:
            failures.append(_failure(obj, f"{obj['id']}: cannot be serialised canonically: {exc} [rule: json]"))
            continue
        stated = obj.get("modified") or obj.get("created")
        ok.append(PreparedObject(
            id=obj["id"],
            type=t,
            version=timestamps.key(stated) if stated else "",
            version_text=stated or "",
            spec_version=obj.get("spec_version", "2.1"),
            created_by=creator,
            raw=raw,
        ))
    return Prepared(ok, failures)


def _failure(obj: Any, message: str) -> Outcome:
    oid = obj.get("id") if isinstance(obj, dict) else None
    version = (obj.get("modified") or obj.get("created") or "") if isinstance(obj, dict) else ""
    return Outcome(oid if isinstance(oid, str) else "", version if isinstance(version, str) else "", False, message)


def ingest(store: Store, principal: Principal, collection: Collection, objects: Sequence[Any], *,
           status_id: str | None = None) -> StatusRecord:
    """Validate, stamp and store one envelope in one transaction; returns its TAXII status resource."""
    prepared = prepare(principal, collection, objects)
    return store.add_objects(principal, collection, prepared.objects, prepared.failures, status_id=status_id)
