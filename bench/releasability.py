"""The price of releasability: paging as a reader who sees half the objects, against an admin who sees all.

One node (SQLite), one run. N indicators (default 100,000) are stored as TWN, alternately TLP:GREEN
(visible to JPN, a partner in TWN's community) and TLP:AMBER (TWN only); one in ten carries a
granular TLP:RED marking on its description, removed from JPN's copy. Ingest goes through the one
way in (validation, audience resolution, audit), timed per block of 10,000 to show it stays flat.
Then `kuroshio serve` answers and a sequential httpx client pages the whole collection (limit
1,000, following `next`) as TWN's admin and as JPN's reader, alternately, several rounds.

Enforcement costs what the reader's query does beyond the admin's: skip the rows it may not see
(the reader's index walk reads two rows per row served) and rewrite granular-marked objects. The
overhead is the reader's time per object served over the admin's, minus one. Medians are printed.

    python bench/releasability.py                   # 100,000 objects, 5 rounds
    python bench/releasability.py --objects 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from kuroshio.ingest import ingest
from kuroshio.markings.definitions import TLP2
from kuroshio.node import Node
from kuroshio.principals import Role

TAXII = "application/taxii+json;version=2.1"
TS = "2026-01-01T00:00:00.000Z"
PASSWORD = "bench-password-1"


GRANULAR_EVERY = 10  # one object in this many carries a granular TLP:RED marking (0: none)


def indicator(n: int) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.UUID(int=n + 1, version=4)}",
        "created": TS, "modified": TS, "name": f"Generated indicator {n}",
        "description": "Benchmark indicator; source: liaison report 42", "indicator_types": ["malicious-activity"],
        "pattern": f"[ipv4-addr:value = '10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}']",
        "pattern_type": "stix", "valid_from": TS, "labels": ["benchmark"],
        "object_marking_refs": [TLP2["green"] if n % 2 == 0 else TLP2["amber"]],
    }
    if GRANULAR_EVERY and n % GRANULAR_EVERY == 0:
        obj["granular_markings"] = [{"selectors": ["description"], "marking_ref": TLP2["red"]}]
    return obj


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def page_all(base: str, user: str, url: str) -> tuple[int, float]:
    count = 0
    params: dict[str, Any] = {"limit": 1000}
    start = time.perf_counter()
    with httpx.Client(base_url=base, auth=(user, PASSWORD), headers={"Accept": TAXII}, timeout=300) as c:
        while True:
            resp = c.get(url, params=params)
            resp.raise_for_status()
            body = resp.json()
            count += len(body.get("objects", []))
            if not body.get("more"):
                break
            params = {"limit": 1000, "next": body["next"]}
    return count, time.perf_counter() - start


def main() -> None:
    global GRANULAR_EVERY
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--granular-every", type=int, default=10,
                    help="one object in this many has a TLP:RED description (0: none)")
    ap.add_argument("--dir", type=Path, default=None, help="where the node lives (default: a temporary folder)")
    args = ap.parse_args()
    GRANULAR_EVERY = args.granular_every
    home = (args.dir or Path(tempfile.mkdtemp(prefix="kuroshio-rel-"))) / "node"
    node = Node.init(home, "TWN", org_name="Taiwan")
    node.ensure_organisation("JPN", partner=True, country="JP")
    node.add_user("admin", Role.ADMIN, password=PASSWORD)
    node.add_user("jun", Role.READER, org="JPN", password=PASSWORD)
    coll = node.collection("intel", "shared")
    node.store.grant(coll.id, node.store.organisation("JPN").id, can_read=True, can_write=False)
    writer = node.store.principal(node.store.user("admin"))

    print(f"ingest: {args.objects:,} indicators in envelopes of 1,000 (audience resolution and audit on)")
    block, rates = 10_000, []
    for start in range(0, args.objects, block):
        t0 = time.perf_counter()
        for i in range(start, min(start + block, args.objects), 1000):
            record = ingest(node.store, writer, coll, [indicator(n) for n in range(i, min(i + 1000, args.objects))],
                            preparer=node.preparer)
            assert record.failure_count == 0, record.details[:500]
        rate = (min(start + block, args.objects) - start) / (time.perf_counter() - t0)
        rates.append(rate)
        print(f"  {start + block:>9,} stored: {rate:8,.0f} objects/s")
    print(f"  median {statistics.median(rates):,.0f} objects/s; first block {rates[0]:,.0f}, last {rates[-1]:,.0f}")
    node.close()

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "kuroshio.cli", "serve", str(home), "--port", str(port),
                               "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/taxii2/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the node did not start") from None
                time.sleep(0.2)
        url = f"/intel/collections/{coll.id}/objects/"
        page_all(base, "admin", url)  # warm the page cache
        admin_t, reader_t = [], []
        admin_n = reader_n = 0
        for r in range(args.rounds):
            order = [("admin", admin_t), ("jun", reader_t)] if r % 2 == 0 else [("jun", reader_t), ("admin", admin_t)]
            for user, times in order:
                n, t = page_all(base, user, url)
                times.append(t / n)
                if user == "admin":
                    admin_n = n
                else:
                    reader_n = n
        a, b = statistics.median(admin_t), statistics.median(reader_t)
        print(f"paging, limit 1,000, median of {args.rounds} rounds:")
        print(f"  admin (sees all):   {admin_n:>7,} objects, {1 / a:9,.0f} objects/s")
        print(f"  reader (sees half): {reader_n:>7,} objects, {1 / b:9,.0f} objects/s")
        print(f"  enforcement overhead per object served: {100 * (b / a - 1):+.1f} %")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if args.dir is None:
            import shutil

            shutil.rmtree(home.parent, ignore_errors=True)
    if os.environ.get("KUROSHIO_BENCH_STRICT") and b / a - 1 > 0.15:
        sys.exit("enforcement overhead above 15 %")


if __name__ == "__main__":
    main()
