"""The Store interface and its SQL implementation shared by the SQLite and PostgreSQL backends.

Objects are kept per collection and version (`id`, `modified`); every version is kept with its
canonical JSON so that reads never re-serialise. `date_added` is a per-collection, strictly
increasing microsecond counter assigned while the collection row is locked, so commit order and
`date_added` order agree: a client paging with `added_after`/`next` while writers commit never
misses an object and never sees one twice.

Every read of objects takes a `Principal`; visibility is decided in the query (DESIGN.md invariant 1).
"""

from __future__ import annotations

import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson

from ..principals import Access, Organisation, Principal, Role, User
from ..stix import timestamps

MEDIA_TYPE_STIX = "application/stix+json;version=2.1"


class StoreError(Exception):
    """A store operation failed for a reason the caller can act on."""


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    pass


class Forbidden(StoreError):
    """The principal may see the collection but not do this in it."""


@dataclass(frozen=True, slots=True)
class Collection:
    id: str
    api_root: str
    alias: str
    title: str
    description: str
    allow_custom: bool


@dataclass(frozen=True, slots=True)
class PreparedObject:
    """An object that passed validation, ready to store."""

    id: str
    type: str
    version: str  # ordering key of the version (timestamps.key)
    version_text: str  # the version as the object states it (modified, created, or date_added)
    spec_version: str
    created_by: str | None
    raw: bytes  # RFC 8785 canonical JSON


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one object of an envelope."""

    id: str
    version: str
    ok: bool
    message: str = ""


@dataclass(slots=True)
class ObjectFilter:
    """TAXII 2.1 filters (section 3.5) in store terms."""

    added_after: int | None = None  # microseconds
    ids: Sequence[str] | None = None
    types: Sequence[str] | None = None
    versions: Sequence[str] = ("last",)  # "last", "first", "all" and/or version keys
    spec_versions: Sequence[str] | None = None
    limit: int = 1000
    cursor: int | None = None  # date_added of the last row of the previous page


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    date_added: int
    version_text: str
    spec_version: str
    raw: bytes | None


@dataclass(slots=True)
class Page:
    rows: list[Row] = field(default_factory=list)
    more: bool = False

    @property
    def next_cursor(self) -> int | None:
        return self.rows[-1].date_added if self.more and self.rows else None


@dataclass(frozen=True, slots=True)
class StatusRecord:
    id: str
    api_root: str
    collection_id: str
    user_id: int
    org_id: int
    request_timestamp: str
    total_count: int
    success_count: int
    failure_count: int
    pending_count: int
    details: bytes


class Store(ABC):
    """One node's persistent state. Implemented by SQLite (embedded) and PostgreSQL (scale-out)."""

    # lifecycle
    @abstractmethod
    def migrate(self) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    # organisations, users, tokens
    @abstractmethod
    def add_organisation(self, name: str, identity: dict[str, Any], *, home: bool = False) -> Organisation: ...

    @abstractmethod
    def organisations(self) -> list[Organisation]: ...

    @abstractmethod
    def organisation(self, name: str) -> Organisation | None: ...

    @abstractmethod
    def organisation_identity(self, org_id: int) -> bytes: ...

    @abstractmethod
    def add_user(self, username: str, org_id: int, role: Role, password_hash: str | None) -> User: ...

    @abstractmethod
    def user(self, username: str) -> User | None: ...

    @abstractmethod
    def user_by_id(self, user_id: int) -> User | None: ...

    @abstractmethod
    def add_token(self, user_id: int, token_id: str, secret_hash: str, label: str = "") -> None: ...

    @abstractmethod
    def token(self, token_id: str) -> tuple[User, str] | None: ...

    @abstractmethod
    def principal(self, user: User) -> Principal: ...

    # collections
    @abstractmethod
    def add_collection(self, api_root: str, alias: str, title: str, description: str = "", *,
                       allow_custom: bool = False, collection_id: str | None = None) -> Collection: ...

    @abstractmethod
    def collections(self, api_root: str | None = None) -> list[Collection]: ...

    @abstractmethod
    def collection(self, api_root: str, key: str) -> Collection | None: ...

    @abstractmethod
    def grant(self, collection_id: str, org_id: int, *, can_read: bool, can_write: bool) -> None: ...

    @abstractmethod
    def access(self, collection_id: str, org_id: int) -> Access | None: ...

    # objects
    @abstractmethod
    def add_objects(self, principal: Principal, collection: Collection, objects: Sequence[PreparedObject],
                    failures: Sequence[Outcome] = (), *, status_id: str | None = None) -> StatusRecord: ...

    @abstractmethod
    def query(self, principal: Principal, collection: Collection, flt: ObjectFilter, *,
              with_raw: bool = True) -> Page: ...

    @abstractmethod
    def versions(self, principal: Principal, collection: Collection, object_id: str, flt: ObjectFilter) -> Page: ...

    @abstractmethod
    def delete(self, principal: Principal, collection: Collection, object_id: str, flt: ObjectFilter) -> int: ...

    @abstractmethod
    def count(self, principal: Principal, collection: Collection) -> int: ...

    @abstractmethod
    def status(self, principal: Principal, api_root: str, status_id: str) -> StatusRecord | None: ...


# --- the shared SQL implementation ------------------------------------------------------------------


def _now_text() -> str:
    return timestamps.from_micros(timestamps.now_micros())


class SqlStore(Store):
    """SQL shared by both backends. Subclasses supply connections, transactions and the row lock."""

    backend = "sql"
    P = "?"  # parameter placeholder of the driver

    def __init__(self) -> None:
        self._write_lock = threading.Lock()

    # -- hooks --
    @abstractmethod
    @contextmanager
    def _read(self) -> Iterator[Any]: ...

    @abstractmethod
    @contextmanager
    def _write(self) -> Iterator[Any]: ...

    @abstractmethod
    def _lock_collection(self, cur: Any, collection_id: str) -> int:
        """Lock the collection row until commit and return its last date_added."""

    @abstractmethod
    def _schema_version(self, cur: Any) -> int: ...

    def _sql(self, text: str) -> str:
        return text if self.P == "?" else text.replace("?", self.P)

    def _in(self, values: Sequence[Any]) -> str:
        return "(" + ",".join([self.P] * len(values)) + ")"

    # -- migrations --
    def migrate(self) -> int:
        files = sorted(
            (p for p in resources.files("kuroshio.store").joinpath("migrations", self.backend).iterdir()
             if p.name.endswith(".sql")),
            key=lambda p: p.name,
        )
        applied = 0
        with self._write() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)")
        with self._read() as cur:
            current = self._schema_version(cur)
        for f in files:
            version = int(f.name.split("_", 1)[0])
            if version <= current:
                continue
            with self._write() as cur:
                self._run_script(cur, f.read_text())
                cur.execute(self._sql("INSERT INTO schema_migrations (version, applied) VALUES (?, ?)"),
                            (version, _now_text()))
            applied += 1
        return applied

    def _run_script(self, cur: Any, script: str) -> None:
        for statement in script.split(";"):
            lines = [ln for ln in statement.splitlines() if not ln.strip().startswith("--")]
            if "".join(lines).strip():
                cur.execute("\n".join(lines))

    # -- organisations, users, tokens --
    def add_organisation(self, name: str, identity: dict[str, Any], *, home: bool = False) -> Organisation:
        if self.organisation(name) is not None:
            raise Conflict(f"organisation '{name}' already exists")
        with self._write() as cur:
            cur.execute(
                self._sql("INSERT INTO organisations (name, identity_id, identity_json, home, created) "
                          "VALUES (?, ?, ?, ?, ?) RETURNING id"),
                (name, identity["id"], orjson.dumps(identity), int(home), _now_text()),
            )
            org_id = cur.fetchone()[0]
        return Organisation(org_id, name, identity["id"], home)

    def organisations(self) -> list[Organisation]:
        with self._read() as cur:
            cur.execute("SELECT id, name, identity_id, home FROM organisations ORDER BY id")
            return [Organisation(r[0], r[1], r[2], bool(r[3])) for r in cur.fetchall()]

    def organisation(self, name: str) -> Organisation | None:
        with self._read() as cur:
            cur.execute(self._sql("SELECT id, name, identity_id, home FROM organisations WHERE name = ?"), (name,))
            r = cur.fetchone()
        return Organisation(r[0], r[1], r[2], bool(r[3])) if r else None

    def organisation_identity(self, org_id: int) -> bytes:
        with self._read() as cur:
            cur.execute(self._sql("SELECT identity_json FROM organisations WHERE id = ?"), (org_id,))
            r = cur.fetchone()
        if r is None:
            raise NotFound(f"no organisation with id {org_id}")
        return bytes(r[0])

    def _org_by_id(self, cur: Any, org_id: int) -> Organisation:
        cur.execute(self._sql("SELECT id, name, identity_id, home FROM organisations WHERE id = ?"), (org_id,))
        r = cur.fetchone()
        return Organisation(r[0], r[1], r[2], bool(r[3]))

    def add_user(self, username: str, org_id: int, role: Role, password_hash: str | None) -> User:
        if self.user(username) is not None:
            raise Conflict(f"user '{username}' already exists")
        with self._write() as cur:
            cur.execute(
                self._sql("INSERT INTO users (username, org_id, role, password_hash, created) VALUES (?, ?, ?, ?, ?) RETURNING id"),
                (username, org_id, int(role), password_hash, _now_text()),
            )
            uid = cur.fetchone()[0]
        return User(uid, username, org_id, role, password_hash, False)

    _USER_COLS = "id, username, org_id, role, password_hash, disabled"

    @staticmethod
    def _user(r: Sequence[Any]) -> User:
        return User(r[0], r[1], r[2], Role(r[3]), r[4], bool(r[5]))

    def user(self, username: str) -> User | None:
        with self._read() as cur:
            cur.execute(self._sql(f"SELECT {self._USER_COLS} FROM users WHERE username = ?"), (username,))
            r = cur.fetchone()
        return self._user(r) if r else None

    def user_by_id(self, user_id: int) -> User | None:
        with self._read() as cur:
            cur.execute(self._sql(f"SELECT {self._USER_COLS} FROM users WHERE id = ?"), (user_id,))
            r = cur.fetchone()
        return self._user(r) if r else None

    def add_token(self, user_id: int, token_id: str, secret_hash: str, label: str = "") -> None:
        with self._write() as cur:
            cur.execute(self._sql("INSERT INTO tokens (id, user_id, secret_hash, label, created) VALUES (?, ?, ?, ?, ?)"),
                        (token_id, user_id, secret_hash, label, _now_text()))

    def token(self, token_id: str) -> tuple[User, str] | None:
        with self._read() as cur:
            cur.execute(
                self._sql("SELECT u.id, u.username, u.org_id, u.role, u.password_hash, u.disabled, t.secret_hash "
                          "FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?"),
                (token_id,),
            )
            r = cur.fetchone()
        return (self._user(r), r[6]) if r else None

    def principal(self, user: User) -> Principal:
        with self._read() as cur:
            org = self._org_by_id(cur, user.org_id)
            cur.execute("SELECT identity_id FROM organisations")
            known = frozenset(r[0] for r in cur.fetchall())
        return Principal(user.id, user.username, org, user.role, known)

    # -- collections --
    _COLL_COLS = "id, api_root, alias, title, description, allow_custom"

    @staticmethod
    def _collection(r: Sequence[Any]) -> Collection:
        return Collection(r[0], r[1], r[2], r[3], r[4], bool(r[5]))

    def add_collection(self, api_root: str, alias: str, title: str, description: str = "", *,
                       allow_custom: bool = False, collection_id: str | None = None) -> Collection:
        if self.collection(api_root, alias) is not None:
            raise Conflict(f"collection '{alias}' already exists in API root '{api_root}'")
        cid = collection_id or str(uuid.uuid4())
        with self._write() as cur:
            cur.execute(
                self._sql("INSERT INTO collections (id, api_root, alias, title, description, allow_custom, last_added, created) "
                          "VALUES (?, ?, ?, ?, ?, ?, 0, ?)"),
                (cid, api_root, alias, title, description, int(allow_custom), _now_text()),
            )
        return Collection(cid, api_root, alias, title, description, allow_custom)

    def collections(self, api_root: str | None = None) -> list[Collection]:
        with self._read() as cur:
            if api_root is None:
                cur.execute(f"SELECT {self._COLL_COLS} FROM collections ORDER BY api_root, alias")
            else:
                cur.execute(self._sql(f"SELECT {self._COLL_COLS} FROM collections WHERE api_root = ? ORDER BY alias"),
                            (api_root,))
            return [self._collection(r) for r in cur.fetchall()]

    def collection(self, api_root: str, key: str) -> Collection | None:
        """A collection by id or by alias."""
        with self._read() as cur:
            cur.execute(
                self._sql(f"SELECT {self._COLL_COLS} FROM collections WHERE api_root = ? AND (id = ? OR alias = ?)"),
                (api_root, key, key),
            )
            r = cur.fetchone()
        return self._collection(r) if r else None

    def grant(self, collection_id: str, org_id: int, *, can_read: bool, can_write: bool) -> None:
        with self._write() as cur:
            cur.execute(
                self._sql("INSERT INTO collection_access (collection_id, org_id, can_read, can_write) VALUES (?, ?, ?, ?) "
                          "ON CONFLICT (collection_id, org_id) DO UPDATE SET can_read = excluded.can_read, "
                          "can_write = excluded.can_write"),
                (collection_id, org_id, int(can_read), int(can_write)),
            )

    def access(self, collection_id: str, org_id: int) -> Access | None:
        with self._read() as cur:
            cur.execute(self._sql("SELECT can_read, can_write FROM collection_access WHERE collection_id = ? AND org_id = ?"),
                        (collection_id, org_id))
            r = cur.fetchone()
        return Access(bool(r[0]), bool(r[1])) if r else None

    def _check(self, principal: Principal, collection: Collection, *, write: bool) -> None:
        acc = self.access(collection.id, principal.org.id)
        ok = principal.can_write(acc) if write else principal.can_read(acc)
        if not ok:
            if not principal.can_read(acc):
                raise NotFound("no such collection")
            raise Forbidden("this principal may not write to the collection")

    # -- objects: write --
    def add_objects(self, principal: Principal, collection: Collection, objects: Sequence[PreparedObject],
                    failures: Sequence[Outcome] = (), *, status_id: str | None = None) -> StatusRecord:
        """Store one envelope in one transaction, together with its status resource."""
        self._check(principal, collection, write=True)
        request_ts = _now_text()
        outcomes: list[Outcome] = list(failures)
        P = self.P
        with self._write_lock, self._write() as cur:
            last = self._lock_collection(cur, collection.id)
            base = max(timestamps.now_micros(), last + 1)
            # current first/last versions of the ids we are about to write
            bounds: dict[str, tuple[str, str]] = {}
            ids = list({o.id for o in objects})
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                cur.execute(
                    self._sql(f"SELECT id, MIN(version), MAX(version) FROM objects WHERE collection_id = ? AND id IN "
                              f"{self._in(chunk)} GROUP BY id"),
                    (collection.id, *chunk),
                )
                for r in cur.fetchall():
                    bounds[r[0]] = (r[1], r[2])
            rows = []
            seen: dict[tuple[str, str], bytes] = {}
            next_added = base
            for o in objects:
                key = (o.id, o.version)
                if key in seen:
                    outcomes.append(Outcome(o.id, o.version_text, seen[key] == o.raw,
                                            "duplicate in this envelope" if seen[key] == o.raw else
                                            "another object with the same id and version is earlier in this envelope"))
                    continue
                lo_hi = bounds.get(o.id)
                if lo_hi is not None and lo_hi[0] <= o.version <= lo_hi[1]:
                    stored = self._stored_outcome(cur, collection.id, o)
                    if stored is not None:
                        outcomes.append(stored)
                        continue
                is_latest = lo_hi is None or o.version > lo_hi[1]
                is_first = lo_hi is None or o.version < lo_hi[0]
                if lo_hi is not None:
                    if is_latest:
                        cur.execute(self._sql("UPDATE objects SET is_latest = 0 WHERE collection_id = ? AND id = ? AND is_latest = 1"),
                                    (collection.id, o.id))
                    if is_first:
                        cur.execute(self._sql("UPDATE objects SET is_first = 0 WHERE collection_id = ? AND id = ? AND is_first = 1"),
                                    (collection.id, o.id))
                    bounds[o.id] = (min(lo_hi[0], o.version), max(lo_hi[1], o.version))
                else:
                    bounds[o.id] = (o.version, o.version)
                seen[key] = o.raw
                rows.append((collection.id, o.id, o.type, o.version, o.version_text, o.spec_version, next_added,
                             int(is_latest), int(is_first), o.created_by, principal.org.id, o.raw))
                outcomes.append(Outcome(o.id, o.version_text, True))
                next_added += 1
            if rows:
                cur.executemany(
                    f"INSERT INTO objects (collection_id, id, type, version, version_text, spec_version, date_added, "
                    f"is_latest, is_first, created_by, submitted_by, raw) VALUES "
                    f"({P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P})",
                    rows,
                )
                cur.execute(self._sql("UPDATE collections SET last_added = ? WHERE id = ?"), (next_added - 1, collection.id))
            record = self._status_record(principal, collection, status_id or str(uuid.uuid4()), request_ts, outcomes)
            cur.execute(
                self._sql("INSERT INTO status (id, api_root, collection_id, user_id, org_id, request_timestamp, total_count, "
                          "success_count, failure_count, pending_count, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                (record.id, record.api_root, record.collection_id, record.user_id, record.org_id, record.request_timestamp,
                 record.total_count, record.success_count, record.failure_count, record.pending_count, record.details),
            )
        return record

    def _stored_outcome(self, cur: Any, collection_id: str, o: PreparedObject) -> Outcome | None:
        """The outcome for an object whose (id, version) is already stored, or None if it is not."""
        cur.execute(self._sql("SELECT raw FROM objects WHERE collection_id = ? AND id = ? AND version = ?"),
                    (collection_id, o.id, o.version))
        r = cur.fetchone()
        if r is None:
            return None
        if bytes(r[0]) == o.raw:
            return Outcome(o.id, o.version_text, True, "already stored")
        return Outcome(o.id, o.version_text, False, "a different object with the same id and version is already stored")

    @staticmethod
    def _status_record(principal: Principal, collection: Collection, status_id: str, request_ts: str,
                       outcomes: list[Outcome]) -> StatusRecord:
        successes = [o for o in outcomes if o.ok]
        failures = [o for o in outcomes if not o.ok]

        def entry(o: Outcome) -> dict[str, str]:
            d = {"id": o.id, "version": o.version}
            if o.message:
                d["message"] = o.message
            return d

        details = orjson.dumps({"successes": [entry(o) for o in successes], "failures": [entry(o) for o in failures],
                                "pendings": []})
        return StatusRecord(status_id, collection.api_root, collection.id, principal.user_id, principal.org.id,
                            request_ts, len(outcomes), len(successes), len(failures), 0, details)

    # -- objects: read --
    def _filters(self, flt: ObjectFilter, params: list[Any]) -> str:
        where = []
        after = max(x for x in (flt.added_after, flt.cursor, -1) if x is not None)
        if after >= 0:
            where.append(f"date_added > {self.P}")
            params.append(after)
        if flt.ids:
            where.append(f"id IN {self._in(flt.ids)}")
            params.extend(flt.ids)
        if flt.types:
            where.append(f"type IN {self._in(flt.types)}")
            params.extend(flt.types)
        if flt.spec_versions:
            where.append(f"spec_version IN {self._in(flt.spec_versions)}")
            params.extend(flt.spec_versions)
        if "all" not in flt.versions:
            alts = []
            keys = [v for v in flt.versions if v not in ("last", "first")]
            if "last" in flt.versions:
                alts.append("is_latest = 1")
            if "first" in flt.versions:
                alts.append("is_first = 1")
            if keys:
                alts.append(f"version IN {self._in(keys)}")
                params.extend(keys)
            where.append("(" + " OR ".join(alts) + ")")
        return "".join(" AND " + w for w in where)

    def query(self, principal: Principal, collection: Collection, flt: ObjectFilter, *,
              with_raw: bool = True) -> Page:
        self._check(principal, collection, write=False)
        params: list[Any] = [collection.id]
        cond = self._filters(flt, params)
        params.append(flt.limit + 1)
        cols = "id, date_added, version_text, spec_version" + (", raw" if with_raw else "")
        with self._read() as cur:
            cur.execute(f"SELECT {cols} FROM objects WHERE collection_id = {self.P}{cond} "
                        f"ORDER BY date_added LIMIT {self.P}", params)
            fetched = cur.fetchall()
        more = len(fetched) > flt.limit
        if more:
            fetched = fetched[:flt.limit]
        if with_raw:
            rows = [Row(r[0], r[1], r[2], r[3], bytes(r[4])) for r in fetched]
        else:
            rows = [Row(r[0], r[1], r[2], r[3], None) for r in fetched]
        return Page(rows, more)

    def versions(self, principal: Principal, collection: Collection, object_id: str, flt: ObjectFilter) -> Page:
        scoped = ObjectFilter(added_after=flt.added_after, ids=[object_id], versions=("all",),
                              spec_versions=flt.spec_versions, limit=flt.limit, cursor=flt.cursor)
        return self.query(principal, collection, scoped, with_raw=False)

    def count(self, principal: Principal, collection: Collection) -> int:
        self._check(principal, collection, write=False)
        with self._read() as cur:
            cur.execute(self._sql("SELECT COUNT(*) FROM objects WHERE collection_id = ? AND is_latest = 1"),
                        (collection.id,))
            return int(cur.fetchone()[0])

    def delete(self, principal: Principal, collection: Collection, object_id: str, flt: ObjectFilter) -> int:
        self._check(principal, collection, write=True)
        scoped = ObjectFilter(ids=[object_id], versions=flt.versions, spec_versions=flt.spec_versions)
        with self._write_lock, self._write() as cur:
            self._lock_collection(cur, collection.id)
            params: list[Any] = [collection.id]
            cond = self._filters(scoped, params)
            if not (principal.is_admin):
                cond += f" AND (created_by = {self.P} OR submitted_by = {self.P})"
                params.extend([principal.org.identity_id, principal.org.id])
            cur.execute(f"DELETE FROM objects WHERE collection_id = {self.P}{cond}", params)
            deleted = cur.rowcount
            if deleted:
                cur.execute(self._sql("SELECT version FROM objects WHERE collection_id = ? AND id = ?"),
                            (collection.id, object_id))
                remaining = [r[0] for r in cur.fetchall()]
                if remaining:
                    cur.execute(
                        self._sql("UPDATE objects SET is_latest = CASE WHEN version = ? THEN 1 ELSE 0 END, "
                                  "is_first = CASE WHEN version = ? THEN 1 ELSE 0 END WHERE collection_id = ? AND id = ?"),
                        (max(remaining), min(remaining), collection.id, object_id),
                    )
        return deleted

    def status(self, principal: Principal, api_root: str, status_id: str) -> StatusRecord | None:
        with self._read() as cur:
            cur.execute(
                self._sql("SELECT id, api_root, collection_id, user_id, org_id, request_timestamp, total_count, "
                          "success_count, failure_count, pending_count, details FROM status WHERE id = ? AND api_root = ?"),
                (status_id, api_root),
            )
            r = cur.fetchone()
        if r is None:
            return None
        record = StatusRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], bytes(r[10]))
        # a status resource belongs to the organisation that posted the envelope (admins of this node see all)
        if record.org_id != principal.org.id and not (principal.is_admin and principal.org.home):
            return None
        return record
