"""Sensor logs as STIX cyber-observables: Suricata EVE JSON, own fixtures and the real samples."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from kuroshio.correlate.observations import Malformed, Reading, eve_observation, read_eve, read_zeek
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


@pytest.mark.parametrize("stamp,expected", [
    ("2017-01-30T16:12:27.027213+0100", "2017-01-30T15:12:27.027Z"),
    ("2017-01-30T00:30:00.5-02:30", "2017-01-30T03:00:00.500Z"),
    ("2016-02-29T23:59:59.999999Z", "2016-02-29T23:59:59.999Z"),
])
def test_eve_times_in_utc_with_milliseconds(stamp: str, expected: str) -> None:
    from kuroshio.correlate.evaluate import stamp_us

    obs = eve_observation(DNS.replace(b"2017-01-30T16:12:27.027213+0100", stamp.encode()))
    assert obs is not None and obs.time == expected and obs.at == stamp_us(expected)


def test_events_of_one_second_keep_their_own_milliseconds() -> None:
    """The UTC second of a local one is worked out once (sensors log many events a second)."""
    from kuroshio.correlate.evaluate import stamp_us

    for frac, ms in (("027213", "027"), ("999999", "999"), ("0", "000"), ("5", "500")):
        obs = eve_observation(DNS.replace(b"27.027213+0100", f"27.{frac}+0100".encode()))
        assert obs is not None and obs.time == f"2017-01-30T15:12:27.{ms}Z" and obs.at == stamp_us(obs.time)
    other_zone = eve_observation(DNS.replace(b"27.027213+0100", b"27.027213+0900"))
    assert other_zone is not None and other_zone.time == "2017-01-30T07:12:27.027Z"


@pytest.mark.parametrize("stamp", ["2017-02-29T00:00:00.0+0000", "2017-01-30T24:00:00.0+0000",
                                   "2017-01-30T10:00:00+0000", "2017-13-01T00:00:00.0Z", "2017-01-30T10:00:00.0+2500"])
def test_impossible_eve_times_are_refused(stamp: str) -> None:
    with pytest.raises(Malformed) as err:
        eve_observation(DNS.replace(b"2017-01-30T16:12:27.027213+0100", stamp.encode()))
    assert err.value.reason == "bad-timestamp"


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


TSV = """#separator \\x09
#set_separator\t,
#empty_field\t(empty)
#unset_field\t-
#path\tdns
#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tquery\tanswers
#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tvector[string]
1379288667.706265\tC1\t192.168.33.10\t1032\t192.168.33.1\t53\tudp\twww.example.org\twww.example.net,93.184.216.34
1379288668.0\tC2\t192.168.33.10\t1033\t192.168.33.1\t53\tudp\t-\t(empty)
1379288669.0\tC3\t192.168.33.10\tnot-a-port\t192.168.33.1\t53\tudp\tx.org\t-
too\tfew
"""


def test_zeek_tsv_with_its_header_and_counted_bad_lines() -> None:
    reading = Reading()
    observations = list(read_zeek(TSV.splitlines(), reading))
    assert [o.kind for o in observations] == ["dns", "dns"]
    first = observations[0]
    assert first.time == "2013-09-15T23:44:27.706Z"
    values = {o.get("value") for o in first.objects}
    assert {"www.example.org", "www.example.net", "93.184.216.34", "192.168.33.10"} <= values
    assert reading.skipped == {"bad-number": 1, "wrong-field-count": 1}


def test_zeek_json_wrapped_or_plain() -> None:
    line = ('{"http": {"ts": 1402307733.473, "id.orig_h": "192.249.113.37", "id.orig_p": 58808, '
            '"id.resp_h": "72.163.4.161", "id.resp_p": 80, "host": "www.cisco.com", "uri": "/a b|c"}}')
    obs = next(read_zeek([line]))
    assert obs.kind == "http" and any(o.get("value") == "http://www.cisco.com/a%20b%7Cc" for o in obs.objects)
    plain = '{"ts": "2018-03-24T17:15:20.600843Z", "id.orig_h": "10.0.0.1", "id.resp_h": "10.0.0.2", "proto": "tcp"}'
    obs = next(read_zeek([plain], path_hint="conn"))
    assert obs.time == "2018-03-24T17:15:20.600Z" and obs.kind == "conn"


def test_real_zeek_logs_give_valid_stix_and_never_crash(data_dir: Path) -> None:
    import gzip

    folders = [data_dir / "logs" / "zeek-json", data_dir / "logs" / "zeek-tsv"]
    files = [f for folder in folders if folder.is_dir() for f in sorted(folder.iterdir()) if f.stat().st_size < 200_000]
    if not files:
        pytest.skip("no Zeek samples in ../shared/data/logs")
    seen = 0
    for f in files:
        reading = Reading()
        with (gzip.open if f.suffix == ".gz" else open)(f, "rb") as fp:
            for obs in read_zeek(fp, reading, f.name.split("_", 1)[-1].split(".")[0]):
                for obj in obs.objects:
                    assert validate(obj) is None, (f.name, obj)
                    seen += 1
    assert seen > 1000
