"""The command line, run as a real process: init, user, collection, import, export, serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from .conftest import free_port

KUROSHIO = [sys.executable, "-m", "kuroshio.cli"]
TAXII = "application/taxii+json;version=2.1"


def run(*args: str | Path, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*KUROSHIO, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "twn"
    run("init", h, "--org", "TWN", "--name", "Taiwan")
    return h


def test_init_creates_a_node_home(home: Path) -> None:
    assert (home / "node.toml").is_file() and (home / "node.db").is_file()
    key = home / "keys" / "signing.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in key.read_bytes() and (home / "keys" / "signing.pub").is_file()
    again = run("init", home, "--org", "TWN", check=False)
    assert again.returncode == 1 and "already a node home" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_users_and_errors_are_one_line(home: Path) -> None:
    out = run("user", "add", home, "ana", "--role", "contributor", "--password-stdin", "--token", stdin="pw-1\n")
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("ksh_")
    for args, message in (
        (("user", "add", home, "bob", "--role", "chief", "--token"), "unknown role"),
        (("user", "add", home, "bob"), "no way to log in"),
        (("user", "add", home, "ana", "--token"), "already exists"),
        (("export", home, "--collection", "nope"), "no collection 'nope'"),
        (("export", home / "missing", "--collection", "shared"), "kuroshio init"),
        (("collection", "grant", home, "shared", "NOBODY"), "no organisation 'NOBODY'"),
    ):
        proc = run(*args, check=False)
        assert proc.returncode != 0 and message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    run("user", "add", home, "jun", "--org", "JPN", "--token")
    run("collection", "grant", home, "shared", "JPN", "--read")


def test_import_export_round_trip(home: Path, data_dir: Path) -> None:
    attack = data_dir / "stix" / "attack" / "mobile-attack-17.1.json.gz"
    out = run("import", home, attack, "--collection", "reference")
    assert "2148 stored, 0 already present, 0 rejected" in out.stdout
    again = run("import", home, attack, "--collection", "reference")
    assert "0 stored, 2148 already present" in again.stdout
    refused = run("import", home, attack, "--collection", "shared", check=False)
    assert refused.returncode == 1 and "custom-content" in refused.stderr
    bundle = orjson.loads(run("export", home, "--collection", "reference").stdout)
    from kuroshio.node import published_at_init

    predefined = len(published_at_init())  # marking and extension definitions the node publishes at init
    assert bundle["type"] == "bundle" and len(bundle["objects"]) == 2148 + predefined
    patterns = orjson.loads(run("export", home, "--collection", "reference", "--type", "attack-pattern").stdout)
    assert {o["type"] for o in patterns["objects"]} == {"attack-pattern"} and len(patterns["objects"]) == 188


def _first_answer(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """GET `url` once the server listens (a server process takes a few seconds to start)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(url, headers=headers)
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_serve_answers_taxii_and_stops_on_signal(home: Path) -> None:
    token = run("user", "add", home, "svc", "--token").stdout.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([*KUROSHIO, "serve", str(home), "--port", str(port), "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        resp = _first_answer(f"http://127.0.0.1:{port}/taxii2/",
                             headers={"Authorization": f"Bearer {token}", "Accept": TAXII})
        assert resp.status_code == 200 and resp.json()["api_roots"] == [f"http://127.0.0.1:{port}/intel/"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert proc.returncode in (0, -signal.SIGINT)


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, parent, ...), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _descendants(pid: int) -> set[int]:
    """The processes below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(entry.name) if entry.name.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    """The processes of `pids` still running (zombies are not)."""
    return {pid for pid in pids if (fields := _stat(pid)) and fields[0] != "Z"}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the worker processes")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_serve_leaves_no_ingest_worker_behind(home: Path, stop: signal.Signals) -> None:
    """An init system stops the service with SIGTERM (or kills it): its ingest worker processes go with it."""
    (home / "node.toml").write_text((home / "node.toml").read_text().replace("[server]\n", "[server]\ningest_workers = 2\n", 1))
    token = run("user", "add", home, "svc", "--role", "contributor", "--token").stdout.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([*KUROSHIO, "serve", str(home), "--port", str(port), "--log-level", "warning",
                             "--no-sync"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    headers = {"Authorization": f"Bearer {token}", "Accept": TAXII, "Content-Type": TAXII}
    workers: set[int] = set()
    try:
        _first_answer(f"http://127.0.0.1:{port}/taxii2/", headers)
        objects = [{"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.UUID(int=n + 1, version=4)}",
                    "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                    "pattern": f"[ipv4-addr:value = '10.0.{n // 256}.{n % 256}']", "pattern_type": "stix",
                    "valid_from": "2026-01-01T00:00:00Z"} for n in range(400)]  # enough to use the workers
        resp = httpx.post(f"http://127.0.0.1:{port}/intel/collections/shared/objects/", headers=headers,
                          content=orjson.dumps({"objects": objects}), timeout=60)
        assert resp.status_code == 202 and resp.json()["success_count"] == 400, resp.text
        workers = _descendants(proc.pid)
        assert len(workers) >= 2, "the envelope should have started the worker processes"
    finally:
        proc.send_signal(stop)
        proc.wait(timeout=30)
    if stop == signal.SIGTERM:
        assert proc.returncode == 0
    deadline = time.monotonic() + 20
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _alive(workers)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"worker processes outlived the server: {sorted(left)}"


def test_partner_commands_link_two_nodes_and_sync_them(tmp_path: Path) -> None:
    twn, jpn = tmp_path / "twn", tmp_path / "jpn"
    ports = []
    for h, org in ((twn, "TWN"), (jpn, "JPN")):
        ports.append(free_port())
        run("init", h, "--org", org, "--port", str(ports[-1]))
    for h, org in ((twn, "TWN"), (jpn, "JPN")):
        (tmp_path / f"{org}.card").write_text(run("partner", "card", h).stdout)
    token_for_jpn = run("partner", "add", twn, "--card", tmp_path / "JPN.card").stdout.strip().splitlines()[-1]
    token_for_twn = run("partner", "add", jpn, "--card", tmp_path / "TWN.card").stdout.strip().splitlines()[-1]
    run("partner", "credentials", twn, "JPN", "--token", token_for_twn)
    run("partner", "credentials", jpn, "TWN", "--token", token_for_jpn)
    assert (twn / "keys" / "partners" / "JPN.token").stat().st_mode & 0o077 == 0
    assert "JPN" in run("partner", "list", twn).stdout
    bad = run("partner", "add", twn, "--card", tmp_path / "nope.card", check=False)
    assert bad.returncode == 1 and "cannot read the partner card" in bad.stderr
    server = subprocess.Popen([*KUROSHIO, "serve", str(twn), "--no-sync", "--log-level", "warning"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _first_answer(f"http://127.0.0.1:{ports[0]}/taxii2/")
        synced = run("sync", jpn, "--partner", "TWN", "--no-push").stdout
        assert "TWN: pulled" in synced and "rejected 0" in synced
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
    status = [orjson.loads(line) for line in run("partner", "status", jpn, "--json").stdout.splitlines()]
    assert status[0]["org"] == "TWN" and status[0]["received"] >= 1 and status[0]["last_success"]
    run("partner", "remove", jpn, "TWN")
    assert not (jpn / "keys" / "partners" / "TWN.token").exists()
    assert "none" in run("partner", "list", jpn).stdout
