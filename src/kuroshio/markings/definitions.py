"""The marking definitions Kuroshio understands: TLP 2.0 and 1.0, releasable-to, exercise and statements.

TLP 2.0 is used exactly as OASIS publishes it for STIX 2.1 (cti-stix-common-objects,
extension-definition-specifications/tlp-2.0): the extension definition
extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d and five marking definitions with fixed
ids. The four TLP 1.0 marking definitions of the STIX 2.1 specification (section 7.2.1.4) are
understood too, WHITE as CLEAR. Releasable-to and exercise markings are defined by extension
definitions of our own (below). Anything else that is not a statement is not understood, and an
object marked with it is refused: an unknown marking is never treated as public.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from ..stix.canonical import canonical
from ..stix.signatures import SIGNATURE_EXTENSION

TLP_LEVELS = ("clear", "green", "amber", "amber+strict", "red")  # from least to most restrictive

TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_CREATED = "2022-10-01T00:00:00.000Z"
TLP2 = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
TLP1 = {  # STIX 2.1 TLP 1.0 definitions, by the TLP 2.0 level they mean
    "clear": "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",  # TLP:WHITE
    "green": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    "amber": "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    "red": "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}

# Kuroshio's own definitions: the identity that defines them and the extension definitions.
KUROSHIO_IDENTITY = "identity--f2adb9a6-4c35-41d1-8f41-6a7a27be9e97"
RELEASABLE_TO_EXTENSION = "extension-definition--af1e3bd8-4800-49b3-a3c0-e5f96dd00ea9"
EXERCISE_EXTENSION = "extension-definition--915c7bce-3d7a-4fa2-b3f1-41bdadfe9f5c"
EXERCISE_MARKING = "marking-definition--933bb2e5-5b97-418f-a16d-cf1a3a038bb3"
DEFINED = "2026-11-29T00:00:00.000Z"


@dataclass(frozen=True, slots=True)
class Marking:
    """What one marking definition means for releasability."""

    id: str
    kind: str  # tlp | releasable-to | statement | exercise
    level: str = ""  # for tlp: one of TLP_LEVELS
    recipients: frozenset[str] = frozenset()  # for releasable-to: identity ids
    may_pass_on: bool = False  # for releasable-to: recipients may pass the object on
    text: str = ""  # statement text, or a human-readable name

    @property
    def restricts(self) -> bool:
        """True when the marking limits who may see the object (statements and exercise do not)."""
        return self.kind in ("tlp", "releasable-to")


class MarkingError(ValueError):
    """A marking definition Kuroshio cannot interpret."""


def _tlp_objects() -> dict[str, dict[str, Any]]:
    out = {}
    for level, mid in TLP2.items():
        out[mid] = {
            "type": "marking-definition", "spec_version": "2.1", "id": mid, "created": TLP2_CREATED,
            "name": f"TLP:{level.upper()}",
            "extensions": {TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": level}},
        }
    for level, mid in TLP1.items():
        name = "white" if level == "clear" else level
        out[mid] = {
            "type": "marking-definition", "spec_version": "2.1", "id": mid, "created": "2017-01-20T00:00:00.000Z",
            "definition_type": "tlp", "name": f"TLP:{name.upper()}", "definition": {"tlp": name},
        }
    return out


def kuroshio_objects() -> list[dict[str, Any]]:
    """The identity and extension definitions that define Kuroshio's markings, and the EXERCISE marking."""
    identity = {
        "type": "identity", "spec_version": "2.1", "id": KUROSHIO_IDENTITY, "created": DEFINED, "modified": DEFINED,
        "name": "Kuroshio", "identity_class": "system",
        "description": "Defines the releasable-to and exercise marking extensions and the object signature "
                       "extension of Kuroshio nodes.",
    }
    releasable = {
        "type": "extension-definition", "spec_version": "2.1", "id": RELEASABLE_TO_EXTENSION,
        "created_by_ref": KUROSHIO_IDENTITY, "created": DEFINED, "modified": DEFINED,
        "name": "Kuroshio releasable-to marking",
        "description": "A marking definition that names the organisations (STIX identities, with ISO 3166 country "
                       "codes for people) that may receive the objects it marks, and whether they may pass them on.",
        "schema": "https://kuroshio.invalid/extensions/releasable-to/v1 (see docs/releasability.md)",
        "version": "1.0.0", "extension_types": ["property-extension"],
    }
    exercise = {
        "type": "extension-definition", "spec_version": "2.1", "id": EXERCISE_EXTENSION,
        "created_by_ref": KUROSHIO_IDENTITY, "created": DEFINED, "modified": DEFINED,
        "name": "Kuroshio exercise marking",
        "description": "Marks objects that belong to a joint exercise: they exist only in exercise collections.",
        "schema": "https://kuroshio.invalid/extensions/exercise/v1 (see docs/releasability.md)",
        "version": "1.0.0", "extension_types": ["property-extension"],
    }
    marking = {
        "type": "marking-definition", "spec_version": "2.1", "id": EXERCISE_MARKING, "created": DEFINED,
        "created_by_ref": KUROSHIO_IDENTITY, "name": "EXERCISE",
        "extensions": {EXERCISE_EXTENSION: {"extension_type": "property-extension", "exercise": True}},
    }
    signature = {
        "type": "extension-definition", "spec_version": "2.1", "id": SIGNATURE_EXTENSION,
        "created_by_ref": KUROSHIO_IDENTITY, "created": DEFINED, "modified": DEFINED,
        "name": "Kuroshio object signature",
        "description": "An Ed25519 signature by the organisation that vouches for the object, over the RFC 8785 "
                       "canonical form of the object without the signature value: signer (identity ref), key_id, "
                       "signed (timestamp) and signature (base64url).",
        "schema": "https://kuroshio.invalid/extensions/signature/v1 (see docs/federation.md)",
        "version": "1.0.0", "extension_types": ["property-extension"],
    }
    return [identity, releasable, exercise, marking, signature]


TLP_OBJECTS = _tlp_objects()
# every object a node holds without being told, by id: their canonical JSON (identical on every node)
PREDEFINED_OBJECTS = {o["id"]: canonical(o) for o in [*TLP_OBJECTS.values(), *kuroshio_objects()]}


def predefined() -> dict[str, Marking]:
    """The markings every node knows without being told."""
    out = {}
    for level, mid in TLP2.items():
        out[mid] = Marking(mid, "tlp", level=level, text=f"TLP:{level.upper()}")
    for level, mid in TLP1.items():
        out[mid] = Marking(mid, "tlp", level=level, text=f"TLP:{('WHITE' if level == 'clear' else level.upper())}")
    out[EXERCISE_MARKING] = Marking(EXERCISE_MARKING, "exercise", text="EXERCISE")
    return out


PREDEFINED = predefined()


def interpret(md: dict[str, Any]) -> Marking:
    """The meaning of a (valid) marking-definition object, or MarkingError saying why it has none."""
    mid = md["id"]
    known = PREDEFINED.get(mid)
    if known is not None:
        if known.kind == "tlp" and mid in TLP2.values():
            ext = (md.get("extensions") or {}).get(TLP2_EXTENSION) or {}
            if ext.get("tlp_2_0") != known.level or md.get("name") != known.text:
                raise MarkingError(f"{mid} is the TLP 2.0 {known.text} marking and must say so "
                                   f"(name {known.text}, tlp_2_0 '{known.level}')")
        if known.kind == "exercise" and (md.get("extensions") or {}).get(EXERCISE_EXTENSION, {}).get("exercise") is not True:
            raise MarkingError(f"{mid} is the EXERCISE marking and must carry the exercise extension")
        return known  # TLP 1.0 definitions were checked exactly by validation
    exts = md.get("extensions") or {}
    if RELEASABLE_TO_EXTENSION in exts:
        ext = exts[RELEASABLE_TO_EXTENSION]
        recipients = ext.get("recipients")
        if not isinstance(recipients, list) or not recipients:
            raise MarkingError(f"{mid}: a releasable-to marking needs a non-empty 'recipients' list")
        ids = set()
        for i, r in enumerate(recipients):
            ref = r.get("identity_ref") if isinstance(r, dict) else None
            if not (isinstance(ref, str) and ref.startswith("identity--")):
                raise MarkingError(f"{mid}: recipients[{i}] needs an 'identity_ref' to an identity")
            country = r.get("country")
            if country is not None and not (isinstance(country, str) and len(country) == 2 and country.isupper()):
                raise MarkingError(f"{mid}: recipients[{i}].country must be an ISO 3166 alpha-2 code such as JP")
            ids.add(ref)
        may_pass_on = ext.get("may_pass_on", False)
        if not isinstance(may_pass_on, bool):
            raise MarkingError(f"{mid}: 'may_pass_on' must be true or false")
        return Marking(mid, "releasable-to", recipients=frozenset(ids), may_pass_on=may_pass_on,
                       text=md.get("name") or "releasable-to")
    if EXERCISE_EXTENSION in exts:
        if exts[EXERCISE_EXTENSION].get("exercise") is not True:
            raise MarkingError(f"{mid}: the exercise extension must say \"exercise\": true")
        return Marking(mid, "exercise", text=md.get("name") or "EXERCISE")
    if md.get("definition_type") == "statement":
        return Marking(mid, "statement", text=md["definition"]["statement"])
    if TLP2_EXTENSION in exts:
        raise MarkingError(f"{mid} uses the TLP 2.0 extension but is not one of its five marking definitions")
    kind = md.get("definition_type") or ", ".join(sorted(exts)) or "unknown"
    raise MarkingError(f"{mid} is a marking of a kind this node does not understand ({kind}): objects marked "
                       "with it are refused rather than treated as public")


_DERIVED = uuid.UUID("3f5e2a61-8c4d-4b7a-9e1f-0a2b3c4d5e6f")  # namespace of derived releasable-to markings


def derived_releasable_to(recipients: list[tuple[str, str, str | None]], *, created_by: str) -> dict[str, Any]:
    """The releasable-to marking definition a node derives for a recipient list it marks with itself
    (sightings, the maritime picture): the same id each time for the same creator and recipients, and
    another creator's never collides with it."""
    key = created_by + "|" + "|".join(sorted(r[0] for r in recipients))
    return releasable_to(f"marking-definition--{uuid.uuid5(_DERIVED, key)}", recipients, created_by=created_by,
                         created=DEFINED)


def releasable_to(mid: str, recipients: list[tuple[str, str, str | None]], *, created_by: str, created: str,
                  may_pass_on: bool = False) -> dict[str, Any]:
    """A releasable-to marking definition: recipients are (identity id, name, ISO 3166 country code)."""
    names = ", ".join(n for _, n, _ in recipients)
    return {
        "type": "marking-definition", "spec_version": "2.1", "id": mid, "created": created,
        "created_by_ref": created_by, "name": f"RELEASABLE TO {names}",
        "extensions": {RELEASABLE_TO_EXTENSION: {
            "extension_type": "property-extension", "may_pass_on": may_pass_on,
            "recipients": [{"identity_ref": i, "name": n, **({"country": c} if c else {})} for i, n, c in recipients],
        }},
    }
