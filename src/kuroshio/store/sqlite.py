"""SQLite store: one WAL-mode file in the node's directory, the embedded default (nothing to install)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .base import SqlStore


class SqliteStore(SqlStore):
    backend = "sqlite"
    P = "?"

    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        super().__init__()
        self.path = str(path)
        # durable=False skips the fsync of each commit (a crash may lose the last commits, never corrupt
        # the file): for scratch stores such as test campaigns, never for a node
        self.durable = durable
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before it is acknowledged (invariant 5 holds even on power loss)
            conn.execute("PRAGMA synchronous=FULL" if self.durable else "PRAGMA synchronous=OFF")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA cache_size=-65536")
            # reads map the file instead of copying pages through each connection's cache: paging a
            # reader through rows interleaved with hidden ones touches twice the pages per row served
            conn.execute("PRAGMA mmap_size=1073741824")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA wal_autocheckpoint=10000")  # fewer, larger checkpoints: ingest stays flat
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _read(self) -> Iterator[Any]:
        conn = self._connect()
        cur = conn.cursor()
        try:
            cur.execute("BEGIN")  # one consistent snapshot per read
            yield cur
        finally:
            cur.execute("COMMIT")
            cur.close()

    @contextmanager
    def _write(self) -> Iterator[Any]:
        conn = self._connect()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")  # take the write lock first: writers commit in lock order
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    def _lock_collection(self, cur: Any, collection_id: str) -> tuple[int, int, int]:
        cur.execute("SELECT last_added, l0_count, l1_count FROM collections WHERE id = ?", (collection_id,))
        r = cur.fetchone()
        return (int(r[0]), int(r[1]), int(r[2])) if r else (0, 0, 0)

    def _schema_version(self, cur: Any) -> int:
        cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(cur.fetchone()[0])

    def close(self) -> None:
        self._stop_audit()
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass
            self._all.clear()
        self._local = threading.local()
