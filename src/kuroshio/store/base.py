"""The Store interface and its SQL implementation shared by the SQLite and PostgreSQL backends.

Objects are kept per collection and version (`id`, `modified`); every version is kept with its
canonical JSON so that reads never re-serialise. `date_added` is a per-collection, strictly
increasing microsecond counter assigned while the collection row is locked, so commit order and
`date_added` order agree: a client paging with `added_after`/`next` while writers commit never
misses an object and never sees one twice.

Every read of objects takes a `Principal`; visibility is decided in the query (DESIGN.md invariant 1).
"""

from __future__ import annotations

import re
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from hashlib import blake2b
from importlib import resources
from typing import Any, NamedTuple

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
    no: int = 0  # the store's compact key of the collection


def id_hash(stix_id: str) -> int:
    """The 62-bit lookup key of a STIX id (a hash of the whole id: UUIDs of some producers share prefixes)."""
    return int.from_bytes(blake2b(stix_id.encode(), digest_size=8).digest(), "big") >> 2


class PreparedObject(NamedTuple):
    """An object that passed validation, ready to store (a tuple: cheap to pass between processes)."""

    id: str
    idh: int  # id_hash(id)
    type: str
    version: str  # ordering key of the version (timestamps.key)
    version_text: str  # the version as the object states it (modified, created, or date_added)
    spec_version: str
    created_by: str | None
    raw: bytes  # RFC 8785 canonical JSON


class Outcome(NamedTuple):
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


class Row(NamedTuple):
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
    def add_objects(self, principal: Principal, collection: Collection,
                    parts: Iterable[tuple[Sequence[PreparedObject], Sequence[Outcome]]], *,
                    status_id: str | None = None) -> StatusRecord:
        """Store one envelope, given as consecutive (objects, failures) parts, in one transaction with its status.

        Parts are consumed while the transaction is open, so a producer (the ingest workers) can
        still be validating later parts while earlier ones are written.
        """

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


def _status_entries(outcomes: list[Outcome]) -> bytes:
    """The JSON list of TAXII status entries; plain successes are formatted directly (hot path)."""
    parts = []
    for o in outcomes:
        if not o.message and _PLAIN.match(o.id) and _PLAIN.match(o.version):
            parts.append(f'{{"id":"{o.id}","version":"{o.version}"}}')
        else:
            entry = {"id": o.id, "version": o.version}
            if o.message:
                entry["message"] = o.message
            parts.append(orjson.dumps(entry).decode())
    return ("[" + ",".join(parts) + "]").encode()


_PLAIN = re.compile(r"[A-Za-z0-9:.\-]*\Z")  # needs no JSON escaping


class SqlStore(Store):
    """SQL shared by both backends. Subclasses supply connections, transactions and the row lock."""

    backend = "sql"
    P = "?"  # parameter placeholder of the driver

    def __init__(self) -> None:
        self._write_lock = threading.Lock()
        self._statuses_expired_at = 0

    # -- hooks --
    @abstractmethod
    @contextmanager
    def _read(self) -> Iterator[Any]: ...

    @abstractmethod
    @contextmanager
    def _write(self) -> Iterator[Any]: ...

    @abstractmethod
    def _lock_collection(self, cur: Any, collection_id: str) -> tuple[int, int, int]:
        """Lock the collection row until commit; return its last date_added and id-index level sizes."""

    @abstractmethod
    def _schema_version(self, cur: Any) -> int: ...

    # The id index has levels 0..2 (see the migration): every lookup probes all three.
    L0_MAX = 16_384  # entries in level 0 before they merge into level 1
    L1_MAX = 262_144  # entries in level 1 before they merge into level 2

    def _added_of(self, n_hashes: int) -> str:
        """SQL of the date_added values of the objects whose id hashes are the next parameters."""
        return (f"SELECT added FROM id_index WHERE level IN (0, 1, 2) AND coll = {self.P} "
                f"AND idh IN ({','.join([self.P] * n_hashes)})")

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
        code = "\n".join(ln for ln in script.splitlines() if not ln.strip().startswith("--"))
        for statement in code.split(";"):
            if statement.strip():
                cur.execute(statement)

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
    _COLL_COLS = "id, api_root, alias, title, description, allow_custom, no"

    @staticmethod
    def _collection(r: Sequence[Any]) -> Collection:
        return Collection(r[0], r[1], r[2], r[3], r[4], bool(r[5]), int(r[6]))

    def add_collection(self, api_root: str, alias: str, title: str, description: str = "", *,
                       allow_custom: bool = False, collection_id: str | None = None) -> Collection:
        if self.collection(api_root, alias) is not None:
            raise Conflict(f"collection '{alias}' already exists in API root '{api_root}'")
        cid = collection_id or str(uuid.uuid4())
        with self._write() as cur:
            cur.execute(
                self._sql("INSERT INTO collections (id, api_root, alias, title, description, allow_custom, last_added, created) "
                          "VALUES (?, ?, ?, ?, ?, ?, 0, ?) RETURNING no"),
                (cid, api_root, alias, title, description, int(allow_custom), _now_text()),
            )
            no = int(cur.fetchone()[0])
        return Collection(cid, api_root, alias, title, description, allow_custom, no)

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
    def add_objects(self, principal: Principal, collection: Collection,
                    parts: Iterable[tuple[Sequence[PreparedObject], Sequence[Outcome]]], *,
                    status_id: str | None = None) -> StatusRecord:
        self._check(principal, collection, write=True)
        request_ts = _now_text()
        outcomes: list[Outcome] = []
        P = self.P
        insert = (f"INSERT INTO objects (coll, id, type, version, version_text, spec_version, date_added, "
                  f"is_latest, is_first, created_by, submitted_by, raw) VALUES "
                  f"({P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P})")
        index = f"INSERT INTO id_index (level, coll, idh, added) VALUES (0, {P}, {P}, {P})"
        cid = collection.id
        cno = collection.no
        org_id = principal.org.id
        with self._write_lock, self._write() as cur:
            last, l0, l1 = self._lock_collection(cur, cid)
            next_added = max(timestamps.now_micros(), last + 1)
            seen: dict[tuple[str, str], bytes] = {}
            for objects, failures in parts:
                outcomes.extend(failures)
                bounds = self._version_bounds(cur, cno, objects)
                rows = []
                entries = []
                for o in objects:
                    key = (o.id, o.version)
                    earlier = seen.get(key)
                    if earlier is not None:
                        same = earlier == o.raw
                        outcomes.append(Outcome(o.id, o.version_text, same, "duplicate in this envelope" if same else
                                                "another object with the same id and version is earlier in this envelope"))
                        continue
                    lo_hi = bounds.get(o.id)
                    if lo_hi is None:
                        is_latest = is_first = True
                    else:
                        if lo_hi[0] <= o.version <= lo_hi[1]:
                            stored = self._stored_outcome(cur, cno, o)
                            if stored is not None:
                                outcomes.append(stored)
                                continue
                        is_latest, is_first = o.version > lo_hi[1], o.version < lo_hi[0]
                        if is_latest:
                            self._clear_flag(cur, "is_latest", cno, o)
                        if is_first:
                            self._clear_flag(cur, "is_first", cno, o)
                    bounds[o.id] = (o.version, o.version) if lo_hi is None else (min(lo_hi[0], o.version),
                                                                                 max(lo_hi[1], o.version))
                    seen[key] = o.raw
                    rows.append((cno, o.id, o.type, o.version, o.version_text, o.spec_version, next_added,
                                 int(is_latest), int(is_first), o.created_by, org_id, o.raw))
                    entries.append((cno, o.idh, next_added))
                    outcomes.append(Outcome(o.id, o.version_text, True))
                    next_added += 1
                if rows:
                    cur.executemany(insert, rows)
                    cur.executemany(index, entries)
                    l0 += len(entries)
            if seen:
                l0, l1 = self._merge_levels(cur, cno, l0, l1)
                cur.execute(self._sql("UPDATE collections SET last_added = ?, l0_count = ?, l1_count = ? WHERE id = ?"),
                            (next_added - 1, l0, l1, cid))
            record = self._status_record(principal, collection, status_id or str(uuid.uuid4()), request_ts, outcomes)
            self._expire_statuses(cur)
            cur.execute(
                self._sql("INSERT INTO status (id, api_root, collection_id, user_id, org_id, request_timestamp, total_count, "
                          "success_count, failure_count, pending_count, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                (record.id, record.api_root, record.collection_id, record.user_id, record.org_id, record.request_timestamp,
                 record.total_count, record.success_count, record.failure_count, record.pending_count, record.details),
            )
        return record

    def _merge_levels(self, cur: Any, coll: int, l0: int, l1: int) -> tuple[int, int]:
        """Merge a full level into the next one, in key order (a sorted bulk insert touches each page once)."""
        for level, size, limit in ((0, l0, self.L0_MAX), (1, l1, self.L1_MAX)):
            if size < limit:
                break
            cur.execute(self._sql("INSERT INTO id_index (level, coll, idh, added) SELECT ?, coll, idh, added FROM id_index "
                                  "WHERE level = ? AND coll = ? ORDER BY idh, added"), (level + 1, level, coll))
            cur.execute(self._sql("DELETE FROM id_index WHERE level = ? AND coll = ?"), (level, coll))
            if level == 0:
                l0, l1 = 0, l1 + l0
            else:
                l1 = 0
        return l0, l1

    def _clear_flag(self, cur: Any, flag: str, coll: int, o: PreparedObject) -> None:
        cur.execute(f"UPDATE objects SET {flag} = 0 WHERE coll = {self.P} AND date_added IN ({self._added_of(1)}) "
                    f"AND id = {self.P} AND {flag} = 1", (coll, coll, o.idh, o.id))

    STATUS_RETENTION_SECONDS = 7 * 86400  # TAXII status resources are kept a week, then forgotten

    def _expire_statuses(self, cur: Any) -> None:
        now = timestamps.now_micros()
        if now - self._statuses_expired_at < 3600 * 1_000_000:
            return
        self._statuses_expired_at = now
        cutoff = timestamps.from_micros(now - self.STATUS_RETENTION_SECONDS * 1_000_000)
        cur.execute(self._sql("DELETE FROM status WHERE request_timestamp < ?"), (cutoff,))

    def _version_bounds(self, cur: Any, coll: int, objects: Sequence[PreparedObject]) -> dict[str, tuple[str, str]]:
        """The first and last stored versions of the ids among `objects` that are already stored."""
        bounds: dict[str, tuple[str, str]] = {}
        ids = {o.id for o in objects}
        hashes = list({o.idh for o in objects})
        for i in range(0, len(hashes), 500):
            chunk = hashes[i:i + 500]
            cur.execute(
                f"SELECT id, MIN(version), MAX(version) FROM objects WHERE coll = {self.P} AND date_added IN "
                f"({self._added_of(len(chunk))}) GROUP BY id",
                (coll, coll, *chunk),
            )
            for r in cur.fetchall():
                if r[0] in ids:
                    bounds[r[0]] = (r[1], r[2])
        return bounds

    def _stored_outcome(self, cur: Any, coll: int, o: PreparedObject) -> Outcome | None:
        """The outcome for an object whose (id, version) is already stored, or None if it is not."""
        cur.execute(f"SELECT raw FROM objects WHERE coll = {self.P} AND date_added IN ({self._added_of(1)}) "
                    f"AND id = {self.P} AND version = {self.P}", (coll, coll, o.idh, o.id, o.version))
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
        details = b'{"successes":' + _status_entries(successes) + b',"failures":' + _status_entries(failures) + \
            b',"pendings":[]}'
        return StatusRecord(status_id, collection.api_root, collection.id, principal.user_id, principal.org.id,
                            request_ts, len(outcomes), len(successes), len(failures), 0, details)

    # -- objects: read --
    def _filters(self, flt: ObjectFilter, params: list[Any], coll: int) -> str:
        where = []
        after = max(x for x in (flt.added_after, flt.cursor, -1) if x is not None)
        if after >= 0:
            where.append(f"date_added > {self.P}")
            params.append(after)
        if flt.ids:
            hashes = sorted({id_hash(i) for i in flt.ids})
            where.append(f"date_added IN ({self._added_of(len(hashes))}) AND id IN {self._in(flt.ids)}")
            params.append(coll)
            params.extend(hashes)
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
        params: list[Any] = [collection.no]
        cond = self._filters(flt, params, collection.no)
        params.append(flt.limit + 1)
        cols = "id, date_added, version_text, spec_version" + (", raw" if with_raw else "")
        # with ids given, the id index is the selective one: unary + keeps the planner from walking the
        # date_added index of the whole collection just to avoid a sort
        order = "+date_added" if flt.ids else "date_added"
        with self._read() as cur:
            cur.execute(f"SELECT {cols} FROM objects WHERE coll = {self.P}{cond} "
                        f"ORDER BY {order} LIMIT {self.P}", params)
            fetched = cur.fetchall()
        more = len(fetched) > flt.limit
        if more:
            fetched = fetched[:flt.limit]
        if with_raw:
            rows = [Row(r[0], r[1], r[2], r[3], r[4] if type(r[4]) is bytes else bytes(r[4])) for r in fetched]
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
            cur.execute(self._sql("SELECT COUNT(*) FROM objects WHERE coll = ? AND is_latest = 1"), (collection.no,))
            return int(cur.fetchone()[0])

    def delete(self, principal: Principal, collection: Collection, object_id: str, flt: ObjectFilter) -> int:
        self._check(principal, collection, write=True)
        scoped = ObjectFilter(ids=[object_id], versions=flt.versions, spec_versions=flt.spec_versions)
        cno = collection.no
        idh = id_hash(object_id)
        with self._write_lock, self._write() as cur:
            self._lock_collection(cur, collection.id)
            params: list[Any] = [cno]
            cond = self._filters(scoped, params, cno)
            if not (principal.is_admin):
                cond += f" AND (created_by = {self.P} OR submitted_by = {self.P})"
                params.extend([principal.org.identity_id, principal.org.id])
            cur.execute(f"SELECT date_added FROM objects WHERE coll = {self.P}{cond}", params)
            doomed = [r[0] for r in cur.fetchall()]
            for i in range(0, len(doomed), 500):
                chunk = doomed[i:i + 500]
                cur.execute(f"DELETE FROM objects WHERE coll = {self.P} AND date_added IN {self._in(chunk)}", (cno, *chunk))
                cur.execute(f"DELETE FROM id_index WHERE level IN (0, 1, 2) AND coll = {self.P} AND idh = {self.P} "
                            f"AND added IN {self._in(chunk)}", (cno, idh, *chunk))
            deleted = len(doomed)
            if deleted:
                cur.execute(f"SELECT version FROM objects WHERE coll = {self.P} AND date_added IN ({self._added_of(1)}) "
                            f"AND id = {self.P}", (cno, cno, idh, object_id))
                remaining = [r[0] for r in cur.fetchall()]
                if remaining:
                    cur.execute(
                        f"UPDATE objects SET is_latest = CASE WHEN version = {self.P} THEN 1 ELSE 0 END, "
                        f"is_first = CASE WHEN version = {self.P} THEN 1 ELSE 0 END WHERE coll = {self.P} "
                        f"AND date_added IN ({self._added_of(1)}) AND id = {self.P}",
                        (max(remaining), min(remaining), cno, cno, idh, object_id),
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
