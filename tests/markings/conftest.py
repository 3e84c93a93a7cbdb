"""A small society of organisations for releasability tests: communities, clients, readers and writers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kuroshio.ingest import ingest
from kuroshio.markings.definitions import releasable_to
from kuroshio.node import identity_object
from kuroshio.principals import Principal, Role, anonymous_principal
from kuroshio.store import Collection, ObjectFilter, Store

TS = "2026-01-01T00:00:00.000Z"


class Society:
    """O (origin) and R, M in community C; K a client of O; L a client of R; X an outsider.

    Every organisation has a contributor (`writer[name]`) and a reader (`reader[name]`), and may
    read one public collection whose default marking is TLP:AMBER.
    """

    ROLES = {"origin": "O", "named": "R", "client": "K", "client-of-named": "L", "community": "M", "outsider": "X"}

    def __init__(self, store: Store, tag: str = "") -> None:
        self.store = store
        self.org = {}
        for name in ("O", "R", "M", "X"):
            community = "C" if name in ("O", "R", "M") else None
            self.org[name] = store.add_organisation(name + tag, identity_object(name), community=community)
        self.org["K"] = store.add_organisation("K" + tag, identity_object("K"), client_of=self.org["O"].id)
        self.org["L"] = store.add_organisation("L" + tag, identity_object("L"), client_of=self.org["R"].id)
        self.coll = store.add_collection("intel", "c" + uuid.uuid4().hex[:8], "test", public=True)
        self.writer: dict[str, Principal] = {}
        self.reader: dict[str, Principal] = {}
        for name, org in self.org.items():
            store.grant(self.coll.id, org.id, can_read=True, can_write=True)
            self.writer[name] = self._principal(f"w{name}{tag}", org.id, Role.CONTRIBUTOR)
            self.reader[name] = self._principal(f"r{name}{tag}", org.id, Role.READER)
        self.reader["anon"] = anonymous_principal()

    def _principal(self, username: str, org_id: int, role: Role) -> Principal:
        return self.store.principal(self.store.add_user(username, org_id, role, None))

    def identity(self, name: str) -> str:
        return self.org[name].identity_id

    def releasable_to(self, *names: str, may_pass_on: bool = False, by: str = "O") -> dict[str, Any]:
        return releasable_to(f"marking-definition--{uuid.uuid4()}",
                             [(self.identity(n), n, None) for n in names],
                             created_by=self.identity(by), created=TS, may_pass_on=may_pass_on)

    def put(self, who: str, objects: list[dict[str, Any]], coll: Collection | None = None) -> dict[str, Any]:
        import orjson

        record = ingest(self.store, self.writer[who], coll or self.coll, objects)
        return orjson.loads(record.details)

    def sees(self, reader: str, oid: str) -> bool:
        rows = self.store.query(self.reader[reader], self.coll, ObjectFilter(ids=[oid])).rows
        return bool(rows)


@pytest.fixture
def society(store: Store) -> Society:
    return Society(store)
