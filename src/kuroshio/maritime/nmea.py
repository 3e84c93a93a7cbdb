"""AIS sentences as receivers write them: NMEA 0183 `!xxVDM`/`!xxVDO` with their checksums, NMEA 4.0 tag
blocks (`\\s:source,c:time,g:group*hh\\`), lines prefixed by a receive time (`[2018-05-11 03:50:03] `),
receive times after the checksum (`…*hh,1327992119157`), Gatehouse `$PGHP` time lines, and multi-part
messages reassembled per receiver, channel and sequence id even when several receivers interleave.

`Reader.feed(line)` yields `Payload`s — a whole AIS message's armoured payload with its receive time
and source — and counts every sentence it cannot use by reason (`Reader.skipped`); nothing raises.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

MAX_LINE = 4096  # longer lines are not NMEA
MAX_PENDING = 4096  # incomplete multi-part messages held at once (oldest dropped as orphans)

_PREFIX_TIME = re.compile(r"\[(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.\d+)?\]\s*")
_PAYLOAD_OK = re.compile(r"[0-9:;<=>?@A-W`a-w]*\Z")


class Payload(NamedTuple):
    """One AIS message's payload (six-bit armoured), with what the receiver said about it."""

    payload: str
    fill: int  # fill bits at the end of the last fragment
    time: float | None  # receive time, seconds since the epoch (None: the receiver did not say)
    source: str  # the receiver (tag block `s:`), else what the reader was given as the source
    channel: str
    own: bool  # VDO: the receiver's own vessel
    sentences: int  # how many sentences carried it


def checksum(body: str) -> int:
    """NMEA checksum: the XOR of the characters between the start character and '*'."""
    x = 0
    for c in body.encode("latin-1", "replace"):
        x ^= c
    return x


def checksum_ok(body: str, given: str) -> bool:
    try:
        return checksum(body) == int(given, 16)
    except ValueError:
        return False


def _tag_block(text: str, counts: Counter[str]) -> dict[str, str] | None:
    """The fields of a tag block's text (without the backslashes); None when it is not one."""
    body, star, cs = text.partition("*")
    if star and len(cs) >= 2 and not checksum_ok(body, cs[:2]):
        counts["tag-block-checksum"] += 1  # many feeds write *00: the sentence keeps its own checksum
    fields: dict[str, str] = {}
    for part in body.split(","):
        key, colon, value = part.partition(":")
        if not colon or not key:
            return None
        fields[key] = value
    return fields


def _epoch(value: str) -> float | None:
    """Unix time in seconds or milliseconds, as seconds."""
    try:
        t = float(value)
    except ValueError:
        return None
    if t > 1e11:  # milliseconds
        t /= 1000.0
    return t if 0 < t < 253402300800 else None


@dataclass
class _Pending:
    parts: list[str]
    count: int
    time: float | None
    source: str
    channel: str
    own: bool


@dataclass
class Reader:
    """Turns lines into AIS payloads; one per input stream (a file, a TCP feed, a UDP port)."""

    source: str = ""
    skipped: Counter[str] = field(default_factory=Counter)  # sentences that could not be used, by reason
    ignored: Counter[str] = field(default_factory=Counter)  # lines that are not AIS (GPS, comments, …)
    sentences: int = 0
    _pending: dict[tuple[str, str, str, int], _Pending] = field(default_factory=dict)
    _next_time: float | None = None  # from a $PGHP line, for the sentence that follows

    def feed(self, line: str | bytes) -> list[Payload]:
        """The complete messages this line finishes (usually none or one)."""
        if isinstance(line, bytes):
            line = line.decode("latin-1")
        line = line.strip()
        if not line:
            return []
        if len(line) > MAX_LINE:
            self.skipped["too-long"] += 1
            return []
        time: float | None = None
        m = _PREFIX_TIME.match(line) if line[0] == "[" else None
        if m is not None:
            y, mo, d, h, mi, s = (int(x) for x in m.groups())
            try:
                time = float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))
            except (ValueError, OverflowError):
                time = None
            line = line[m.end():]
        out: list[Payload] = []
        # a line may hold several tag block + sentence pairs (some providers write them so)
        while line:
            tags: dict[str, str] | None = None
            if line.startswith("\\"):
                end = line.find("\\", 1)
                if end < 0:
                    self.skipped["bad-tag-block"] += 1
                    return out
                tags = _tag_block(line[1:end], self.skipped)
                line = line[end + 1:]
                if tags is None:
                    self.skipped["bad-tag-block"] += 1
                    nxt = line.find("\\")
                    line = line[nxt:] if nxt >= 0 else ""
                    continue
            nxt = line.find("\\", 1)
            sentence, line = (line, "") if nxt < 0 else (line[:nxt], line[nxt:])
            got = self._sentence(sentence, tags, time)
            if got is not None:
                out.append(got)
        return out

    def _sentence(self, text: str, tags: dict[str, str] | None, time: float | None) -> Payload | None:
        if not text.startswith("!"):
            if text.startswith("$PGHP"):
                self._gatehouse(text)
            elif text.startswith("#"):
                self.ignored["comment"] += 1
            else:
                self.ignored[text[:6] if text.startswith("$") else "other"] += 1
            return None
        kind = text[3:6]
        if kind not in ("VDM", "VDO"):
            self.ignored[text[:6]] += 1
            return None
        self.sentences += 1
        star = text.find("*")
        if star < 0:
            self.skipped["no-checksum"] += 1
            return None
        cs, _, after = text[star + 1:].partition(",")
        if len(cs) < 2 or not checksum_ok(text[1:star], cs[:2]):
            self.skipped["bad-checksum"] += 1
            return None
        fields = text[1:star].split(",")
        if len(fields) != 7:
            self.skipped["wrong-field-count"] += 1
            return None
        _, count_s, number_s, seq, channel, payload, fill_s = fields
        try:
            count, number, fill = int(count_s), int(number_s), int(fill_s)
        except ValueError:
            self.skipped["bad-fragment-numbers"] += 1
            return None
        if not (1 <= count <= 9 and 1 <= number <= count) or not 0 <= fill <= 5:
            self.skipped["bad-fragment-numbers"] += 1
            return None
        if not payload:
            self.skipped["empty-payload"] += 1
            return None
        if not _PAYLOAD_OK.match(payload):
            self.skipped["bad-payload-character"] += 1
            return None
        source = self.source
        if tags is not None:
            source = tags.get("s", source)
            if "c" in tags:
                time = _epoch(tags["c"]) or time
        if time is None:  # a Gatehouse $PGHP line gives the message's own time ...
            time = self._next_time
        if time is None and after:  # ... before the (later) time it reached the ground station
            time = _epoch(after.split(",")[-1])
        self._next_time = None
        own = kind == "VDO"
        if count == 1:
            return Payload(payload, fill, time, source, channel, own, 1)
        # NMEA 4.0 groups (g:part-count-id) tie the fragments together; the later ones often carry no s:
        group = tags.get("g") if tags is not None else None
        key = ("g", group.rsplit("-", 1)[-1], "", count) if group else (source, channel, seq, count)
        pending = self._pending.get(key)
        if number == 1:
            if pending is not None:
                self.skipped["orphan-fragment"] += len(pending.parts)
            if len(self._pending) >= MAX_PENDING:
                oldest = next(iter(self._pending))
                self.skipped["orphan-fragment"] += len(self._pending.pop(oldest).parts)
            self._pending[key] = _Pending([payload], count, time, source, channel, own)
            return None
        if pending is None or len(pending.parts) != number - 1:
            self.skipped["orphan-fragment"] += 1
            if pending is not None:
                self.skipped["orphan-fragment"] += len(self._pending.pop(key).parts)
            return None
        pending.parts.append(payload)
        if number < count:
            return None
        del self._pending[key]
        return Payload("".join(pending.parts), fill, pending.time if pending.time is not None else time,
                       pending.source, channel, own, count)

    def _gatehouse(self, text: str) -> None:
        """`$PGHP,1,YYYY,M,D,h,m,s,ms,…`: the receive time of the sentence that follows."""
        parts = text.split(",")
        if len(parts) > 8 and parts[1] == "1":
            try:
                y, mo, d, h, mi, s, ms = (int(x) for x in parts[2:9])
                self._next_time = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + ms / 1000.0
            except (ValueError, OverflowError):
                self._next_time = None
        self.ignored["$PGHP"] += 1

    def close(self) -> None:
        """End of the stream: fragments still waiting for their other parts are orphans."""
        for pending in self._pending.values():
            self.skipped["orphan-fragment"] += len(pending.parts)
        self._pending.clear()
