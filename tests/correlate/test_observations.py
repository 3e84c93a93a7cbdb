"""Sensor logs as STIX cyber-observables: Suricata EVE JSON, own fixtures and the real samples."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from kuroshio.correlate.observations import Malformed, Reading, eve_observation, read_eve
from kuroshio.stix.validate import validate

DNS = (b'{"timestamp":"2017-01-30T16:12:27.027213+0100","flow_id":1,"event_type":"dns","src_ip":"172.21.3.254",'
       b'"src_port":53,"dest_ip":"172.17.0.2","dest_port":47719,"proto":"UDP","dns":{"type":"answer","id":22800,'
       b'"rrname":"Prod.Debian.map.fastly.net.","rrtype":"A","ttl":30,"rdata":"151.101.36.204"}}')
HTTP = (b'{"timestamp":"2017-01-30T16:12:28.000000+0000","event_type":"http","src_ip":"10.0.0.5","src_port":40000,'
        b'"dest_ip":"203.0.113.77","dest_port":80,"proto":"TCP","http":{"hostname":"update.harbour-logistics.example",'
        b'"url":"/payload.bin","http_user_agent":"curl"}}')
FILE = (b'{"timestamp":"2017-01-30T16:12:29.000000+0000","event_type":"fileinfo","src_ip":"203.0.113.77",'
        b'"dest_ip":"10.0.0.5","proto":"TCP","fileinfo":{"filename":"/payload.bin","size":12,'
        b'"md5":"0CC175B9C0F1B6A831C399E269772661","sha256":"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"}}')


def test_each_event_shows_its_observables_as_valid_stix() -> None:
    dns = eve_observation(DNS)
    assert dns is not None and dns.time == "2017-01-30T15:12:27.027Z" and dns.kind == "dns"
    by_type = {o["type"]: o for o in dns.objects}
    assert by_type["domain-name"]["value"] == "prod.debian.map.fastly.net"
    assert {o["value"] for o in dns.objects if o["type"] == "ipv4-addr"} == {"172.21.3.254", "172.17.0.2",
                                                                             "151.101.36.204"}
    traffic = by_type["network-traffic"]
    assert traffic["protocols"] == ["udp", "dns"] and traffic["src_port"] == 53 and traffic["dst_port"] == 47719
    http = eve_observation(HTTP)
    assert any(o.get("value") == "http://update.harbour-logistics.example/payload.bin" for o in http.objects)
    f = next(o for o in eve_observation(FILE).objects if o["type"] == "file")
    assert f["name"] == "payload.bin" and f["hashes"]["MD5"] == "0cc175b9c0f1b6a831c399e269772661"
    for obs in (dns, http):
        for obj in obs.objects:
            assert validate(obj) is None, obj


def test_the_same_observable_seen_twice_has_one_id() -> None:
    a, b = eve_observation(DNS), eve_observation(DNS.replace(b"27.027213", b"59.000001"))
    ids = lambda o, t: {x["id"] for x in o.objects if x["type"] == t}  # noqa: E731
    assert ids(a, "domain-name") == ids(b, "domain-name") and ids(a, "ipv4-addr") == ids(b, "ipv4-addr")
    assert ids(a, "network-traffic") != ids(b, "network-traffic")  # another flow start, another flow


@pytest.mark.parametrize("line,reason", [
    (b"\x00\xffgarbage", "not-json"), (b"[1, 2]", "not-an-event"), (b'{"timestamp": "x"}', "no-event-type"),
    (b'{"event_type": "dns", "timestamp": "2017-01-30T16:12:26.985026+0100asloefbnjhowebfg"}', "bad-timestamp"),
    (b'{"event_type": "dns", "timestamp": "2017-01-30T16:12:26.985026+0100", "src_ip": "999.1.1.1"}', "bad-address"),
])
def test_garbage_is_refused_with_its_reason(line: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as err:
        eve_observation(line)
    assert err.value.reason == reason


def test_real_suricata_logs_including_a_damaged_one(data_dir: Path) -> None:
    folder = data_dir / "logs" / "suricata"
    if not folder.is_dir():
        pytest.skip(f"no Suricata samples in {folder}")
    good = Reading()
    observations = list(read_eve((folder / "surevego_eve.json").read_bytes().splitlines(), good))
    assert not good.skipped and len(observations) == good.lines - 1  # every event but the stats record
    kinds = {o.kind for o in observations}
    assert {"alert", "dns", "http", "fileinfo", "flow"} <= kinds
    for obs in observations:
        for obj in obs.objects:
            assert validate(obj) is None, (obs.kind, orjson.dumps(obj)[:200])
    broken = Reading()
    damaged = list(read_eve((folder / "surevego_eve_broken.json").read_bytes().splitlines(), broken))
    assert sum(broken.skipped.values()) > 0 and damaged  # counted and skipped, the rest read
    assert len(damaged) + sum(broken.skipped.values()) <= broken.lines
