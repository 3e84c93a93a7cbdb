"""Real TLS on 127.0.0.1: node CAs from `init --mutual-tls`, https between partners, client certificates required."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import orjson
import pytest

from kuroshio.federation import links
from kuroshio.federation.pull import pull
from kuroshio.markings.definitions import TLP2
from kuroshio.node import Node

from ..conftest import RunningServer


def test_partners_sync_over_mutual_tls_and_strangers_are_turned_away(tmp_path: Path) -> None:
    twn = Node.init(tmp_path / "TWN", "TWN", mutual_tls=True)
    jpn = Node.init(tmp_path / "JPN", "JPN", mutual_tls=True)
    with RunningServer(twn) as s_twn, RunningServer(jpn) as s_jpn:
        assert s_twn.base.startswith("https://")
        cards = {}
        for org, node, server in (("TWN", twn, s_twn), ("JPN", jpn, s_jpn)):
            path = tmp_path / f"{org}.card.json"
            path.write_bytes(orjson.dumps(links.card(node, url=server.discovery)))
            cards[org] = links.read_card(path)
            assert "BEGIN CERTIFICATE" in cards[org].tls_ca
        for_jpn = links.add_partner(twn, cards["JPN"])
        for_twn = links.add_partner(jpn, cards["TWN"])
        links.set_credentials(twn, "JPN", for_twn)
        links.set_credentials(jpn, "TWN", for_jpn)
        ind = {"type": "indicator", "spec_version": "2.1", "id": "indicator--6a1d1f43-7f5b-4a3b-9a51-0d6c1b2a3f00",
               "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
               "pattern": "[ipv4-addr:value = '203.0.113.5']", "pattern_type": "stix",
               "valid_from": "2026-01-01T00:00:00Z", "object_marking_refs": [TLP2["green"]]}
        twn.publish([ind])
        report = pull(jpn, jpn.config.partner("TWN"))
        assert report.stored >= 1 and report.rejected == 0
        ca = str(twn.config.path("keys/tls/ca.pem"))
        # the right CA but no client certificate: the handshake fails before any HTTP is spoken
        with pytest.raises(httpx.HTTPError):
            httpx.get(s_twn.discovery, verify=ssl.create_default_context(cafile=ca), timeout=5)
        # a client certificate from JPN's CA (a partner's) is accepted at TWN
        ctx = ssl.create_default_context(cafile=ca)
        ctx.load_cert_chain(str(jpn.config.path("keys/tls/client.pem")), str(jpn.config.path("keys/tls/client.key")))
        assert httpx.get(s_twn.discovery, verify=ctx, timeout=5).status_code == 401  # TLS passed; no credentials
        # a server whose CA the client does not trust is refused by the client
        stranger = ssl.create_default_context()
        with pytest.raises(httpx.HTTPError):
            httpx.get(s_twn.discovery, verify=stranger, timeout=5)
    twn.close()
    jpn.close()
