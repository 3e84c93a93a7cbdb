"""RFC 8785 (JSON Canonicalization Scheme) serialisation of parsed STIX objects.

Signatures and the stored raw form of every object build on this. orjson with sorted keys
already produces the RFC 8785 form for the common case (integers within the IEEE-754 safe
range, keys whose UTF-8 order equals their UTF-16 order); anything else takes the exact path.
The exact path (`_jcs`) is the reference: tests check the two agree.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

_SORTED = orjson.OPT_SORT_KEYS
_SAFE_INT = 2**53


class CanonicalError(ValueError):
    """A value that has no RFC 8785 form (NaN, infinity, lone surrogates, non-JSON types)."""


def canonical(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON value."""
    if _fast_ok(value):
        return orjson.dumps(value, option=_SORTED)
    return _jcs(value).encode("utf-8", "strict")  # raises CanonicalError for values without a JSON form


def _fast_ok(value: Any) -> bool:
    """True when orjson's sorted output is already the canonical form (iterative: this is a hot path)."""
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        v = pop()
        t = type(v)
        if t is dict:
            for k, item in v.items():
                if type(k) is not str or (not k.isascii() and _utf16_order_differs(k)):
                    return False
                ti = type(item)
                if ti is str or ti is bool:
                    continue
                if ti is int:
                    if not -_SAFE_INT < item < _SAFE_INT:
                        return False
                elif ti is dict or ti is list:
                    push(item)
                else:
                    return False  # floats, None and anything unusual take the exact path
        elif t is list:
            for item in v:
                ti = type(item)
                if ti is dict or ti is list:
                    push(item)
                elif ti is int:
                    if not -_SAFE_INT < item < _SAFE_INT:
                        return False
                elif ti is not str and ti is not bool:
                    return False
        elif t is int:
            if not -_SAFE_INT < v < _SAFE_INT:
                return False
        elif t is not str and t is not bool:
            return False
    return True


def _utf16_order_differs(key: str) -> bool:
    # UTF-8/code-point order and UTF-16 order only disagree for characters from U+E000 upwards
    # when compared with supplementary-plane characters; be conservative.
    return any(ord(c) >= 0xE000 for c in key)


def _utf16_key(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise CanonicalError("string contains a lone surrogate, which has no UTF-8 form")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def es_number(x: float | int) -> str:
    """Format a number the way ECMAScript's Number.prototype.toString does (RFC 8785 §3.2.2.3)."""
    if isinstance(x, bool):
        raise CanonicalError("booleans are not numbers")
    f = float(x)
    if math.isnan(f) or math.isinf(f):
        raise CanonicalError("NaN and Infinity have no JSON form")
    if f == 0:
        return "0"
    sign = "-" if f < 0 else ""
    mant, _, exp_s = repr(abs(f)).partition("e")  # shortest round-trip digits
    ip, _, fp = mant.partition(".")
    all_digits = ip + fp
    stripped = all_digits.lstrip("0")
    # the value is 0.<digits> x 10**n
    n = len(ip) + int(exp_s or 0) - (len(all_digits) - len(stripped))
    digits = stripped.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        body = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return sign + body


def _jcs(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    t = type(value)
    if t is str:
        return _string(value)
    if t is int:
        return str(value) if -_SAFE_INT < value < _SAFE_INT else es_number(value)
    if t is float:
        return es_number(value)
    if t is dict:
        items = sorted(value.items(), key=lambda kv: _utf16_key(_check_key(kv[0])))
        return "{" + ",".join(_string(k) + ":" + _jcs(v) for k, v in items) + "}"
    if t is list or t is tuple:
        return "[" + ",".join(_jcs(v) for v in value) + "]"
    raise CanonicalError(f"{t.__name__} is not a JSON type")


def _check_key(k: Any) -> str:
    if type(k) is not str:
        raise CanonicalError("object keys must be strings")
    return k
