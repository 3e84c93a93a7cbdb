"""The node's correlation service: warning lists, markings of sightings, retro-hunts, following logs,
and the `observe` / `hunt` commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from kuroshio.correlate.history import History
from kuroshio.correlate.observations import read_eve
from kuroshio.correlate.service import Correlator
from kuroshio.correlate.tail import follow
from kuroshio.correlate.warninglists import WarningListError, WarningLists
from kuroshio.markings.definitions import TLP2, releasable_to
from kuroshio.node import Node
from kuroshio.principals import Role
from kuroshio.store import ObjectFilter

DATA = Path(os.environ.get("KUROSHIO_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
LISTS = DATA / "logs" / "warninglists"
T1 = "2026-01-01T00:00:00.000Z"


def eve(when: str, *, dns: str | None = None, dest: str = "198.51.100.7", src: str = "10.1.0.5") -> bytes:
    event: dict[str, Any] = {"timestamp": when, "event_type": "flow", "src_ip": src, "src_port": 40000,
                             "dest_ip": dest, "dest_port": 443, "proto": "TCP"}
    if dns:
        event.update(event_type="dns", dns={"type": "query", "rrname": dns, "rrtype": "A"})
    return orjson.dumps(event)


def indicator(pattern: str, marking: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": T1,
            "modified": T1, "pattern": pattern, "pattern_type": "stix", "valid_from": "2016-01-01T00:00:00Z",
            **({"object_marking_refs": marking} if marking else {}), **extra}


@pytest.fixture
def node(tmp_path: Path) -> Any:
    n = Node.init(tmp_path / "TWN", "TWN", org_name="Taiwan")
    yield n
    n.close()


def publish(node: Node, *objects: dict[str, Any]) -> None:
    record = node.ingest(node.operator(), node.collection("intel", "shared"), list(objects))
    assert record.failure_count == 0, record.details


def stored(node: Node, kind: str) -> list[dict[str, Any]]:
    page = node.store.query(node.operator(), node.collection("intel", "shared"), ObjectFilter(types=[kind], limit=1000))
    return [orjson.loads(r.raw) for r in page.rows]


# --- warning lists ----------------------------------------------------------------------------


def test_warning_lists_of_every_kind() -> None:
    lists = WarningLists()
    lists.add({"name": "resolvers", "type": "cidr", "list": ["8.8.8.0/24", "2001:4860::/32", "# comment"]})
    lists.add({"name": "top sites", "type": "hostname", "list": [".example.com", "example.org"]})
    lists.add({"name": "empty files", "type": "string", "list": ["D41D8CD98F00B204E9800998ECF8427E"]})
    lists.add({"name": "shorteners", "type": "substring", "list": ["bit.ly/"]})
    lists.add({"name": "sinkholes", "type": "regex", "list": [r"^sinkhole\d+\."]})
    assert lists.listed("8.8.8.8") == "resolvers"
    assert lists.listed("2001:4860:4860::8888") == "resolvers"
    assert lists.listed("8.8.9.8") is None
    assert lists.listed("www.EXAMPLE.com") == "top sites"
    assert lists.listed("example.com") == "top sites"
    assert lists.listed("notexample.com") is None
    assert lists.listed("d41d8cd98f00b204e9800998ecf8427e") == "empty files"
    assert lists.listed("http://bit.ly/abc") == "shorteners"
    assert lists.listed("sinkhole12.evil.net") == "sinkholes"
    assert lists.listed(42) is None
    with pytest.raises(WarningListError, match="unknown type"):
        lists.add({"name": "x", "type": "fuzzy", "list": []})


def test_real_misp_warning_lists_load() -> None:
    if not LISTS.is_dir():
        pytest.skip(f"real MISP warning lists absent ({LISTS})")
    lists = WarningLists.from_paths([LISTS])
    assert len(lists) >= 10
    assert lists.listed("8.8.8.8") is not None  # a public resolver
    assert lists.listed("10.20.30.40") is not None  # RFC 1918
    assert lists.listed("203.0.113.77") is not None  # documentation range (RFC 5735)
    assert lists.listed("d41d8cd98f00b204e9800998ecf8427e") is not None  # MD5 of nothing


def test_matches_on_listed_values_are_suppressed_and_counted(node: Node) -> None:
    benign = indicator("[ipv4-addr:value = '8.8.8.8']")
    bad = indicator("[ipv4-addr:value = '198.51.100.7']")
    publish(node, benign, bad)
    lists = WarningLists()
    lists.add({"name": "public resolvers", "type": "cidr", "list": ["8.8.8.8"]})
    c = Correlator(node, lists=lists)
    try:
        c.refresh()
        lines = [eve("2026-11-29T01:00:00.000000+0000", dest="8.8.8.8"), eve("2026-11-29T01:00:01.000000+0000")]
        assert c.observe(read_eve(lines)) == 1
        assert c.counts["suppressed:public resolvers"] == 1
        c.flush()
    finally:
        c.close()
    assert [s["sighting_of_ref"] for s in stored(node, "sighting")] == [bad["id"]]


# --- markings ---------------------------------------------------------------------------------


def test_sightings_are_marked_no_wider_than_their_indicator(node: Node) -> None:
    jpn = node.ensure_organisation("JPN", partner=True, country="JP")
    rel_twn = releasable_to(f"marking-definition--{uuid.uuid4()}", [(node.config.identity, "TWN", "TW")],
                            created_by=jpn.identity_id, created=T1)
    red = indicator("[domain-name:value = 'c2.example']", [TLP2["red"], rel_twn["id"]], created_by_ref=jpn.identity_id)
    green = indicator("[domain-name:value = 'c2.example']", [TLP2["green"]], created_by_ref=jpn.identity_id)
    unmarked = indicator("[domain-name:value = 'c2.example']")  # takes the collection's default (GREEN here)
    node.add_user("jpn-liaison", Role.CONTRIBUTOR, org="JPN", password="a-long-password-1")
    node.store.grant(node.collection("intel", "shared").id, jpn.id, can_read=True, can_write=True)
    liaison = node.store.principal(node.store.user("jpn-liaison"))
    record = node.ingest(liaison, node.collection("intel", "shared"), [rel_twn, red, green])
    assert record.failure_count == 0, record.details
    publish(node, unmarked)
    c = Correlator(node)
    try:
        c.refresh()
        assert c.observe(read_eve([eve("2026-11-29T01:00:00.000000+0000", dns="c2.example")])) == 3
        assert c.flush() == 3
    finally:
        c.close()
    by_indicator = {s["sighting_of_ref"]: s for s in stored(node, "sighting")}
    refs = by_indicator[red["id"]]["object_marking_refs"]
    assert TLP2["red"] in refs and len(refs) == 2  # RED, and releasable to JPN, the originator
    rel = next(m for m in stored(node, "marking-definition") if m["id"] in refs and m["id"] != TLP2["red"])
    recipients = next(iter(rel["extensions"].values()))["recipients"]
    assert [r["identity_ref"] for r in recipients] == [jpn.identity_id]
    assert by_indicator[green["id"]]["object_marking_refs"] == [TLP2["green"]]
    assert by_indicator[unmarked["id"]]["object_marking_refs"] == [TLP2["green"]]
    # evidence carries the same markings as its sighting
    for od in stored(node, "observed-data"):
        assert od["object_marking_refs"] in [s["object_marking_refs"] for s in by_indicator.values()]


def test_revoked_and_expired_indicators_stop_matching(node: Node) -> None:
    ind = indicator("[domain-name:value = 'c2.example']")
    publish(node, ind)
    c = Correlator(node)
    try:
        c.refresh()
        line = eve("2026-11-29T01:00:00.000000+0000", dns="c2.example")
        assert c.observe(read_eve([line])) == 1
        publish(node, {**ind, "modified": "2026-01-02T00:00:00.000Z", "valid_until": "2026-06-01T00:00:00Z"})
        c.refresh()
        assert c.observe(read_eve([line])) == 0
        publish(node, {**ind, "modified": "2026-01-03T00:00:00.000Z", "revoked": True})
        c.refresh()
        assert len(c.index) == 0
    finally:
        c.close()


# --- retro-hunt -------------------------------------------------------------------------------


def test_new_indicator_is_hunted_in_kept_observations(node: Node) -> None:
    c = Correlator(node)
    recent = time.strftime("%Y-%m-%dT%H:%M:%S.000000+0000", time.gmtime(time.time() - 3600))
    old = time.strftime("%Y-%m-%dT%H:%M:%S.000000+0000", time.gmtime(time.time() - 40 * 86400))
    try:
        c.observe(read_eve([eve(recent, dns="late.example"), eve(old, dns="late.example")]))
        c.flush()
        assert c.history.count() == 2
        ind = indicator("[domain-name:value = 'late.example']")
        publish(node, ind)
        fresh = c.refresh()
        assert fresh == [ind["id"]]
        seen: list[tuple[int, int]] = []
        assert c.hunt(fresh, progress=lambda done, total: seen.append((done, total))) == 1  # 30 days back
        assert seen[-1] == (1, 1)
        assert c.hunt(fresh, days=60) == 2
        c.flush()
    finally:
        c.close()
    assert [s["sighting_of_ref"] for s in stored(node, "sighting")] == [ind["id"]] * 2


def test_catch_up_counts_each_observation_once_per_pattern(node: Node) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000+0000", time.gmtime(time.time() - 60))
    early = indicator("[domain-name:value = 'c2.example']")
    publish(node, early)
    c = Correlator(node)
    try:
        c.refresh()
        assert c.catch_up() == 0  # nothing kept yet; `early` is now hunted
        assert c.observe(read_eve([eve(now, dns="c2.example")])) == 1  # live
        late = indicator("[domain-name:value = 'c2.example' OR domain-name:value = 'other.example']")
        publish(node, late)
        assert c.refresh() == [late["id"]]
        assert c.catch_up() == 1  # `late` meets the kept observation; `early` is not hunted again
        assert c.catch_up() == 0
        c.observe(read_eve([eve(now, dns="c2.example")]))  # both live now
        # a changed pattern is hunted again; an unchanged new version is not
        publish(node, {**late, "modified": "2026-02-01T00:00:00.000Z", "name": "renamed"})
        c.refresh()
        assert c.catch_up() == 0
        publish(node, {**early, "modified": "2026-02-01T00:00:00.000Z", "pattern": "[domain-name:value LIKE '%.example']"})
        c.refresh()
        assert c.catch_up() == 0  # what the new pattern matches, the earlier one had counted
        c.observe(read_eve([eve(now, dns="www.example")]))  # live: only the new pattern matches this
        publish(node, {**early, "modified": "2026-03-01T00:00:00.000Z", "pattern": "[domain-name:value LIKE 'www.%']"})
        c.refresh()
        assert c.catch_up() == 0  # the pattern it replaces counted www.example already
        c.flush()
    finally:
        c.close()
    counts = {s["sighting_of_ref"]: s["count"] for s in stored(node, "sighting")}
    assert counts == {early["id"]: 3, late["id"]: 2}


def test_history_is_pruned_by_age(tmp_path: Path) -> None:
    h = History(tmp_path / "o.db")
    h.append([(1, "TWN", "dns", [{"type": "domain-name", "id": "domain-name--x", "value": "a.example"}])])
    assert h.prune(30) == 0
    assert h.prune(-1) == 1
    h.close()


# --- following logs ---------------------------------------------------------------------------


def test_follow_reads_appended_lines_across_rotation(tmp_path: Path) -> None:
    log = tmp_path / "eve.json"
    log.write_bytes(b"one\ntwo\n")
    stop = threading.Event()
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.extend(follow(log, stop, poll=0.02)))
    t.start()

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 10
        while len(got) < n and time.monotonic() < deadline:
            time.sleep(0.02)

    wait_for(2)
    with open(log, "ab") as f:
        f.write(b"three\nfour-with-no-newline")
    time.sleep(0.2)
    log.rename(tmp_path / "eve.json.1")  # rotation by rename; the writer moves on to a new file
    log.write_bytes(b"five\n")
    wait_for(5)
    log.write_bytes(b"")  # truncation
    time.sleep(0.2)
    with open(log, "ab") as f:
        f.write(b"six\n")
    wait_for(6)
    stop.set()
    t.join(5)
    assert got == [b"one", b"two", b"three", b"four-with-no-newline", b"five", b"six"]


# --- commands ---------------------------------------------------------------------------------


def kuroshio(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kuroshio.cli", *args], capture_output=True, text=True, timeout=120,
                          **kw)


def test_observe_files_and_hunt_commands(tmp_path: Path) -> None:
    home = tmp_path / "node"
    node = Node.init(home, "TWN")
    publish(node, indicator("[domain-name:value = 'c2.example']"))
    node.close()
    log = tmp_path / "eve.json"
    log.write_bytes(b"\n".join([eve("2026-11-29T01:00:00.000000+0000", dns="c2.example"), b"{broken", b"[1]"]) + b"\n")
    r = kuroshio("observe", str(home), str(log))
    assert r.returncode == 0, r.stderr
    assert "sightings published" in r.stdout and "not-json" in r.stdout
    r = kuroshio("observe", str(home), str(tmp_path / "missing.json"))
    assert r.returncode == 1 and "is not a file" in r.stderr
    r = kuroshio("observe", str(home), str(log), "--format", "snort")
    assert r.returncode == 1 and "--format must be eve or zeek" in r.stderr
    r = kuroshio("hunt", str(home), "--days", "100000", "--all")
    assert r.returncode == 0, r.stderr
    node = Node.open(home)
    try:
        sightings = stored(node, "sighting")
        assert len(sightings) == 1 and sightings[0]["count"] == 2  # the file, then the hunt over what was kept
    finally:
        node.close()


def test_observe_follow_until_interrupted(tmp_path: Path) -> None:
    home = tmp_path / "node"
    node = Node.init(home, "TWN")
    node.config.correlate.flush_seconds = 0.2
    node.config.save()
    publish(node, indicator("[domain-name:value = 'c2.example']"))
    node.close()
    log = tmp_path / "eve.json"
    log.write_bytes(eve("2026-11-29T01:00:00.000000+0000", dns="c2.example") + b"\n")
    proc = subprocess.Popen([sys.executable, "-m", "kuroshio.cli", "observe", str(home), str(log), "--follow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        log.rename(tmp_path / "eve.json.1")
        log.write_bytes(eve("2026-11-29T02:00:00.000000+0000", dns="c2.example") + b"\n")
        deadline = time.monotonic() + 30
        count = 0
        while time.monotonic() < deadline and count < 2:
            time.sleep(0.3)
            node = Node.open(home)
            try:
                found = stored(node, "sighting")
                count = found[0]["count"] if found else 0
            finally:
                node.close()
        assert count == 2
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "following" in stderr and "matches" in stdout
