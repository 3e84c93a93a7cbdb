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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from hashlib import blake2b
from importlib import resources
from typing import Any, NamedTuple

import orjson

from .. import audit
from ..markings import audience as aud
from ..markings.definitions import TLP2
from ..markings.policy import SHAPE_CONTAINER, SHAPE_GRANULAR, SHAPE_SIGHTING
from ..markings.redact import mask_of, redact, views
from ..principals import Access, Organisation, Principal, Role, User
from ..stix import timestamps
from ..stix.signatures import same_content

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
    default_marking: str = TLP2["amber"]  # objects arriving without a restricting marking take this one
    exercise: bool = False  # holds exercise objects (EXERCISE-marked objects go nowhere else)
    public: bool = False  # readable without credentials (only what everyone may see: TLP:CLEAR)


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
    origin: int = 0  # the originating organisation (created_by_ref if known here, else the submitter)
    own: frozenset[str] = frozenset()  # audience of the object's own markings
    granular: tuple[tuple[tuple[str, ...], frozenset[str]], ...] = ()  # (selectors, audience) of granular markings
    ends: tuple[str, ...] = ()  # ids that must all be visible (relationship ends, the sighted object)
    members: tuple[str, ...] = ()  # container references: at least one must be visible
    member_parts: tuple[frozenset[str] | None, ...] = ()  # per member: the audience of its granular marking
    shape: int = 0  # per-reader rewriting needed (markings.policy SHAPE_*)
    foreign: bool = False  # created_by_ref names another organisation known to the node


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
    redacted: bool = False  # raw is the reader's copy with parts removed, not the object as stored


@dataclass(slots=True)
class Page:
    rows: list[Row] = field(default_factory=list)
    more: bool = False
    # the first and last date_added of the rows the page was read from, when rows were left out after the
    # query (federation/links: a partner's own objects): paging goes on from there, never back
    span: tuple[int, int] | None = None

    @property
    def next_cursor(self) -> int | None:
        if not self.more:
            return None
        if self.span is not None:
            return self.span[1]
        return self.rows[-1].date_added if self.rows else None


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
    def set_user_disabled(self, username: str, disabled: bool = True) -> bool: ...

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
                    status_id: str | None = None, checkpoint: tuple[str, str] | None = None) -> StatusRecord:
        """Store one envelope, given as consecutive (objects, failures) parts, in one transaction with its status.

        Parts are consumed while the transaction is open, so a producer (the ingest workers) can
        still be validating later parts while earlier ones are written. `checkpoint` (key, value) is
        written to the sync state in the same transaction: a partner sync step is durable with the
        objects it covers, or not at all.
        """

    @abstractmethod
    def sync_state(self, key: str) -> str | None:
        """The value last written under `key` (a partner link's checkpoint or health), or None."""

    @abstractmethod
    def set_sync_state(self, key: str, value: str) -> None: ...

    @abstractmethod
    def sync_states(self, prefix: str) -> dict[str, str]: ...

    @abstractmethod
    def query(self, principal: Principal, collection: Collection, flt: ObjectFilter, *,
              with_raw: bool = True, way: str = "objects") -> Page:
        """The objects `principal` may see, as `principal` may see them (redacted), audited as read via `way`."""

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
        self._aids: dict[str, int] = {}  # audience text -> aid (committed audiences only)
        self._aid_keys: dict[int, frozenset[str]] = {}
        self.on_audit: Callable[[int, str], None] | None = None  # told the chain's end after each commit
        self._reads: list[tuple[str, bytes]] = []  # read records waiting to be appended (see _log_read)
        self._reads_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._closing = threading.Event()
        self._registry: tuple[int, dict[str, bytes]] | None = None  # marking definitions, by their count

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
    _ORG_COLS = "id, name, identity_id, home, community, client_of, country"

    @staticmethod
    def _org(r: Sequence[Any]) -> Organisation:
        return Organisation(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6])

    def add_organisation(self, name: str, identity: dict[str, Any], *, home: bool = False,
                         community: str | None = None, client_of: int | None = None,
                         country: str | None = None) -> Organisation:
        if self.organisation(name) is not None:
            raise Conflict(f"organisation '{name}' already exists")
        with self._write() as cur:
            cur.execute(
                self._sql("INSERT INTO organisations (name, identity_id, identity_json, home, created, community, "
                          "client_of, country) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
                (name, identity["id"], orjson.dumps(identity), int(home), _now_text(), community, client_of, country),
            )
            org_id = cur.fetchone()[0]
        return Organisation(org_id, name, identity["id"], home, community, client_of, country)

    def set_organisation(self, org_id: int, *, community: str | None, client_of: int | None,
                         country: str | None) -> None:
        with self._write() as cur:
            cur.execute(self._sql("UPDATE organisations SET community = ?, client_of = ?, country = ? WHERE id = ?"),
                        (community, client_of, country, org_id))

    def organisations(self) -> list[Organisation]:
        with self._read() as cur:
            cur.execute(f"SELECT {self._ORG_COLS} FROM organisations ORDER BY id")
            return [self._org(r) for r in cur.fetchall()]

    def organisation(self, name: str) -> Organisation | None:
        with self._read() as cur:
            cur.execute(self._sql(f"SELECT {self._ORG_COLS} FROM organisations WHERE name = ?"), (name,))
            r = cur.fetchone()
        return self._org(r) if r else None

    def organisation_identity(self, org_id: int) -> bytes:
        with self._read() as cur:
            cur.execute(self._sql("SELECT identity_json FROM organisations WHERE id = ?"), (org_id,))
            r = cur.fetchone()
        if r is None:
            raise NotFound(f"no organisation with id {org_id}")
        return bytes(r[0])

    def _org_by_id(self, cur: Any, org_id: int) -> Organisation:
        cur.execute(self._sql(f"SELECT {self._ORG_COLS} FROM organisations WHERE id = ?"), (org_id,))
        return self._org(cur.fetchone())

    def _directory(self, cur: Any) -> aud.Directory:
        cur.execute("SELECT id, identity_id, community, client_of FROM organisations")
        d = aud.Directory()
        for org_id, identity_id, community, client_of in cur.fetchall():
            d.by_identity[identity_id] = org_id
            if community:
                d.community[org_id] = community
            if client_of is not None:
                d.client_of[org_id] = client_of
        return d

    def directory(self) -> aud.Directory:
        with self._read() as cur:
            return self._directory(cur)

    def marking_registry(self) -> dict[str, bytes]:
        """The marking definitions this node stores (beyond the predefined ones), as JSON. Re-read only
        when their number changes: definitions are only ever added, and a stored one never changes."""
        with self._read() as cur:
            cur.execute("SELECT COUNT(*) FROM marking_definitions")
            count = int(cur.fetchone()[0])
            cached = self._registry
            if cached is not None and cached[0] == count:
                return cached[1]
            cur.execute("SELECT id, body FROM marking_definitions")
            registry = {r[0]: bytes(r[1]) for r in cur.fetchall()}
        self._registry = (len(registry), registry)
        return registry

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

    def set_user_disabled(self, username: str, disabled: bool = True) -> bool:
        """Disable (or enable) a user; a disabled user's password and tokens stop working. False: no such user."""
        with self._write() as cur:
            cur.execute(self._sql("UPDATE users SET disabled = ? WHERE username = ?"), (int(disabled), username))
            return bool(cur.rowcount)

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
            directory = self._directory(cur)
        return Principal(user.id, user.username, org, user.role, frozenset(directory.by_identity),
                         aud.reader_keys(org.id, directory))

    # -- collections --
    _COLL_COLS = "id, api_root, alias, title, description, allow_custom, no, default_marking, exercise, public"

    @staticmethod
    def _collection(r: Sequence[Any]) -> Collection:
        return Collection(r[0], r[1], r[2], r[3], r[4], bool(r[5]), int(r[6]), r[7], bool(r[8]), bool(r[9]))

    def add_collection(self, api_root: str, alias: str, title: str, description: str = "", *,
                       allow_custom: bool = False, collection_id: str | None = None,
                       default_marking: str = TLP2["amber"], exercise: bool = False,
                       public: bool = False) -> Collection:
        if self.collection(api_root, alias) is not None:
            raise Conflict(f"collection '{alias}' already exists in API root '{api_root}'")
        cid = collection_id or str(uuid.uuid4())
        with self._write() as cur:
            cur.execute(
                self._sql("INSERT INTO collections (id, api_root, alias, title, description, allow_custom, last_added, "
                          "created, default_marking, exercise, public) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?) RETURNING no"),
                (cid, api_root, alias, title, description, int(allow_custom), _now_text(), default_marking,
                 int(exercise), int(public)),
            )
            no = int(cur.fetchone()[0])
        return Collection(cid, api_root, alias, title, description, allow_custom, no, default_marking, exercise, public)

    def set_collection(self, collection_id: str, *, default_marking: str, public: bool) -> None:
        with self._write() as cur:
            cur.execute(self._sql("UPDATE collections SET default_marking = ?, public = ? WHERE id = ?"),
                        (default_marking, int(public), collection_id))

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

    def access_of(self, principal: Principal, collection: Collection) -> Access | None:
        """What `principal` may do in `collection`: anonymous readers may read public collections only."""
        if principal.anonymous:
            return Access(True, False) if collection.public else None
        return self.access(collection.id, principal.org.id)

    def _check(self, principal: Principal, collection: Collection, *, write: bool) -> None:
        acc = self.access_of(principal, collection)
        ok = principal.can_write(acc) if write else principal.can_read(acc)
        if not ok:
            if not principal.can_read(acc):
                self.log_refusal(principal, "write" if write else "read", "no access to the collection",
                                 collection=collection)
                raise NotFound("no such collection")
            self.log_refusal(principal, "write", "read-only access to the collection", collection=collection)
            raise Forbidden("this principal may not write to the collection")

    # -- audiences --
    def _aid(self, cur: Any, audience: frozenset[str], local: dict[str, int]) -> int:
        """The interned id of an audience (created on first use, in the current transaction)."""
        text = aud.encode(audience)
        aid = self._aids.get(text) or local.get(text)
        if aid is not None:
            return aid
        cur.execute(self._sql("SELECT aid FROM audiences WHERE keys = ?"), (text,))
        r = cur.fetchone()
        if r is not None:
            self._aids[text] = int(r[0])  # committed earlier: safe to remember
            self._aid_keys[int(r[0])] = frozenset(audience)
            return int(r[0])
        cur.execute(self._sql("INSERT INTO audiences (keys) VALUES (?) ON CONFLICT (keys) DO NOTHING"), (text,))
        cur.execute(self._sql("SELECT aid FROM audiences WHERE keys = ?"), (text,))
        aid = int(cur.fetchone()[0])
        if audience:
            cur.executemany(self._sql("INSERT INTO audience_keys (key, aid) VALUES (?, ?) ON CONFLICT DO NOTHING"),
                            [(k, aid) for k in audience])
        local[text] = aid
        return aid

    def _keys_of(self, cur: Any, aid: int, local: dict[str, int]) -> frozenset[str]:
        keys = self._aid_keys.get(aid)
        if keys is None:
            cur.execute(self._sql("SELECT keys FROM audiences WHERE aid = ?"), (aid,))
            r = cur.fetchone()
            keys = frozenset(r[0].split()) if r and r[0] else aud.NOBODY
            if r is not None and aid not in local.values():  # never remember what this transaction created
                self._aid_keys[aid] = keys
        return keys

    def _visible_clause(self, principal: Principal, params: list[Any]) -> str:
        """SQL condition: the row's audience shares a key with the principal (invariant 1, in the query)."""
        keys = sorted(principal.keys)
        if not keys:
            return " AND 1 = 0"
        params.extend(keys)
        return f" AND audience IN (SELECT aid FROM audience_keys WHERE key IN {self._in(keys)})"

    # -- objects: write --
    def add_objects(self, principal: Principal, collection: Collection,
                    parts: Iterable[tuple[Sequence[PreparedObject], Sequence[Outcome]]], *,
                    status_id: str | None = None, checkpoint: tuple[str, str] | None = None) -> StatusRecord:
        self._check(principal, collection, write=True)
        request_ts = _now_text()
        outcomes: list[Outcome] = []
        P = self.P
        insert = (f"INSERT INTO objects (coll, id, type, version, version_text, spec_version, date_added, "
                  f"is_latest, is_first, created_by, submitted_by, raw, origin, own_audience, audience, shape, granular, "
                  f"deps) VALUES ({', '.join([P] * 18)})")
        index = f"INSERT INTO id_index (level, coll, idh, added) VALUES (0, {P}, {P}, {P})"
        depend = f"INSERT INTO dependencies (coll, ref_idh, added) VALUES ({P}, {P}, {P}) ON CONFLICT DO NOTHING"
        definition = f"INSERT INTO marking_definitions (id, origin, body) VALUES ({P}, {P}, {P}) ON CONFLICT DO NOTHING"
        cid = collection.id
        cno = collection.no
        org_id = principal.org.id
        with self._write_lock, self._write() as cur:
            last, l0, l1 = self._lock_collection(cur, cid)
            directory = self._directory(cur)
            local: dict[str, int] = {}
            next_added = max(timestamps.now_micros(), last + 1)
            seen: dict[tuple[str, str], bytes] = {}
            changed: set[str] = set()  # ids whose latest version is new
            revised: set[str] = set()  # ids that had versions before and have a new latest one
            dependents: list[int] = []  # new rows whose audience depends on other objects
            stored: list[tuple[str, str]] = []
            for objects, failures in parts:
                outcomes.extend(failures)
                bounds = self._version_bounds(cur, cno, objects)
                latest = self._latest(cur, cno, list(bounds), local) if bounds else {}
                rows, entries, deps, definitions, copies = [], [], [], [], []
                for o in objects:
                    key = (o.id, o.version)
                    earlier = seen.get(key)
                    if earlier is not None:
                        same = same_content(earlier, o.raw)
                        outcomes.append(Outcome(o.id, o.version_text, same, "duplicate in this envelope" if same else
                                                "another object with the same id and version is earlier in this envelope"))
                        continue
                    lo_hi = bounds.get(o.id)
                    if lo_hi is not None and lo_hi[0] <= o.version <= lo_hi[1]:
                        already = self._stored_outcome(cur, cno, o)
                        if already is not None:
                            outcomes.append(already)
                            continue
                    refusal = self._marking_change_refusal(o, latest.get(o.id), org_id, directory)
                    if refusal is not None:
                        outcomes.append(Outcome(o.id, o.version_text, False, refusal))
                        continue
                    if lo_hi is None:
                        is_latest = is_first = True
                    else:
                        is_latest, is_first = o.version > lo_hi[1], o.version < lo_hi[0]
                        if is_latest:
                            self._clear_flag(cur, "is_latest", cno, o)
                        if is_first:
                            self._clear_flag(cur, "is_first", cno, o)
                    bounds[o.id] = (o.version, o.version) if lo_hi is None else (min(lo_hi[0], o.version),
                                                                                 max(lo_hi[1], o.version))
                    seen[key] = o.raw
                    own = self._aid(cur, o.own, local)
                    granular_aids = [[list(sel), self._aid(cur, a, local)] for sel, a in o.granular]
                    granular = orjson.dumps(granular_aids) if o.granular else None
                    if o.shape == SHAPE_GRANULAR:
                        copies.extend((cno, next_added, m, v) for m, v in views(o.raw, granular_aids))
                    depends = bool(o.ends or o.members)
                    rows.append((cno, o.id, o.type, o.version, o.version_text, o.spec_version, next_added,
                                 int(is_latest), int(is_first), o.created_by, org_id, o.raw, o.origin, own,
                                 self._aid(cur, aud.NOBODY, local) if depends else own, o.shape, granular,
                                 self._deps(cur, o, local) if depends else None))
                    entries.append((cno, o.idh, next_added))
                    if depends:
                        dependents.append(next_added)
                        deps.extend((cno, id_hash(r), next_added) for r in {*o.ends, *o.members})
                    if is_latest:
                        changed.add(o.id)
                        if lo_hi is not None:
                            revised.add(o.id)  # its earlier versions are now gated by this one
                    else:
                        dependents.append(next_added)  # an earlier version: gated by the latest
                    if o.type == "marking-definition":
                        definitions.append((o.id, o.origin, o.raw))
                    if is_latest:  # later versions in this envelope are judged against this one
                        latest[o.id] = (o.own, o.origin, o.raw)
                    outcomes.append(Outcome(o.id, o.version_text, True))
                    stored.append((o.id, o.version_text))
                    next_added += 1
                if rows:
                    cur.executemany(insert, rows)
                    cur.executemany(index, entries)
                    l0 += len(entries)
                if deps:
                    cur.executemany(depend, deps)
                if definitions:
                    cur.executemany(definition, definitions)
                if copies:
                    cur.executemany(f"INSERT INTO object_views (coll, added, mask, raw) VALUES ({P}, {P}, {P}, {P})",
                                    copies)
            if seen:
                self._settle(cur, cno, directory, dependents, changed, local, revised)
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
            if checkpoint is not None:
                self._put_sync_state(cur, *checkpoint)
            end = self._audit(cur, principal, "store", collection=collection, objects=stored,
                              refused=[(o.id, o.message) for o in outcomes if not o.ok])
            end = self._drain_reads(cur) or end
        self._publish_head(end)
        return record

    # -- partner sync state --
    def _put_sync_state(self, cur: Any, key: str, value: str) -> None:
        cur.execute(self._sql("INSERT INTO sync_state (key, value, updated) VALUES (?, ?, ?) ON CONFLICT (key) DO "
                              "UPDATE SET value = excluded.value, updated = excluded.updated"),
                    (key, value, _now_text()))

    def sync_state(self, key: str) -> str | None:
        with self._read() as cur:
            cur.execute(self._sql("SELECT value FROM sync_state WHERE key = ?"), (key,))
            row = cur.fetchone()
        return row[0] if row else None

    def set_sync_state(self, key: str, value: str) -> None:
        with self._write_lock, self._write() as cur:
            self._put_sync_state(cur, key, value)

    def sync_states(self, prefix: str) -> dict[str, str]:
        with self._read() as cur:
            cur.execute(self._sql("SELECT key, value FROM sync_state WHERE substr(key, 1, ?) = ? ORDER BY key"),
                        (len(prefix), prefix))
            return {k: v for k, v in cur.fetchall()}

    def _deps(self, cur: Any, o: PreparedObject, local: dict[str, int]) -> bytes:
        """What an object's visibility depends on: [ends, members, audience ids of granular-marked members]."""
        parts = [0 if a is None else self._aid(cur, a, local) for a in o.member_parts]
        return orjson.dumps([o.ends, o.members, parts] if parts else [o.ends, o.members])

    def _latest(self, cur: Any, coll: int, ids: list[str],
                local: dict[str, int]) -> dict[str, tuple[frozenset[str], int, bytes]]:
        """For stored ids: the latest version's own audience, origin and canonical JSON."""
        out: dict[str, tuple[frozenset[str], int, bytes]] = {}
        wanted = set(ids)
        for i in range(0, len(ids), 500):
            chunk = sorted({id_hash(x) for x in ids[i:i + 500]})
            cur.execute(f"SELECT id, own_audience, origin, raw FROM objects WHERE coll = {self.P} AND is_latest = 1 "
                        f"AND date_added IN ({self._added_of(len(chunk))})", (coll, coll, *chunk))
            for oid, own, origin, raw in cur.fetchall():
                if oid in wanted:
                    out[oid] = (self._keys_of(cur, own, local), origin, bytes(raw))
        return out

    _MARKING_PROPERTIES = frozenset({"object_marking_refs", "granular_markings", "modified"})

    def _marking_change_refusal(self, o: PreparedObject, latest: tuple[frozenset[str], int, bytes] | None,
                                writer_org: int, directory: aud.Directory) -> str | None:
        """Why a new version may not be stored, or None. Anyone who may write may make an object more
        restrictive; only its originating organisation may make it less restrictive; a version in
        another known organisation's name is accepted only when it changes nothing but markings."""
        if latest is not None and o.origin != latest[1]:
            return (f"{o.id}: was originated by another organisation; a new version keeps its origin (the same "
                    "created_by_ref), and only changes its markings unless you are its originator [rule: origin]")
        if o.foreign:
            if latest is None or not aud.within(o.own, latest[0], directory):
                return (f"{o.id}: property 'created_by_ref' names {o.created_by}, an organisation known to this node; "
                        "you cannot publish in another organisation's name (only make its objects more restrictive) "
                        "[rule: impersonation]")
            before = {k: v for k, v in orjson.loads(latest[2]).items() if k not in self._MARKING_PROPERTIES}
            after = {k: v for k, v in orjson.loads(o.raw).items() if k not in self._MARKING_PROPERTIES}
            if before != after:
                return (f"{o.id}: a new version in {o.created_by}'s name may only change markings "
                        "[rule: impersonation]")
            return None
        if latest is not None and writer_org != latest[1] and not aud.within(o.own, latest[0], directory):
            return (f"{o.id}: property 'object_marking_refs' would make the object visible to more readers; only "
                    "its originating organisation may make an object less restrictive [rule: marking-widening]")
        return None

    def _settle(self, cur: Any, coll: int, directory: aud.Directory, dependents: list[int], changed: set[str],
                local: dict[str, int], revised: set[str] | None = None) -> None:
        """Recompute effective audiences: own markings narrowed by what an object depends on.

        A relationship is visible only to readers who see both ends; a sighting, only to readers who
        see the sighted object; a container, only to readers who see at least one member (ends and
        members are looked up in the same collection, latest version; an absent one counts as not
        visible). An earlier version is visible only to readers who also see the latest version, so
        making an object more restrictive hides its history too. `dependents`: rows to recompute;
        `changed`: ids whose latest version is new or changed; `revised`: ids whose earlier versions
        must be re-gated. A change propagates a few levels deep (containers of relationships, ...).
        """
        work = set(dependents)
        revised = set(revised or ())
        for _ in range(8):
            work |= self._dependents_of(cur, coll, changed)
            work |= self._older_versions_of(cur, coll, revised)
            if not work:
                return
            changed, revised = set(), set()
            batch = sorted(work)
            work = set()
            for i in range(0, len(batch), 500):
                chunk = batch[i:i + 500]
                cur.execute(f"SELECT date_added, id, own_audience, audience, deps, is_latest FROM objects "
                            f"WHERE coll = {self.P} AND date_added IN {self._in(chunk)}", (coll, *chunk))
                refs: set[str] = set()
                parsed = []
                for added, oid, own, current, deps, is_latest in cur.fetchall():
                    ends, members, *rest = orjson.loads(deps) if deps else ([], [])
                    refs.update(ends)
                    refs.update(members)
                    parsed.append((added, oid, own, current, ends, members, rest[0] if rest else None, is_latest))
                parsed.sort(key=lambda r: -r[7])  # latest versions first: earlier ones are gated by them
                effective = self._effective_of(cur, coll, sorted(refs), local)
                gates: dict[str, frozenset[str]] | None = None
                for added, oid, own, current, ends, members, parts, is_latest in parsed:
                    audience = self._keys_of(cur, own, local)
                    for e in ends:
                        audience = aud.intersect(audience, effective.get(e, aud.NOBODY), directory)
                    if members:
                        reach: frozenset[str] = aud.NOBODY
                        for j, m in enumerate(members):
                            seen = effective.get(m, aud.NOBODY)
                            if parts and parts[j]:
                                seen = aud.intersect(seen, self._keys_of(cur, parts[j], local), directory)
                            reach = aud.union(reach, seen, directory)
                        audience = aud.intersect(audience, reach, directory)
                    if not is_latest:
                        if gates is None:  # after the latest versions of this chunk are updated
                            gates = self._effective_of(cur, coll, sorted({r[1] for r in parsed if not r[7]}), local)
                        audience = aud.intersect(audience, gates.get(oid, aud.NOBODY), directory)
                    aid = self._aid(cur, audience, local)
                    if aid != current:
                        cur.execute(self._sql("UPDATE objects SET audience = ? WHERE coll = ? AND date_added = ?"),
                                    (aid, coll, added))
                        if is_latest:
                            changed.add(oid)
                            revised.add(oid)

    def _older_versions_of(self, cur: Any, coll: int, ids: set[str]) -> set[int]:
        """Rows of the earlier (not latest) versions of `ids`."""
        out: set[int] = set()
        wanted = sorted(ids)
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            hashes = sorted({id_hash(x) for x in chunk})
            cur.execute(f"SELECT date_added, id FROM objects WHERE coll = {self.P} AND is_latest = 0 "
                        f"AND date_added IN ({self._added_of(len(hashes))})", (coll, coll, *hashes))
            keep = set(chunk)
            out.update(r[0] for r in cur.fetchall() if r[1] in keep)
        return out

    def _dependents_of(self, cur: Any, coll: int, ids: set[str]) -> set[int]:
        out: set[int] = set()
        hashes = sorted({id_hash(i) for i in ids})
        for i in range(0, len(hashes), 500):
            chunk = hashes[i:i + 500]
            cur.execute(f"SELECT added FROM dependencies WHERE coll = {self.P} AND ref_idh IN {self._in(chunk)}",
                        (coll, *chunk))
            out.update(r[0] for r in cur.fetchall())
        return out

    def _effective_of(self, cur: Any, coll: int, ids: list[str],
                      local: dict[str, int]) -> dict[str, frozenset[str]]:
        """The effective audience of the latest version of each id present in the collection."""
        out: dict[str, frozenset[str]] = {}
        wanted = set(ids)
        for i in range(0, len(ids), 500):
            chunk = sorted({id_hash(x) for x in ids[i:i + 500]})
            cur.execute(f"SELECT id, audience FROM objects WHERE coll = {self.P} AND is_latest = 1 "
                        f"AND date_added IN ({self._added_of(len(chunk))})", (coll, coll, *chunk))
            for oid, aid in cur.fetchall():
                if oid in wanted:
                    out[oid] = self._keys_of(cur, aid, local)
        return out

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
        if same_content(bytes(r[0]), o.raw):
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

    # -- audit --
    FOR_UPDATE = ""  # PostgreSQL locks the chain's end row; SQLite's write transaction is exclusive already
    READ_FLUSH_SECONDS = 0.5

    def _audit(self, cur: Any, principal: Principal | None, action: str, *, collection: Collection | None = None,
               **fields: Any) -> tuple[int, str]:
        """Append one record to the chain, in the caller's transaction (so it commits with the change)."""
        return self._append_audit(cur, [(_now_text(), self._audit_record(principal, action, collection, **fields))])

    @staticmethod
    def _audit_record(principal: Principal | None, action: str, collection: Collection | None,
                      **fields: Any) -> bytes:
        actor = principal.username if principal else "-"
        org = principal.org.name if principal else "-"
        where = f"{collection.api_root}/{collection.alias}" if collection else None
        return audit.record(actor, org, action, collection=where, **fields)

    def _append_audit(self, cur: Any, records: list[tuple[str, bytes]]) -> tuple[int, str]:
        """Chain `records` after the current end; returns the new end (published once committed)."""
        cur.execute(f"SELECT seq, hash FROM audit_head WHERE id = 1{self.FOR_UPDATE}")
        seq, prev = cur.fetchone()
        rows = []
        for ts, record in records:
            seq += 1
            h = audit.link(prev, seq, ts, record)
            rows.append((seq, ts, record, prev, h))
            prev = h
        cur.executemany(self._sql("INSERT INTO audit (seq, ts, record, prev, hash) VALUES (?, ?, ?, ?, ?)"), rows)
        cur.execute(self._sql("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"), (seq, prev))
        return seq, prev

    def _publish_head(self, end: tuple[int, str] | None) -> None:
        """After a commit: hand the chain's end to the node (it keeps a signed copy outside the database)."""
        if end is not None and self.on_audit is not None:
            self.on_audit(*end)

    def _log_read(self, principal: Principal, collection: Collection, way: str, rows: Sequence[Row]) -> None:
        """Record a read. Reads change nothing, so their records are appended by a background flush
        within READ_FLUSH_SECONDS (or by the next write, or at close) instead of costing every read a
        write transaction. The record names the ids (and versions) the reader received."""
        record = self._audit_record(principal, "read", collection, way=way,
                                    objects=[[r.id, r.version_text] for r in rows])
        self._buffer_audit(record)

    def log_refusal(self, principal: Principal | None, action: str, detail: str, *,
                    collection: Collection | None = None) -> None:
        """Record a refused request (authentication, access); appended with the read records."""
        self._buffer_audit(self._audit_record(principal, "refused", collection, request=action, reason=detail))

    def _buffer_audit(self, record: bytes) -> None:
        with self._reads_lock:
            self._reads.append((_now_text(), record))
            if self._flusher is None and not self._closing.is_set():
                self._flusher = threading.Thread(target=self._flush_loop, name="kuroshio-audit", daemon=True)
                self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._closing.wait(self.READ_FLUSH_SECONDS):
            try:
                self.flush_audit()
            except Exception:  # keep flushing; records stay queued for the next try
                pass

    def flush_audit(self) -> None:
        """Append the queued read and refusal records now."""
        with self._reads_lock:
            if not self._reads:
                return
        with self._write_lock, self._write() as cur:
            end = self._drain_reads(cur)
        self._publish_head(end)

    def _drain_reads(self, cur: Any) -> tuple[int, str] | None:
        with self._reads_lock:
            pending, self._reads = self._reads, []
        if pending:
            try:
                return self._append_audit(cur, pending)
            except BaseException:
                with self._reads_lock:
                    self._reads[:0] = pending
                raise
        return None

    def _stop_audit(self) -> None:
        self._closing.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        try:
            self.flush_audit()
        except Exception:  # the database may already be gone
            pass

    def audit_rows(self, after: int = 0) -> Iterator[tuple[int, str, bytes, str, str]]:
        """The audit chain from record `after + 1` on, in sequence order, as stored."""
        while True:
            with self._read() as cur:
                cur.execute(self._sql("SELECT seq, ts, record, prev, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT 5000"),
                            (after,))
                rows = cur.fetchall()
            if not rows:
                return
            for seq, ts, record, prev, h in rows:
                yield int(seq), ts, bytes(record), prev, h
            after = int(rows[-1][0])

    def audit_view(self, principal: Principal, *, user: str | None = None, object_id: str | None = None,
                   partner: str | None = None, since: str | None = None) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """Audit records for an investigation, as `principal` (an admin) may see them: object ids the
        principal cannot see in the named collection are left out, and a record that was only about
        such objects is left out whole, so the view never reveals a hidden object."""
        if not principal.is_admin:
            raise Forbidden("only administrators read the audit log")
        collections = {f"{c.api_root}/{c.alias}": c for c in self.collections()}
        for seq, ts, raw, _prev, _h in self.audit_rows():
            if since and ts < since:
                continue
            rec = orjson.loads(raw)
            if user and rec.get("actor") != user:
                continue
            if partner and partner not in (rec.get("partner"), rec.get("org")):
                continue
            listed = rec.get("objects") or []
            refused = rec.get("refused") or []
            if listed or refused:
                coll = collections.get(rec.get("collection") or "")
                ids = sorted({e[0] for e in listed} | {e[0] for e in refused})
                visible: set[str] = set()
                existing: set[str] = set(ids)
                if coll is not None:
                    with self._read() as cur:
                        visible = self._visible_ids(cur, principal, coll.no, ids, any_version=True)
                        existing = self._visible_ids(cur, None, coll.no, ids, any_version=True)
                # a refused id that is not stored names no hidden object; a stored one shows only if visible
                rec["objects"] = [e for e in listed if e[0] in visible]
                rec["refused"] = [e for e in refused if e[0] in visible or e[0] not in existing]
                if not rec["objects"] and not rec["refused"]:
                    continue
                if not rec["refused"]:
                    del rec["refused"]
            if object_id and not any(e[0] == object_id for e in rec.get("objects", ())):
                continue
            yield seq, ts, rec

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
              with_raw: bool = True, way: str = "objects") -> Page:
        self._check(principal, collection, write=False)
        params: list[Any] = [collection.no]
        cond = self._visible_clause(principal, params) + self._filters(flt, params, collection.no)
        params.append(flt.limit + 1)
        cols = "id, date_added, version_text, spec_version" + (", raw, shape, granular" if with_raw else "")
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
                rows = self._reader_copies(cur, principal, collection, fetched)
            else:
                rows = [Row(r[0], r[1], r[2], r[3], None) for r in fetched]
        self._log_read(principal, collection, way, rows)
        return Page(rows, more)

    def _reader_copies(self, cur: Any, principal: Principal, collection: Collection,
                       fetched: list[Sequence[Any]]) -> list[Row]:
        """Rows as the principal may see them: objects with granular markings, containers and sightings
        are rewritten without what the principal may not see (in the same snapshot as the query)."""
        special = [r for r in fetched if r[5]]
        if not special:
            return [Row(r[0], r[1], r[2], r[3], r[4] if type(r[4]) is bytes else bytes(r[4])) for r in fetched]
        keys = sorted(principal.keys)
        cur.execute(f"SELECT aid FROM audience_keys WHERE key IN {self._in(keys)}", keys)
        visible_aids = {r[0] for r in cur.fetchall()}
        refs: set[str] = set()
        for r in special:
            if r[5] & (SHAPE_CONTAINER | SHAPE_SIGHTING):
                obj = orjson.loads(r[4])
                for prop in ("object_refs", "where_sighted_refs", "observed_data_refs"):
                    refs.update(obj.get(prop, ()))
        visible_ids = self._visible_ids(cur, principal, collection.no, sorted(refs)) if refs else set()
        # granular-only objects: the stored view for the reader's granular audiences (one query)
        wanted: dict[int, int] = {}
        for r in special:
            if r[5] == SHAPE_GRANULAR and r[6]:
                mask, whole = mask_of(orjson.loads(r[6]), visible_aids.__contains__)
                if not whole:
                    wanted[r[1]] = mask
        stored = self._views(cur, collection.no, wanted) if wanted else {}
        out = []
        for r in fetched:
            raw = original = r[4] if type(r[4]) is bytes else bytes(r[4])
            if r[5]:
                if r[5] == SHAPE_GRANULAR and r[1] not in wanted:
                    pass  # the reader sees every part
                elif r[1] in stored:
                    raw = stored[r[1]]
                else:
                    granular = orjson.loads(r[6]) if r[6] else None
                    raw = redact(raw, r[5], granular, visible_aids.__contains__, visible_ids.__contains__)
            out.append(Row(r[0], r[1], r[2], r[3], raw, raw is not original and raw != original))
        return out

    def _views(self, cur: Any, coll: int, wanted: dict[int, int]) -> dict[int, bytes]:
        """The stored reader copies {date_added: raw} for the wanted {date_added: mask}."""
        out: dict[int, bytes] = {}
        # one range scan over the page's span, bounded: a page whose span holds many other objects' views
        # (a sparse filter, a reader who sees little) looks the rest up by key instead
        bound = 4 * len(wanted) + 64
        cur.execute(f"SELECT added, mask, raw FROM object_views WHERE coll = {self.P} AND added BETWEEN {self.P} "
                    f"AND {self.P} ORDER BY added LIMIT {bound}", (coll, min(wanted), max(wanted)))
        rows = cur.fetchall()
        for a, mask, raw in rows:
            if wanted.get(a) == mask:
                out[a] = raw if type(raw) is bytes else bytes(raw)
        rest = sorted(a for a in wanted if a not in out) if len(rows) == bound else []
        for i in range(0, len(rest), 500):
            chunk = rest[i:i + 500]
            cur.execute(f"SELECT added, mask, raw FROM object_views WHERE coll = {self.P} AND added IN {self._in(chunk)}",
                        (coll, *chunk))
            for a, mask, raw in cur.fetchall():
                if wanted.get(a) == mask:
                    out[a] = raw if type(raw) is bytes else bytes(raw)
        return out

    def _visible_ids(self, cur: Any, principal: Principal | None, coll: int, ids: list[str], *,
                     any_version: bool = False) -> set[str]:
        """The ids among `ids` whose latest version (or any version) in the collection the principal may
        see; with no principal, the ids stored at all."""
        out: set[str] = set()
        wanted = set(ids)
        for i in range(0, len(ids), 500):
            chunk = sorted({id_hash(x) for x in ids[i:i + 500]})
            params: list[Any] = [coll]
            cond = self._visible_clause(principal, params) if principal is not None else ""
            if not any_version:
                cond += " AND is_latest = 1"
            params.append(coll)
            params.extend(chunk)
            cur.execute(f"SELECT DISTINCT id FROM objects WHERE coll = {self.P}{cond} "
                        f"AND date_added IN ({self._added_of(len(chunk))})", params)
            out.update(r[0] for r in cur.fetchall() if r[0] in wanted)
        return out

    def versions(self, principal: Principal, collection: Collection, object_id: str, flt: ObjectFilter) -> Page:
        scoped = ObjectFilter(added_after=flt.added_after, ids=[object_id], versions=("all",),
                              spec_versions=flt.spec_versions, limit=flt.limit, cursor=flt.cursor)
        return self.query(principal, collection, scoped, with_raw=False, way="versions")

    def count(self, principal: Principal, collection: Collection) -> int:
        self._check(principal, collection, write=False)
        params: list[Any] = [collection.no]
        cond = self._visible_clause(principal, params)
        with self._read() as cur:
            cur.execute(f"SELECT COUNT(*) FROM objects WHERE coll = {self.P}{cond} AND is_latest = 1", params)
            return int(cur.fetchone()[0])

    def delete(self, principal: Principal, collection: Collection, object_id: str, flt: ObjectFilter) -> int:
        self._check(principal, collection, write=True)
        scoped = ObjectFilter(ids=[object_id], versions=flt.versions, spec_versions=flt.spec_versions)
        cno = collection.no
        idh = id_hash(object_id)
        end = None
        with self._write_lock, self._write() as cur:
            self._lock_collection(cur, collection.id)
            params: list[Any] = [cno]
            cond = self._visible_clause(principal, params) + self._filters(scoped, params, cno)
            cur.execute(f"SELECT date_added, version_text, origin, submitted_by FROM objects WHERE coll = {self.P}{cond}",
                        params)
            doomed = cur.fetchall()
            mine = principal.org.id
            if not principal.is_admin and any(r[2] != mine and r[3] != mine for r in doomed):
                # visible to the principal, so saying why is no leak
                raise Forbidden("only the organisation that originated or submitted an object (or an administrator) "
                                "may delete it")
            added = [r[0] for r in doomed]
            for i in range(0, len(added), 500):
                chunk = added[i:i + 500]
                cur.execute(f"DELETE FROM objects WHERE coll = {self.P} AND date_added IN {self._in(chunk)}", (cno, *chunk))
                cur.execute(f"DELETE FROM id_index WHERE level IN (0, 1, 2) AND coll = {self.P} AND idh = {self.P} "
                            f"AND added IN {self._in(chunk)}", (cno, idh, *chunk))
                cur.execute(f"DELETE FROM dependencies WHERE coll = {self.P} AND added IN {self._in(chunk)}",
                            (cno, *chunk))
                cur.execute(f"DELETE FROM object_views WHERE coll = {self.P} AND added IN {self._in(chunk)}",
                            (cno, *chunk))
            if doomed:
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
                self._settle(cur, cno, self._directory(cur), [], {object_id}, {}, {object_id})
                end = self._audit(cur, principal, "delete", collection=collection,
                                  objects=[(object_id, r[1]) for r in doomed])
        self._publish_head(end)
        return len(doomed)

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
