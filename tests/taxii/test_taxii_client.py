"""Every TAXII 2.1 endpoint and filter, driven by the OASIS taxii2-client against a real server on 127.0.0.1."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
import requests
from stix2validator import ValidationOptions, validate_instance
from taxii2client.common import TokenAuth
from taxii2client.v21 import ApiRoot, Collection, Server, Status, as_pages

from kuroshio.ingest import ingest
from kuroshio.principals import Role
from kuroshio.stix import timestamps

from ..conftest import PASSWORD, RunningServer

TAXII = "application/taxii+json;version=2.1"
TS = "2026-01-01T00:00:00.000Z"


def indicator(n: int, modified: str = TS) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.UUID(int=n + 1, version=4)}",
            "created": TS, "modified": modified, "pattern_type": "stix", "valid_from": TS,
            "name": f"C2 address {n}", "indicator_types": ["malicious-activity"],
            "pattern": f"[ipv4-addr:value = '10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}']"}


def mixed_objects(count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in range(count):
        kind = n % 5
        oid = uuid.UUID(int=n + 1, version=4)
        base = {"spec_version": "2.1", "created": TS, "modified": TS}
        if kind == 0:
            out.append(indicator(n))
        elif kind == 1:
            out.append({**base, "type": "malware", "id": f"malware--{oid}", "name": f"family {n}", "is_family": True,
                        "malware_types": ["trojan"]})
        elif kind == 2:
            out.append({**base, "type": "relationship", "id": f"relationship--{oid}", "relationship_type": "indicates",
                        "source_ref": out[-2]["id"], "target_ref": out[-1]["id"]})
        elif kind == 3:
            out.append({**base, "type": "threat-actor", "id": f"threat-actor--{oid}", "name": f"actor {n}",
                        "threat_actor_types": ["nation-state"]})
        else:
            out.append({**base, "type": "report", "id": f"report--{oid}", "name": f"report {n}", "published": TS,
                        "object_refs": [out[-1]["id"], out[-4]["id"]]})
    return out


@pytest.fixture
def client_root(server: RunningServer) -> ApiRoot:
    return Server(server.discovery, user="alice", password=PASSWORD).api_roots[0]


def collection(root: ApiRoot, alias: str) -> Collection:
    return next(c for c in root.collections if c._alias == alias)  # type: ignore[attr-defined]


def test_discovery_api_root_and_collections(server: RunningServer) -> None:
    srv = Server(server.discovery, user="alice", password=PASSWORD)
    assert srv.title == "Kuroshio node TWN"
    assert srv.default.url == server.root_url()  # URLs work for the address the client used
    assert [r.url for r in srv.api_roots] == [server.root_url()]
    root = srv.api_roots[0]
    assert root.versions == [TAXII] and root.max_content_length == server.node.config.max_content_length
    by_alias = {c._alias: c for c in root.collections}  # type: ignore[attr-defined]
    assert set(by_alias) == {"shared", "reference"}
    assert by_alias["shared"].can_read and by_alias["shared"].can_write
    assert by_alias["shared"].media_types == ["application/stix+json;version=2.1"]
    reader_root = Server(server.discovery, user="rita", password=PASSWORD).api_roots[0]
    shared = next(c for c in reader_root.collections if c._alias == "shared")  # type: ignore[attr-defined]
    assert shared.can_read and not shared.can_write
    one = Collection(f"{server.root_url()}collections/{by_alias['shared'].id}/", user="alice", password=PASSWORD)
    assert one.title == "Shared intelligence"
    # the same collection by its alias (a convenience of ours; taxii2-client wants ids in URLs)
    resp = requests.get(f"{server.root_url()}collections/shared/", auth=("alice", PASSWORD), headers={"Accept": TAXII})
    assert resp.json()["id"] == by_alias["shared"].id


def test_add_objects_and_status(server: RunningServer, client_root: ApiRoot) -> None:
    shared = collection(client_root, "shared")
    status = shared.add_objects({"objects": [indicator(1), indicator(2), {"type": "indicator", "id": "nope"}]})
    assert status.status == "complete" and status.total_count == 3
    assert status.success_count == 2 and status.failure_count == 1 and status.pending_count == 0
    assert {s["id"] for s in status.successes} == {indicator(1)["id"], indicator(2)["id"]}
    assert "identifier" in status.failures[0]["message"]
    # the status resource, fetched again through its URL (taxii2-client builds it without a trailing slash)
    again = Status(status.url, user="alice", password=PASSWORD)
    assert again.success_count == 2 and again.failures == status.failures
    assert client_root.get_status(status.id).id == status.id


def test_object_filters(server: RunningServer, client_root: ApiRoot) -> None:
    shared = collection(client_root, "shared")
    v1, v2, v3 = "2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z"
    shared.add_objects({"objects": [indicator(1, v1), indicator(2)]})
    shared.add_objects({"objects": [indicator(1, v2)]})
    shared.add_objects({"objects": [indicator(1, v3), mixed_objects(2)[1]]})
    oid = indicator(1)["id"]

    def ids(**kw: Any) -> list[str]:
        return [o["id"] for o in shared.get_objects(**kw).get("objects", [])]

    def versions(**kw: Any) -> list[str]:
        return sorted(o["modified"] for o in shared.get_objects(id=oid, **kw).get("objects", []))

    assert versions() == [v3]  # default: the last version
    assert versions(version="first") == [v1]
    assert versions(version="all") == [v1, v2, v3]
    assert versions(version=["first", "last"]) == [v1, v3]
    assert versions(version=v2) == [v2]
    assert versions(version="2026-02-01T00:00:00Z") == [v2]  # same instant, other precision
    assert ids(type="malware") == [mixed_objects(2)[1]["id"]]
    assert sorted(ids(type=["malware", "identity"])) == sorted([mixed_objects(2)[1]["id"], server.node.config.identity])
    assert ids(spec_version="2.0") == []
    assert len(ids(spec_version="2.1")) == 4
    page = shared.get_objects(limit=2)
    assert page["more"] is True and len(page["objects"]) == 2
    rest = shared.get_objects(limit=10, next=page["next"])
    assert rest["more"] is False and len(rest["objects"]) == 2
    # added_after with the header a client gets back
    resp = requests.get(shared.objects_url, params={"limit": 2}, auth=("alice", PASSWORD), headers={"Accept": TAXII})
    first_page = resp.json()["objects"]
    last_added = resp.headers["X-TAXII-Date-Added-Last"]
    assert timestamps.check(last_added) is None and resp.headers["X-TAXII-Date-Added-First"] <= last_added
    after = ids(added_after=last_added)
    assert len(after) == 2 and not set(after) & {o["id"] for o in first_page}
    # single object, versions, manifest
    obj = shared.get_object(oid)
    assert [o["modified"] for o in obj["objects"]] == [v3]
    assert [o["modified"] for o in shared.get_object(oid, version="all")["objects"]] == [v1, v2, v3]
    assert shared.object_versions(oid)["versions"] == [v1, v2, v3]
    first_two = shared.object_versions(oid, limit=2)
    assert first_two["versions"] == [v1, v2] and first_two["more"]
    assert shared.object_versions(oid, limit=2, next=first_two["next"])["versions"] == [v3]
    assert shared.object_versions(oid, spec_version="2.1")["versions"] == [v1, v2, v3]
    one = shared.get_object(oid, version="all", limit=1)
    assert len(one["objects"]) == 1 and one["more"]
    manifest = shared.get_manifest(id=oid, version="all")["objects"]
    assert [m["version"] for m in manifest] == [v1, v2, v3]
    assert {m["media_type"] for m in manifest} == {"application/stix+json;version=2.1"}
    assert all(timestamps.check(m["date_added"]) is None for m in manifest)


def test_delete_object(server: RunningServer, client_root: ApiRoot) -> None:
    shared = collection(client_root, "shared")
    shared.add_objects({"objects": [indicator(1), indicator(1, "2026-05-01T00:00:00.000Z")]})
    oid = indicator(1)["id"]
    shared.delete_object(oid, version="first")
    assert shared.object_versions(oid)["versions"] == ["2026-05-01T00:00:00.000Z"]
    shared.delete_object(oid)
    with pytest.raises(requests.HTTPError) as exc:
        shared.get_object(oid)
    assert exc.value.response.status_code == 404


def test_api_tokens(server: RunningServer) -> None:
    _, token = server.node.add_user("svc", Role.READER, token=True)
    assert token
    root = Server(server.discovery, auth=TokenAuth(token)).api_roots[0]  # "Authorization: Token ..."
    assert {c._alias for c in root.collections} == {"shared", "reference"}  # type: ignore[attr-defined]
    resp = requests.get(server.discovery, headers={"Authorization": f"Bearer {token}", "Accept": TAXII})
    assert resp.status_code == 200
    bad = requests.get(server.discovery, headers={"Authorization": f"Bearer {token[:-2]}xx", "Accept": TAXII})
    assert bad.status_code == 401


@pytest.mark.slow
def test_paging_more_than_ten_thousand_objects(server: RunningServer, client_root: ApiRoot) -> None:
    node = server.node
    objects = mixed_objects(10_500)
    operator = node.operator()
    coll = node.collection("intel", "shared")
    for i in range(0, len(objects), 1000):
        assert ingest(node.store, operator, coll, objects[i:i + 1000]).failure_count == 0
    shared = collection(client_root, "shared")
    got: list[dict[str, Any]] = []
    pages = 0
    for envelope in as_pages(shared.get_objects, per_request=1000):
        got.extend(envelope.get("objects", []))
        pages += 1
    assert pages == 11
    assert len(got) == 10_501 and len({o["id"] for o in got}) == 10_501  # + the node's identity
    manifest = [m for env in as_pages(shared.get_manifest, per_request=3000) for m in env.get("objects", [])]
    assert [m["id"] for m in manifest] == [o["id"] for o in got]
    logging.getLogger("stix2validator").setLevel(logging.CRITICAL)
    options = ValidationOptions()
    invalid = [o["id"] for o in got if not validate_instance(o, options).is_valid]
    assert invalid == []
