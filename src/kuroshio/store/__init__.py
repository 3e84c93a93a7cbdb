"""Node storage: one Store interface, SQLite (embedded default) and PostgreSQL (scale-out) backends."""

from __future__ import annotations

from pathlib import Path

from .base import (
    MEDIA_TYPE_STIX,
    Collection,
    Conflict,
    Forbidden,
    NotFound,
    ObjectFilter,
    Outcome,
    Page,
    PreparedObject,
    Row,
    StatusRecord,
    Store,
    StoreError,
)


def open_store(url: str, *, base_dir: Path | None = None) -> Store:
    """Open a store by URL: `sqlite:///relative/or/absolute.db` or `postgresql://...`."""
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore

        path = Path(url[len("sqlite:///"):])
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return SqliteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    raise StoreError(f"unsupported store URL '{url}': use sqlite:///FILE or postgresql://USER@HOST/DB")


__all__ = [
    "MEDIA_TYPE_STIX", "Collection", "Conflict", "Forbidden", "NotFound", "ObjectFilter", "Outcome", "Page",
    "PreparedObject", "Row", "StatusRecord", "Store", "StoreError", "open_store",
]
