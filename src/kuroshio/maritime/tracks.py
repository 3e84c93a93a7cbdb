"""Vessel tracks kept for queries — by vessel, by area and time window — with retention.

Where the node's store is SQLite, in a file of their own beside it (`tracks.db`, WAL: positions arrive
at line rate and need not wait for the store's writer); where it is PostgreSQL, in tables of the same
database and schema (`ais_positions`, `ais_vessels`), created on first use. Intelligence (vessels,
events, sightings) goes to the node's store like every object; the raw positions behind it stay here.
Retention keeps `keep_days` before the newest position (for live feeds: before now; a replayed
recording keeps its own days).
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = "tracks.db"

_TABLES = """
CREATE TABLE IF NOT EXISTS ais_positions (
    mmsi BIGINT NOT NULL,
    t DOUBLE PRECISION NOT NULL,   -- receive time, seconds since the epoch
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    sog DOUBLE PRECISION,          -- knots
    cog DOUBLE PRECISION,          -- degrees
    source TEXT NOT NULL           -- the receiver
);
CREATE INDEX IF NOT EXISTS ais_positions_vessel ON ais_positions (mmsi, t);
CREATE INDEX IF NOT EXISTS ais_positions_time ON ais_positions (t);
CREATE TABLE IF NOT EXISTS ais_vessels (
    mmsi BIGINT PRIMARY KEY,
    name TEXT, callsign TEXT, imo BIGINT, ship_type INTEGER, flag TEXT, destination TEXT,
    first DOUBLE PRECISION, last DOUBLE PRECISION
)
"""

Row = tuple[int, float, float, float, float | None, float | None, str]
VesselRow = tuple[int, str, str, int, int, str, str, float, float]


@dataclass(frozen=True, slots=True)
class Position:
    mmsi: int
    t: float
    lat: float
    lon: float
    sog: float | None
    cog: float | None
    source: str


class Tracks(ABC):
    """Positions and vessels' static data, by vessel and by area and time window."""

    P = "?"
    LEAST, GREATEST = "min", "max"

    @abstractmethod
    @contextmanager
    def _cursor(self, write: bool = False) -> Iterator[Any]: ...

    def close(self) -> None:  # noqa: B027 - backends close what they own
        pass

    def _sql(self, text: str) -> str:
        return text.replace("?", self.P)

    def append(self, positions: Iterable[Row], vessels: Iterable[VesselRow] = ()) -> None:
        """Keep positions (mmsi, t, lat, lon, sog, cog, source) and vessels' static data, in one transaction."""
        positions, vessels = list(positions), list(vessels)
        with self._cursor(write=True) as cur:
            if positions:
                cur.executemany(self._sql("INSERT INTO ais_positions VALUES (?, ?, ?, ?, ?, ?, ?)"), positions)
            if vessels:
                cur.executemany(self._sql(
                    "INSERT INTO ais_vessels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (mmsi) DO UPDATE SET "
                    "name = excluded.name, callsign = excluded.callsign, imo = excluded.imo, "
                    "ship_type = excluded.ship_type, flag = excluded.flag, destination = excluded.destination, "
                    f"first = {self.LEAST}(ais_vessels.first, excluded.first), "
                    f"last = {self.GREATEST}(ais_vessels.last, excluded.last)"), vessels)

    def track(self, mmsi: int, since: float | None = None, until: float | None = None,
              limit: int = 100_000) -> list[Position]:
        with self._cursor() as cur:
            cur.execute(self._sql(
                "SELECT mmsi, t, lat, lon, sog, cog, source FROM ais_positions WHERE mmsi = ? AND t >= ? AND t <= ? "
                "ORDER BY t LIMIT ?"), (mmsi, since or 0.0, until or 1e12, limit))
            return [Position(*r) for r in cur.fetchall()]

    def area(self, south: float, west: float, north: float, east: float, since: float | None = None,
             until: float | None = None, limit: int = 100_000) -> list[Position]:
        """Positions inside a box (west > east crosses the antimeridian) and a time window."""
        lon_cond = "lon >= ? AND lon <= ?" if west <= east else "(lon >= ? OR lon <= ?)"
        with self._cursor() as cur:
            cur.execute(self._sql(
                f"SELECT mmsi, t, lat, lon, sog, cog, source FROM ais_positions WHERE t >= ? AND t <= ? "
                f"AND lat >= ? AND lat <= ? AND {lon_cond} ORDER BY t LIMIT ?"),
                (since or 0.0, until or 1e12, south, north, west, east, limit))
            return [Position(*r) for r in cur.fetchall()]

    def vessels(self) -> int:
        with self._cursor() as cur:
            cur.execute("SELECT count(*) FROM ais_vessels")
            return int(cur.fetchone()[0])

    def prune(self, keep_days: float, newest: float) -> int:
        """Forget positions more than `keep_days` older than `newest`; returns how many."""
        with self._cursor(write=True) as cur:
            cur.execute(self._sql("DELETE FROM ais_positions WHERE t < ?"), (newest - keep_days * 86400,))
            return int(cur.rowcount)


class SqliteTracks(Tracks):
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last seconds of positions
        self._conn.executescript(_TABLES.replace("DOUBLE PRECISION", "REAL").replace("BIGINT", "INTEGER"))

    @contextmanager
    def _cursor(self, write: bool = False) -> Iterator[Any]:
        with self._lock:
            cur = self._conn.cursor()
            if write:
                cur.execute("BEGIN")
            try:
                yield cur
                if write:
                    cur.execute("COMMIT")
            except BaseException:
                if write:
                    cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresTracks(Tracks):
    P = "%s"
    LEAST, GREATEST = "LEAST", "GREATEST"

    def __init__(self, connection: Any) -> None:
        self._connection = connection  # the store's: a context manager giving a pooled connection
        with self._cursor(write=True) as cur:
            for statement in _TABLES.split(";"):
                if statement.strip():
                    cur.execute(statement)

    @contextmanager
    def _cursor(self, write: bool = False) -> Iterator[Any]:
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur


def open_tracks(node: Any) -> Tracks:
    """The node's tracks: beside its SQLite store, or in its PostgreSQL database."""
    store = node.store
    if getattr(store, "backend", "") == "postgres":
        return PostgresTracks(store.connection)
    return SqliteTracks(node.config.home / FILE)
