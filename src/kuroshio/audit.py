"""Append-only, hash-chained audit log: how records chain, the signed head file, and verification.

Every record is hashed together with the hash of the record before it, so editing, deleting,
inserting or reordering a record breaks the chain at that point. Truncating the tail keeps the chain
intact, so the node also keeps the last (sequence, hash) outside the database, in `DIR/audit.head`,
signed with the node's Ed25519 key: a log shorter than its head, or a head whose signature fails,
is reported. Records of writes are appended in the same transaction as the write (store/base.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = "0" * 64
HEAD_FILE = "audit.head"


def link(prev: str, seq: int, ts: str, record: bytes) -> str:
    """The hash of record `seq`: SHA-256 over the previous hash, the sequence number, time and record."""
    h = hashlib.sha256()
    h.update(prev.encode())
    h.update(b"\x1f%d\x1f" % seq)
    h.update(ts.encode())
    h.update(b"\x1f")
    h.update(record)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Finding:
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.problem}" if self.seq else self.problem


def verify(rows: Iterable[tuple[int, str, bytes, str, str]], head: tuple[int, str] | None) -> list[Finding]:
    """Check the chain `(seq, ts, record, prev, hash)` in sequence order, and its end against `head`."""
    findings: list[Finding] = []
    expected_seq, prev = 1, GENESIS
    last_seq, last_hash = 0, GENESIS
    for seq, ts, record, stored_prev, stored_hash in rows:
        if seq != expected_seq:
            kind = "missing" if seq > expected_seq else "repeated or out of order"
            findings.append(Finding(seq, f"expected record {expected_seq}: records are {kind} here"))
        if stored_prev != prev:
            findings.append(Finding(seq, "does not chain to the record before it (inserted, deleted or reordered)"))
        if link(stored_prev, seq, ts, record) != stored_hash:
            findings.append(Finding(seq, "its content does not match its hash (edited)"))
        prev = stored_hash
        expected_seq = seq + 1
        last_seq, last_hash = seq, stored_hash
    if head is not None:
        head_seq, head_hash = head
        if last_seq < head_seq:
            findings.append(Finding(0, f"the log ends at record {last_seq} but the signed head says {head_seq}: "
                                       "records were removed from the end"))
        elif last_seq == head_seq and last_hash != head_hash:
            findings.append(Finding(last_seq, "the last record does not match the signed head"))
    return findings


def record(actor: str, org: str, action: str, **fields: Any) -> bytes:
    body = {"actor": actor, "org": org, "action": action}
    body.update({k: v for k, v in fields.items() if v not in (None, [], ())})
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


class HeadFile:
    """The signed copy of the chain's end, outside the database."""

    def __init__(self, path: Path, key_path: Path) -> None:
        self.path = path
        self.key_path = key_path
        self._key: Ed25519PrivateKey | None = None

    def _private(self) -> Ed25519PrivateKey:
        if self._key is None:
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
            assert isinstance(key, Ed25519PrivateKey)
            self._key = key
        return self._key

    def _public(self) -> Ed25519PublicKey:
        pub = serialization.load_pem_public_key(self.key_path.with_suffix(".pub").read_bytes())
        assert isinstance(pub, Ed25519PublicKey)
        return pub

    def write(self, seq: int, chain_hash: str, *, force: bool = False) -> None:
        """Sign and write the chain's end; `force`: rewrite it as it is (after the node's key was rotated)."""
        current = None if force else self.read()
        if current is not None and current[0] >= seq:
            return  # another process wrote a later head
        message = f"{seq}:{chain_hash}".encode()
        body = orjson.dumps({"seq": seq, "hash": chain_hash, "signature": self._private().sign(message).hex()})
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_bytes(body)
        os.replace(tmp, self.path)

    def read(self) -> tuple[int, str] | None:
        """The signed head, or None when there is none. Raises ValueError when the signature fails."""
        if not self.path.exists():
            return None
        data = orjson.loads(self.path.read_bytes())
        seq, chain_hash = int(data["seq"]), str(data["hash"])
        try:
            self._public().verify(bytes.fromhex(data["signature"]), f"{seq}:{chain_hash}".encode())
        except (InvalidSignature, ValueError):
            raise ValueError(f"{self.path}: the signature of the audit head does not verify") from None
        return seq, chain_hash
