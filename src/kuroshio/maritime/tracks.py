"""Vessel tracks kept for queries — by vessel, by area and time window — in one SQLite file in the node's
directory (`tracks.db`, WAL), with retention by the time positions were received.

Intelligence (vessels, events, sightings) goes to the node's store like every object; the raw
positions behind it stay here, where a sensor-side process appends them at line rate.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FILE = "tracks.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (
    mmsi INTEGER NOT NULL,
    t REAL NOT NULL,             -- receive time, seconds since the epoch
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    sog REAL,                    -- knots
    cog REAL,                    -- degrees
    source TEXT NOT NULL         -- the receiver
);
CREATE INDEX IF NOT EXISTS positions_vessel ON positions (mmsi, t);
CREATE INDEX IF NOT EXISTS positions_time ON positions (t);
CREATE TABLE IF NOT EXISTS vessels (
    mmsi INTEGER PRIMARY KEY,
    name TEXT, callsign TEXT, imo INTEGER, ship_type INTEGER, flag TEXT, destination TEXT,
    first REAL, last REAL
);
"""


@dataclass(frozen=True, slots=True)
class Position:
    mmsi: int
    t: float
    lat: float
    lon: float
    sog: float | None
    cog: float | None
    source: str


class Tracks:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    @classmethod
    def of_node(cls, home: Path) -> Tracks:
        return cls(home / FILE)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def append(self, positions: Iterable[tuple[int, float, float, float, float | None, float | None, str]],
               vessels: Iterable[tuple[int, str, str, int, int, str, str, float, float]] = ()) -> None:
        """Keep positions (mmsi, t, lat, lon, sog, cog, source) and vessels' static data, in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany("INSERT INTO positions VALUES (?, ?, ?, ?, ?, ?, ?)", positions)
                self._conn.executemany(
                    "INSERT INTO vessels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (mmsi) DO UPDATE SET "
                    "name = excluded.name, callsign = excluded.callsign, imo = excluded.imo, "
                    "ship_type = excluded.ship_type, flag = excluded.flag, destination = excluded.destination, "
                    "first = min(first, excluded.first), last = max(last, excluded.last)", vessels)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def track(self, mmsi: int, since: float | None = None, until: float | None = None, limit: int = 100_000) -> list[Position]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT mmsi, t, lat, lon, sog, cog, source FROM positions WHERE mmsi = ? AND t >= ? AND t <= ? "
                "ORDER BY t LIMIT ?", (mmsi, since or 0.0, until or 1e12, limit)).fetchall()
        return [Position(*r) for r in rows]

    def area(self, south: float, west: float, north: float, east: float, since: float | None = None,
             until: float | None = None, limit: int = 100_000) -> list[Position]:
        """Positions inside a box (west > east crosses the antimeridian) and a time window."""
        lon_cond = "lon >= ? AND lon <= ?" if west <= east else "(lon >= ? OR lon <= ?)"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT mmsi, t, lat, lon, sog, cog, source FROM positions WHERE t >= ? AND t <= ? "
                f"AND lat >= ? AND lat <= ? AND {lon_cond} ORDER BY t LIMIT ?",
                (since or 0.0, until or 1e12, south, north, west, east, limit)).fetchall()
        return [Position(*r) for r in rows]

    def vessels(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM vessels").fetchone()[0]

    def prune(self, keep_days: float) -> int:
        cutoff = time.time() - keep_days * 86400
        with self._lock:
            return self._conn.execute("DELETE FROM positions WHERE t < ?", (cutoff,)).rowcount
