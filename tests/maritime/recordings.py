"""The real AIS recordings of the shared data folder, for the maritime tests (skipped where absent)."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path

from kuroshio.maritime.nmea import Payload, Reader

DATA = Path(os.environ.get("KUROSHIO_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
AIS = DATA / "ais"


def recording_files() -> list[Path]:
    """Every recording (not the expected-decode files beside some of them)."""
    if not AIS.is_dir():
        return []
    return [f for f in sorted(AIS.glob("*")) if f.suffix not in (".json", ".jsonl", ".chk")]


def payloads(path: Path, reader: Reader) -> Iterator[Payload]:
    """The whole messages a recording holds, read line by line (gzip or plain)."""
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fp:
        for line in fp:
            yield from reader.feed(line)
    reader.close()
