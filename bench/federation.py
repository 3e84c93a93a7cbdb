"""Federation: latency from publish at one node to stored at its partner, and backlog sync speed.

Two nodes on this machine, TWN and JPN, each a `kuroshio serve` process, linked with partner cards.

- Latency, push mode: TWN's link pushes to JPN; JPN does not pull. A client POSTs TLP:GREEN
  indicators to TWN at a steady rate (in envelopes every 100 ms) for the duration. Each indicator's
  `created` is the moment it was sent; the latency of an object is JPN's `date_added` for it (the
  moment JPN committed it, from JPN's manifest) minus that moment. Same clock: one machine.
- Latency, pull mode: JPN pulls from TWN every poll interval (default 1 s); TWN does not push.
- Backlog: TWN holds N objects (default 100,000) that JPN has never seen; `kuroshio sync` at JPN
  pulls them all (signatures verified, markings judged, audit on); objects per second.

p50 and p99 are printed per mode and rate. Targets (issue 4): p99 at most 1 s in push mode at
1,000 objects/s; backlog at least 5,000 objects/s.

    python bench/federation.py                                 # 100 and 1,000 obj/s for 60 s, 100,000 backlog
    python bench/federation.py --duration 20 --backlog 20000   # quicker
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from kuroshio.federation import links
from kuroshio.markings.definitions import TLP2
from kuroshio.node import Node
from kuroshio.principals import Role
from kuroshio.stix import timestamps

TAXII = "application/taxii+json;version=2.1"
PASSWORD = "bench-password-1"
CLI = [sys.executable, "-m", "kuroshio.cli"]


def indicator(n: int, creator: str, when: str | None = None) -> dict[str, Any]:
    ts = when or "2026-01-01T00:00:00.000Z"
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": ts,
            "modified": ts, "created_by_ref": creator, "name": f"Generated indicator {n}",
            "pattern": f"[ipv4-addr:value = '10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}']",
            "pattern_type": "stix", "valid_from": ts, "object_marking_refs": [TLP2["green"]]}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pair(base: Path, twn_direction: str, jpn_direction: str, poll: float) -> dict[str, Node]:
    ports = {"TWN": free_port(), "JPN": free_port()}
    nodes = {org: Node.init(base / org, org, port=ports[org]) for org in ports}
    nodes["TWN"].add_user("publisher", Role.CONTRIBUTOR, password=PASSWORD)
    nodes["JPN"].add_user("admin", Role.ADMIN, password=PASSWORD)
    cards = {}
    for org, node in nodes.items():
        path = base / f"{org}.card.json"
        path.write_bytes(orjson.dumps(links.card(node)))
        cards[org] = links.read_card(path)
    for_jpn = links.add_partner(nodes["TWN"], cards["JPN"], direction=twn_direction, poll_interval=poll)
    for_twn = links.add_partner(nodes["JPN"], cards["TWN"], direction=jpn_direction, poll_interval=poll)
    links.set_credentials(nodes["TWN"], "JPN", for_twn)
    links.set_credentials(nodes["JPN"], "TWN", for_jpn)
    return nodes


def serve(node: Node) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([*CLI, "serve", str(node.config.home), "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{node.config.port}/taxii2/", timeout=1)
            return proc
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.config.org} did not start") from None
            time.sleep(0.1)


def manifest(port: int, coll: str) -> dict[str, int]:
    """id -> date_added (micros) of every object in JPN's collection."""
    out: dict[str, int] = {}
    params: dict[str, Any] = {"limit": 10000}
    with httpx.Client(auth=("admin", PASSWORD), headers={"Accept": TAXII}, timeout=120) as c:
        while True:
            r = c.get(f"http://127.0.0.1:{port}/intel/collections/{coll}/manifest/", params=params)
            r.raise_for_status()
            body = r.json()
            for m in body.get("objects", []):
                out[m["id"]] = timestamps.to_micros(m["date_added"])
            if not body.get("more"):
                return out
            params = {"limit": 10000, "next": body["next"]}


def latency_run(mode: str, rate: int, duration: float, poll: float) -> tuple[float, float, int, int]:
    base = Path(tempfile.mkdtemp(prefix=f"kuroshio-fed-{mode}-"))
    nodes = pair(base, "push" if mode == "push" else "none", "pull" if mode == "pull" else "none", poll)
    twn, jpn = nodes["TWN"], nodes["JPN"]
    coll_twn = twn.collection("intel", "shared").id
    coll_jpn = jpn.collection("intel", "shared").id
    creator = twn.config.identity
    for n in nodes.values():
        n.close()
    procs = [serve(twn), serve(jpn)]
    sent: dict[str, int] = {}
    try:
        per_tick = max(1, rate // 10)
        url = f"http://127.0.0.1:{twn.config.port}/intel/collections/{coll_twn}/objects/"
        with httpx.Client(auth=("publisher", PASSWORD), headers={"Accept": TAXII, "Content-Type": TAXII},
                          timeout=30) as c:
            start = time.monotonic()
            tick = 0
            while time.monotonic() - start < duration:
                now = timestamps.now_micros()
                objs = [indicator(len(sent) + i, creator, timestamps.from_micros(now)) for i in range(per_tick)]
                r = c.post(url, content=orjson.dumps({"objects": objs}))
                r.raise_for_status()
                for o in objs:
                    sent[o["id"]] = now
                tick += 1
                delay = start + tick * 0.1 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        deadline = time.monotonic() + 60
        while True:
            got = manifest(jpn.config.port, coll_jpn)
            if all(i in got for i in sent) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
    lat = sorted((got[i] - t) / 1e6 for i, t in sent.items() if i in got)
    if not lat:
        return float("nan"), float("nan"), len(sent), 0
    return statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))], len(sent), len(lat)


def backlog_run(n: int) -> tuple[float, int]:
    base = Path(tempfile.mkdtemp(prefix="kuroshio-fed-backlog-"))
    nodes = pair(base, "none", "pull", 5.0)
    twn = nodes["TWN"]
    creator = twn.config.identity
    for i in range(0, n, 1000):
        twn.publish([indicator(j, creator) for j in range(i, min(i + 1000, n))])
    for node in nodes.values():
        node.close()
    proc = serve(twn)
    try:
        t0 = time.perf_counter()
        r = subprocess.run([*CLI, "sync", str(base / "JPN"), "--partner", "TWN", "--no-push"], capture_output=True,
                           text=True, timeout=3600)
        elapsed = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
    finally:
        proc.terminate()
        proc.wait(20)
    stored = int(r.stdout.split("stored ")[1].split(",")[0])
    return stored / elapsed, stored


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="100,1000", help="objects per second, comma-separated")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of sustained publishing per run")
    ap.add_argument("--poll", type=float, default=1.0, help="pull mode: the link's poll interval in seconds")
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--modes", default="push,pull")
    args = ap.parse_args()
    print(f"latency from publish at TWN to stored at JPN, {args.duration:.0f} s per run")
    for mode in args.modes.split(","):
        for rate in (int(x) for x in args.rates.split(",")):
            p50, p99, sent, arrived = latency_run(mode, rate, args.duration, args.poll)
            extra = f" (poll every {args.poll:g} s)" if mode == "pull" else ""
            print(f"  {mode:>4} {rate:>6,} obj/s{extra}: p50 {p50 * 1000:8.1f} ms   p99 {p99 * 1000:8.1f} ms   "
                  f"({arrived:,} of {sent:,} arrived)")
    if args.backlog:
        rate, stored = backlog_run(args.backlog)
        print(f"backlog: {stored:,} objects pulled, verified and stored at {rate:,.0f} objects/s")


if __name__ == "__main__":
    main()
