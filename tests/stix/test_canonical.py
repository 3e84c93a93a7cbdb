"""RFC 8785 canonical JSON: the RFC's own examples, and the fast path against the exact path."""

from __future__ import annotations

import math

import orjson
from hypothesis import given
from hypothesis import strategies as st

from kuroshio.stix.canonical import CanonicalError, _jcs, canonical, es_number


def test_rfc8785_number_examples() -> None:
    # RFC 8785 appendix B / section 3.2.2.3 (ECMAScript Number serialisation)
    cases = [
        (0.0, "0"), (-0.0, "0"), (1.0, "1"), (4.5, "4.5"), (0.002, "0.002"), (1e-7, "1e-7"), (1e-6, "0.000001"),
        (1e20, "100000000000000000000"), (1e21, "1e+21"), (1e30, "1e+30"), (333333333.33333329, "333333333.3333333"),
        (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"), (-1.5, "-1.5"),
        (9007199254740992.0, "9007199254740992"), (295147905179352830000.0, "295147905179352830000"),
    ]
    for value, text in cases:
        assert es_number(value) == text, value


def test_rfc8785_sorts_keys_by_utf16_code_units() -> None:
    obj = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
           "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control",
           "\u00f6": "Latin Small Letter O With Diaeresis"}
    keys = list(orjson.loads(canonical(obj)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_escaping_and_structure() -> None:
    value = {"b": [True, None, "\u2028\x1f\"\\/\n"], "a": {"y": 1, "x": 2.5}}
    assert canonical(value) == b'{"a":{"x":2.5,"y":1},"b":[true,null,"\xe2\x80\xa8\\u001f\\"\\\\/\\n"]}'


def test_rejects_values_without_a_json_form() -> None:
    for bad in (math.nan, math.inf, {"a": -math.inf}):
        try:
            canonical(bad)
        except CanonicalError:
            continue
        raise AssertionError(f"{bad!r} was serialised")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_fast_path_equals_exact_path_and_round_trips(value: object) -> None:
    fast = canonical(value)
    assert fast == _jcs(value).encode()
    again = orjson.loads(fast)
    assert canonical(again) == fast  # idempotent
