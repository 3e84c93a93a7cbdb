"""STIX 2.1 domain, relationship and meta objects (parts 4, 5 and 7): properties and object rules."""

from __future__ import annotations

import re
from typing import Any

from .identifiers import id_type
from .properties import (
    STRING_LIST,
    Checker,
    Context,
    Invalid,
    Struct,
    boolean,
    enum,
    hashes,
    identifier,
    integer,
    later_than,
    list_of,
    number,
    ref,
    regex,
    string,
    timestamp,
    timestamp_millis,
    uri,
)

SDO_TYPES = (
    "attack-pattern", "campaign", "course-of-action", "grouping", "identity", "incident", "indicator",
    "infrastructure", "intrusion-set", "location", "malware", "malware-analysis", "note", "observed-data",
    "opinion", "report", "threat-actor", "tool", "vulnerability",
)
SRO_TYPES = ("relationship", "sighting")
META_TYPES = ("marking-definition", "language-content", "extension-definition")
SDO_TYPE_SET = frozenset(SDO_TYPES)
NOT_RELATABLE = ("relationship", "sighting", "bundle", "marking-definition", "language-content")

# --- shared structures ---------------------------------------------------------------------------

KILL_CHAIN_PHASE = Struct("a kill chain phase", {"kill_chain_name": string, "phase_name": string},
                          required=("kill_chain_name", "phase_name"))
KILL_CHAIN_PHASES = list_of(KILL_CHAIN_PHASE)

_CVE_ID = re.compile(r"CVE-\d{4}-(0\d{3}|[1-9]\d{3,})\Z")
_CAPEC_ID = re.compile(r"CAPEC-\d+\Z")
_CVE_OR_CAPEC = re.compile(r"((CVE-\d{4}-(0\d{3}|[1-9]\d{3,}))|(CAPEC-\d+))\Z")
_EXTREF_HASH_NAME = re.compile(r"^MD5|SHA-1|SHA-256|SHA-512|SHA3-256|SHA3-512|SSDEEP|TLSH$")


def _external_reference_rules(ref_obj: dict[str, Any], path: str, ctx: Context) -> None:
    source = ref_obj.get("source_name")
    ext_id = ref_obj.get("external_id")
    if source == "cve":
        if type(ext_id) is not str or not _CVE_ID.match(ext_id):
            raise Invalid(f"{path}.external_id", "cve-format",
                          "an external reference with source_name 'cve' needs external_id CVE-YYYY-NNNN")
    elif source == "capec":
        if type(ext_id) is not str or not _CAPEC_ID.match(ext_id):
            raise Invalid(f"{path}.external_id", "capec-format",
                          "an external reference with source_name 'capec' needs external_id CAPEC-N")
    else:
        if type(ext_id) is str and _CVE_OR_CAPEC.match(ext_id):
            raise Invalid(f"{path}.source_name", "cve-format",
                          f"external_id {ext_id} is a CVE/CAPEC id, so source_name must be 'cve' or 'capec'")
        if "external_id" not in ref_obj and "description" not in ref_obj and "url" not in ref_obj:
            raise Invalid(path, "required", "an external reference needs at least one of external_id, description, url")
    h = ref_obj.get("hashes")
    if type(h) is dict:
        for k in h:
            if not _EXTREF_HASH_NAME.search(k):
                raise Invalid(f"{path}.hashes.{k}", "hash-algorithm",
                              "external reference hashes must use MD5, SHA-1, SHA-256, SHA-512, SHA3-256, SHA3-512, SSDEEP or TLSH")


EXTERNAL_REFERENCE = Struct(
    "an external reference",
    {"source_name": string, "description": string, "url": uri, "hashes": hashes, "external_id": string},
    required=("source_name",),
    checks=(_external_reference_rules,),
)
EXTERNAL_REFERENCES = list_of(EXTERNAL_REFERENCE)

MARKING_REF = ref(("marking-definition",))
MARKING_REFS = list_of(MARKING_REF)
_SELECTOR = regex(r"([a-z0-9_-]{3,249}(\.(\[\d+\]|[a-z0-9_-]{1,250}))*|id)\Z", "a granular marking selector")


def _one_marking(gm: dict[str, Any], path: str, ctx: Context) -> None:
    if ("marking_ref" in gm) == ("lang" in gm):
        raise Invalid(path, "one-of", "a granular marking carries exactly one of marking_ref and lang")


GRANULAR_MARKING = Struct(
    "a granular marking",
    {"selectors": list_of(_SELECTOR), "marking_ref": MARKING_REF, "lang": string},
    required=("selectors",),
    checks=(_one_marking,),
)
GRANULAR_MARKINGS = list_of(GRANULAR_MARKING)

IDENTITY_REF = ref(("identity",))
CONFIDENCE = integer(0, 100)
OBJECT_REFS = list_of(identifier)

# --- per-type properties -------------------------------------------------------------------------

_NAME = {"name": string, "description": string}


def _malware(obj: dict[str, Any], path: str, ctx: Context) -> None:
    if obj.get("is_family") is True and "name" not in obj:
        raise Invalid("name", "required", "is required when is_family is true")


def _malware_analysis(obj: dict[str, Any], path: str, ctx: Context) -> None:
    if "result" not in obj and "analysis_sco_refs" not in obj:
        raise Invalid("result", "required", "malware-analysis needs result or analysis_sco_refs (or both)")


def _location(obj: dict[str, Any], path: str, ctx: Context) -> None:
    lat, lon = "latitude" in obj, "longitude" in obj
    if lat != lon:
        raise Invalid("longitude" if lat else "latitude", "dependency", "latitude and longitude go together")
    if "precision" in obj and not lat:
        raise Invalid("precision", "dependency", "may only be present with latitude and longitude")
    if not lat and "region" not in obj and "country" not in obj:
        raise Invalid("region", "required", "a location needs region, country, or latitude and longitude")


def _observed_data(obj: dict[str, Any], path: str, ctx: Context) -> None:
    if ("objects" in obj) == ("object_refs" in obj):
        raise Invalid("object_refs", "one-of", "observed-data carries exactly one of object_refs and (deprecated) objects")


_OBSERVED_REF = ref(None, excluded=SDO_TYPES, what="a cyber-observable or relationship object")


def _observed_refs(value: Any, path: str, ctx: Context) -> None:
    list_of(_OBSERVED_REF)(value, path, ctx)


_SIGHTING_OF = ref(None, excluded=("sighting", "relationship", "bundle", "marking-definition", "language-content"))
_RELATABLE = ref(None, excluded=NOT_RELATABLE)

# type -> (properties, required properties, object rules)
DOMAIN_SPECS: dict[str, tuple[dict[str, Checker], tuple[str, ...], tuple[Any, ...]]] = {
    "attack-pattern": ({**_NAME, "aliases": STRING_LIST, "kill_chain_phases": KILL_CHAIN_PHASES}, ("name",), ()),
    "campaign": (
        {**_NAME, "aliases": STRING_LIST, "first_seen": timestamp, "last_seen": timestamp, "objective": string},
        ("name",), (later_than("first_seen", "last_seen", strict=False),),
    ),
    "course-of-action": (dict(_NAME), ("name",), ()),
    "grouping": ({**_NAME, "context": string, "object_refs": OBJECT_REFS}, ("context", "object_refs"), ()),
    "identity": (
        {**_NAME, "roles": STRING_LIST, "identity_class": string, "sectors": STRING_LIST,
         "contact_information": string},
        ("name",), (),
    ),
    "incident": ({**_NAME, "kill_chain_phases": KILL_CHAIN_PHASES}, ("name",), ()),
    "indicator": (
        {**_NAME, "indicator_types": STRING_LIST, "pattern": string, "pattern_type": string,
         "pattern_version": string, "valid_from": timestamp, "valid_until": timestamp,
         "kill_chain_phases": KILL_CHAIN_PHASES},
        ("pattern", "pattern_type", "valid_from"), (later_than("valid_from", "valid_until", strict=True),),
    ),
    "infrastructure": (
        {**_NAME, "infrastructure_types": STRING_LIST, "aliases": STRING_LIST, "kill_chain_phases": KILL_CHAIN_PHASES,
         "first_seen": timestamp, "last_seen": timestamp},
        ("name",), (later_than("first_seen", "last_seen", strict=False),),
    ),
    "intrusion-set": (
        {**_NAME, "aliases": STRING_LIST, "first_seen": timestamp, "last_seen": timestamp, "goals": STRING_LIST,
         "resource_level": string, "primary_motivation": string, "secondary_motivations": STRING_LIST},
        ("name",), (later_than("first_seen", "last_seen", strict=False),),
    ),
    "location": (
        {**_NAME, "latitude": number(-90, 90), "longitude": number(-180, 180), "precision": number(0),
         "region": string, "country": string, "administrative_area": string, "city": string,
         "street_address": string, "postal_code": string},
        (), (_location,),
    ),
    "malware": (
        {**_NAME, "malware_types": STRING_LIST, "is_family": boolean, "aliases": STRING_LIST,
         "kill_chain_phases": KILL_CHAIN_PHASES, "first_seen": timestamp, "last_seen": timestamp,
         "operating_system_refs": list_of(ref(("software",))), "architecture_execution_envs": STRING_LIST,
         "implementation_languages": STRING_LIST, "capabilities": STRING_LIST,
         "sample_refs": list_of(ref(("file", "artifact")))},
        ("is_family",), (_malware, later_than("first_seen", "last_seen", strict=False)),
    ),
    "malware-analysis": (
        {"product": string, "version": string, "host_vm_ref": ref(("software",)),
         "operating_system_ref": ref(("software",)), "installed_software_refs": list_of(ref(("software",))),
         "configuration_version": string, "modules": STRING_LIST, "analysis_engine_version": string,
         "analysis_definition_version": string, "submitted": timestamp, "analysis_started": timestamp,
         "analysis_ended": timestamp, "result_name": string, "result": string,
         "analysis_sco_refs": OBJECT_REFS, "sample_ref": ref(("file", "artifact", "network-traffic"))},
        ("product",), (_malware_analysis,),
    ),
    "note": ({"abstract": string, "content": string, "authors": STRING_LIST, "object_refs": OBJECT_REFS},
             ("content", "object_refs"), ()),
    "observed-data": (
        {"first_observed": timestamp, "last_observed": timestamp, "number_observed": integer(1, 999999999),
         "objects": None, "object_refs": _observed_refs},  # `objects` is checked by the engine (embedded SCOs)
        ("first_observed", "last_observed", "number_observed"),
        (_observed_data, later_than("first_observed", "last_observed", strict=False)),
    ),
    "opinion": (
        {"explanation": string, "authors": STRING_LIST, "object_refs": OBJECT_REFS,
         "opinion": enum(("strongly-disagree", "disagree", "neutral", "agree", "strongly-agree"))},
        ("object_refs", "opinion"), (),
    ),
    "report": ({**_NAME, "report_types": STRING_LIST, "published": timestamp, "object_refs": OBJECT_REFS},
               ("name", "published", "object_refs"), ()),
    "threat-actor": (
        {**_NAME, "threat_actor_types": STRING_LIST, "aliases": STRING_LIST, "first_seen": timestamp,
         "last_seen": timestamp, "roles": STRING_LIST, "goals": STRING_LIST, "sophistication": string,
         "resource_level": string, "primary_motivation": string, "secondary_motivations": STRING_LIST,
         "personal_motivations": STRING_LIST},
        ("name",), (later_than("first_seen", "last_seen", strict=False),),
    ),
    "tool": ({**_NAME, "tool_types": STRING_LIST, "aliases": STRING_LIST, "kill_chain_phases": KILL_CHAIN_PHASES,
              "tool_version": string}, ("name",), ()),
    "vulnerability": (dict(_NAME), ("name",), ()),
    "relationship": (
        {"relationship_type": regex(r"[a-z0-9\-]+\Z", "a relationship type (lowercase letters, digits, hyphens)"),
         "description": string, "source_ref": _RELATABLE, "target_ref": _RELATABLE, "start_time": timestamp,
         "stop_time": timestamp},
        ("relationship_type", "source_ref", "target_ref"), (later_than("start_time", "stop_time", strict=True),),
    ),
    "sighting": (
        {"description": string, "first_seen": timestamp, "last_seen": timestamp, "count": integer(0, 999999999),
         "sighting_of_ref": _SIGHTING_OF, "observed_data_refs": list_of(ref(("observed-data",))),
         "where_sighted_refs": list_of(ref(("identity", "location"))), "summary": boolean},
        ("sighting_of_ref",), (later_than("first_seen", "last_seen", strict=False),),
    ),
}

# Common properties of SDOs and SROs (part 3.2).
CORE_PROPS: dict[str, Checker] = {
    "type": string,
    "spec_version": string,
    "id": identifier,
    "created_by_ref": IDENTITY_REF,
    "created": timestamp_millis,
    "modified": timestamp_millis,
    "revoked": boolean,
    "labels": STRING_LIST,
    "confidence": CONFIDENCE,
    "lang": None,  # language tag, checked by the engine
    "external_references": EXTERNAL_REFERENCES,
    "object_marking_refs": MARKING_REFS,
    "granular_markings": GRANULAR_MARKINGS,
    "extensions": None,  # checked by the engine
}
CORE_REQUIRED = ("type", "spec_version", "id", "created", "modified")

# --- meta objects --------------------------------------------------------------------------------

EXTENSION_TYPES = ("new-sdo", "new-sco", "new-sro", "property-extension", "toplevel-property-extension")


def _extension_definition(obj: dict[str, Any], path: str, ctx: Context) -> None:
    types = obj.get("extension_types")
    if "extension_properties" in obj and not (type(types) is list and "toplevel-property-extension" in types):
        raise Invalid("extension_properties", "dependency",
                      "is only allowed when extension_types includes toplevel-property-extension")


EXTENSION_DEFINITION_SPEC = (
    {"name": string, "description": string, "schema": string, "version": string,
     "extension_types": list_of(enum(EXTENSION_TYPES)), "extension_properties": STRING_LIST},
    ("name", "schema", "version", "extension_types"),
    (_extension_definition,),
)


def _language_content_ref(value: Any, path: str, ctx: Context) -> None:
    t = id_type(value)
    if t is None:
        identifier(value, path, ctx)
    if t in ("bundle", "language-content"):
        raise Invalid(path, "ref-type", f"must not refer to a {t} object")


LANGUAGE_CONTENT_SPEC = (
    {"object_ref": _language_content_ref, "object_modified": timestamp, "contents": None},  # contents: engine
    ("object_ref", "contents"),
    (),
)

MARKING_PROPS: dict[str, Checker | None] = {
    "type": string,
    "spec_version": string,
    "id": identifier,
    "created_by_ref": IDENTITY_REF,
    "created": timestamp,
    "external_references": EXTERNAL_REFERENCES,
    "object_marking_refs": MARKING_REFS,
    "granular_markings": GRANULAR_MARKINGS,
    "name": string,
    "definition_type": string,
    "definition": None,  # checked by the engine against definition_type
    "extensions": None,
}

# The four TLP 1.0 marking definitions the STIX 2.1 specification defines (section 7.2.1.4).
TLP1_DEFINITIONS = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "white",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "green",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "amber",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "red",
}
TLP1_CREATED = "2017-01-20T00:00:00.000Z"
