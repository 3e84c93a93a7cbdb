"""Property checkers for STIX 2.1 validation: types, formats, references and nested structures.

A checker is a function `(value, path, ctx) -> None` that raises `Invalid` naming the property
path, the rule broken and what is wrong. Checkers are built once at import time and are plain
closures so that validating an object costs a few microseconds.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

from . import timestamps
from .identifiers import id_type
from .language import is_language_tag


class Invalid(Exception):
    """A property breaks a rule. `path` is the property path inside the object."""

    __slots__ = ("detail", "path", "rule")

    def __init__(self, path: str, rule: str, detail: str) -> None:
        super().__init__(path, rule, detail)
        self.path = path
        self.rule = rule
        self.detail = detail


class Context:
    """Per-validation settings and findings shared by the checkers."""

    __slots__ = ("allow_custom", "embedded")

    def __init__(self, allow_custom: bool) -> None:
        self.allow_custom = allow_custom
        # inside observed-data's deprecated `objects`: references are keys of this dictionary
        self.embedded: dict[str, Any] | None = None


Checker = Callable[[Any, str, Context], None]

# --- generic names and values (the OASIS "properties" and "dictionary" rules) -------------------

# Search semantics, as in the OASIS schemas: the name starts with a lowercase letter and two more
# [a-z0-9_] characters, or ends in "id".
_PROPERTY_NAME = re.compile(r"^([a-z][a-z0-9_]{2,249})|id$")
_BIN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,245}_bin$")
_HEX_NAME = re.compile(r"^[a-z][a-z0-9_]{0,245}_hex$")
_DICT_KEY = re.compile(r"[a-zA-Z0-9_-]{0,250}\Z")
_BINARY = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)\Z")
_HEX = re.compile(r"(?:[a-fA-F0-9]{2})+\Z")
RESERVED_PROPERTIES = frozenset({"severity", "action", "username", "phone_numbers"})


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def generic_value(value: Any, path: str, ctx: Context) -> None:
    """Any property value: not null, lists not empty (applies to custom properties too)."""
    if value is None:
        raise Invalid(path, "no-null", "must not be null: omit the property instead")
    if type(value) is list and not value:
        raise Invalid(path, "min-items", "must not be an empty list: omit the property instead")


def check_custom_name(name: str, path: str) -> None:
    if not _PROPERTY_NAME.search(name) and not _BIN_NAME.match(name) and not _HEX_NAME.match(name):
        raise Invalid(
            path, "property-name",
            "is not a valid property name (lowercase ASCII letter first, then letters, digits or '_', 3 to 250 characters)",
        )


def custom_property(name: str, value: Any, path: str, ctx: Context) -> None:
    """A property the specification does not define: only where the collection allows custom content."""
    if not ctx.allow_custom:
        raise Invalid(
            path, "custom-content",
            "is not defined by STIX 2.1 for this object: custom properties are only accepted in collections "
            "that allow custom content (or define them through an extension-definition)",
        )
    check_custom_name(name, path)
    generic_value(value, path, ctx)
    if _BIN_NAME.match(name):
        binary(value, path, ctx)
    elif _HEX_NAME.match(name):
        hex_string(value, path, ctx)


# --- primitives --------------------------------------------------------------------------------


def string(value: Any, path: str, ctx: Context) -> None:
    if type(value) is not str:
        raise Invalid(path, "type", f"must be a string, not {_kind(value)}")


def boolean(value: Any, path: str, ctx: Context) -> None:
    if type(value) is not bool:
        raise Invalid(path, "type", f"must be a boolean, not {_kind(value)}")


def integer(minimum: int | None = None, maximum: int | None = None) -> Checker:
    def check(value: Any, path: str, ctx: Context) -> None:
        t = type(value)
        if t is not int and not (t is float and value.is_integer()):
            raise Invalid(path, "type", f"must be an integer, not {_kind(value)}")
        if minimum is not None and value < minimum:
            raise Invalid(path, "minimum", f"is {value}, less than the minimum of {minimum}")
        if maximum is not None and value > maximum:
            raise Invalid(path, "maximum", f"is {value}, greater than the maximum of {maximum}")

    return check


def number(minimum: float | None = None, maximum: float | None = None) -> Checker:
    def check(value: Any, path: str, ctx: Context) -> None:
        t = type(value)
        if t is not int and t is not float:
            raise Invalid(path, "type", f"must be a number, not {_kind(value)}")
        if minimum is not None and value < minimum:
            raise Invalid(path, "minimum", f"is {value}, less than the minimum of {minimum}")
        if maximum is not None and value > maximum:
            raise Invalid(path, "maximum", f"is {value}, greater than the maximum of {maximum}")

    return check


def timestamp(value: Any, path: str, ctx: Context) -> None:
    if type(value) is not str:
        raise Invalid(path, "type", f"must be a timestamp string, not {_kind(value)}")
    problem = timestamps.check(value)
    if problem is not None:
        raise Invalid(path, "timestamp", f"'{value}' {problem}")


def timestamp_millis(value: Any, path: str, ctx: Context) -> None:
    if type(value) is str and timestamps.check_millis(value) is None:
        return  # the common case, one cached lookup
    timestamp(value, path, ctx)
    raise Invalid(path, "timestamp-precision", f"'{value}' must be precise to at least the millisecond")


def timestamp_seconds(value: Any, path: str, ctx: Context) -> None:
    timestamp(value, path, ctx)
    if timestamps.fraction_digits(value) != 0:
        raise Invalid(path, "timestamp-precision", f"'{value}' must be precise to the second, without a fraction")


def regex(pattern: str, what: str, *, search: bool = False, flags: int = 0) -> Checker:
    compiled = re.compile(pattern, flags)
    test = compiled.search if search else compiled.match

    def check(value: Any, path: str, ctx: Context) -> None:
        if type(value) is not str:
            raise Invalid(path, "type", f"must be a string, not {_kind(value)}")
        if not test(value):
            raise Invalid(path, "format", f"'{_short(value)}' is not {what}")

    return check


def _short(value: str) -> str:
    return value if len(value) <= 80 else value[:77] + "..."


def binary(value: Any, path: str, ctx: Context) -> None:
    if type(value) is not str:
        raise Invalid(path, "type", f"must be a base64 string, not {_kind(value)}")
    if not _BINARY.match(value):
        raise Invalid(path, "format", "must be base64-encoded (RFC 4648, with padding)")


def hex_string(value: Any, path: str, ctx: Context) -> None:
    if type(value) is not str:
        raise Invalid(path, "type", f"must be a hex string, not {_kind(value)}")
    if not _HEX.match(value):
        raise Invalid(path, "format", f"'{_short(value)}' is not an even number of hexadecimal digits")


def enum(values: Iterable[str]) -> Checker:
    allowed = frozenset(values)
    listed = ", ".join(sorted(allowed))

    def check(value: Any, path: str, ctx: Context) -> None:
        if type(value) is not str:
            raise Invalid(path, "type", f"must be a string, not {_kind(value)}")
        if value not in allowed:
            raise Invalid(path, "enum", f"'{_short(value)}' is not one of: {listed}")

    return check


def language(value: Any, path: str, ctx: Context) -> None:
    if type(value) is not str:
        raise Invalid(path, "type", f"must be a language tag string, not {_kind(value)}")
    if not is_language_tag(value):
        raise Invalid(path, "language-tag", f"'{_short(value)}' is not an RFC 5646 language tag (e.g. en, ja, zh-TW)")


def software_language(value: Any, path: str, ctx: Context) -> None:
    if type(value) is not str:
        raise Invalid(path, "type", f"must be a language tag string, not {_kind(value)}")
    if not is_language_tag(value, legacy_iso639_2=True):
        raise Invalid(path, "language-tag", f"'{_short(value)}' is not an RFC 5646 or ISO 639-2 language code")


# --- identifiers and references ----------------------------------------------------------------


def identifier(value: Any, path: str, ctx: Context) -> None:
    if id_type(value) is None:
        raise Invalid(path, "identifier", f"'{_short(str(value))}' is not a STIX identifier of the form type--UUID")


def ref(allowed: Iterable[str] | None = None, *, excluded: Iterable[str] = (), what: str = "") -> Checker:
    """An identifier whose type is in `allowed` (any type when None) and not in `excluded`."""
    allow = frozenset(allowed) if allowed is not None else None
    exclude = frozenset(excluded)
    described = what or (" or ".join(sorted(allow)) if allow else "")

    good: set[str] = set()  # references repeat (created_by_ref, marking refs): remember valid ones

    def check(value: Any, path: str, ctx: Context) -> None:
        if type(value) is str and value in good and ctx.embedded is None:
            return
        if ctx.embedded is not None:
            target = ctx.embedded.get(value) if type(value) is str else None
            if type(target) is not dict:
                raise Invalid(path, "reference", f"'{_short(str(value))}' is not a key of the observed-data objects")
            t = target.get("type")
            if allow is not None and t not in allow:
                raise Invalid(path, "ref-type", f"must refer to {described}, not to a {t} object")
            return
        t = id_type(value)
        if t is None:
            raise Invalid(path, "identifier", f"'{_short(str(value))}' is not a STIX identifier of the form type--UUID")
        if (allow is not None and t not in allow) or t in exclude:
            if exclude and allow is None:
                raise Invalid(path, "ref-type", f"must not refer to a {t} object")
            raise Invalid(path, "ref-type", f"must refer to {described}, not to a {t} object")
        if len(good) >= 4096:
            good.clear()
        good.add(value)

    return check


def list_of(item: Checker, *, min_items: int = 1) -> Checker:
    def check(value: Any, path: str, ctx: Context) -> None:
        if type(value) is not list:
            raise Invalid(path, "type", f"must be a list, not {_kind(value)}")
        if len(value) < min_items:
            raise Invalid(path, "min-items", f"must hold at least {min_items} item{'s' if min_items > 1 else ''}")
        for i, v in enumerate(value):
            item(v, f"{path}[{i}]", ctx)

    return check


STRING_LIST = list_of(string)


def dictionary(value_check: Checker | None = None, *, key: re.Pattern[str] | None = None,
               key_rule: str = "letters, digits, '_' or '-', at most 250 characters") -> Checker:
    key_re = key or _DICT_KEY

    def check(value: Any, path: str, ctx: Context) -> None:
        if type(value) is not dict:
            raise Invalid(path, "type", f"must be an object (dictionary), not {_kind(value)}")
        if not value:
            raise Invalid(path, "min-properties", "must not be an empty dictionary")
        for k, v in value.items():
            if not key_re.match(k):
                raise Invalid(f"{path}.{k}", "dictionary-key", f"key '{_short(k)}' must use only {key_rule}")
            p = f"{path}.{k}"
            generic_value(v, p, ctx)
            if value_check is not None:
                value_check(v, p, ctx)

    return check


class Struct:
    """A nested object with defined properties (kill chain phase, PE section, an extension, ...)."""

    __slots__ = ("any_of", "checks", "closed", "name", "props", "required")

    def __init__(
        self,
        name: str,
        props: dict[str, Checker],
        *,
        required: Iterable[str] = (),
        any_of: Iterable[str] = (),
        closed: bool = False,
        checks: Iterable[Callable[[dict[str, Any], str, Context], None]] = (),
    ) -> None:
        self.name = name
        self.props = props
        self.required = tuple(required)
        self.any_of = tuple(any_of)
        self.closed = closed  # additional properties are invalid even where custom content is allowed
        self.checks = tuple(checks)

    def __call__(self, value: Any, path: str, ctx: Context) -> None:
        if type(value) is not dict:
            raise Invalid(path, "type", f"must be an object ({self.name}), not {_kind(value)}")
        props = self.props
        for k, v in value.items():
            chk = props.get(k)
            p = f"{path}.{k}"
            if chk is not None:
                chk(v, p, ctx)
            elif self.closed:
                raise Invalid(p, "unknown-property", f"is not a property of {self.name}")
            elif not ctx.allow_custom:
                raise Invalid(
                    p, "custom-content",
                    f"is not a property of {self.name}: custom properties are only accepted in collections "
                    "that allow custom content",
                )
        for r in self.required:
            if r not in value:
                raise Invalid(f"{path}.{r}", "required", f"is required in {self.name}")
        if self.any_of and not any(a in value for a in self.any_of):
            raise Invalid(path, "required", f"{self.name} must have at least one of: {', '.join(self.any_of)}")
        for c in self.checks:
            c(value, path, ctx)


def later_than(first: str, second: str, *, strict: bool) -> Callable[[dict[str, Any], str, Context], None]:
    """Object rule: timestamp property `second` is later than (or equal to) `first` when both are present."""
    relation = "later than" if strict else "later than or equal to"

    def check(obj: dict[str, Any], path: str, ctx: Context) -> None:
        a, b = obj.get(first), obj.get(second)
        if type(a) is str and type(b) is str and timestamps.check(a) is None and timestamps.check(b) is None:
            c = timestamps.compare(b, a)
            if c < 0 or (strict and c == 0):
                raise Invalid(f"{path}.{second}" if path else second, "timestamp-order",
                              f"({b}) must be {relation} {first} ({a})")

    return check


# --- formats -------------------------------------------------------------------------------------

_IPV4 = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
IPV4_VALUE = re.compile(_IPV4 + r"(?:/(?:3[0-2]|[12]\d|\d))?\Z")
_IPV6_PREFIX = re.compile(r"(?:12[0-8]|1[01]\d|[1-9]\d|\d)\Z")


def ipv4_value(value: Any, path: str, ctx: Context) -> None:
    string(value, path, ctx)
    if not IPV4_VALUE.match(value):
        raise Invalid(path, "format", f"'{_short(value)}' is not an IPv4 address or CIDR block")


def ipv6_value(value: Any, path: str, ctx: Context) -> None:
    string(value, path, ctx)
    addr, slash, prefix = value.partition("/")
    ok = True
    if slash and not _IPV6_PREFIX.match(prefix):
        ok = False
    else:
        try:
            ipaddress.IPv6Address(addr)
        except ValueError:
            ok = False
    if not ok:
        raise Invalid(path, "format", f"'{_short(value)}' is not an IPv6 address or CIDR block")


MAC_VALUE = regex(r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\Z", "a MAC-48 address in lowercase colon-separated form")

# RFC 3986 URI (scheme required). IP literals are checked with the ipaddress module.
_UNRES = r"A-Za-z0-9\-._~"
_SUB = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRES}{_SUB}:@]|{_PCT})"
_URI = re.compile(
    rf"(?P<scheme>[A-Za-z][A-Za-z0-9+\-.]*):"
    rf"(?:(?://(?:(?:[{_UNRES}{_SUB}:]|{_PCT})*@)?"
    rf"(?P<host>\[(?P<literal>[^\]/]*)\]|(?:[{_UNRES}{_SUB}]|{_PCT})*)"
    rf"(?::\d*)?(?:/{_PCHAR}*)*)"
    rf"|(?:/(?:{_PCHAR}+(?:/{_PCHAR}*)*)?)"
    rf"|(?:{_PCHAR}+(?:/{_PCHAR}*)*)"
    rf"|)"
    rf"(?:\?(?:{_PCHAR}|[/?])*)?"
    rf"(?:#(?:{_PCHAR}|[/?])*)?\Z"
)
_IPVFUTURE = re.compile(rf"v[0-9A-Fa-f]+\.[{_UNRES}{_SUB}:]+\Z")


def is_uri(value: str) -> bool:
    m = _URI.match(value)
    if m is None:
        return False
    literal = m.group("literal")
    if literal is not None:
        if _IPVFUTURE.match(literal):
            return True
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return False
    return True


def uri(value: Any, path: str, ctx: Context) -> None:
    string(value, path, ctx)
    if not is_uri(value):
        raise Invalid(path, "format", f"'{_short(value)}' is not an absolute URI (RFC 3986), e.g. https://example.org/x")


_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")


def is_hostname(value: str) -> bool:
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        return False
    for label in name.split("."):
        if not label.isascii():
            try:
                label = label.encode("idna").decode("ascii")
            except UnicodeError:
                return False
        if not _LABEL.match(label) or (label[2:4] == "--" and not label.startswith("xn--")):
            return False
    return True


def hostname(value: Any, path: str, ctx: Context) -> None:
    string(value, path, ctx)
    if not is_hostname(value):
        raise Invalid(path, "format", f"'{_short(value)}' is not a domain name (RFC 1034 / RFC 5890)")


EMAIL = regex(r"[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+\Z", "an e-mail address (local@domain, no display name)")

# Hash algorithms with a defined digest format (STIX 2.1 hashing-algorithm-ov).
HASH_FORMATS = {
    "MD5": re.compile(r"[a-fA-F0-9]{32}\Z"),
    "SHA-1": re.compile(r"[a-fA-F0-9]{40}\Z"),
    "SHA-256": re.compile(r"[a-fA-F0-9]{64}\Z"),
    "SHA-512": re.compile(r"[a-fA-F0-9]{128}\Z"),
    "SHA3-256": re.compile(r"[a-fA-F0-9]{64}\Z"),
    "SHA3-512": re.compile(r"[a-fA-F0-9]{128}\Z"),
    "SSDEEP": re.compile(r"[a-zA-Z0-9/+:.]{1,128}\Z"),
    "TLSH": re.compile(r"[a-zA-Z0-9]{70}\Z"),
}
_HASH_KEY = re.compile(r"[a-zA-Z0-9_-]{3,250}\Z")


def hashes(value: Any, path: str, ctx: Context) -> None:
    if type(value) is not dict:
        raise Invalid(path, "type", f"must be a dictionary of hashes, not {_kind(value)}")
    if not value:
        raise Invalid(path, "min-properties", "must hold at least one hash")
    for k, v in value.items():
        p = f"{path}.{k}"
        if not _HASH_KEY.match(k):
            raise Invalid(p, "hash-algorithm", f"'{_short(k)}' is not a hash algorithm name (3 to 250 of A-Z a-z 0-9 _ -)")
        if type(v) is not str:
            raise Invalid(p, "type", f"must be a string, not {_kind(v)}")
        fmt = HASH_FORMATS.get(k)
        if fmt is not None and not fmt.match(v):
            raise Invalid(p, "hash-format", f"'{_short(v)}' is not a valid {k} digest")
