"""The audit log: what is recorded, and that every kind of tampering is found (edit, delete, insert,
reorder, truncate, rewrite), through `audit.verify` and `kuroshio audit verify`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from kuroshio import audit
from kuroshio.ingest import ingest
from kuroshio.node import Node
from kuroshio.principals import Role
from kuroshio.store import ObjectFilter

T = "2026-01-01T00:00:00.000Z"


def indicator() -> dict:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": T,
            "modified": T, "pattern_type": "stix", "valid_from": T, "pattern": "[ipv4-addr:value = '10.1.1.1']"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    node = Node.init(tmp_path / "node", "TWN")
    node.add_user("alice", Role.CONTRIBUTOR, password="pw-alice-123")
    store = node.store
    alice = store.principal(store.user("alice"))
    coll = node.collection("intel", "shared")
    for _ in range(4):
        ingest(store, alice, coll, [indicator(), indicator()])
        store.query(alice, coll, ObjectFilter())
    node.close()  # flushes the queued read records
    return tmp_path / "node"


def rows(home: Path) -> list[tuple[int, str, bytes, str, str]]:
    with sqlite3.connect(home / "node.db") as db:
        return [(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in
                db.execute("SELECT seq, ts, record, prev, hash FROM audit ORDER BY seq")]


def verify(home: Path) -> list[audit.Finding]:
    node = Node.open(home)
    try:
        return audit.verify(node.store.audit_rows(), node.audit_head.read())
    finally:
        node.close()


def tamper(home: Path, *statements: tuple[str, tuple]) -> None:
    with sqlite3.connect(home / "node.db") as db:
        for sql, params in statements:
            db.execute(sql, params)


def test_writes_reads_and_refusals_are_recorded(home: Path) -> None:
    records = [orjson.loads(r[2]) for r in rows(home)]
    actions = [r["action"] for r in records]
    assert actions.count("store") >= 4 + 1  # the node's own publications, then alice's four envelopes
    reads = [r for r in records if r["action"] == "read"]
    assert len(reads) == 4 and all(r["actor"] == "alice" and r["way"] == "objects" and r["objects"] for r in reads)
    assert verify(home) == []
    node = Node.open(home)
    try:
        coll = node.collection("intel", "shared")
        bad = {**indicator(), "object_marking_refs": [f"marking-definition--{uuid.uuid4()}"]}
        ingest(node.store, node.operator(), coll, [bad])
    finally:
        node.close()
    last = orjson.loads(rows(home)[-1][2])
    assert last["action"] == "store" and last["refused"][0][0] == bad["id"]
    assert "unknown-marking" in last["refused"][0][1]


def _middle(home: Path) -> int:
    return rows(home)[len(rows(home)) // 2][0]


CASES: dict[str, Callable[[Path], None]] = {}


def case(fn: Callable[[Path], None]) -> Callable[[Path], None]:
    CASES[fn.__name__] = fn
    return fn


@case
def edit(home: Path) -> None:
    seq = _middle(home)
    forged = orjson.dumps({"actor": "mallory", "org": "TWN", "action": "read", "objects": []})
    tamper(home, ("UPDATE audit SET record = ? WHERE seq = ?", (forged, seq)))


@case
def delete(home: Path) -> None:
    tamper(home, ("DELETE FROM audit WHERE seq = ?", (_middle(home),)))


@case
def insert(home: Path) -> None:
    seq = _middle(home)
    prev = next(r for r in rows(home) if r[0] == seq - 1)
    record = orjson.dumps({"actor": "mallory", "org": "TWN", "action": "read"})
    # make room, then add a record that chains correctly to the one before it
    tamper(home, ("UPDATE audit SET seq = seq + 1000000 WHERE seq >= ?", (seq,)),
           ("UPDATE audit SET seq = seq - 1000000 + 1 WHERE seq >= 1000000", ()),
           ("INSERT INTO audit (seq, ts, record, prev, hash) VALUES (?, ?, ?, ?, ?)",
            (seq, prev[1], record, prev[4], audit.link(prev[4], seq, prev[1], record))))


@case
def reorder(home: Path) -> None:
    seq = _middle(home)
    a, b = (next(r for r in rows(home) if r[0] == s) for s in (seq, seq + 1))
    tamper(home, ("UPDATE audit SET ts = ?, record = ?, prev = ?, hash = ? WHERE seq = ?", (*b[1:], a[0])),
           ("UPDATE audit SET ts = ?, record = ?, prev = ?, hash = ? WHERE seq = ?", (*a[1:], b[0])))


@case
def truncate(home: Path) -> None:
    all_rows = rows(home)
    keep = all_rows[-3]
    tamper(home, ("DELETE FROM audit WHERE seq > ?", (keep[0],)),
           ("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (keep[0], keep[4])))


@case
def rewrite(home: Path) -> None:
    """Edit a record and recompute the whole chain after it (the attacker has the database, not the key)."""
    all_rows = rows(home)
    statements = []
    prev = audit.GENESIS
    for seq, ts, record, _, _ in all_rows:
        if seq == all_rows[len(all_rows) // 2][0]:
            record = orjson.dumps({"actor": "mallory", "org": "TWN", "action": "read"})
        h = audit.link(prev, seq, ts, record)
        statements.append(("UPDATE audit SET record = ?, prev = ?, hash = ? WHERE seq = ?", (record, prev, h, seq)))
        prev = h
    statements.append(("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (all_rows[-1][0], prev)))
    tamper(home, *statements)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_tampering_is_detected(home: Path, kind: str) -> None:
    assert verify(home) == []
    CASES[kind](home)
    findings = verify(home)
    assert findings, f"{kind} went unnoticed"
    assert all(str(f) for f in findings)


def test_cli_reports_where_the_chain_breaks(home: Path) -> None:
    cli = [sys.executable, "-m", "kuroshio.cli", "audit", "verify", str(home)]
    ok = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "audit log intact" in ok.stdout
    seq = _middle(home)
    tamper(home, ("DELETE FROM audit WHERE seq = ?", (seq,)))
    bad = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and f"record {seq + 1}" in bad.stderr and "tampered" in bad.stderr


def test_a_forged_head_is_refused(home: Path) -> None:
    head = home / audit.HEAD_FILE
    data = orjson.loads(head.read_bytes())
    head.write_bytes(orjson.dumps({**data, "seq": data["seq"] + 5}))
    proc = subprocess.run([sys.executable, "-m", "kuroshio.cli", "audit", "verify", str(home)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "signature" in proc.stderr


def test_only_admins_read_the_audit(home: Path) -> None:
    node = Node.open(home)
    try:
        alice = node.store.principal(node.store.user("alice"))
        from kuroshio.store import Forbidden

        with pytest.raises(Forbidden):
            list(node.store.audit_view(alice))
        shown = list(node.store.audit_view(node.operator(), user="alice"))
        assert shown and all(rec["actor"] == "alice" for _, _, rec in shown)
    finally:
        node.close()
    out = subprocess.run([sys.executable, "-m", "kuroshio.cli", "audit", "show", str(home), "--user", "alice"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    lines = [orjson.loads(x) for x in out.stdout.splitlines()]
    assert lines and {x["actor"] for x in lines} == {"alice"}
