"""AIS messages (ITU-R M.1371-5) from their six-bit payloads: the position, static and voyage reports a
maritime picture needs — types 1, 2, 3 (class A position), 4 and 11 (base station / UTC), 5 (static
and voyage), 18 and 19 (class B position), 21 (aid to navigation), 24 (class B static, parts A and B)
and 27 (long-range position). Other types are recognised by type and MMSI only.

Field names, units and conventions are those of pyais, the Python decoder this one is tested against
field by field on the real recordings: degrees rounded to 1e-6, knots and degrees in tenths,
not-available values kept as transmitted (91 / 181 / 102.3 / 360 / 511), strings cut at the first '@'
and stripped. Speed comes from decoding the whole payload into one integer in C (each six-bit
character is two octal digits), reading fields with shifts, and text through base64.
"""

from __future__ import annotations

import base64
import math
from typing import Any

# each payload character as two octal digits (its six bits): one int() call decodes the payload
_OCTAL = {c: f"{(c - 48 if c - 48 < 40 else c - 56):02o}" for c in range(48, 120) if c not in range(88, 96)}
_SIXBIT_TEXT = "@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_ !\"#$%&'()*+,-./0123456789:;<=>?"
_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_TO_AIS = bytes.maketrans(_B64, _SIXBIT_TEXT.encode())


class DecodeError(ValueError):
    """A payload that is not a decodable AIS message; `reason` is what it is counted under."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Bits:
    """A payload as one integer, read by bit position."""

    __slots__ = ("n", "size")

    def __init__(self, payload: str, fill: int) -> None:
        try:
            self.n = int(payload.translate(_OCTAL), 8)
        except ValueError:
            raise DecodeError("bad-payload-character") from None
        self.size = 6 * len(payload) - fill
        self.n >>= fill

    def u(self, start: int, width: int) -> int:
        return (self.n >> (self.size - start - width)) & ((1 << width) - 1)

    def s(self, start: int, width: int) -> int:
        v = self.u(start, width)
        return v - (1 << width) if v >> (width - 1) else v

    def b(self, start: int) -> bool:
        return bool(self.u(start, 1))

    def text(self, start: int, width: int) -> str:
        """Six-bit text, cut at the first '@' and stripped. The field's bits go through base64 (which
        also writes six bits per character) and one translation to the AIS alphabet, all in C."""
        chars = max(0, min(width, self.size - start)) // 6
        if not chars:
            return ""
        pad = -chars % 4
        v = self.u(start, chars * 6) << (6 * pad)
        text = base64.b64encode(v.to_bytes((chars + pad) * 3 // 4, "big"))[:chars].translate(_B64_TO_AIS).decode()
        return text.split("@", 1)[0].strip()


def _deg(raw: int) -> float:
    return round(raw / 600000.0, 6)


def _turn(raw: int) -> float | None:
    if raw == -128:
        return None  # not available
    if raw in (0, 127, -127):
        return float(raw)  # 0, or turning faster than 5 degrees per 30 s with no turn indicator
    return math.copysign(round((raw / 4.733) ** 2), raw)


def _need(bits: Bits, size: int) -> None:
    if bits.size < size:
        raise DecodeError("too-short")


def _position_a(b: Bits, m: dict[str, Any]) -> None:
    _need(b, 149)
    m["status"] = b.u(38, 4)
    m["turn"] = _turn(b.s(42, 8))
    _motion(b, 50, m)
    m["maneuver"] = b.u(143, 2)
    m["raim"] = b.b(148)


def _motion(b: Bits, start: int, m: dict[str, Any]) -> None:
    """Speed, accuracy, position, course, heading and time stamp: laid out alike in class A and B reports."""
    m["speed"] = b.u(start, 10) / 10.0
    m["accuracy"] = b.b(start + 10)
    m["lon"] = _deg(b.s(start + 11, 28))
    m["lat"] = _deg(b.s(start + 39, 27))
    m["course"] = b.u(start + 66, 12) / 10.0
    m["heading"] = b.u(start + 78, 9)
    m["second"] = b.u(start + 87, 6)


def _base_station(b: Bits, m: dict[str, Any]) -> None:
    _need(b, 149)
    m["year"] = b.u(38, 14)
    m["month"] = b.u(52, 4)
    m["day"] = b.u(56, 5)
    m["hour"] = b.u(61, 5)
    m["minute"] = b.u(66, 6)
    m["second"] = b.u(72, 6)
    m["accuracy"] = b.b(78)
    m["lon"] = _deg(b.s(79, 28))
    m["lat"] = _deg(b.s(107, 27))
    m["epfd"] = b.u(134, 4)
    m["raim"] = b.b(148)


def _dimensions(b: Bits, start: int, m: dict[str, Any]) -> None:
    m["to_bow"] = b.u(start, 9)
    m["to_stern"] = b.u(start + 9, 9)
    m["to_port"] = b.u(start + 18, 6)
    m["to_starboard"] = b.u(start + 24, 6)


def _static_voyage(b: Bits, m: dict[str, Any]) -> None:
    _need(b, 422)
    m["ais_version"] = b.u(38, 2)
    m["imo"] = b.u(40, 30)
    m["callsign"] = b.text(70, 42)
    m["shipname"] = b.text(112, 120)
    m["ship_type"] = b.u(232, 8)
    _dimensions(b, 240, m)
    m["epfd"] = b.u(270, 4)
    m["month"] = b.u(274, 4)
    m["day"] = b.u(278, 5)
    m["hour"] = b.u(283, 5)
    m["minute"] = b.u(288, 6)
    m["draught"] = b.u(294, 8) / 10.0
    m["destination"] = b.text(302, 120)


def _position_b(b: Bits, m: dict[str, Any]) -> None:
    _need(b, 139)
    _motion(b, 46, m)


def _position_b_extended(b: Bits, m: dict[str, Any]) -> None:
    _position_b(b, m)
    _need(b, 301)
    m["shipname"] = b.text(143, 120)
    m["ship_type"] = b.u(263, 8)
    _dimensions(b, 271, m)
    m["epfd"] = b.u(301, 4) if b.size >= 305 else 0


def _aid_to_navigation(b: Bits, m: dict[str, Any]) -> None:
    _need(b, 272)
    m["aid_type"] = b.u(38, 5)
    m["name"] = b.text(43, 120)
    m["accuracy"] = b.b(163)
    m["lon"] = _deg(b.s(164, 28))
    m["lat"] = _deg(b.s(192, 27))
    _dimensions(b, 219, m)
    m["off_position"] = b.b(259)
    m["virtual_aid"] = b.b(269)


def _static_b(b: Bits, m: dict[str, Any]) -> None:
    _need(b, 40)
    part = b.u(38, 2)
    m["partno"] = part
    if part == 0:
        _need(b, 160)
        m["shipname"] = b.text(40, 120)
    elif part == 1:
        _need(b, 162)
        m["ship_type"] = b.u(40, 8)
        m["vendorid"] = b.text(48, 18)
        m["callsign"] = b.text(90, 42)
        if m["mmsi"] // 10_000_000 == 98:  # an auxiliary craft names its mother ship instead of its size
            m["mothership_mmsi"] = b.u(132, 30)
        else:
            _dimensions(b, 132, m)
    else:
        raise DecodeError("bad-part-number")


def _long_range(b: Bits, m: dict[str, Any]) -> None:
    _need(b, 95)
    m["accuracy"] = b.b(38)
    m["raim"] = b.b(39)
    m["status"] = b.u(40, 4)
    m["lon"] = round(b.s(44, 18) / 600.0, 6)
    m["lat"] = round(b.s(62, 17) / 600.0, 6)
    m["speed"] = float(b.u(79, 6))
    m["course"] = float(b.u(85, 9))


_DECODERS = {
    1: _position_a, 2: _position_a, 3: _position_a, 4: _base_station, 11: _base_station, 5: _static_voyage,
    18: _position_b, 19: _position_b_extended, 21: _aid_to_navigation, 24: _static_b, 27: _long_range,
}
POSITION_TYPES = frozenset({1, 2, 3, 18, 19, 27})


def decode(payload: str, fill: int = 0) -> dict[str, Any]:
    """The message in a whole payload; DecodeError with the reason when it cannot be read."""
    if not payload:
        raise DecodeError("empty-payload")
    b = Bits(payload, fill)
    if b.size < 38:
        raise DecodeError("too-short")
    msg_type = b.u(0, 6)
    m: dict[str, Any] = {"msg_type": msg_type, "repeat": b.u(6, 2), "mmsi": b.u(8, 30)}
    decoder = _DECODERS.get(msg_type)
    if decoder is not None:
        decoder(b, m)
    elif not 1 <= msg_type <= 27:
        raise DecodeError("unknown-type")
    return m
