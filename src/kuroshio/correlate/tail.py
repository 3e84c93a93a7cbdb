"""Following a log the way a sensor writes it: lines as they are appended, across rotation.

A sensor appends to its log, and a rotation moves the file away (a new file appears under the
name, or the file is truncated and starts again). `follow(path, stop)` yields every complete line
once: what is left in the old file is read before the new one is opened, and a last line without
its newline is given up at rotation, not lost.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 16
MAX_PARTIAL = 1 << 20  # a "line" longer than this is cut (the readers count it as malformed)


def follow(path: Path, stop: threading.Event, *, poll: float = 0.25, from_start: bool = True) -> Iterator[bytes]:
    """Lines of `path` (without newlines) as they are written, until `stop` is set."""
    f: BinaryIO | None = None
    ino: int | None = None
    partial = b""
    first = True
    while not stop.is_set():
        if f is None:
            try:
                f = open(path, "rb")  # noqa: SIM115 - kept open across iterations
            except (FileNotFoundError, PermissionError):
                stop.wait(poll)
                continue
            ino = os.fstat(f.fileno()).st_ino
            if first and not from_start:
                f.seek(0, os.SEEK_END)
            first = False
        chunk = f.read(CHUNK)
        if chunk:
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            if len(partial) > MAX_PARTIAL:
                lines.append(partial)
                partial = b""
            yield from lines
            continue
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        rotated = st is not None and st.st_ino != ino
        truncated = st is not None and not rotated and st.st_size < f.tell()
        if rotated or truncated:
            if rotated:  # what the writer added to the old file before it moved on
                rest = f.read()
                if rest:
                    lines = (partial + rest).split(b"\n")
                    partial = lines.pop()
                    yield from lines
            if partial:
                yield partial
                partial = b""
            f.close()
            f = None
            continue
        stop.wait(poll)
    if f is not None:
        f.close()
