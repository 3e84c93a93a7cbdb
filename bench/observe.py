"""Sensor logs through the matcher: the real Suricata EVE sample, replayed, against 100,000 indicators.

Measures lines/s on one core for reading alone (JSON → STIX cyber-observables with deterministic ids)
and for reading and matching (the index of bench/correlate.py's indicator mix, plus indicators naming
values of the sample so that matches happen). Real logs repeat their addresses and names, so this is
the figure a sensor feed sees; bench/correlate.py measures matching alone on values that never repeat.

    python bench/observe.py                 # 200,000 lines
    python bench/observe.py --lines 50000 --indicators 10000
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from correlate import make_indicators
from kuroshio.correlate.index import Index
from kuroshio.correlate.observations import read_eve
from kuroshio.correlate.service import observed

DATA = Path(os.environ.get("KUROSHIO_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
EVE = DATA / "logs" / "suricata" / "surevego_eve.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--indicators", type=int, default=100_000)
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    if not EVE.is_file():
        sys.exit(f"the real Suricata sample is absent ({EVE}): set KUROSHIO_DATA to the shared data folder")
    sample = [line for line in EVE.read_bytes().splitlines() if line.strip()]
    lines = (sample * (args.lines // len(sample) + 1))[: args.lines]
    indicators, _ = make_indicators(args.indicators, random.Random(7))
    for value in ("prod.debian.map.fastly.net", "security.debian.org", "172.21.3.254"):
        kind = "ipv4-addr" if value[0].isdigit() else "domain-name"
        indicators.append({"type": "indicator", "id": f"indicator--{uuid.uuid4()}", "modified": "2026-01-01T00:00:00Z",
                           "pattern": f"[{kind}:value = '{value}']", "pattern_type": "stix"})
    index = Index()
    for ind in indicators:
        index.add(ind)
    gc.collect()
    gc.freeze()  # as the correlation service does after taking in many indicators
    read_rates, match_rates, hits = [], [], 0
    for _ in range(args.passes):
        t = time.perf_counter()
        n = sum(1 for _ in read_eve(lines))
        read_rates.append(len(lines) / (time.perf_counter() - t))
        t = time.perf_counter()
        hits = 0
        batch = []
        for obs in read_eve(lines):
            o = observed(obs)
            if o is not None:
                batch.append(o)
                if len(batch) == 1000:  # as the correlation service matches
                    hits += sum(len(h) for h in index.match_many(batch))
                    batch = []
        hits += sum(len(h) for h in index.match_many(batch))
        match_rates.append(len(lines) / (time.perf_counter() - t))
    print(f"{len(lines):,} EVE lines (the {len(sample)}-line real sample replayed, {n:,} observations), "
          f"{len(indicators):,} indicators, one core")
    print(f"read:          {statistics.median(read_rates):,.0f} lines/s (median of {args.passes})")
    print(f"read + match:  {statistics.median(match_rates):,.0f} lines/s, {hits:,} matches per pass")
    ready = [o for o in (observed(x) for x in read_eve(lines)) if o is not None]
    only = []
    for _ in range(args.passes):
        t = time.perf_counter()
        for start in range(0, len(ready), 1000):
            index.match_many(ready[start:start + 1000])
        only.append(len(ready) / (time.perf_counter() - t))
    print(f"match alone:   {statistics.median(only):,.0f} observations/s (the log's values repeat, as real traffic's do)")


if __name__ == "__main__":
    main()
