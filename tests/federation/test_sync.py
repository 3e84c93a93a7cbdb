"""Three real nodes on 127.0.0.1 — TWN, JPN, and PHL linked only to JPN — exchanging by pull.

Every marking class travels exactly as docs/releasability.md says, relays included; signatures
verify at every hop; nothing echoes back twice; tampered and misattributed objects are refused and
audited.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kuroshio.federation import links
from kuroshio.federation.pull import pull
from kuroshio.markings.definitions import TLP2, releasable_to
from kuroshio.node import Node
from kuroshio.stix.signatures import SIGNATURE_EXTENSION
from kuroshio.store import ObjectFilter

from ..conftest import RunningServer

T1, T2 = "2026-01-01T00:00:00.000Z", "2026-02-01T00:00:00.000Z"


class Federation:
    def __init__(self, tmp: Path) -> None:
        self.nodes: dict[str, Node] = {}
        self.servers: dict[str, RunningServer] = {}
        for org, name in (("TWN", "Taiwan"), ("JPN", "Japan"), ("PHL", "Philippines")):
            node = Node.init(tmp / org, org, org_name=name)
            self.nodes[org] = node
            self.servers[org] = RunningServer(node).__enter__()
        self.tmp = tmp

    def card(self, org: str) -> links.Card:
        path = self.tmp / f"{org}.card.json"
        path.write_bytes(orjson.dumps(links.card(self.nodes[org], url=self.servers[org].discovery)))
        return links.read_card(path)

    def link(self, a: str, b: str) -> None:
        """a and b pull from each other."""
        for_b = links.add_partner(self.nodes[a], self.card(b))
        for_a = links.add_partner(self.nodes[b], self.card(a))
        links.set_credentials(self.nodes[a], b, for_a)
        links.set_credentials(self.nodes[b], a, for_b)

    def pin(self, a: str, b: str) -> None:
        """a knows b's identity and keys (to verify what others relay), without a link."""
        links.add_partner(self.nodes[a], self.card(b), direction="none")

    def pull(self, a: str, b: str) -> Any:
        return pull(self.nodes[a], self.nodes[a].config.partner(b))

    def settle(self) -> None:
        for _ in range(2):
            for a, b in (("TWN", "JPN"), ("JPN", "TWN"), ("JPN", "PHL"), ("PHL", "JPN")):
                self.pull(a, b)

    def objects(self, org: str) -> dict[str, dict[str, Any]]:
        node = self.nodes[org]
        coll = node.collection("intel", "shared")
        page = node.store.query(node.operator(), coll, ObjectFilter(limit=10000))
        return {r.id: orjson.loads(r.raw) for r in page.rows}

    def versions(self, org: str, oid: str) -> int:
        node = self.nodes[org]
        coll = node.collection("intel", "shared")
        return len(node.store.query(node.operator(), coll, ObjectFilter(ids=[oid], versions=("all",))).rows)

    def close(self) -> None:
        for s in self.servers.values():
            s.__exit__()
        for n in self.nodes.values():
            n.close()


def three_nodes(tmp_path: Path) -> Federation:
    """TWN and JPN linked, JPN and PHL linked; TWN and PHL know each other's keys (relays verify)."""
    f = Federation(tmp_path)
    f.link("TWN", "JPN")
    f.link("JPN", "PHL")
    f.pin("TWN", "PHL")
    f.pin("PHL", "TWN")
    return f


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    f = three_nodes(tmp_path)
    yield f
    f.close()


def indicator(creator: str, marking: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    obj = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": T1,
           "modified": T1, "pattern_type": "stix", "valid_from": T1, "created_by_ref": creator,
           "pattern": "[ipv4-addr:value = '203.0.113.9']", **extra}
    if marking:
        obj["object_marking_refs"] = marking
    return obj


def test_every_marking_travels_as_the_truth_table_says(fed: Federation) -> None:
    twn, jpn, phl = (fed.nodes[o] for o in ("TWN", "JPN", "PHL"))
    me = twn.config.identity
    rel_jpn = releasable_to(f"marking-definition--{uuid.uuid4()}", [(jpn.config.identity, "JPN", "JP")],
                            created_by=me, created=T1)
    rel_both = releasable_to(f"marking-definition--{uuid.uuid4()}", [(jpn.config.identity, "JPN", "JP"),
                                                                     (phl.config.identity, "PHL", "PH")],
                             created_by=me, created=T1)
    cases = {
        "clear": indicator(me, [TLP2["clear"]]),
        "green": indicator(me, [TLP2["green"]]),
        "amber": indicator(me, [TLP2["amber"]]),
        "amber-jpn": indicator(me, [TLP2["amber"], rel_jpn["id"]]),
        "strict-jpn": indicator(me, [TLP2["amber+strict"], rel_jpn["id"]]),
        "red-jpn": indicator(me, [TLP2["red"], rel_jpn["id"]]),
        "red": indicator(me, [TLP2["red"]]),
        "amber-jpn-phl": indicator(me, [TLP2["amber"], rel_both["id"]]),
        "green-red-part": indicator(me, [TLP2["green"]], description="named source: harbour master",
                                    granular_markings=[{"selectors": ["description"], "marking_ref": TLP2["red"]}]),
    }
    twn.publish([rel_jpn, rel_both, *cases.values()])
    jpn_green = indicator(jpn.config.identity, [TLP2["green"]])
    jpn.publish([jpn_green])
    fed.settle()
    expected = {  # where each of TWN's objects must be, after relays
        "clear": {"JPN", "PHL"}, "green": {"JPN", "PHL"}, "amber": set(), "amber-jpn": {"JPN"},
        "strict-jpn": {"JPN"}, "red-jpn": {"JPN"}, "red": set(), "amber-jpn-phl": {"JPN", "PHL"},
        "green-red-part": {"JPN", "PHL"},
    }
    held = {org: fed.objects(org) for org in ("JPN", "PHL")}
    for name, obj in cases.items():
        where = {org for org in ("JPN", "PHL") if obj["id"] in held[org]}
        assert where == expected[name], name
    # the TLP:RED paragraph never left TWN; the copies partners hold verify as TWN's
    for org in ("JPN", "PHL"):
        copy_ = held[org][cases["green-red-part"]["id"]]
        assert "description" not in copy_ and "granular_markings" not in copy_
        assert fed.nodes[org].verifier.verify(copy_) == me
        assert fed.nodes[org].verifier.verify(held[org][cases["green"]["id"]]) == me
    # the releasable-to definition naming JPN and PHL went with the object; the one naming only JPN did not reach PHL
    assert rel_both["id"] in held["PHL"] and rel_jpn["id"] not in held["PHL"]
    # JPN's GREEN object reached TWN (and PHL), and nothing echoed back as a second version
    assert jpn_green["id"] in fed.objects("TWN") and jpn_green["id"] in held["PHL"]
    for oid in (cases["green"]["id"], jpn_green["id"]):
        assert [fed.versions(o, oid) for o in ("TWN", "JPN", "PHL")] == [1, 1, 1]
    # pulling again moves nothing: checkpoints hold
    assert fed.pull("TWN", "JPN").received == 0 and fed.pull("PHL", "JPN").received == 0


def test_new_versions_converge_and_the_newest_is_current_everywhere(fed: Federation) -> None:
    twn = fed.nodes["TWN"]
    first = indicator(twn.config.identity, [TLP2["green"]], name="v1")
    twn.publish([first])
    fed.settle()
    twn.publish([{**first, "modified": T2, "name": "v2"}])
    fed.settle()
    for org in ("TWN", "JPN", "PHL"):
        assert fed.objects(org)[first["id"]]["name"] == "v2"
        assert fed.versions(org, first["id"]) == 2


def _send_as_jpn(fed: Federation, objects: list[dict[str, Any]]) -> Any:
    """What JPN's node would send TWN: objects stored at TWN as JPN's service principal."""
    twn = fed.nodes["TWN"]
    principal = twn.store.principal(twn.store.user(links.service_username("JPN")))
    return twn.ingest(principal, twn.collection("intel", "shared"), objects)


def test_tampered_forged_and_unsigned_objects_are_refused_and_audited(fed: Federation) -> None:
    jpn = fed.nodes["JPN"]
    good = jpn.signer.sign(indicator(jpn.config.identity, [TLP2["green"]]))
    one_byte = copy.deepcopy(jpn.signer.sign(indicator(jpn.config.identity, [TLP2["green"]])))
    one_byte["pattern"] = "[ipv4-addr:value = '203.0.113.8']"  # one byte changed after signing
    # a JPN-signed object replayed under PHL's name
    replayed = jpn.signer.sign({**indicator(fed.nodes["PHL"].config.identity, [TLP2["green"]])})
    unsigned = indicator(jpn.config.identity, [TLP2["green"]])
    record = _send_as_jpn(fed, [good, one_byte, replayed, unsigned])
    details = orjson.loads(record.details)
    verdicts = {d["id"]: d.get("message", "stored") for d in details["successes"] + details["failures"]}
    assert verdicts[good["id"]] == "stored"
    assert "[rule: signature-invalid]" in verdicts[one_byte["id"]]
    assert "[rule: provenance]" in verdicts[replayed["id"]]
    assert "[rule: signature-missing]" in verdicts[unsigned["id"]]
    # an object signed with a key TWN never pinned
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from kuroshio.stix.signatures import Signer

    rogue = Signer(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        jpn.config.identity)
    record = _send_as_jpn(fed, [rogue.sign(indicator(jpn.config.identity, [TLP2["green"]]))])
    assert "[rule: signature-unknown-key]" in orjson.loads(record.details)["failures"][0]["message"]
    # every refusal is in the audit log with its reason
    refused = " ".join(r[2].decode() for r in fed.nodes["TWN"].store.audit_rows())
    for rule in ("signature-missing", "provenance", "signature-unknown-key"):
        assert rule in refused


def test_a_partner_cannot_push_what_its_originator_did_not_release_to_us(fed: Federation) -> None:
    jpn, twn = fed.nodes["JPN"], fed.nodes["TWN"]
    amber_own = jpn.signer.sign(indicator(jpn.config.identity, [TLP2["amber"]]))  # JPN only: not for TWN
    record = _send_as_jpn(fed, [amber_own])
    assert "[rule: not-releasable-here]" in orjson.loads(record.details)["failures"][0]["message"]
    assert amber_own["id"] not in fed.objects("TWN")
    assert SIGNATURE_EXTENSION in amber_own["extensions"] and twn.verifier.verify(amber_own) == jpn.config.identity


def test_push_delivers_what_the_partner_may_see_once_and_sends_nothing_back(fed: Federation) -> None:
    from kuroshio.federation.push import push

    twn, jpn = fed.nodes["TWN"], fed.nodes["JPN"]
    rel_jpn = releasable_to(f"marking-definition--{uuid.uuid4()}", [(jpn.config.identity, "JPN", "JP")],
                            created_by=twn.config.identity, created=T1)
    shared = indicator(twn.config.identity, [TLP2["amber"], rel_jpn["id"]])
    home_only = indicator(twn.config.identity, [TLP2["red"]])
    twn.publish([rel_jpn, shared, home_only])
    jpn_own = indicator(jpn.config.identity, [TLP2["green"]])
    jpn.publish([jpn_own])
    fed.pull("TWN", "JPN")  # TWN now holds JPN's object: it must not push it back
    as_jpn = links.partner_principal(twn, "JPN")
    visible = twn.store.query(as_jpn, twn.collection("intel", "shared"), ObjectFilter(versions=("all",), limit=10000))
    signers = [orjson.loads(r.raw)["extensions"][SIGNATURE_EXTENSION]["signer"] for r in visible.rows]
    from_jpn = signers.count(jpn.config.identity)
    assert from_jpn >= 1  # JPN's own objects are among what JPN may read at TWN ...
    first = push(twn, twn.config.partner("JPN"))
    assert first.sent == len(signers) - from_jpn  # ... and are all that push leaves out
    held = fed.objects("JPN")
    assert shared["id"] in held and rel_jpn["id"] in held and home_only["id"] not in held
    assert first.rejected == 0 and first.sent == first.accepted
    assert jpn.verifier.verify(held[shared["id"]]) == twn.config.identity
    again = push(twn, twn.config.partner("JPN"))
    assert again.sent == 0  # the cursor held: nothing is sent twice
    assert fed.versions("JPN", jpn_own["id"]) == 1


def test_rotated_keys_keep_old_objects_verifiable_and_refuse_the_retired_key(fed: Federation) -> None:
    from kuroshio import audit
    from kuroshio.stix import timestamps
    from kuroshio.stix.signatures import Signer

    twn, jpn = fed.nodes["TWN"], fed.nodes["JPN"]
    before = indicator(twn.config.identity, [TLP2["green"]])
    twn.publish([before])
    retired = Signer(twn.signer.pem, twn.config.identity)
    old_kid = twn.signer.key_id
    assert twn.rotate_key() != old_kid
    assert audit.verify(twn.store.audit_rows(), twn.audit_head.read()) == []  # the head was signed again
    now = timestamps.now()
    after = indicator(twn.config.identity, [TLP2["green"]], created=now, modified=now)
    twn.publish([after])
    links.add_partner(jpn, fed.card("TWN"))  # JPN takes TWN's new card: both keys, the old one retired
    fed.pull("JPN", "TWN")
    held = fed.objects("JPN")
    assert jpn.verifier.verify(held[before["id"]]) == twn.config.identity
    assert held[after["id"]]["extensions"][SIGNATURE_EXTENSION]["key_id"] != old_kid
    # a version signed with the retired key after it was retired is refused (a stolen old key forges nothing new)
    later = timestamps.now()
    forged = retired.sign(indicator(twn.config.identity, [TLP2["green"]], created=later, modified=later))
    principal = jpn.store.principal(jpn.store.user(links.service_username("TWN")))
    record = jpn.ingest(principal, jpn.collection("intel", "shared"), [forged])
    assert "[rule: signature-expired-key]" in orjson.loads(record.details)["failures"][0]["message"]
    assert "signature-expired-key" in " ".join(r[2].decode() for r in jpn.store.audit_rows())
