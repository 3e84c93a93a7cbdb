"""STIX 2.1 validation rules, one by one, with the id / property / rule every rejection must name."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kuroshio.stix.validate import Problem, validate

TS = "2026-01-01T00:00:00.000Z"
IDENTITY = "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff"


def sdo(kind: str, **props: Any) -> dict[str, Any]:
    base = {"type": kind, "spec_version": "2.1", "id": f"{kind}--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": TS, "modified": TS}
    base.update(props)
    return base


INDICATOR = sdo("indicator", pattern="[ipv4-addr:value = '198.51.100.1']", pattern_type="stix", valid_from=TS)


def rejected(obj: Any, *, allow_custom: bool = False) -> Problem:
    problem = validate(obj, allow_custom=allow_custom)
    assert problem is not None, f"accepted: {obj}"
    return problem


def test_valid_objects_of_every_kind() -> None:
    objects = [
        INDICATOR,
        sdo("malware", is_family=True, name="X"),
        sdo("report", name="r", published=TS, object_refs=[INDICATOR["id"]]),
        sdo("relationship", relationship_type="indicates", source_ref=INDICATOR["id"],
            target_ref="malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3e"),
        sdo("sighting", sighting_of_ref=INDICATOR["id"], where_sighted_refs=[IDENTITY], count=3),
        sdo("location", latitude=24.4, longitude=123.0, precision=500),
        sdo("observed-data", first_observed=TS, last_observed=TS, number_observed=1,
            object_refs=["ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd"]),
        {"type": "ipv4-addr", "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd", "value": "198.51.100.0/24"},
        {"type": "ipv6-addr", "id": "ipv6-addr--1e61d36c-a16c-53b7-a80f-2a00161c96b1", "value": "2001:db8::1/64"},
        {"type": "domain-name", "id": "domain-name--3c10e93f-798e-5a26-a0c1-08156efab7f5", "value": "例え.jp"},
        {"type": "url", "id": "url--c1477287-23ac-5971-a010-5c287877fa60", "value": "https://[2001:db8::1]:8443/a?b#c"},
        {"type": "file", "id": "file--ff1e0780-358c-5808-a8c7-d0fca4ef6ef4", "name": "a.exe",
         "hashes": {"SHA-256": "a" * 64, "x-vendor-hash": "anything"},
         "extensions": {"windows-pebinary-ext": {"pe_type": "exe", "time_date_stamp": "2016-01-01T00:00:00Z"}}},
        {"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
         "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp", "name": "TLP:GREEN",
         "definition": {"tlp": "green"}},
        {"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--b2b5f2cd-49e6-4091-a0e0-c0bb71543e23",
         "created": TS, "definition_type": "statement", "definition": {"statement": "Copyright 2026 TWN"}},
        sdo("language-content", object_ref=INDICATOR["id"], object_modified=TS,
            contents={"zh-TW": {"name": "惡意軟體"}, "ja": {"name": "マルウェア"}}),
        sdo("extension-definition", created_by_ref=IDENTITY, name="x", schema="https://example.org/s", version="1.0",
            extension_types=["property-extension"]),
        sdo("indicator", pattern="[file:hashes.MD5 = 'cead3f77f6cda6ec00f57d76c9a6879f']", pattern_type="stix",
            valid_from=TS, lang="zh-Hant-TW"),
        sdo("indicator", pattern="alert tcp any any -> any any", pattern_type="snort", valid_from=TS),
    ]
    for obj in objects:
        assert validate(obj) is None, (obj, validate(obj))


@pytest.mark.parametrize(("mutate", "prop", "rule"), [
    (lambda o: o.pop("pattern"), "pattern", "required"),
    (lambda o: o.update(spec_version="2.0"), "spec_version", "spec-version"),
    (lambda o: o.update(id="indicator--nope"), "id", "identifier"),
    (lambda o: o.update(id="malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"), "id", "identifier"),
    (lambda o: o.update(modified="2025-12-31T23:59:59.999Z"), "modified", "timestamp-order"),
    (lambda o: o.update(created="2026-02-30T00:00:00.000Z"), "created", "timestamp"),
    (lambda o: o.update(created="2026-01-01T00:00:00Z", modified="2026-01-01T00:00:00Z"), "created", "timestamp-precision"),
    (lambda o: o.update(valid_until=TS), "valid_until", "timestamp-order"),
    (lambda o: o.update(created_by_ref="malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"), "created_by_ref", "ref-type"),
    (lambda o: o.update(created_by_ref=[IDENTITY]), "created_by_ref", "identifier"),
    (lambda o: o.update(created_by_ref={"id": IDENTITY}), "created_by_ref", "identifier"),
    (lambda o: o.update(labels=[]), "labels", "min-items"),
    (lambda o: o.update(description=None), "description", "type"),
    (lambda o: o.update(confidence=101), "confidence", "maximum"),
    (lambda o: o.update(confidence=True), "confidence", "type"),
    (lambda o: o.update(lang="foo"), "lang", "language-tag"),
    (lambda o: o.update(pattern="[ipv4-addr:value = ]"), "pattern", "pattern-syntax"),
    (lambda o: o.update(object_marking_refs=["indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"]),
     "object_marking_refs[0]", "ref-type"),
    (lambda o: o.update(external_references=[{"source_name": "cve", "external_id": "CVE-2016-1"}]),
     "external_references[0].external_id", "cve-format"),
    (lambda o: o.update(external_references=[{"source_name": "x"}]), "external_references[0]", "required"),
    (lambda o: o.update(granular_markings=[{"selectors": ["nosuchprop"],
                                            "marking_ref": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"}]),
     "granular_markings[0].selectors", "selector"),
    (lambda o: o.update(severity="high"), "severity", "reserved"),
    (lambda o: o.update(x_acme_score=5), "x_acme_score", "custom-content"),
    (lambda o: o.update(extensions={"x-acme-ext": {"a": 1}}), "extensions.x-acme-ext", "custom-content"),
])
def test_rejection_names_property_and_rule(mutate: Any, prop: str, rule: str) -> None:
    obj = copy.deepcopy(INDICATOR)
    mutate(obj)
    problem = rejected(obj)
    assert (problem.property, problem.rule) == (prop, rule), str(problem)
    text = str(problem)
    assert obj["id"][:12] in text and rule in text


def test_custom_content_only_where_allowed() -> None:
    custom_obj = {"type": "x-mitre-tactic", "spec_version": "2.1", "id": "x-mitre-tactic--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                  "created": TS, "modified": TS, "name": "Initial Access", "x_mitre_shortname": "initial-access"}
    assert rejected(custom_obj).rule == "custom-content"
    assert validate(custom_obj, allow_custom=True) is None
    custom_prop = {**INDICATOR, "x_mitre_version": "1.0"}
    assert rejected(custom_prop).rule == "custom-content"
    assert validate(custom_prop, allow_custom=True) is None
    # even custom content follows the generic rules
    assert rejected({**INDICATOR, "x-bad-name": 1}, allow_custom=True).rule == "property-name"
    assert rejected({**INDICATOR, "x_empty": []}, allow_custom=True).rule == "min-items"


def test_objects_defined_by_an_extension_definition_are_not_custom_content() -> None:
    ext = "extension-definition--2a9b3b6e-2a5e-4bd0-9d1a-02d4b5c0f3b5"
    vessel = {"type": "vessel", "spec_version": "2.1", "id": "vessel--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
              "created": TS, "modified": TS, "name": "KUROSHIO MARU", "mmsi": 431000000,
              "extensions": {ext: {"extension_type": "new-sdo"}}}
    assert validate(vessel) is None
    tagged = {**INDICATOR, "vessel_mmsi": 431000000, "extensions": {ext: {"extension_type": "toplevel-property-extension"}}}
    assert validate(tagged) is None
    assert rejected({**vessel, "extensions": {ext: {"extension_type": "new-thing"}}}).rule == "custom-content"
    assert rejected({**INDICATOR, "extensions": {ext: {"extension_type": "new-thing"}}}).rule == "enum"


def test_observable_rules() -> None:
    base = {"type": "network-traffic", "id": "network-traffic--280d1c0d-51d1-5ee8-951f-1fb434a38686",
            "protocols": ["tcp"], "src_ref": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd"}
    assert validate(base) is None
    assert rejected({**base, "src_port": 70000}).rule == "maximum"
    assert rejected({**base, "src_ref": "file--ff1e0780-358c-5808-a8c7-d0fca4ef6ef4"}).rule == "ref-type"
    assert rejected({**base, "is_active": True, "end": TS}).rule == "dependency"
    assert rejected({k: v for k, v in base.items() if k != "src_ref"}).rule == "required"
    ip = {"type": "ipv4-addr", "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd"}
    for bad in ("999.1.1.1", "1.2.3.4/33", "1.2.3.4/01", "01.2.3.4", "foo"):
        assert rejected({**ip, "value": bad}).rule == "format", bad
    assert rejected({"type": "url", "id": "url--c1477287-23ac-5971-a010-5c287877fa60", "value": "tunnel.us.ngrok[.]com"}).rule == "format"
    assert rejected({"type": "process", "id": "process--ff1e0780-358c-5808-a8c7-d0fca4ef6ef4", "pid": 1}).rule == "uuid-version"
    assert rejected({"type": "file", "id": "file--ff1e0780-358c-5808-a8c7-d0fca4ef6ef4", "name": "a",
                     "hashes": {"MD5": "abc"}}).rule == "hash-format"


def test_embedded_observed_data_objects() -> None:
    od = sdo("observed-data", first_observed=TS, last_observed=TS, number_observed=1, objects={
        "0": {"type": "ipv4-addr", "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd", "value": "198.51.100.1"},
        "1": {"type": "network-traffic", "id": "network-traffic--280d1c0d-51d1-5ee8-951f-1fb434a38686",
              "protocols": ["tcp"], "dst_ref": "0"},
    })
    assert validate(od) is None
    od["objects"]["1"]["dst_ref"] = "7"
    assert rejected(od).property == "objects.1.dst_ref"


def test_marking_definitions() -> None:
    fake_tlp = {"type": "marking-definition", "spec_version": "2.1",
                "id": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da", "created": "2017-01-20T00:00:00.000Z",
                "definition_type": "tlp", "name": "TLP:GREEN", "definition": {"tlp": "red"}}
    assert rejected(fake_tlp).rule == "tlp-definition"
    assert rejected({**fake_tlp, "definition_type": "statement", "definition": {"tlp": "green"}},
                    allow_custom=True).rule == "tlp-definition"
    no_def = {"type": "marking-definition", "spec_version": "2.1",
              "id": "marking-definition--b2b5f2cd-49e6-4091-a0e0-c0bb71543e23", "created": TS}
    assert rejected(no_def).rule == "required"


def test_not_an_object() -> None:
    for bad in ([], "indicator", None, 3):
        assert rejected(bad).rule == "type"
    assert rejected({"id": INDICATOR["id"]}).property == "type"
    assert rejected({"type": "bundle", "id": "bundle--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"}).rule == "bundle"
