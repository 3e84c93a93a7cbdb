"""STIX timestamps: format and calendar checks, ordering keys, microsecond conversion."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kuroshio.stix import timestamps


def test_valid_and_invalid_timestamps() -> None:
    assert timestamps.check("2016-02-29T00:00:00Z") is None  # leap year
    assert timestamps.check("2000-02-29T23:59:59.123456789Z") is None
    for bad in ("2017-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2016-04-31T00:00:00Z", "2016-13-01T00:00:00Z",
                "2016-01-01T24:00:00Z", "2016-01-01T00:00:60Z", "2016-01-01 00:00:00Z", "2016-01-01T00:00:00",
                "2016-01-01T00:00:00+00:00", "2016-1-01T00:00:00Z", "2016-01-01T00:00:00.Z"):
        assert timestamps.check(bad) is not None, bad


def test_equal_instants_have_equal_keys() -> None:
    assert timestamps.key("2020-01-01T00:00:00Z") == timestamps.key("2020-01-01T00:00:00.000Z")
    assert timestamps.compare("2020-01-01T00:00:00.1Z", "2020-01-01T00:00:00.099999Z") == 1
    assert timestamps.compare("2020-01-01T00:00:00Z", "2020-01-01T00:00:00.000000001Z") == -1


@given(st.integers(min_value=0, max_value=4102444800 * 10**6))
def test_micros_round_trip(us: int) -> None:
    text = timestamps.from_micros(us)
    assert timestamps.check(text) is None
    assert timestamps.to_micros(text) == us
