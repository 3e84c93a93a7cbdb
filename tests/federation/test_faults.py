"""Fault tests with real processes: kill -9 during pull and during push (the syncing node and the
serving node), a partner that answers 5xx, slowly, or with garbage. Afterwards the nodes hold every
object exactly once.

KUROSHIO_FAULT_KILLS sets the kills per test (default 12: 24 in all in CI); the campaign
(`make campaign-federation`) runs 100 of each.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kuroshio import audit
from kuroshio.federation import links
from kuroshio.federation.pull import PartnerError, pull
from kuroshio.markings.definitions import TLP2
from kuroshio.node import Node
from kuroshio.store import ObjectFilter

from ..conftest import free_port

KILLS = int(os.environ.get("KUROSHIO_FAULT_KILLS", "12"))
OBJECTS = int(os.environ.get("KUROSHIO_FAULT_OBJECTS", "2000"))
T = "2026-01-01T00:00:00.000Z"
CLI = [sys.executable, "-c", "from kuroshio.cli import main; main()"]


def indicators(n: int, creator: str) -> list[dict[str, Any]]:
    return [{"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": T,
             "modified": T, "pattern_type": "stix", "valid_from": T, "created_by_ref": creator,
             "pattern": f"[ipv4-addr:value = '10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}']",
             "object_marking_refs": [TLP2["green"]]} for i in range(n)]


def make_pair(tmp: Path, n: int, *, twn_url: str | None = None) -> tuple[list[str], dict[str, int]]:
    """TWN (holding n GREEN indicators) and JPN, linked both ways; returns the indicator ids and the ports."""
    ports = {"TWN": free_port(), "JPN": free_port()}
    nodes = {org: Node.init(tmp / org, org, port=ports[org]) for org in ports}
    cards = {}
    for org, node in nodes.items():
        url = twn_url if (org == "TWN" and twn_url) else f"http://127.0.0.1:{ports[org]}/taxii2/"
        path = tmp / f"{org}.card.json"
        path.write_bytes(orjson.dumps(links.card(node, url=url)))
        cards[org] = links.read_card(path)
    for_jpn = links.add_partner(nodes["TWN"], cards["JPN"])
    for_twn = links.add_partner(nodes["JPN"], cards["TWN"])
    links.set_credentials(nodes["TWN"], "JPN", for_twn)
    links.set_credentials(nodes["JPN"], "TWN", for_jpn)
    objs = indicators(n, nodes["TWN"].config.identity)
    for i in range(0, n, 500):
        nodes["TWN"].publish(objs[i:i + 500])
    for node in nodes.values():
        node.close()
    return [o["id"] for o in objs], ports


class Served:
    """`kuroshio serve DIR --no-sync` in its own process."""

    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([*CLI, "serve", str(self.home), "--no-sync", "--log-level", "warning"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/taxii2/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"the node in {self.home} did not start serving")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
            self.proc = None


def start_sync(home: Path, partner: str, mode: str) -> subprocess.Popen[bytes]:
    """`kuroshio sync` with small pages, so that a kill lands between many commits."""
    return subprocess.Popen([*CLI, "sync", str(home), "--partner", partner, mode, "--page", "50"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sync_killed(home: Path, partner: str, mode: str, rng: random.Random) -> None:
    """Start `kuroshio sync` and kill -9 it at a random moment."""
    proc = start_sync(home, partner, mode)
    time.sleep(startup() + rng.uniform(0.0, 2.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def sync_to_end(home: Path, partner: str, mode: str) -> str:
    r = subprocess.run([*CLI, "sync", str(home), "--partner", partner, mode], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def count(home: Path) -> int:
    """How many indicators the node holds (the only indicators are those the test moves)."""
    node = Node.open(home)
    try:
        flt = ObjectFilter(types=["indicator"], limit=100_000)
        return len(node.store.query(node.operator(), node.collection("intel", "shared"), flt, with_raw=False).rows)
    finally:
        node.close()


_STARTUP: list[float] = []


def startup() -> float:
    """Seconds a `kuroshio` process takes to start here: kills are timed after it, while the work runs."""
    if not _STARTUP:
        t = time.monotonic()
        subprocess.run([*CLI, "--help"], capture_output=True, timeout=120)
        _STARTUP.append(time.monotonic() - t)
    return _STARTUP[0]


def held_once(home: Path, ids: list[str]) -> None:
    """Every id is at the node exactly once (one version), and its audit chain is intact."""
    node = Node.open(home)
    try:
        coll = node.collection("intel", "shared")
        rows = []
        flt = ObjectFilter(versions=("all",), limit=10000, types=["indicator"])
        while True:
            page = node.store.query(node.operator(), coll, flt, with_raw=False)
            rows += page.rows
            if not page.more:
                break
            flt.cursor = page.next_cursor
        seen = [r.id for r in rows]
        assert len(seen) == len(set(seen)), "an object was stored twice"
        missing = set(ids) - set(seen)
        assert not missing, f"{len(missing)} objects lost"
        assert audit.verify(node.store.audit_rows(), node.audit_head.read()) == []
    finally:
        node.close()


@pytest.mark.slow
def test_kill_9_during_pull_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("KUROSHIO_FAULT_SEED", "4")))
    ids, ports = make_pair(tmp_path, OBJECTS)
    twn = Served(tmp_path / "TWN", ports["TWN"])
    twn.start()
    progress = []
    try:
        for _ in range(KILLS):
            sync_killed(tmp_path / "JPN", "TWN", "--no-push", rng)
            progress.append(count(tmp_path / "JPN"))
        sync_to_end(tmp_path / "JPN", "TWN", "--no-push")
    finally:
        twn.stop()
    # the kills landed while objects were moving, not only before or after
    assert any(0 < p < OBJECTS for p in progress), progress
    held_once(tmp_path / "JPN", ids)


@pytest.mark.slow
def test_kill_9_during_push_of_either_node_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("KUROSHIO_FAULT_SEED", "5")))
    ids, ports = make_pair(tmp_path, OBJECTS)
    jpn = Served(tmp_path / "JPN", ports["JPN"])
    jpn.start()
    try:
        for i in range(KILLS):
            if i % 3 == 2:
                # the receiving node dies mid-envelope instead, and comes back
                proc = start_sync(tmp_path / "TWN", "JPN", "--no-pull")
                time.sleep(startup() + rng.uniform(0.0, 2.0))
                jpn.kill()
                proc.wait(60)
                jpn.start()
            else:
                sync_killed(tmp_path / "TWN", "JPN", "--no-pull", rng)
        sync_to_end(tmp_path / "TWN", "JPN", "--no-pull")
    finally:
        jpn.stop()
    held_once(tmp_path / "JPN", ids)


class FaultyPartner:
    """A proxy in front of a partner's node that fails on purpose: 503s, slow answers, garbage, cut bodies."""

    def __init__(self, upstream: str, rng: random.Random) -> None:
        self.upstream = upstream
        self.rng = rng
        self.down = False
        self.faults: dict[str, int] = {}

        async def proxy(request: Request) -> Response:
            kind = "down" if self.down else self.rng.choice(["ok", "ok", "ok", "503", "slow", "garbage", "cut",
                                                             "not-envelope"])
            self.faults[kind] = self.faults.get(kind, 0) + 1
            if kind == "down":
                return Response(b"", status_code=502)
            if kind == "503":
                return Response(b"busy", status_code=503)
            async with httpx.AsyncClient() as client:
                r = await client.request(request.method, self.upstream + request.url.path,
                                         params=request.query_params, headers={
                                             k: v for k, v in request.headers.items() if k in ("authorization", "accept", "host", "content-type")},
                                         content=await request.body())
            body, headers = r.content, {k: v for k, v in r.headers.items() if k.lower().startswith("x-taxii")}
            if kind == "slow":
                import asyncio

                await asyncio.sleep(0.5)
            elif kind == "garbage" and r.status_code == 200:
                body = b"\x00\xffnot json at all"
            elif kind == "cut" and r.status_code == 200:
                body = body[: len(body) // 2]
            elif kind == "not-envelope" and r.status_code == 200 and b'"objects"' in body:
                body = b'{"objects": "nope"}'
            return Response(body, status_code=r.status_code, headers=headers,
                            media_type=r.headers.get("content-type"))

        app = Starlette(routes=[Route("/{path:path}", proxy, methods=["GET", "POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FaultyPartner:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def faulty_pair(tmp_path: Path) -> Iterator[tuple[Path, list[str], FaultyPartner]]:
    port = free_port()
    ids, ports = make_pair(tmp_path, 600, twn_url=f"http://127.0.0.1:{port}/taxii2/")
    twn = Served(tmp_path / "TWN", ports["TWN"])
    twn.start()
    proxy = FaultyPartner(f"http://127.0.0.1:{ports['TWN']}", random.Random(11))
    proxy.server.config.port = port
    try:
        with proxy:
            yield tmp_path, ids, proxy
    finally:
        twn.stop()


def test_an_unreliable_partner_delays_sync_but_never_corrupts_it(faulty_pair: Any) -> None:
    tmp, ids, proxy = faulty_pair
    node = Node.open(tmp / "JPN")
    try:
        link = node.config.partner("TWN")
        proxy.down = True  # unreachable for a while
        with pytest.raises(PartnerError):
            pull(node, link, page=50)
        proxy.down = False
        errors = 0
        for _ in range(200):
            try:
                pull(node, link, page=50)
                break
            except PartnerError:
                errors += 1
        else:
            pytest.fail("never converged through the faulty partner")
        assert errors > 0 and set(proxy.faults) > {"ok", "503"}, (errors, proxy.faults)
        health = orjson.loads(node.store.sync_state(links.health_key("TWN")) or b"{}")
        assert health["errors"] >= errors and health["last_success"]
    finally:
        node.close()
    held_once(tmp / "JPN", ids)
