"""The observations a node's sensors reported, kept for retro-hunts: one SQLite file in the node's
directory (`observations.db`, WAL), whatever store the node uses for intelligence.

Each row is one observation: when it was seen, which sensor organisation reported it, the sensor's
event kind and its cyber-observables (JSON). Rows are pruned by the time they were stored
(`correlate.keep_days`); retro-hunts read them by the time they were seen. The file also remembers
which pattern each indicator was last hunted with, so that no observation is counted twice: an
indicator is hunted over the observations kept before it entered the live index, once per pattern.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from .evaluate import Observed

FILE = "observations.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS observations (
    n INTEGER PRIMARY KEY,
    seen INTEGER NOT NULL,      -- microseconds since the epoch, when the sensor saw it
    stored INTEGER NOT NULL,    -- microseconds, when it was kept (retention)
    sensor TEXT NOT NULL,       -- the sensor organisation's short name
    kind TEXT NOT NULL,
    objects BLOB NOT NULL       -- JSON list of STIX cyber-observables
);
CREATE INDEX IF NOT EXISTS observations_seen ON observations (seen);
CREATE INDEX IF NOT EXISTS observations_stored ON observations (stored);
CREATE TABLE IF NOT EXISTS hunted (
    indicator TEXT PRIMARY KEY,
    pattern TEXT NOT NULL       -- the pattern last matched against the kept observations
);
"""


class History:
    """Append observations; read them back in time order; forget old ones."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last seconds of sensor data
        self._conn.executescript(_SCHEMA)

    @classmethod
    def of_node(cls, home: Path) -> History:
        return cls(home / FILE)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def append(self, rows: Iterable[tuple[int, str, str, list[dict[str, Any]]]]) -> int:
        """Keep (seen, sensor, kind, objects) rows in one transaction; returns how many."""
        now = time.time_ns() // 1000
        data = [(seen, now, sensor, kind, orjson.dumps(objs)) for seen, sensor, kind, objs in rows]
        if not data:
            return 0
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(
                    "INSERT INTO observations (seen, stored, sensor, kind, objects) VALUES (?, ?, ?, ?, ?)", data)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return len(data)

    def count(self, since: int | None = None, until_n: int | None = None) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM observations WHERE seen >= ? AND n <= ?",
                                      (since if since is not None else -(1 << 62),
                                       until_n if until_n is not None else 1 << 62)).fetchone()[0]

    def last_n(self) -> int:
        """The number of the newest observation kept (0: none)."""
        with self._lock:
            return self._conn.execute("SELECT coalesce(max(n), 0) FROM observations").fetchone()[0]

    def hunted(self) -> dict[str, str]:
        """Indicator id -> the pattern it was last hunted with."""
        with self._lock:
            return dict(self._conn.execute("SELECT indicator, pattern FROM hunted").fetchall())

    def mark_hunted(self, patterns: Iterable[tuple[str, str]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT INTO hunted (indicator, pattern) VALUES (?, ?) "
                                   "ON CONFLICT (indicator) DO UPDATE SET pattern = excluded.pattern", list(patterns))
            self._conn.execute("COMMIT")

    def read(self, since: int, until_n: int | None = None, batch: int = 5000) -> Iterator[tuple[str, Observed]]:
        """(sensor, observation) for every observation seen at or after `since` (and kept as number
        `until_n` or earlier), in time order."""
        last_seen, last_n = since, -1
        limit_n = until_n if until_n is not None else 1 << 62
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT n, seen, sensor, objects FROM observations WHERE (seen, n) > (?, ?) AND n <= ? "
                    "ORDER BY seen, n LIMIT ?", (last_seen, last_n, limit_n, batch)).fetchall()
            if not rows:
                return
            for n, seen, sensor, blob in rows:
                objs = orjson.loads(blob)
                yield sensor, Observed({o["id"]: o for o in objs}, seen, seen, 1, n)
            last_seen, last_n = rows[-1][1], rows[-1][0]

    def prune(self, keep_days: float) -> int:
        """Forget observations stored more than `keep_days` ago; returns how many."""
        cutoff = time.time_ns() // 1000 - int(keep_days * 86_400 * 1_000_000)
        with self._lock:
            return self._conn.execute("DELETE FROM observations WHERE stored < ?", (cutoff,)).rowcount
