"""Bad input gets the right 4xx with a TAXII error body, nothing is stored, and nothing answers 500."""

from __future__ import annotations

import base64
import random
import string
from typing import Any

import httpx
import orjson
import pytest

from kuroshio.principals import Role
from kuroshio.store import ObjectFilter

from ..conftest import PASSWORD, RunningServer

TAXII = "application/taxii+json;version=2.1"
GOOD = {"type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z", "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z", "pattern": "[ipv4-addr:value = '198.51.100.1']"}


@pytest.fixture
def http(server: RunningServer) -> httpx.Client:
    with httpx.Client(base_url=server.base, auth=("alice", PASSWORD), headers={"Accept": TAXII}, timeout=30) as c:
        yield c


def objects_url(server: RunningServer, alias: str = "shared") -> str:
    coll = server.node.collection("intel", alias)
    return f"/intel/collections/{coll.id}/objects/"


def assert_taxii_error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == TAXII
    body = resp.json()
    assert body["title"] and body["http_status"] == str(status)
    return body


def stored(server: RunningServer) -> int:
    node = server.node
    return len(node.store.query(node.operator(), node.collection("intel", "shared"),
                                ObjectFilter(versions=["all"], limit=100)).rows)


def post(http: httpx.Client, url: str, body: bytes, content_type: str = TAXII, **headers: str) -> httpx.Response:
    return http.post(url, content=body, headers={"Content-Type": content_type, **headers})


def test_malformed_and_misshapen_envelopes(server: RunningServer, http: httpx.Client) -> None:
    before = stored(server)
    url = objects_url(server)
    for body in (b"{not json", b'{"objects": [', b"", b"\xff\xfe", b"[1, 2]", b'{"objects": {"a": 1}}', b'"text"'):
        desc = assert_taxii_error(post(http, url, body), 400)["description"]
        assert "JSON" in desc or "envelope" in desc
    assert stored(server) == before


def test_media_types(server: RunningServer, http: httpx.Client) -> None:
    url = objects_url(server)
    body = orjson.dumps({"objects": [GOOD]})
    assert_taxii_error(post(http, url, body, "application/json"), 415)
    assert_taxii_error(post(http, url, body, "application/taxii+json;version=2.0"), 415)
    assert_taxii_error(http.get(url, headers={"Accept": "application/json"}), 406)
    assert_taxii_error(http.get(url, headers={"Accept": "application/taxii+json;version=2.0"}), 406)
    assert_taxii_error(post(http, url, body, Accept="text/html"), 406)
    assert http.get(url, headers={"Accept": "application/taxii+json"}).status_code == 200
    assert http.get(url, headers={"Accept": "text/html, */*;q=0.1"}).status_code == 200
    assert stored(server) == 1  # the node's identity only


def test_oversized_bodies(server: RunningServer, http: httpx.Client) -> None:
    server.node.config.max_content_length = 2000
    url = objects_url(server)
    big = orjson.dumps({"objects": [GOOD] * 20})
    assert len(big) > 2000
    assert "max_content_length" in assert_taxii_error(post(http, url, big), 413)["description"]

    def chunks():  # no Content-Length: the server counts while reading
        for i in range(0, len(big), 100):
            yield big[i:i + 100]

    resp = http.post(url, content=chunks(), headers={"Content-Type": TAXII})
    assert_taxii_error(resp, 413)
    assert stored(server) == 1


def test_unknown_things_are_404(server: RunningServer, http: httpx.Client) -> None:
    for path in ("/intel/collections/8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f/objects/", "/nope/collections/",
                 "/nope/", "/intel/collections/shared/objects/indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f/",
                 "/intel/collections/shared/objects/indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f/versions/",
                 "/intel/status/00000000-0000-4000-8000-000000000000/", "/favicon.ico", "/intel/collections/x/y/z/w/v"):
        assert_taxii_error(http.get(path), 404)


def test_credentials(server: RunningServer) -> None:
    url = server.discovery
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()},
                    {"Authorization": "Basic " + base64.b64encode(b"nobody:x").decode()},
                    {"Authorization": "Basic !!!notbase64"}, {"Authorization": "Bearer ksh_0123456789abcdef_nope"},
                    {"Authorization": "Digest abc"}):
        resp = httpx.get(url, headers={"Accept": TAXII, **headers})
        assert_taxii_error(resp, 401)
        assert "Basic" in resp.headers["www-authenticate"]


def test_reader_may_not_write_and_outsiders_see_nothing(server: RunningServer) -> None:
    body = orjson.dumps({"objects": [GOOD]})
    url = objects_url(server)
    with httpx.Client(base_url=server.base, auth=("rita", PASSWORD), headers={"Accept": TAXII}) as reader:
        assert_taxii_error(post(reader, url, body), 403)
        assert_taxii_error(reader.delete(url + GOOD["id"] + "/"), 403)
    server.node.add_user("jun", Role.ADMIN, org="JPN", password=PASSWORD)  # publishes JPN's identity
    with httpx.Client(base_url=server.base, auth=("jun", PASSWORD), headers={"Accept": TAXII}) as outsider:
        # a collection JPN may not use answers exactly like one that does not exist
        hidden = outsider.get(url)
        missing = outsider.get("/intel/collections/8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f/objects/")
        assert_taxii_error(hidden, 404)
        assert hidden.json() == missing.json()
        assert outsider.get("/intel/collections/").json() == {}
    assert stored(server) == 2


@pytest.mark.parametrize("query", [
    "limit=0", "limit=-1", "limit=abc", "added_after=yesterday", "added_after=2026-02-30T00:00:00Z",
    "match[version]=newest", "match[spec_version]=3.0", "match[id]=nope", "match[type]=Bad_Type", "next=garbage",
    "match[foo]=1", "match[id]=", "unknown=1",
])
def test_bad_filters(server: RunningServer, http: httpx.Client, query: str) -> None:
    assert_taxii_error(http.get(objects_url(server) + "?" + query), 400)


def test_method_not_allowed(server: RunningServer, http: httpx.Client) -> None:
    resp = http.put(objects_url(server), content=b"{}")
    assert_taxii_error(resp, 405)


def test_no_500_on_odd_requests(server: RunningServer, http: httpx.Client) -> None:
    r = random.Random(7)
    url = objects_url(server)
    junk = string.ascii_letters + string.digits + "[]{}%&=?/.,:;'\"-_~!$*()@#^|<>"
    for _ in range(300):
        path = url + "".join(r.choice(junk) for _ in range(r.randint(0, 40)))
        resp = http.get(path)
        assert resp.status_code < 500, (path, resp.text)
    for _ in range(100):
        body = bytes(r.getrandbits(8) for _ in range(r.randint(0, 300)))
        assert post(http, url, body).status_code < 500
    weird = [{"objects": [None, 1, "x", [], {}, {"type": None}, {"type": "indicator", "id": 5}]},
             {"objects": [{**GOOD, "created": 12}]}, {"objects": [{**GOOD, "pattern": "[" * 5000}]}]
    for env in weird:
        resp = post(http, url, orjson.dumps(env))
        assert resp.status_code == 202, resp.text
        assert resp.json()["failure_count"] == len(env["objects"])
    assert stored(server) == 1
