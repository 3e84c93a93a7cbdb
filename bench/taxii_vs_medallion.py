"""TAXII 2.1 servers side by side: the OASIS reference server medallion 3.0 and a Kuroshio node (SQLite).

Same machine, same run, same generated indicators, same sequential client (httpx, orjson):
  - ingest: POST envelopes of 1,000 objects until N (default 20,000) are stored -> objects/s
  - first-page latency (limit=1000) at 1,000, 2,000 and 4,000 stored objects
  - paging throughput through a collection (limit=1000, following `next`)
  - peak RSS of each server process
then Kuroshio alone at 100,000 and 1,000,000 stored objects (ingest rate per block, first page, paging, RSS).

medallion runs its memory backend on gunicorn with one worker (with two, its in-memory state diverges).
Its first page grows with the square of the collection size, so its paging throughput is measured on
2,000 objects (the size at which a full pass still finishes in minutes); ours on 2,000 and on all.

    python bench/taxii_vs_medallion.py                 # medallion and Kuroshio to 20,000, then Kuroshio to 1,000,000
    python bench/taxii_vs_medallion.py --big 100000    # stop the Kuroshio-alone part at 100,000
    python bench/taxii_vs_medallion.py --no-medallion  # Kuroshio only
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
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
import orjson

TAXII = "application/taxii+json;version=2.1"
TS = "2026-01-01T00:00:00.000Z"
THIRD_PARTY = "identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5"  # an author outside the federation
MEDALLION_COLLECTION = "9cfa669c-ee94-4ece-afd2-f8edac37d8fd"


def indicator(n: int) -> dict[str, Any]:
    kind = n % 4
    if kind == 0:
        pattern = f"[ipv4-addr:value = '10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}']"
    elif kind == 1:
        pattern = f"[domain-name:value = 'c2-{n}.example.net']"
    elif kind == 2:
        pattern = f"[url:value = 'https://files-{n}.example.org/payload.bin']"
    else:
        pattern = f"[file:hashes.'SHA-256' = '{uuid.UUID(int=n).hex * 2}']"
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.UUID(int=n + 1, version=4)}",
            "created": TS, "modified": TS, "created_by_ref": THIRD_PARTY, "name": f"Generated indicator {n}",
            "description": "Benchmark indicator", "indicator_types": ["malicious-activity"], "pattern": pattern,
            "pattern_type": "stix", "pattern_version": "2.1", "valid_from": TS, "labels": ["benchmark"]}


def envelope(start: int, count: int) -> bytes:
    return orjson.dumps({"objects": [indicator(n) for n in range(start, start + count)]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(client: httpx.Client, url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if client.get(url).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server at {url} did not answer")


class Target:
    slowest_post = 0.0
    name: str
    objects_url: str
    proc: subprocess.Popen[bytes]
    client: httpx.Client
    pid: int

    def post(self, body: bytes) -> None:
        resp = self.client.post(self.objects_url, content=body, headers={"Content-Type": TAXII, "Accept": TAXII})
        if resp.status_code not in (200, 201, 202):
            raise SystemExit(f"{self.name}: POST answered {resp.status_code}: {resp.text[:300]}")
        status = orjson.loads(resp.content)
        if status.get("failure_count"):
            raise SystemExit(f"{self.name}: objects rejected: {status.get('failures', [])[:2]}")

    def first_page(self) -> tuple[float, int]:
        t = time.perf_counter()
        resp = self.client.get(self.objects_url, params={"limit": 1000}, headers={"Accept": TAXII})
        dt = time.perf_counter() - t
        resp.raise_for_status()
        return dt, len(orjson.loads(resp.content).get("objects", []))

    def page_all(self) -> tuple[float, int]:
        params: dict[str, Any] = {"limit": 1000}
        total = 0
        t = time.perf_counter()
        while True:
            resp = self.client.get(self.objects_url, params=params, headers={"Accept": TAXII})
            resp.raise_for_status()
            body = orjson.loads(resp.content)
            total += len(body.get("objects", []))
            if not body.get("more"):
                break
            if "next" in body:
                params = {"limit": 1000, "next": body["next"]}
            else:  # a server without `next`: continue after the last date_added it reported
                params = {"limit": 1000, "added_after": resp.headers["X-TAXII-Date-Added-Last"]}
        return time.perf_counter() - t, total

    def stop(self) -> None:
        self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Medallion(Target):
    def __init__(self, work: Path) -> None:
        self.name = "medallion"
        port = free_port()
        data = {
            "/discovery": {"title": "medallion bench", "default": f"http://127.0.0.1:{port}/bench/",
                           "api_roots": [f"http://127.0.0.1:{port}/bench/"]},
            "bench": {
                "information": {"title": "bench", "versions": [TAXII], "max_content_length": 100_000_000},
                "status": [],
                "collections": [{"id": MEDALLION_COLLECTION, "title": "bench", "can_read": True, "can_write": True,
                                 "media_types": ["application/stix+json;version=2.1"], "objects": [], "manifest": []}],
            },
        }
        (work / "medallion-data.json").write_text(json.dumps(data))
        config = {"backend": {"module_class": "MemoryBackend", "module": "medallion.backends.memory_backend",
                              "filename": str(work / "medallion-data.json")},
                  "users": {"bench": "bench"}, "taxii": {"max_page_size": 1000}}
        (work / "medallion-config.json").write_text(json.dumps(config))
        (work / "medallion_wsgi.py").write_text(
            "from medallion import load_app\n"
            f"application = load_app({str(work / 'medallion-config.json')!r})\n")
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.proc = subprocess.Popen(
            [str(gunicorn), "-w", "1", "-b", f"127.0.0.1:{port}", "--timeout", "3600", "--chdir", str(work),
             "--log-level", "warning", "medallion_wsgi:application"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        auth = "Basic " + base64.b64encode(b"bench:bench").decode()
        self.client = httpx.Client(headers={"Authorization": auth, "Accept": TAXII}, timeout=3600)
        wait_ready(self.client, f"http://127.0.0.1:{port}/taxii2/", self.proc)
        self.objects_url = f"http://127.0.0.1:{port}/bench/collections/{MEDALLION_COLLECTION}/objects/"
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        self.pid = int(children[0]) if children else self.proc.pid  # the gunicorn worker serves requests


class Kuroshio(Target):
    def __init__(self, work: Path, store: str | None = None) -> None:
        self.name = "kuroshio"
        home = work / "node"
        cli = [sys.executable, "-m", "kuroshio.cli"]
        subprocess.run([*cli, "init", str(home), "--org", "BENCH", *(["--store", store] if store else [])],
                       check=True, capture_output=True)
        subprocess.run([*cli, "user", "add", str(home), "bench", "--role", "contributor", "--password-stdin"],
                       input=b"bench\n", check=True, capture_output=True)
        port = free_port()
        self.proc = subprocess.Popen([*cli, "serve", str(home), "--port", str(port), "--log-level", "warning"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        self.client = httpx.Client(auth=("bench", "bench"), headers={"Accept": TAXII}, timeout=600)
        wait_ready(self.client, f"http://127.0.0.1:{port}/taxii2/", self.proc)
        self.objects_url = f"http://127.0.0.1:{port}/intel/collections/shared/objects/"


def ingest(target: Target, start: int, stop: int, *, marks: dict[int, Any] | None = None,
           block: int = 5000) -> list[tuple[int, float]]:
    """POST envelopes of 1,000 from `start` to `stop`; return objects/s per block; call marks[n] at n stored."""
    rates: list[tuple[int, float]] = []
    t_block = time.perf_counter()
    busy = 0.0
    n = start
    while n < stop:
        body = envelope(n, min(1000, stop - n))
        t = time.perf_counter()
        target.post(body)
        took = time.perf_counter() - t
        busy += took
        target.slowest_post = max(target.slowest_post, took)
        n += min(1000, stop - n)
        if n % block == 0 or n == stop:
            rates.append((n, block / busy if busy else 0.0))
            busy = 0.0
            t_block = time.perf_counter()
        if marks and n in marks:
            marks[n](n)
    del t_block
    return rates


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=20_000, help="objects for the side-by-side part")
    ap.add_argument("--big", type=str, default="100000,1000000", help="Kuroshio-alone sizes, comma-separated ('' skips)")
    ap.add_argument("--no-medallion", action="store_true")
    ap.add_argument("--store", help="store URL for the Kuroshio node (default: SQLite in the node home), "
                                    "e.g. postgresql://postgres@127.0.0.1/bench (the database must be empty)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kuroshio-bench-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        targets: list[Target] = [] if args.no_medallion else [Medallion(work)]
        targets.append(Kuroshio(work, args.store))
        for target in targets:
            r: dict[str, Any] = {"first_page": {}}
            results[target.name] = r

            def mark(n: int, target: Target = target, r: dict[str, Any] = r) -> None:
                repeats = 1 if target.name == "medallion" else 5
                samples = [target.first_page()[0] for _ in range(repeats)]
                r["first_page"][n] = statistics.median(samples)
                print(f"  {target.name}: first page at {n:,}: {r['first_page'][n] * 1000:,.1f} ms", flush=True)
                if n == 2000:
                    dt, total = target.page_all()
                    r["paging_2000"] = total / dt
                    print(f"  {target.name}: paged {total:,} objects at {total / dt:,.0f} objects/s", flush=True)

            print(f"{target.name}: ingesting {args.objects:,} objects in envelopes of 1,000", flush=True)
            t = time.perf_counter()
            rates = ingest(target, 0, args.objects, marks={1000: mark, 2000: mark, 4000: mark})
            r["ingest_rates"] = rates
            r["ingest"] = statistics.median(rate for _, rate in rates)
            print(f"  {target.name}: ingest per 5,000 block: {', '.join(fmt_rate(x) for _, x in rates)} objects/s "
                  f"(wall {time.perf_counter() - t:.1f} s)", flush=True)
            if target.name != "medallion":
                dt, total = target.page_all()
                r["paging_all"] = total / dt
                print(f"  {target.name}: paged all {total:,} objects at {total / dt:,.0f} objects/s", flush=True)
            r["rss"] = peak_rss_mb(target.pid)
            print(f"  {target.name}: peak RSS {r['rss']:.0f} MB", flush=True)
            if target.name == "medallion":
                target.stop()

        if "medallion" in results:
            m, k = results["medallion"], results["kuroshio"]
            print("\nSide by side (same run, same objects; medians)")
            print(f"{'measure':44} {'medallion':>14} {'kuroshio':>14} {'ratio':>8}")
            rows = [("ingest objects/s (median of 5,000 blocks)", m["ingest"], k["ingest"], True)]
            for n in (1000, 2000, 4000):
                rows.append((f"first page ms at {n:,} objects", m["first_page"][n] * 1000, k["first_page"][n] * 1000, False))
            rows.append(("paging objects/s (2,000 objects)", m["paging_2000"], k["paging_2000"], True))
            rows.append(("peak RSS MB", m["rss"], k["rss"], False))
            for label, mv, kv, higher_better in rows:
                ratio = kv / mv if higher_better else mv / kv
                print(f"{label:44} {mv:>14,.1f} {kv:>14,.1f} {ratio:>7,.1f}x")
            print(f"medallion ingest first/last block: {fmt_rate(m['ingest_rates'][0][1])} / {fmt_rate(m['ingest_rates'][-1][1])}")

        kuroshio = next(t for t in targets if t.name == "kuroshio")
        stored = args.objects
        for size in [int(x) for x in args.big.split(",") if x.strip()]:
            if size <= stored:
                continue
            print(f"\nkuroshio alone: ingesting to {size:,}", flush=True)
            block = 20_000 if size <= 100_000 else 100_000
            rates = ingest(kuroshio, stored, size, block=block)
            stored = size
            print(f"  ingest per {block:,} block: {', '.join(fmt_rate(x) for _, x in rates)} objects/s; "
                  f"slowest envelope {kuroshio.slowest_post * 1000:,.0f} ms")
            samples = [kuroshio.first_page()[0] for _ in range(11)]
            print(f"  first page (limit=1000) at {size:,}: median {statistics.median(samples) * 1000:.1f} ms")
            dt, total = kuroshio.page_all()
            print(f"  paged all {total:,} objects at {total / dt:,.0f} objects/s")
            print(f"  peak RSS {peak_rss_mb(kuroshio.pid):.0f} MB", flush=True)
        kuroshio.stop()
    finally:
        for proc in ("medallion", "kuroshio"):
            del proc
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
