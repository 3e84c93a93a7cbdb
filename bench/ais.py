"""AIS: pyais decoding alone against Kuroshio's whole pipeline, same run, same sentences.

The real recordings in ../shared/data/ais (every file, multi-part and class B included) are looped to
at least 1,000,000 messages, each loop an independent replay. pyais
decodes them (sentence parsing, reassembly of multi-part messages with its own helper, decoding);
Kuroshio runs everything it does with an AIS feed: sentence parsing and reassembly, decoding,
tracks, every detector (with the packaged GLOBE land mask and the island-chain gates), and the STIX
objects of the events (without storing them: the store is measured elsewhere). Messages/s on one
core, median of the passes; then memory with 100,000 vessels tracked (synthetic MMSIs).

    python bench/ais.py                       # 1,000,000 messages, 3 passes
    python bench/ais.py --messages 200000 --passes 1
"""

from __future__ import annotations

import argparse
import gc
import gzip
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

from kuroshio.maritime.decode import DecodeError, decode
from kuroshio.maritime.geo import GlobeLand, Land, gates_of_first_island_chain
from kuroshio.maritime.intel import event_object
from kuroshio.maritime.nmea import Reader
from kuroshio.maritime.picture import Params, Picture
from kuroshio.maritime.scenario import position_payload, sentences

DATA = Path(os.environ.get("KUROSHIO_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
ME = "identity--44f4350d-4f0a-4e4d-abd4-a9e94b936bc9"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def recordings() -> list[str]:
    lines: list[str] = []
    for f in sorted((DATA / "ais").glob("*")):
        if f.suffix in (".json", ".jsonl", ".chk"):
            continue
        with (gzip.open(f, "rt", errors="replace") if f.suffix == ".gz" else open(f, errors="replace")) as fp:
            lines += [line.rstrip("\n") for line in fp]
    return lines


def run_pyais(lines: list[str], loops: int) -> tuple[float, int]:
    from pyais import decode as pyais_decode
    from pyais.stream import IterMessages

    n = 0
    t = time.perf_counter()
    for _ in range(loops):
        for msg in IterMessages(line.encode("latin-1", "replace") for line in lines):
            try:
                msg.decode()
                n += 1
            except Exception:
                pass
    _ = pyais_decode
    return n / (time.perf_counter() - t), n


def run_ours(lines: list[str], loops: int, land: Land | None) -> tuple[float, int, dict[str, int], int]:
    """Each loop is an independent replay (a fresh picture: the same vessels again would otherwise
    all "go dark" between loops); the land mask and its cache are shared, as in a long-running node."""
    n = events = 0
    kinds: dict[str, int] = {}
    t = time.perf_counter()
    for loop in range(loops):
        picture = Picture(Params(), gates_of_first_island_chain(), land)
        reader = Reader(source=f"loop{loop}")
        for line in lines:
            for p in reader.feed(line):
                try:
                    msg = decode(p.payload, p.fill)
                except DecodeError:
                    continue
                n += 1
                for e in picture.message(msg, p.time, p.source) + picture.tick():
                    event_object(e, picture.vessels, picture.params, node_identity=ME, markings=[],
                                 modified="2026-01-01T00:00:00.000Z")
                    kinds[e.kind] = kinds.get(e.kind, 0) + 1
                    events += 1
        reader.close()
    return n / (time.perf_counter() - t), n, kinds, events


def memory_for(vessels: int) -> float:
    gc.collect()
    before = rss_mb()
    picture = Picture(Params(), gates_of_first_island_chain(), None)
    reader = Reader()
    r = random.Random(3)
    t0 = 1_767_225_600
    for i in range(vessels):
        mmsi = 200_000_000 + i * 7
        payload, fill = position_payload(mmsi, r.uniform(-60, 60), r.uniform(-180, 180), r.uniform(0, 20), r.uniform(0, 359), 0)
        for line in sentences(payload, fill, time=t0 + i * 0.01, source="mem"):
            for p in reader.feed(line):
                picture.message(decode(p.payload, p.fill), p.time, p.source)
    gc.collect()
    used = rss_mb() - before
    assert len(picture.vessels) == vessels
    return used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--vessels", type=int, default=100_000)
    args = ap.parse_args()
    if not (DATA / "ais").is_dir():
        sys.exit(f"the real AIS recordings are absent ({DATA / 'ais'}): set KUROSHIO_DATA to the shared data folder")
    lines = recordings()
    per_loop = sum(1 for line in lines if "VDM" in line or "VDO" in line)
    loops = max(1, -(-args.messages // max(1, int(per_loop * 0.95))))
    land = GlobeLand()
    print(f"{len(lines):,} lines of real recordings, looped {loops} times; land mask: GLOBE 1 km; one core")
    ref, ours = [], []
    for _ in range(args.passes):
        rate, n_ref = run_pyais(lines, loops)
        ref.append(rate)
        rate, n_ours, kinds, events = run_ours(lines, loops, land)
        ours.append(rate)
    print(f"pyais decode alone:         {statistics.median(ref):>9,.0f} messages/s ({n_ref:,} messages)")
    print(f"kuroshio, whole pipeline:   {statistics.median(ours):>9,.0f} messages/s ({n_ours:,} messages, "
          f"{events:,} events: {', '.join(f'{k} {v:,}' for k, v in sorted(kinds.items()))})")
    print(f"ratio (kuroshio pipeline / pyais decode): {statistics.median(ours) / statistics.median(ref):.2f}")
    print(f"memory with {args.vessels:,} vessels tracked: +{memory_for(args.vessels):.0f} MB")


if __name__ == "__main__":
    main()
