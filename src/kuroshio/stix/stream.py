"""Incremental reading of the objects of a STIX bundle or TAXII envelope of any size.

Only the top-level "objects" array is split, element by element, without holding the whole
document in memory; each element is parsed with orjson. Scanning jumps between structural
characters with compiled regular expressions, so it runs at C speed over string contents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import IO, Any

import orjson

_STRUCT = re.compile(rb'["{}\[\]:,]')
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


class StreamError(ValueError):
    """The input is not a JSON bundle/envelope; the message gives the byte offset."""


def iter_objects(fp: IO[bytes], *, chunk_size: int = 1 << 20,
                 progress: Callable[[int], None] | None = None) -> Iterator[Any]:
    """Yield each element of the top-level "objects" array of the JSON document in `fp`.

    A document that is a single STIX object (no "objects" array) yields that object; a top-level
    JSON array yields its elements.
    """
    buf = b""
    base = 0  # file offset of buf[0]
    pos = 0
    depth = 0
    eof = False
    in_array = False  # inside the top-level "objects" array
    array_done = False
    last_key: bytes | None = None
    expect_value_for: bytes | None = None
    elem_start: int | None = None
    top_is_array = False
    first = True
    whole: list[bytes] = []  # fallback for a document without an "objects" array

    def more() -> bool:
        nonlocal buf, base, pos, eof, elem_start
        if eof:
            return False
        data = fp.read(chunk_size)
        if progress is not None:
            progress(len(data))
        if not data:
            eof = True
            return False
        keep = elem_start if elem_start is not None else pos
        if not array_done and not in_array and not top_is_array:
            whole.append(buf[:keep])
        base += keep
        buf = buf[keep:] + data
        pos -= keep
        if elem_start is not None:
            elem_start -= keep
        return True

    while True:
        m = _STRUCT.search(buf, pos)
        if m is None:
            if not more():
                break
            continue
        i = m.start()
        c = buf[i:i + 1]
        if first:
            head = buf[:i].strip()
            if head:
                raise StreamError(f"byte {base}: the document does not start with a JSON object or array")
            top_is_array = c == b"["
            first = False
        if c == b'"':
            s = _STRING.match(buf, i)
            if s is None or (s.end() == len(buf) and not eof):
                if not more():
                    raise StreamError(f"byte {base + i}: unterminated string")
                continue
            if depth == 1 and not in_array and not top_is_array:
                last_key = s.group()
            pos = s.end()
            continue
        pos = i + 1
        if c == b":":
            if depth == 1 and last_key is not None:
                expect_value_for = last_key
            continue
        if c == b",":
            continue
        if c in (b"{", b"["):
            if (in_array and depth == 2 and elem_start is None) or (top_is_array and depth == 1 and elem_start is None):
                elem_start = i
            if depth == 1 and c == b"[" and expect_value_for == b'"objects"' and not top_is_array:
                in_array = True
            depth += 1
            expect_value_for = None
            continue
        # closing bracket
        depth -= 1
        if depth < 0:
            raise StreamError(f"byte {base + i}: unbalanced '{c.decode()}'")
        if elem_start is not None and ((in_array and depth == 2) or (top_is_array and depth == 1)):
            try:
                yield orjson.loads(buf[elem_start:pos])
            except orjson.JSONDecodeError as exc:
                raise StreamError(f"byte {base + elem_start}: an object is not valid JSON ({exc})") from None
            elem_start = None
            buf = buf[pos:]
            base += pos
            pos = 0
        elif in_array and depth == 1:
            in_array = False
            array_done = True
        if depth == 0:
            break
    if depth != 0:
        raise StreamError(f"byte {base + pos}: the document ends before it is complete")
    if first:
        raise StreamError("the document is empty")
    if not array_done and not top_is_array:
        whole.append(buf[:pos])
        try:
            doc = orjson.loads(b"".join(whole))
        except orjson.JSONDecodeError as exc:
            raise StreamError(f"the document is not valid JSON ({exc})") from None
        if isinstance(doc, dict) and "objects" not in doc:
            yield doc
