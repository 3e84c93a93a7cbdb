"""One regression test per leak class other platforms shipped, over real HTTP (and the real CLI for exports).

OpenCTI leaked through its history tab, exports, filter lists, relation counts and live streams;
a MISP exchange leaked sharing-group names and members. Each test builds the situation of one of
those reports on a node and checks a reader outside the audience learns nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from kuroshio.ingest import ingest
from kuroshio.markings.definitions import TLP2, releasable_to
from kuroshio.node import Node
from kuroshio.principals import Role
from kuroshio.store import ObjectFilter

from ..conftest import PASSWORD, RunningServer

TAXII = "application/taxii+json;version=2.1"
T1, T2, T3 = "2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z"


def indicator(modified: str = T1, *, oid: str | None = None, marking: str | None = None, **extra: Any) -> dict[str, Any]:
    obj = {"type": "indicator", "spec_version": "2.1", "id": oid or f"indicator--{uuid.uuid4()}", "created": T1,
           "modified": modified, "pattern_type": "stix", "valid_from": T1,
           "pattern": "[ipv4-addr:value = '203.0.113.9']", **extra}
    if marking:
        obj["object_marking_refs"] = [marking]
    return obj


class Scene:
    """TWN's node: JPN is a partner (community), PHL reads the shared collection but is no partner."""

    def __init__(self, node: Node, server: RunningServer) -> None:
        self.node = node
        self.server = server
        node.ensure_organisation("JPN", partner=True, country="JP")
        node.ensure_organisation("PHL", country="PH")
        node.add_user("jun", Role.CONTRIBUTOR, org="JPN", password=PASSWORD)
        node.add_user("pat", Role.CONTRIBUTOR, org="PHL", password=PASSWORD)
        node.add_user("pam", Role.ADMIN, org="PHL", password=PASSWORD)
        self.coll = node.collection("intel", "shared")
        for org in ("JPN", "PHL"):
            node.store.grant(self.coll.id, node.store.organisation(org).id, can_read=True, can_write=True)
        self.url = f"/intel/collections/{self.coll.id}/"
        self.operator = node.operator()

    def put(self, *objects: dict[str, Any], user: str = "alice") -> dict[str, Any]:
        principal = self.node.store.principal(self.node.store.user(user))
        return orjson.loads(ingest(self.node.store, principal, self.coll, list(objects)).details)

    def client(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.base, auth=(user, PASSWORD), headers={"Accept": TAXII}, timeout=30)

    def get(self, user: str, path: str, **params: Any) -> httpx.Response:
        with self.client(user) as c:
            return c.get(self.url + path, params=params)

    def ids(self, user: str, **params: Any) -> list[str]:
        return [o["id"] for o in self.get(user, "objects/", **params).json().get("objects", [])]

    def identity(self, org: str) -> str:
        return self.node.store.organisation(org).identity_id


@pytest.fixture
def scene(node: Node) -> Iterator[Scene]:
    with RunningServer(node) as server:
        yield Scene(node, server)


def test_history_does_not_leak_restricted_versions(scene: Scene) -> None:
    """OpenCTI #6785 class: the history of an object showed versions the reader could not see."""
    tightened = f"indicator--{uuid.uuid4()}"
    scene.put(indicator(T1, oid=tightened, marking=TLP2["clear"], description="v1"))
    scene.put(indicator(T2, oid=tightened, marking=TLP2["red"], description="v2 names the source"))
    widened = f"indicator--{uuid.uuid4()}"
    scene.put(indicator(T1, oid=widened, marking=TLP2["red"], description="the source is Agent K"))
    scene.put(indicator(T2, oid=widened, marking=TLP2["green"], description="sanitised"))
    # made more restrictive: its whole history is gone for JPN, answering like an object that never existed
    missing = f"indicator--{uuid.uuid4()}"
    for path in (f"objects/{tightened}/", f"objects/{tightened}/versions/"):
        hidden, absent = scene.get("jun", path), scene.get("jun", path.replace(tightened, missing))
        assert hidden.status_code == absent.status_code == 404
        assert hidden.content == absent.content
    assert scene.get("jun", f"objects/{tightened}/", **{"match[version]": "all"}).status_code == 404
    # widened: JPN sees the sanitised version only, never the RED one before it
    assert scene.get("jun", f"objects/{widened}/versions/").json()["versions"] == [T2]
    every = scene.get("jun", f"objects/{widened}/", **{"match[version]": "all"}).json()["objects"]
    assert [o["description"] for o in every] == ["sanitised"]
    assert "Agent K" not in scene.get("jun", "objects/", **{"match[version]": "all"}).text


def test_exports_contain_only_what_the_user_may_see(scene: Scene) -> None:
    """OpenCTI #7348 class: an export carried objects (and parts) the exporting user could not see."""
    shared = indicator(marking=TLP2["green"], description="public part", name="C2 address",
                       granular_markings=[{"selectors": ["description"], "marking_ref": TLP2["red"]}])
    secret = indicator(marking=TLP2["red"], name="source-protected")
    scene.put(shared, secret)
    scene.node.close()  # the CLI opens the node itself
    home = scene.node.config.home
    proc = subprocess.run([sys.executable, "-m", "kuroshio.cli", "export", str(home), "--collection", "shared",
                           "--as", "jun"], capture_output=True, timeout=120, env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    bundle = orjson.loads(proc.stdout)
    by_id = {o["id"]: o for o in bundle["objects"]}
    assert secret["id"] not in by_id and b"source-protected" not in proc.stdout
    assert by_id[shared["id"]]["name"] == "C2 address" and "description" not in by_id[shared["id"]]
    assert "granular_markings" not in by_id[shared["id"]] and b"public part" not in proc.stdout


def test_filter_lists_and_date_headers_reveal_nothing(scene: Scene) -> None:
    """OpenCTI #6745 class: filter value lists offered entities the user could not see."""
    visible = indicator(T1, marking=TLP2["green"])
    scene.put(visible)
    hidden_malware = {"type": "malware", "spec_version": "2.1", "id": f"malware--{uuid.uuid4()}", "created": T2,
                      "modified": T2, "name": "RedLadder", "is_family": True, "object_marking_refs": [TLP2["red"]]}
    scene.put(hidden_malware)
    # filtering on the hidden type answers like a type that is not there at all
    on_hidden = scene.get("jun", "objects/", **{"match[type]": "malware"})
    on_absent = scene.get("jun", "objects/", **{"match[type]": "campaign"})
    assert on_hidden.status_code == on_absent.status_code == 200
    assert on_hidden.json() == on_absent.json() == {"more": False}
    # the date headers cover the objects the reader received, not the hidden ones added later
    resp = scene.get("jun", "objects/", **{"match[type]": "indicator,malware"})
    assert [o["id"] for o in resp.json()["objects"]] == [visible["id"]]
    manifest = scene.get("jun", "manifest/", **{"match[type]": "indicator,malware"})
    assert resp.headers["X-TAXII-Date-Added-Last"] == manifest.json()["objects"][0]["date_added"]
    mine = scene.get("alice", "objects/", **{"match[type]": "indicator,malware"})
    assert resp.headers["X-TAXII-Date-Added-Last"] < mine.headers["X-TAXII-Date-Added-Last"]


def test_relations_and_containers_do_not_count_hidden_objects(scene: Scene) -> None:
    """OpenCTI #10006 class: relation counts and container contents disclosed restricted entities."""
    public = indicator(marking=TLP2["green"])
    secret = indicator(marking=TLP2["red"])
    rel = {"type": "relationship", "spec_version": "2.1", "id": f"relationship--{uuid.uuid4()}", "created": T1,
           "modified": T1, "relationship_type": "related-to", "source_ref": public["id"], "target_ref": secret["id"],
           "object_marking_refs": [TLP2["green"]]}
    sensor = {"type": "identity", "spec_version": "2.1", "id": f"identity--{uuid.uuid4()}", "created": T1,
              "modified": T1, "name": "Undisclosed sensor site", "object_marking_refs": [TLP2["red"]]}
    sighting = {"type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}", "created": T1,
                "modified": T1, "sighting_of_ref": public["id"],
                "where_sighted_refs": [sensor["id"], scene.identity("PHL")], "object_marking_refs": [TLP2["green"]]}
    report = {"type": "report", "spec_version": "2.1", "id": f"report--{uuid.uuid4()}", "created": T1, "modified": T1,
              "name": "Weekly", "published": T1, "object_refs": [public["id"], secret["id"], rel["id"]],
              "object_marking_refs": [TLP2["green"]]}
    only_secret = {**report, "id": f"report--{uuid.uuid4()}", "object_refs": [secret["id"]]}
    details = scene.put(public, secret, sensor, rel, sighting, report, only_secret)
    assert not details["failures"], details["failures"]
    got = {o["id"]: o for o in scene.get("jun", "objects/").json()["objects"]}
    assert rel["id"] not in got and secret["id"] not in got and only_secret["id"] not in got
    assert got[report["id"]]["object_refs"] == [public["id"]]  # neither the secret nor the relationship to it
    assert got[sighting["id"]]["where_sighted_refs"] == [scene.identity("PHL")]  # not the undisclosed site
    assert scene.node.store.count(scene.node.store.principal(scene.node.store.user("jun")), scene.coll) == len(got)
    for hidden in (rel["id"], only_secret["id"]):
        assert scene.get("jun", f"objects/{hidden}/").status_code == 404


def test_paging_skips_hidden_objects_without_empty_pages(scene: Scene) -> None:
    """OpenCTI #3319 class: live streams and pagination exposed (or counted) restricted events."""
    objs = [indicator(marking=TLP2["green" if i % 3 == 0 else "red"]) for i in range(9)]
    scene.put(*objs)
    pages, seen, params = 0, [], {"limit": 1}
    while True:
        resp = scene.get("jun", "objects/", **params).json()
        pages += 1
        seen += [o["id"] for o in resp.get("objects", [])]
        assert resp.get("objects"), "an empty page while more were promised"
        if not resp["more"]:
            break
        params = {"limit": 1, "next": resp["next"]}
    visible = [o["id"] for i, o in enumerate(objs) if i % 3 == 0]
    assert seen[-len(visible):] == visible and pages == len(seen)
    assert all(o not in seen for i, o in enumerate(x["id"] for x in objs) if i % 3)


def test_marking_definitions_do_not_reveal_groups(scene: Scene) -> None:
    """MISP class: a sharing group's name and members reached instances outside the group."""
    group = releasable_to(f"marking-definition--{uuid.uuid4()}", [(scene.identity("JPN"), "JPN", "JP")],
                          created_by=scene.identity("TWN"), created=T1)
    obj = indicator(marking=group["id"])
    details = scene.put(group, obj)
    assert not details["failures"], details["failures"]
    assert set(scene.ids("jun")) >= {group["id"], obj["id"]}
    assert group["id"] not in scene.ids("pat") and obj["id"] not in scene.ids("pat")
    listing = scene.get("pat", "objects/", **{"match[type]": "marking-definition"}).text
    assert "RELEASABLE TO" not in listing and scene.identity("JPN") not in listing
    hidden, absent = (scene.get("pat", f"objects/{group['id']}/"),
                      scene.get("pat", f"objects/marking-definition--{uuid.uuid4()}/"))
    assert hidden.status_code == absent.status_code == 404 and hidden.content == absent.content


def test_hidden_objects_answer_exactly_like_missing_ones(scene: Scene) -> None:
    """GET object, GET versions, DELETE and match[id]: the same status and the same body."""
    secret = indicator(marking=TLP2["red"])
    scene.put(secret)
    missing = f"indicator--{uuid.uuid4()}"
    with scene.client("pat") as c:
        for method, path in (("GET", "objects/{}/"), ("GET", "objects/{}/versions/"), ("DELETE", "objects/{}/")):
            hidden = c.request(method, scene.url + path.format(secret["id"]))
            absent = c.request(method, scene.url + path.format(missing))
            assert (hidden.status_code, hidden.content) == (absent.status_code, absent.content), (method, path)
            assert hidden.status_code == 404
        hidden = c.get(scene.url + "objects/", params={"match[id]": secret["id"]})
        absent = c.get(scene.url + "objects/", params={"match[id]": missing})
        assert (hidden.status_code, hidden.content) == (absent.status_code, absent.content) == (200, b'{"more":false}')
    assert scene.ids("alice", **{"match[id]": secret["id"]}) == [secret["id"]]  # it was not deleted


def test_audit_view_does_not_reveal_hidden_objects(scene: Scene) -> None:
    secret = indicator(marking=TLP2["red"])
    visible = indicator(marking=TLP2["clear"])
    scene.put(secret, visible)
    scene.ids("alice")
    scene.node.store.flush_audit()
    store = scene.node.store
    pam = store.principal(store.user("pam"))
    records = [rec for _, _, rec in store.audit_view(pam)]
    text = orjson.dumps(records).decode()
    assert visible["id"] in text and secret["id"] not in text
    assert [r for _, _, r in store.audit_view(pam, object_id=secret["id"])] == []
    twn_admin = store.principal(store.user("root"))
    assert any(secret["id"] in orjson.dumps(r).decode() for _, _, r in store.audit_view(twn_admin))


def test_public_collection_serves_clear_objects_to_anonymous_readers(scene: Scene) -> None:
    store = scene.node.store
    store.set_collection(scene.coll.id, default_marking=TLP2["green"], public=True)
    clear, green = indicator(marking=TLP2["clear"]), indicator(marking=TLP2["green"])
    scene.put(clear, green)
    with httpx.Client(base_url=scene.server.base, headers={"Accept": TAXII}, timeout=30) as anon:
        got = anon.get(scene.url + "objects/").json()
        assert [o["id"] for o in got["objects"]] == [clear["id"]]
        assert anon.post(scene.url + "objects/", content=b"{}",
                         headers={"Content-Type": TAXII}).status_code in (401, 403)
        other = scene.node.collection("intel", "reference")
        closed = anon.get(f"/intel/collections/{other.id}/objects/")
        nowhere = anon.get(f"/intel/collections/{uuid.uuid4()}/objects/")
        assert closed.status_code == nowhere.status_code == 401 and closed.content == nowhere.content


def test_bad_markings_are_refused_with_a_reason_and_nothing_is_stored(scene: Scene) -> None:
    store = scene.node.store
    before = store.count(scene.operator, scene.coll)
    unknown = indicator(marking=f"marking-definition--{uuid.uuid4()}")
    dangling = indicator(marking=TLP2["green"], granular_markings=[{"selectors": ["labels.[3]"],
                                                                    "marking_ref": TLP2["red"]}])
    exercise = indicator(marking="marking-definition--933bb2e5-5b97-418f-a16d-cf1a3a038bb3")
    details = scene.put(unknown, dangling, exercise)
    reasons = {f["id"]: f["message"] for f in details["failures"]}
    assert "does not know" in reasons[unknown["id"]] and "[rule: unknown-marking]" in reasons[unknown["id"]]
    assert "'labels.[3]' does not select anything" in reasons[dangling["id"]]
    assert "[rule: exercise]" in reasons[exercise["id"]]
    # a marking the writer may not apply: JPN widening TWN's RED object in TWN's name
    red = indicator(T1, marking=TLP2["red"], created_by_ref=scene.identity("TWN"))
    red_to_jpn = releasable_to(f"marking-definition--{uuid.uuid4()}", [(scene.identity("JPN"), "JPN", "JP")],
                               created_by=scene.identity("TWN"), created=T1)
    scene.put(red_to_jpn, {**red, "object_marking_refs": [TLP2["red"], red_to_jpn["id"]]})
    count = store.count(scene.operator, scene.coll)
    widened = {**red, "modified": T2, "object_marking_refs": [TLP2["green"]]}
    refusal = scene.put(widened, user="jun")["failures"][0]["message"]
    assert "[rule: impersonation]" in refusal and "more restrictive" in refusal
    tightened = {**red, "modified": T3, "object_marking_refs": [TLP2["red"]]}  # drops JPN: more restrictive
    assert not scene.put(tightened, user="jun")["failures"]
    assert store.count(scene.operator, scene.coll) == count == before + 2
    assert scene.ids("jun", **{"match[id]": red["id"]}) == []  # JPN made it RED for TWN only


def test_exercise_objects_live_only_in_exercise_collections(scene: Scene, tmp_path: Path) -> None:
    store = scene.node.store
    drill = store.add_collection("intel", "drill", "Exercise KUROSHIO-26", exercise=True)
    store.grant(drill.id, store.organisation("TWN").id, can_read=True, can_write=True)
    inject = indicator(marking="marking-definition--933bb2e5-5b97-418f-a16d-cf1a3a038bb3")
    principal = store.principal(store.user("alice"))
    record = ingest(store, principal, drill, [inject])
    assert record.success_count == 1
    assert [r.id for r in store.query(principal, drill, ObjectFilter()).rows] == [inject["id"]]
    assert scene.ids("alice", **{"match[id]": inject["id"]}) == []
