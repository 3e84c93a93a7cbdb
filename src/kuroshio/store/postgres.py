"""PostgreSQL store (psycopg 3 with a connection pool): the scale-out backend, same interface as SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from psycopg_pool import ConnectionPool

from .base import SqlStore


class PostgresStore(SqlStore):
    backend = "postgres"
    P = "%s"
    FOR_UPDATE = " FOR UPDATE"

    def __init__(self, url: str, *, schema: str | None = None, min_size: int = 1, max_size: int = 16) -> None:
        super().__init__()
        self.url = url
        self.schema = schema
        self._stats_lock = threading.Lock()
        self._added_since_analyze = 0
        self._analyzed_rows = 0

        def configure(conn: Any) -> None:
            if schema:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                conn.execute(f'SET search_path TO "{schema}"')
            conn.commit()

        self._pool = ConnectionPool(url, min_size=min_size, max_size=max_size, configure=configure, open=True,
                                    kwargs={"autocommit": False, "prepare_threshold": None})

    def connection(self) -> Any:
        """A pooled connection (a context manager), for the tables other parts keep beside the store's
        (maritime/tracks.py), in the same database and schema."""
        return self._pool.connection()

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")  # one snapshot per read
            yield cur

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    def add_objects(self, *args: Any, **kwargs: Any) -> Any:
        record = super().add_objects(*args, **kwargs)
        self._keep_statistics(record.success_count)
        return record

    def _keep_statistics(self, added: int) -> None:
        """Re-ANALYZE objects when it has grown by a fifth since the last time (at least 10,000 rows).

        The planner needs current statistics to page through a fast-growing collection by index
        instead of sorting it; autovacuum's own analyze can lag far behind bulk ingest.
        """
        with self._stats_lock:
            self._added_since_analyze += added
            due = self._added_since_analyze >= max(10_000, self._analyzed_rows // 5)
            if due:
                self._analyzed_rows += self._added_since_analyze
                self._added_since_analyze = 0
        if due:
            with self._pool.connection() as conn:
                conn.execute("ANALYZE objects")
                conn.commit()

    def _lock_collection(self, cur: Any, collection_id: str) -> tuple[int, int, int]:
        # the row lock serialises writers per collection until commit: date_added order = commit order
        cur.execute("SELECT last_added, l0_count, l1_count FROM collections WHERE id = %s FOR UPDATE", (collection_id,))
        r = cur.fetchone()
        return (int(r[0]), int(r[1]), int(r[2])) if r else (0, 0, 0)

    def _schema_version(self, cur: Any) -> int:
        cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(cur.fetchone()[0])

    def drop_schema(self) -> None:
        """Remove this store's schema (tests use a private schema per run)."""
        if self.schema:
            with self._pool.connection() as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
                conn.commit()

    def close(self) -> None:
        self._stop_audit()
        self._pool.close()
