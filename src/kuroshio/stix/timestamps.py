"""STIX 2.1 timestamps: format check, calendar check, ordering keys and current time."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

# YYYY-MM-DDTHH:mm:ss[.s+]Z, UTC only (STIX 2.1 part 1, section 3.2). Leap seconds are not
# representable by the ordering used here (nor by the OASIS validator), so :60 is rejected.
_TS = re.compile(r"(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.(\d+))?Z\Z")
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
FRACTION_DIGITS = 9  # ordering keys keep nanoseconds


_checked: dict[str, str | None] = {}  # feeds repeat timestamps: remember recent verdicts
_UNSEEN = "unseen"


def check(value: str) -> str | None:
    """Return None when `value` is a valid STIX timestamp, else the reason it is not."""
    verdict = _checked.get(value, _UNSEEN)
    if verdict is _UNSEEN:
        verdict = _check(value)
        if len(_checked) >= 65536:
            _checked.clear()
        _checked[value] = verdict
    return verdict


_checked_millis: dict[str, str | None] = {}


def check_millis(value: str) -> str | None:
    """Like check(), and the timestamp must have at least millisecond precision (created, modified)."""
    verdict = _checked_millis.get(value, _UNSEEN)
    if verdict is _UNSEEN:
        verdict = check(value)
        if verdict is None and fraction_digits(value) < 3:
            verdict = "must be precise to at least the millisecond"
        if len(_checked_millis) >= 65536:
            _checked_millis.clear()
        _checked_millis[value] = verdict
    return verdict


def _check(value: str) -> str | None:
    m = _TS.match(value)
    if m is None:
        return "is not a timestamp of the form YYYY-MM-DDTHH:mm:ss[.s+]Z (UTC)"
    day = int(m.group(3))
    if day > 28:
        month = int(m.group(2))
        limit = _MONTH_DAYS[month]
        if month == 2:
            year = int(m.group(1))
            if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
                limit = 29
        if day > limit:
            return f"names day {day} of a month that has {limit} days"
    return None


def fraction_digits(value: str) -> int:
    """Number of sub-second digits in a (valid) timestamp."""
    dot = value.find(".", 19)
    return 0 if dot < 0 else len(value) - dot - 2


def key(value: str) -> str:
    """Fixed-width ordering key of a valid timestamp: equal instants give equal keys."""
    frac = value[20:-1] if len(value) > 20 else ""
    return value[:19] + "." + (frac + "000000000")[:FRACTION_DIGITS] + "Z"


def compare(a: str, b: str) -> int:
    ka, kb = key(a), key(b)
    return (ka > kb) - (ka < kb)


def from_micros(us: int) -> str:
    """Render microseconds since the epoch as a STIX/TAXII timestamp with 6 fractional digits."""
    secs, frac = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:06d}Z"


def to_micros(value: str) -> int:
    """Microseconds since the epoch of a valid timestamp (digits beyond microseconds are dropped)."""
    dt = datetime(
        int(value[0:4]), int(value[5:7]), int(value[8:10]),
        int(value[11:13]), int(value[14:16]), int(value[17:19]), tzinfo=UTC,
    )
    frac = value[20:-1] if len(value) > 20 else ""
    micros = int((frac + "000000")[:6]) if frac else 0
    return (int(dt.timestamp()) * 1_000_000) + micros


def now_micros() -> int:
    return time.time_ns() // 1000


def millis(us: int) -> str:
    """Microseconds since the epoch as a timestamp with millisecond precision (STIX `created`/`modified`)."""
    return from_micros(us - us % 1000)[:23] + "Z"


def now() -> str:
    """The current time with millisecond precision, as STIX `created`/`modified` want it."""
    return millis(now_micros())


def version_after(previous: str, us: int | None = None) -> str:
    """A `modified` for a new version: `us` (default now) in milliseconds, or one millisecond after
    `previous` when that is not later (a version must be later than the one it replaces)."""
    us = now_micros() if us is None else us
    if previous:
        us = max(us, to_micros(previous) + 1000)
    return millis(us)
