"""The Store suite: run unchanged against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import orjson
import pytest

from kuroshio.ingest import ingest
from kuroshio.markings.definitions import TLP2
from kuroshio.node import identity_object
from kuroshio.principals import Principal, Role, User
from kuroshio.stix import timestamps
from kuroshio.store import Collection, Conflict, Forbidden, NotFound, ObjectFilter, Store

TS = "2026-01-01T00:00:00.000Z"


def indicator(i: int, modified: str = TS, *, value: str | None = None, oid: str | None = None) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": oid or f"indicator--{uuid.UUID(int=i + 1, version=4)}",
            "created": TS, "modified": modified, "pattern_type": "stix", "valid_from": TS,
            "pattern": f"[ipv4-addr:value = '{value or f'10.0.{i // 250 % 250}.{i % 250}'}']"}


class World:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.home = store.add_organisation("TWN", identity_object("Taiwan"), home=True)
        self.partner = store.add_organisation("JPN", identity_object("Japan"))
        self.coll = store.add_collection("intel", "shared", "Shared")
        store.grant(self.coll.id, self.home.id, can_read=True, can_write=True)
        self.writer = self.principal("alice", self.home.id, Role.CONTRIBUTOR)
        self.reader = self.principal("rita", self.home.id, Role.READER)
        self.outsider = self.principal("jun", self.partner.id, Role.ADMIN)

    def principal(self, name: str, org_id: int, role: Role) -> Principal:
        user = self.store.add_user(name, org_id, role, None)
        return self.store.principal(user)

    def ids(self, flt: ObjectFilter, coll: Collection | None = None) -> list[str]:
        return [r.id for r in self.store.query(self.reader, coll or self.coll, flt).rows]


@pytest.fixture
def world(store: Store) -> World:
    return World(store)


def test_migrations_are_versioned_and_idempotent(store: Store) -> None:
    assert store.migrate() == 0


def test_a_store_at_an_earlier_schema_upgrades_in_place(tmp_path: Any) -> None:
    import sqlite3
    from importlib import resources

    from kuroshio.store.sqlite import SqliteStore

    folder = resources.files("kuroshio.store").joinpath("migrations", "sqlite")
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)")
    for version, name in ((1, "0001_initial.sql"), (2, "0002_releasability.sql")):
        conn.executescript(folder.joinpath(name).read_text())
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, TS))
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    try:
        later = [f for f in folder.iterdir() if f.name.endswith(".sql") and int(f.name[:4]) > 2]
        assert store.migrate() == len(later) >= 1
        assert store.migrate() == 0
        world = World(store)  # the upgraded schema takes the whole write and read path
        record = ingest(store, world.writer, world.coll, [indicator(0)])
        assert record.success_count == 1
        assert world.ids(ObjectFilter()) == [indicator(0)["id"]]
    finally:
        store.close()
    conn = sqlite3.connect(path)
    assert "views" not in {r[1] for r in conn.execute("PRAGMA table_info(objects)")}
    assert conn.execute("SELECT count(*) FROM object_views").fetchone() == (0,)
    conn.close()


def test_organisations_users_tokens(world: World) -> None:
    s = world.store
    assert [o.name for o in s.organisations()] == ["TWN", "JPN"]
    assert s.organisation("TWN").home and not s.organisation("JPN").home
    assert orjson.loads(s.organisation_identity(world.home.id))["name"] == "Taiwan"
    with pytest.raises(Conflict):
        s.add_organisation("TWN", identity_object("again"))
    with pytest.raises(Conflict):
        s.add_user("alice", world.home.id, Role.READER, None)
    s.add_token(world.writer.user_id, "0123456789abcdef", "hash")
    user, secret_hash = s.token("0123456789abcdef")
    assert user.username == "alice" and secret_hash == "hash"
    assert s.token("nope") is None
    assert world.writer.known_identities == {world.home.identity_id, world.partner.identity_id}


def test_store_and_read_back_canonical_json(world: World) -> None:
    obj = indicator(1)
    record = ingest(world.store, world.writer, world.coll, [obj])
    assert (record.total_count, record.success_count, record.failure_count) == (1, 1, 0)
    page = world.store.query(world.reader, world.coll, ObjectFilter())
    stored = orjson.loads(page.rows[0].raw)
    # stamped with the publisher and, carrying no marking, with the collection's default (TLP:AMBER)
    assert stored == {**obj, "created_by_ref": world.home.identity_id, "object_marking_refs": [TLP2["amber"]]}
    assert page.rows[0].version_text == TS and not page.more


def test_versions_first_last_all_and_timestamps(world: World) -> None:
    oid = indicator(0)["id"]
    v1, v2, v3 = "2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z"
    # out of order: the newest arrives first, the oldest last
    for v in (v2, v3, v1):
        ingest(world.store, world.writer, world.coll, [indicator(0, v, oid=oid)])

    def versions(*match: str) -> list[str]:
        page = world.store.query(world.reader, world.coll, ObjectFilter(versions=match))
        return sorted(r.version_text for r in page.rows)

    assert versions("last") == [v3]
    assert versions("first") == [v1]
    assert versions("all") == [v1, v2, v3]
    assert versions("first", "last") == [v1, v3]
    assert versions(timestamps.key("2026-02-01T00:00:00Z")) == [v2]
    vpage = world.store.versions(world.reader, world.coll, oid, ObjectFilter())
    assert [r.version_text for r in vpage.rows] == [v2, v3, v1]  # in date_added order


def test_filters_and_paging(world: World) -> None:
    objs = [indicator(i) for i in range(25)]
    ident = identity_object("Someone")
    ingest(world.store, world.writer, world.coll, [*objs, ident])
    assert world.ids(ObjectFilter(types=["identity"])) == [ident["id"]]
    assert world.ids(ObjectFilter(ids=[objs[3]["id"], objs[7]["id"]])) == [objs[3]["id"], objs[7]["id"]]
    assert world.ids(ObjectFilter(spec_versions=["2.0"])) == []
    seen, cursor, pages = [], None, 0
    while True:
        page = world.store.query(world.reader, world.coll, ObjectFilter(limit=10, cursor=cursor))
        seen += [r.id for r in page.rows]
        pages += 1
        if not page.more:
            break
        cursor = page.next_cursor
    assert pages == 3 and seen == [o["id"] for o in objs] + [ident["id"]]
    all_rows = world.store.query(world.reader, world.coll, ObjectFilter(limit=100)).rows
    added = [r.date_added for r in all_rows]
    assert added == sorted(added) and len(set(added)) == len(added)
    after = world.store.query(world.reader, world.coll, ObjectFilter(added_after=added[19])).rows
    assert [r.id for r in after] == [r.id for r in all_rows[20:]]


def test_replays_are_idempotent_and_conflicts_reported(world: World) -> None:
    obj = indicator(5)
    ingest(world.store, world.writer, world.coll, [obj])
    again = ingest(world.store, world.writer, world.coll, [obj, obj])
    details = orjson.loads(again.details)
    assert again.success_count == 2 and again.failure_count == 0
    assert {s["message"] for s in details["successes"]} == {"already stored"}
    changed = ingest(world.store, world.writer, world.coll, [indicator(5, value="192.0.2.1")])
    assert changed.failure_count == 1
    assert "different object with the same id and version" in orjson.loads(changed.details)["failures"][0]["message"]
    assert world.store.count(world.reader, world.coll) == 1


def test_invalid_objects_fail_alone_and_store_nothing_of_themselves(world: World) -> None:
    record = ingest(world.store, world.writer, world.coll, [indicator(1), {"type": "indicator", "id": "bad"}, indicator(2)])
    assert (record.success_count, record.failure_count) == (2, 1)
    failure = orjson.loads(record.details)["failures"][0]
    assert failure["id"] == "bad" and "rule:" in failure["message"]
    assert world.store.count(world.reader, world.coll) == 2


def test_access_is_checked_in_the_store(world: World) -> None:
    ingest(world.store, world.writer, world.coll, [indicator(1)])
    with pytest.raises(NotFound):
        world.store.query(world.outsider, world.coll, ObjectFilter())
    with pytest.raises(NotFound):
        ingest(world.store, world.outsider, world.coll, [indicator(2)])
    with pytest.raises(Forbidden):
        ingest(world.store, world.reader, world.coll, [indicator(2)])
    world.store.grant(world.coll.id, world.partner.id, can_read=True, can_write=False)
    # access to the collection does not widen an object's audience: TLP:AMBER of TWN stays with TWN
    assert world.store.query(world.outsider, world.coll, ObjectFilter()).rows == []
    ingest(world.store, world.writer, world.coll, [{**indicator(3), "object_marking_refs": [TLP2["clear"]]}])
    assert len(world.store.query(world.outsider, world.coll, ObjectFilter()).rows) == 1
    with pytest.raises(Forbidden):
        ingest(world.store, world.outsider, world.coll, [indicator(2)])


def test_impersonation_is_refused_and_third_party_content_accepted(world: World) -> None:
    as_partner = {**indicator(1), "created_by_ref": world.partner.identity_id}
    third_party = {**indicator(2), "created_by_ref": "identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5"}
    record = ingest(world.store, world.writer, world.coll, [as_partner, third_party])
    details = orjson.loads(record.details)
    assert record.failure_count == 1 and "impersonation" in details["failures"][0]["message"]
    assert world.ids(ObjectFilter()) == [third_party["id"]]


def test_delete(world: World) -> None:
    oid = indicator(0)["id"]
    for v in ("2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z"):
        ingest(world.store, world.writer, world.coll, [indicator(0, v, oid=oid)])
    assert world.store.delete(world.writer, world.coll, oid, ObjectFilter(versions=["last"])) == 1
    rows = world.store.query(world.reader, world.coll, ObjectFilter(versions=["last"])).rows
    assert [r.version_text for r in rows] == ["2026-01-01T00:00:00.000Z"]  # the remaining version is now latest
    with pytest.raises(Forbidden):
        world.store.delete(world.reader, world.coll, oid, ObjectFilter(versions=["all"]))
    assert world.store.delete(world.writer, world.coll, oid, ObjectFilter(versions=["all"])) == 1
    assert world.store.delete(world.writer, world.coll, oid, ObjectFilter(versions=["all"])) == 0


def test_status_belongs_to_the_posting_organisation(world: World) -> None:
    record = ingest(world.store, world.writer, world.coll, [indicator(1)])
    got = world.store.status(world.reader, "intel", record.id)
    assert got is not None and got.success_count == 1
    assert world.store.status(world.outsider, "intel", record.id) is None
    assert world.store.status(world.reader, "other-root", record.id) is None


@pytest.mark.slow
def test_concurrent_writers_never_make_a_pager_miss_or_repeat(store: Store) -> None:
    """Several writers commit envelopes while a client pages with next and added_after: the client
    ends with every object exactly once (the OpenCTI connector lost 3 of 20 objects on tied date_added)."""
    world = World(store)
    writers, per_writer = 4, 60
    written: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def write(w: int) -> None:
        r = random.Random(w)
        principal = world.principal(f"writer{w}", world.home.id, Role.CONTRIBUTOR)
        i = 0
        while i < per_writer:
            n = r.randint(1, 7)
            batch = [indicator(w * 10_000 + j) for j in range(i, min(i + n, per_writer))]
            ingest(store, principal, world.coll, batch)
            with lock:
                written.extend(o["id"] for o in batch)
            i += n
            time.sleep(r.random() * 0.004)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    seen: list[str] = []
    cursor: int | None = None
    added_after: int | None = None
    use_next = True
    while True:
        finished = done.is_set()
        page = store.query(world.reader, world.coll, ObjectFilter(limit=5, cursor=cursor if use_next else None,
                                                                  added_after=None if use_next else added_after))
        seen += [r.id for r in page.rows]
        if page.rows:
            added_after = page.rows[-1].date_added
        if page.more:
            cursor = page.next_cursor
        else:
            cursor = added_after
            if finished:
                break
            if all(not t.is_alive() for t in threads):
                done.set()
        use_next = not use_next  # alternate the two ways a TAXII client resumes
    for t in threads:
        t.join()
    assert len(written) == writers * per_writer
    assert len(seen) == len(set(seen)), "an object was delivered twice"
    assert set(seen) == set(written), f"{len(set(written) - set(seen))} objects were missed"


def test_sco_without_version_is_stored_once(world: World) -> None:
    sco = {"type": "ipv4-addr", "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd", "value": "198.51.100.1"}
    assert ingest(world.store, world.writer, world.coll, [sco]).success_count == 1
    again = ingest(world.store, world.writer, world.coll, [sco])
    assert orjson.loads(again.details)["successes"][0]["message"] == "already stored"
    rows = world.store.query(world.reader, world.coll, ObjectFilter()).rows
    assert len(rows) == 1 and rows[0].version_text == ""


def test_principal_for_unknown_org_user(world: World) -> None:
    ghost = User(999, "ghost", world.home.id, Role.READER, None, False)
    assert world.store.principal(ghost).org.name == "TWN"


def test_old_status_resources_expire(world: World) -> None:
    old = ingest(world.store, world.writer, world.coll, [indicator(1)])
    world.store.STATUS_RETENTION_SECONDS = 0  # type: ignore[misc]
    world.store._statuses_expired_at = 0  # type: ignore[attr-defined]
    time.sleep(0.01)
    new = ingest(world.store, world.writer, world.coll, [indicator(2)])
    assert world.store.status(world.reader, "intel", old.id) is None
    assert world.store.status(world.reader, "intel", new.id) is not None


def test_id_lookups_work_across_index_levels(world: World) -> None:
    """Small level sizes force merges (0 -> 1 -> 2); lookups, versions and deletes see every level."""
    world.store.L0_MAX, world.store.L1_MAX = 5, 20  # type: ignore[misc]
    objs = [indicator(i) for i in range(60)]
    for i in range(0, 60, 7):
        ingest(world.store, world.writer, world.coll, objs[i:i + 7])
    newer = "2026-06-01T00:00:00.000Z"
    for i in (0, 30, 59):  # ids now in levels 2, 1 and 0
        ingest(world.store, world.writer, world.coll, [indicator(i, newer, oid=objs[i]["id"])])
        rows = world.store.query(world.reader, world.coll, ObjectFilter(ids=[objs[i]["id"]], versions=["all"])).rows
        assert sorted(r.version_text for r in rows) == [TS, newer]
        assert [r.version_text for r in world.store.query(world.reader, world.coll,
                                                          ObjectFilter(ids=[objs[i]["id"]])).rows] == [newer]
    replay = ingest(world.store, world.writer, world.coll, objs)
    assert replay.success_count == 60 and replay.failure_count == 0  # all found as already stored
    assert world.store.count(world.reader, world.coll) == 60
    assert world.store.delete(world.writer, world.coll, objs[0]["id"], ObjectFilter(versions=["last"])) == 1
    assert [r.version_text for r in world.store.query(world.reader, world.coll,
                                                      ObjectFilter(ids=[objs[0]["id"]])).rows] == [TS]
    assert world.store.delete(world.writer, world.coll, objs[0]["id"], ObjectFilter(versions=["all"])) == 1
    assert world.store.query(world.reader, world.coll, ObjectFilter(ids=[objs[0]["id"]])).rows == []


def test_a_checkpoint_commits_with_its_objects_or_not_at_all(world: World) -> None:
    s = world.store
    record = ingest(s, world.writer, world.coll, [indicator(0)], checkpoint=("pull:JPN:shared", '{"next": "a"}'))
    assert record.success_count == 1 and s.sync_state("pull:JPN:shared") == '{"next": "a"}'

    def failing() -> Any:
        yield [], []
        raise RuntimeError("the writer died mid-envelope")

    with pytest.raises(RuntimeError):
        s.add_objects(world.writer, world.coll, failing(), checkpoint=("pull:JPN:shared", '{"next": "b"}'))
    assert s.sync_state("pull:JPN:shared") == '{"next": "a"}'  # rolled back with the envelope
    s.set_sync_state("pull:JPN:intel", "1")
    s.set_sync_state("push:JPN:shared", "2")
    assert s.sync_states("pull:JPN:") == {"pull:JPN:intel": "1", "pull:JPN:shared": '{"next": "a"}'}
    assert s.sync_state("nothing") is None
