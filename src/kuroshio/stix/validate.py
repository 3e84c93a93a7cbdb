"""STIX 2.1 object validation: every object type, custom content policy, patterns; one `Problem` per rejection.

`validate(obj, allow_custom=...)` returns None for a valid object or the first `Problem` found,
naming the object id, the property path and the rule broken. Custom content (x- types, custom
properties, custom SCO extensions not declared through an extension-definition) is accepted
only with `allow_custom=True`; in that mode the verdicts follow the OASIS validator's default mode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from . import pattern as stix_pattern
from . import timestamps
from .identifiers import TYPE_NAME, id_type
from .objects import (
    CORE_PROPS,
    CORE_REQUIRED,
    DOMAIN_SPECS,
    EXTENSION_DEFINITION_SPEC,
    EXTENSION_TYPES,
    LANGUAGE_CONTENT_SPEC,
    MARKING_PROPS,
    TLP1_CREATED,
    TLP1_DEFINITIONS,
)
from .observables import PREDEFINED_EXTENSIONS, SCO_COMMON, SCO_PROPERTY_NAMES, SCO_SPECS, SCO_TYPE_SET
from .properties import (
    RESERVED_PROPERTIES,
    Checker,
    Context,
    Invalid,
    boolean,
    check_custom_name,
    custom_property,
    dictionary,
    generic_value,
    language,
    string,
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an object was rejected: which object, which property, which rule, and what is wrong."""

    object_id: str | None
    property: str | None
    rule: str
    detail: str

    def __str__(self) -> str:
        where = self.object_id or "object without a valid id"
        if self.property:
            return f"{where}: property '{self.property}' {self.detail} [rule: {self.rule}]"
        return f"{where}: {self.detail} [rule: {self.rule}]"


class _Spec:
    __slots__ = ("any_of", "kind", "props", "required", "required_set", "rules", "strings")

    def __init__(self, kind: str, props: dict[str, Checker | None], required: tuple[str, ...],
                 any_of: tuple[str, ...] = (), rules: tuple[Any, ...] = ()) -> None:
        self.kind = kind  # sdo | sro | sco | marking | language-content | extension-definition | custom
        self.props = props
        self.required = required
        self.required_set = frozenset(required)
        self.any_of = any_of
        self.rules = rules
        # plain string properties, checked inline (the hot loop); type, id and spec_version were
        # checked before the loop, so only their being strings remains to check
        self.strings = frozenset(k for k, c in props.items() if c is string) | {"type", "id", "spec_version"}


def _build_specs() -> dict[str, _Spec]:
    specs: dict[str, _Spec] = {}
    for t, (props, required, rules) in DOMAIN_SPECS.items():
        kind = "sro" if t in ("relationship", "sighting") else "sdo"
        specs[t] = _Spec(kind, {**CORE_PROPS, **props}, CORE_REQUIRED + required, (), rules)
    for t, (props, required, any_of, rules) in SCO_SPECS.items():
        common = {k: CORE_PROPS.get(k) for k in SCO_COMMON}
        common["defanged"] = boolean
        common["spec_version"] = string
        specs[t] = _Spec("sco", {**common, **props}, ("type", "id", *required), any_of, rules)
    props, required, rules = EXTENSION_DEFINITION_SPEC
    specs["extension-definition"] = _Spec(
        "extension-definition", {**CORE_PROPS, **props}, (*CORE_REQUIRED, "created_by_ref", *required), (), rules)
    props, required, rules = LANGUAGE_CONTENT_SPEC
    specs["language-content"] = _Spec("language-content", {**CORE_PROPS, **props}, CORE_REQUIRED + required, (), rules)
    specs["marking-definition"] = _Spec("marking", dict(MARKING_PROPS), ("type", "spec_version", "id", "created"))
    return specs


SPECS = _build_specs()
_CUSTOM_CORE = _Spec("custom", dict(CORE_PROPS), CORE_REQUIRED)
_CUSTOM_SCO = _Spec("custom", {k: (boolean if k == "defanged" else CORE_PROPS.get(k)) for k in SCO_COMMON},
                    ("type", "id"))
_EXT_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*-ext\Z")
_EXTDEF_ID = re.compile(
    r"extension-definition--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-5][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}\Z")
_CONTENT_PROPERTY = re.compile(r"[a-z0-9_]{3,250}\Z")
_SELECTOR_INDEX = re.compile(r"\[(\d+)\]\Z")
_MISSING: Any = object()


def validate(obj: Any, *, allow_custom: bool = False) -> Problem | None:
    """Validate one STIX 2.1 object. Returns None when valid, else the first problem found."""
    ctx = Context(allow_custom)
    oid = obj.get("id") if type(obj) is dict else None
    if type(oid) is not str:
        oid = None
    try:
        _validate(obj, ctx)
    except Invalid as bad:
        return Problem(oid, bad.path or None, bad.rule, bad.detail)
    return None


def _validate(obj: Any, ctx: Context) -> None:
    if type(obj) is not dict:
        raise Invalid("", "type", "each STIX object must be a JSON object")
    t = obj.get("type")
    if t is None:
        raise Invalid("type", "required", "is required")
    if type(t) is not str:
        raise Invalid("type", "type", "must be a string")
    if not (3 <= len(t) <= 250) or not TYPE_NAME.match(t) or t == "action":
        raise Invalid("type", "type-name",
                      f"'{t[:80]}' is not a valid object type (lowercase ASCII letters, digits and hyphens, 3 to 250 characters)")
    if t == "bundle":
        raise Invalid("type", "bundle", "a bundle cannot be stored as an object: send its objects instead")
    oid = obj.get("id")
    if oid is None:
        raise Invalid("id", "required", "is required")
    it = id_type(oid)
    if it is None:
        raise Invalid("id", "identifier", f"'{str(oid)[:80]}' is not a STIX identifier of the form {t}--UUID")
    if it != t:
        raise Invalid("id", "identifier", f"must start with the object's type '{t}--', not '{it}--'")

    spec = SPECS.get(t)
    declared = _declared_extension_types(obj)
    if spec is None:
        if not ctx.allow_custom and not (declared & {"new-sdo", "new-sco", "new-sro"}):
            raise Invalid("type", "custom-content",
                          f"'{t}' is not a STIX 2.1 object type: custom objects are only accepted in collections that "
                          "allow custom content, or when an extension-definition declares them (new-sdo/new-sco/new-sro)")
        is_sco = "new-sco" in declared or (
            not (declared & {"new-sdo", "new-sro"}) and "created" not in obj and "modified" not in obj)
        spec = _CUSTOM_SCO if is_sco else _CUSTOM_CORE
        extension_props_open = True
    else:
        extension_props_open = "toplevel-property-extension" in declared

    kind = spec.kind
    if kind == "marking":
        _marking_definition(obj, ctx)
        return

    sv = obj.get("spec_version")
    if sv is not None and sv != "2.1":
        if type(sv) is str and sv.startswith("2.0"):
            raise Invalid("spec_version", "spec-version", "is '2.0': this node stores STIX 2.1 content only")
        raise Invalid("spec_version", "spec-version", f"must be '2.1', not {sv!r}")

    props = spec.props
    strings = spec.strings
    for k, v in obj.items():
        if k in strings:
            if type(v) is not str:
                string(v, k, ctx)
            continue
        chk = props.get(k, _MISSING)
        if chk is not _MISSING:
            if chk is None:
                generic_value(v, k, ctx)  # checked further below
            else:
                chk(v, k, ctx)  # every checker refuses null and empty lists itself
            continue
        if k in RESERVED_PROPERTIES:
            raise Invalid(k, "reserved", "is a reserved property name in STIX 2.1 and must not be used")
        if extension_props_open:
            check_custom_name(k, k)
            generic_value(v, k, ctx)
        else:
            custom_property(k, v, k, ctx)

    if not spec.required_set <= obj.keys():
        for r in spec.required:
            if r not in obj:
                if r == "spec_version" and kind in ("sdo", "sro") and "created" in obj:
                    raise Invalid(r, "required", "is required: STIX 2.1 objects carry spec_version '2.1' "
                                                 "(STIX 2.0 content is not accepted)")
                raise Invalid(r, "required", "is required")
    if spec.any_of and not any(a in obj for a in spec.any_of):
        raise Invalid(spec.any_of[0], "required", f"{t} needs at least one of: {', '.join(spec.any_of)}")

    if "modified" in obj and "created" in obj:
        c, m = obj["created"], obj["modified"]
        if type(c) is str and type(m) is str and c != m and timestamps.compare(m, c) < 0:
            raise Invalid("modified", "timestamp-order", f"({m}) must be later than or equal to created ({c})")
    if "lang" in obj:
        language(obj["lang"], "lang", ctx)
    if "extensions" in obj:
        _extensions(obj["extensions"], t, kind == "sco" or (kind == "custom" and spec is _CUSTOM_SCO), ctx)
    for rule in spec.rules:
        rule(obj, "", ctx)
    if "granular_markings" in obj:
        _selectors_resolve(obj)
    if t == "indicator":
        _indicator_pattern(obj)
    elif t == "observed-data" and "objects" in obj:
        _embedded_observables(obj["objects"], ctx)
    elif t == "language-content":
        _language_contents(obj["contents"], ctx)


def _declared_extension_types(obj: dict[str, Any]) -> set[str]:
    exts = obj.get("extensions")
    if type(exts) is not dict:
        return set()
    out = set()
    for k, v in exts.items():
        if type(v) is dict and k.startswith("extension-definition--"):
            et = v.get("extension_type")
            if type(et) is str:
                out.add(et)
    return out


def _extensions(value: Any, obj_type: str, is_sco: bool, ctx: Context) -> None:
    if type(value) is not dict:
        raise Invalid("extensions", "type", "must be an object mapping extension names to extension content")
    if not value:
        raise Invalid("extensions", "min-properties", "must not be empty")
    for name, ext in value.items():
        path = f"extensions.{name}"
        if _EXTDEF_ID.match(name):
            if type(ext) is not dict:
                raise Invalid(path, "type", "must be an object")
            if not ext:
                raise Invalid(path, "min-properties", "must not be empty")
            et = ext.get("extension_type")
            if et is None:
                raise Invalid(f"{path}.extension_type", "required", "is required for extensions defined by an extension-definition")
            if et not in EXTENSION_TYPES:
                raise Invalid(f"{path}.extension_type", "enum", f"{et!r} is not one of: {', '.join(EXTENSION_TYPES)}")
            for k, v in ext.items():
                check_custom_name(k, f"{path}.{k}")
                generic_value(v, f"{path}.{k}", ctx)
        elif _EXT_NAME.match(name):
            if type(ext) is not dict:
                raise Invalid(path, "type", "must be an object")
            if not ext:
                raise Invalid(path, "min-properties", "must not be empty")
            predefined = PREDEFINED_EXTENSIONS.get(name)
            if predefined is not None and predefined[0] == obj_type:
                for k, v in ext.items():
                    check_custom_name(k, f"{path}.{k}")
                    generic_value(v, f"{path}.{k}", ctx)
                predefined[1](ext, path, ctx)
            elif not ctx.allow_custom:
                raise Invalid(path, "custom-content",
                              f"'{name}' is not a predefined STIX 2.1 extension of {obj_type}: custom extensions are only "
                              "accepted in collections that allow custom content (or use an extension-definition)")
            else:
                for k, v in ext.items():
                    check_custom_name(k, f"{path}.{k}")
                    generic_value(v, f"{path}.{k}", ctx)
                if is_sco:
                    dictionary()(ext, path, ctx)
        else:
            raise Invalid(path, "extension-name",
                          "extension keys are an extension-definition id or a predefined extension name ending in -ext")


def _marking_definition(obj: dict[str, Any], ctx: Context) -> None:
    oid = obj["id"]
    props = MARKING_PROPS
    for k, v in obj.items():
        if k in props:
            generic_value(v, k, ctx)
            chk = props[k]
            if chk is not None:
                chk(v, k, ctx)
        elif not ctx.allow_custom:
            raise Invalid(k, "custom-content", "is not a property of marking-definition: custom properties are only "
                                               "accepted in collections that allow custom content")
    for r in ("type", "spec_version", "id", "created"):
        if r not in obj:
            raise Invalid(r, "required", "is required")
    if obj["spec_version"] != "2.1":
        raise Invalid("spec_version", "spec-version", f"must be '2.1', not {obj['spec_version']!r}")
    dtype = obj.get("definition_type")
    definition = obj.get("definition")
    if dtype == "tlp" or oid in TLP1_DEFINITIONS:
        colour = TLP1_DEFINITIONS.get(oid)
        allowed = {"type", "spec_version", "id", "created", "name", "definition", "definition_type"}
        if (colour is None or obj.get("name") != f"TLP:{colour.upper()}" or obj.get("created") != TLP1_CREATED
                or definition != {"tlp": colour} or dtype != "tlp" or set(obj) - allowed):
            raise Invalid("definition", "tlp-definition",
                          "TLP marking definitions must be exactly one of the four the STIX 2.1 specification defines")
        return
    if "extensions" in obj:
        _extensions(obj["extensions"], "marking-definition", False, ctx)
    elif dtype is None or definition is None:
        raise Invalid("definition_type", "required",
                      "marking definitions need definition_type and definition, or an extension that defines the marking")
    if dtype is not None:
        string(dtype, "definition_type", ctx)
        if type(definition) is not dict:
            raise Invalid("definition", "type", "must be an object")
        if re.search(r"^(statement)|(tlp)$", dtype) and (
                dtype != "statement" or type(definition.get("statement")) is not str):
            raise Invalid("definition", "statement", "a statement marking's definition is {\"statement\": \"text\"}")
    elif definition is not None:
        raise Invalid("definition_type", "required", "is required when definition is present")
    for k in ("object_marking_refs",):
        if k in obj and oid in obj[k]:
            raise Invalid(k, "circular-reference", "a marking definition must not mark itself")
    for gm in obj.get("granular_markings", ()):
        if gm.get("marking_ref") == oid:
            raise Invalid("granular_markings", "circular-reference", "a marking definition must not mark itself")


def _selectors_resolve(obj: dict[str, Any]) -> None:
    for i, gm in enumerate(obj["granular_markings"]):
        for selector in gm.get("selectors", ()):
            node: Any = obj
            for seg in selector.split("."):
                m = _SELECTOR_INDEX.match(seg)
                if m:
                    idx = int(m.group(1))
                    if type(node) is not list or idx >= len(node):
                        raise Invalid(f"granular_markings[{i}].selectors", "selector",
                                      f"'{selector}' does not select anything in this object ({seg} is not a valid index)")
                    node = node[idx]
                else:
                    if type(node) is not dict or seg not in node:
                        raise Invalid(f"granular_markings[{i}].selectors", "selector",
                                      f"'{selector}' does not select anything in this object ('{seg}' is not present)")
                    node = node[seg]


# Hash names the OASIS pattern validator checks digests for (normalised: upper case, no hyphens).
_PATTERN_HASHES = {
    "MD5": re.compile(r"[a-fA-F0-9]{32}\Z"),
    "MD6": re.compile(r"[a-fA-F0-9]{32}|[a-fA-F0-9]{40}|[a-fA-F0-9]{56}|[a-fA-F0-9]{64}|[a-fA-F0-9]{96}|[a-fA-F0-9]{128}\Z"),
    "RIPEMD160": re.compile(r"[a-fA-F0-9]{40}\Z"),
    "SHA1": re.compile(r"[a-fA-F0-9]{40}\Z"),
    "SHA224": re.compile(r"[a-fA-F0-9]{56}\Z"),
    "SHA256": re.compile(r"[a-fA-F0-9]{64}\Z"),
    "SHA384": re.compile(r"[a-fA-F0-9]{96}\Z"),
    "SHA512": re.compile(r"[a-fA-F0-9]{128}\Z"),
    "SHA3224": re.compile(r"[a-fA-F0-9]{56}\Z"),
    "SHA3256": re.compile(r"[a-fA-F0-9]{64}\Z"),
    "SHA3384": re.compile(r"[a-fA-F0-9]{96}\Z"),
    "SHA3512": re.compile(r"[a-fA-F0-9]{128}\Z"),
    "SSDEEP": re.compile(r"[a-zA-Z0-9/+:.]{1,128}\Z"),
    "WHIRLPOOL": re.compile(r"[a-fA-F0-9]{128}\Z"),
}
_PATTERN_TYPE_NAME = re.compile(r"-?[a-z0-9]+(?:-[a-z0-9]+)*-?\Z")
_PATTERN_PROPERTY = re.compile(r"[a-z0-9_]{3,250}\Z")


def pattern_syntax_problem(text: str) -> str | None:
    """None when `text` is a syntactically valid STIX 2.1 pattern, else why not (with the position).

    Covers the grammar, repeated qualifiers on one observation and the digest format of
    comparisons on well-known hash algorithms (the checks of the OASIS stix2-patterns validator).
    """
    return _pattern_problem(text, names=False)


def check_pattern(text: str) -> str | None:
    """None when `text` is a valid STIX 2.1 indicator pattern, else the reason.

    Adds to the syntax the object type and property name rules of the OASIS validator.
    """
    return _pattern_problem(text, names=True)


def _pattern_problem(text: str, *, names: bool) -> str | None:
    try:
        tree = stix_pattern.parse(text)
    except stix_pattern.PatternSyntaxError as exc:
        return str(exc)
    except RecursionError:
        return "the pattern is nested too deeply"
    for comp in stix_pattern.comparisons(tree):
        path = comp.path
        steps = path.steps
        if names:
            otype = path.object_type
            if otype not in SCO_TYPE_SET and (not _PATTERN_TYPE_NAME.match(otype) or not 3 <= len(otype) <= 250):
                return f"'{otype}' is not a valid cyber-observable type name"
            known = SCO_PROPERTY_NAMES.get(otype)
            if (known is None or steps[0] not in known) and not _PATTERN_PROPERTY.match(steps[0]):
                return f"'{steps[0]}' is not a valid property name for {otype}"
        if comp.op == "EXISTS" or "hashes" not in steps or not isinstance(steps[-1], str):
            continue
        fmt = _PATTERN_HASHES.get(steps[-1].upper().replace("-", ""))
        if fmt is None:
            continue
        values = comp.value if isinstance(comp.value, tuple) else (comp.value,)
        for lit in values:
            digest = lit.value if lit.kind == "str" else lit.text.replace("'", "")
            if not isinstance(digest, str) or not fmt.match(digest):
                return f"'{digest}' is not a valid {steps[-1]} hash"
    return None


def _indicator_pattern(obj: dict[str, Any]) -> None:
    if obj.get("pattern_type") != "stix" or type(obj.get("pattern")) is not str:
        return
    problem = check_pattern(obj["pattern"])
    if problem is not None:
        raise Invalid("pattern", "pattern-syntax", f"is not a valid STIX pattern: {problem}")


def _embedded_observables(objects: Any, ctx: Context) -> None:
    if type(objects) is not dict:
        raise Invalid("objects", "type", "must be an object mapping keys to cyber-observable objects")
    if not objects:
        raise Invalid("objects", "min-properties", "must not be empty")
    for key, sco in objects.items():
        path = f"objects.{key}"
        if type(sco) is not dict or "type" not in sco:
            raise Invalid(path, "required", "each embedded observable needs a 'type'")
        inner = Context(ctx.allow_custom)
        inner.embedded = objects
        try:
            _validate(sco, inner)
        except Invalid as bad:
            raise Invalid(f"{path}.{bad.path}" if bad.path else path, bad.rule, bad.detail) from None


def _language_contents(contents: Any, ctx: Context) -> None:
    if type(contents) is not dict:
        raise Invalid("contents", "type", "must be an object mapping language tags to translated properties")
    if not contents:
        raise Invalid("contents", "min-properties", "must not be empty")
    for lang, translated in contents.items():
        path = f"contents.{lang}"
        if not re.match(r"[a-zA-Z0-9_-]{0,250}\Z", lang):
            raise Invalid(path, "dictionary-key", f"key '{lang}' must be an RFC 5646 language tag")
        language(lang, path, ctx)
        if type(translated) is not dict:
            raise Invalid(path, "type", "must be an object of translated properties")
        for k, v in translated.items():
            if not _CONTENT_PROPERTY.match(k):
                raise Invalid(f"{path}.{k}", "property-name", "is not a valid property name")
            generic_value(v, f"{path}.{k}", ctx)

