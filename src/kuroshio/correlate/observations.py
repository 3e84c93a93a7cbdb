"""Observations from sensors' logs as STIX 2.1 cyber-observables: Suricata EVE JSON (Zeek follows).

One log line becomes one `Observation`: when it was seen, the STIX cyber-observable objects it
shows (addresses, domain names, URLs, files with their hashes, certificates, the network traffic
between them), with deterministic ids so the same observable seen twice is one object. Lines that
cannot be read are counted by reason (`Malformed`) and skipped: garbage in a log never stops a run.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from ..stix.identifiers import sco_id
from ..stix.properties import is_hostname

MAX_LINE = 1 << 20  # a longer line is not a sensor event


class Malformed(Exception):
    """A log line that cannot be read; `reason` is the short name it is counted under."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Observation:
    time: str  # STIX timestamp (UTC) of the event
    kind: str  # the sensor's event type, e.g. dns, http, tls, fileinfo, flow, alert
    objects: list[dict[str, Any]] = field(default_factory=list)  # STIX SCOs, deterministic ids

    def add(self, obj: dict[str, Any], contributing: tuple[str, ...]) -> str:
        obj["id"] = sco_id(obj["type"], {k: obj[k] for k in contributing if k in obj})
        obj["spec_version"] = "2.1"
        if all(o["id"] != obj["id"] for o in self.objects):
            self.objects.append(obj)
        return obj["id"]


def _stix_time(value: Any) -> str:
    """Suricata's `2017-01-30T16:12:26.985026+0100` as a STIX UTC timestamp."""
    if not isinstance(value, str):
        raise Malformed("no-timestamp")
    try:
        when = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        raise Malformed("bad-timestamp") from None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _address(obs: Observation, value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise Malformed("bad-address") from None
    kind = "ipv4-addr" if ip.version == 4 else "ipv6-addr"
    return obs.add({"type": kind, "value": str(ip)}, ("value",))


def _domain(obs: Observation, value: Any) -> str | None:
    """A domain-name SCO for a host name; DNS names that are not host names (SRV service labels such as
    _http._tcp.example.org) are not domain-name observables in STIX and are left out."""
    if not isinstance(value, str):
        return None
    name = value.rstrip(".").lower()
    if not is_hostname(name):
        return None
    return obs.add({"type": "domain-name", "value": name}, ("value",))


_HASHES = (("md5", "MD5"), ("sha1", "SHA-1"), ("sha256", "SHA-256"))


def eve_observation(line: bytes | str) -> Observation | None:
    """The observation in one EVE JSON line; None for events that show no observable (stats);
    Malformed for a line that is not a Suricata event."""
    if len(line) > MAX_LINE:
        raise Malformed("too-long")
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise Malformed("not-json") from None
    if not isinstance(event, dict):
        raise Malformed("not-an-event")
    kind = event.get("event_type")
    if not isinstance(kind, str):
        raise Malformed("no-event-type")
    if kind == "stats":
        return None
    obs = Observation(_stix_time(event.get("timestamp")), kind)
    src, dst = _address(obs, event.get("src_ip")), _address(obs, event.get("dest_ip"))
    if src and dst:
        traffic: dict[str, Any] = {"type": "network-traffic", "src_ref": src, "dst_ref": dst,
                                   "protocols": [str(event.get("proto", "ip")).lower()]}
        app = event.get("app_proto") or (kind if kind in ("dns", "http", "tls", "smtp", "ssh") else None)
        if isinstance(app, str) and app not in traffic["protocols"]:
            traffic["protocols"].append(app.lower())
        for eve_key, stix_key in (("src_port", "src_port"), ("dest_port", "dst_port")):
            port = event.get(eve_key)
            if isinstance(port, int) and 0 <= port <= 65535:
                traffic[stix_key] = port
        traffic["start"] = obs.time
        obs.add(traffic, ("start", "src_ref", "dst_ref", "src_port", "dst_port", "protocols"))
    dns = event.get("dns")
    if isinstance(dns, dict):
        _domain(obs, dns.get("rrname"))
        for answer in dns.get("answers") or []:
            if isinstance(answer, dict) and answer.get("rrtype") in ("A", "AAAA"):
                _address(obs, answer.get("rdata"))
        if dns.get("rrtype") in ("A", "AAAA") and dns.get("type") == "answer":
            _address(obs, dns.get("rdata"))
    http = event.get("http")
    if isinstance(http, dict):
        host = http.get("hostname")
        _domain(obs, host)
        path = http.get("url")
        if isinstance(host, str) and isinstance(path, str):
            scheme = "https" if event.get("dest_port") == 443 else "http"
            obs.add({"type": "url", "value": f"{scheme}://{host}{path if path.startswith('/') else '/' + path}"},
                    ("value",))
    tls = event.get("tls")
    if isinstance(tls, dict):
        _domain(obs, tls.get("sni"))
        fingerprint = tls.get("fingerprint")
        if isinstance(fingerprint, str) and fingerprint:
            cert: dict[str, Any] = {"type": "x509-certificate",
                                    "hashes": {"SHA-1": fingerprint.replace(":", "").lower()}}
            for eve_key, stix_key in (("subject", "subject"), ("issuerdn", "issuer"), ("serial", "serial_number")):
                if isinstance(tls.get(eve_key), str):
                    cert[stix_key] = tls[eve_key]
            obs.add(cert, ("hashes", "serial_number"))
    info = event.get("fileinfo")
    if isinstance(info, dict):
        f: dict[str, Any] = {"type": "file"}
        hashes = {stix: info[eve].lower() for eve, stix in _HASHES if isinstance(info.get(eve), str)}
        if hashes:
            f["hashes"] = hashes
        if isinstance(info.get("filename"), str):
            f["name"] = info["filename"].rsplit("/", 1)[-1] or info["filename"]
        if isinstance(info.get("size"), int) and info["size"] >= 0:
            f["size"] = info["size"]
        if "hashes" in f or "name" in f:
            obs.add(f, ("hashes", "name", "extensions", "parent_directory_ref"))
    return obs


@dataclass
class Reading:
    """What reading a log gave: observations, and the lines skipped, counted by reason."""

    skipped: Counter[str] = field(default_factory=Counter)
    lines: int = 0


def read_eve(lines: Iterable[bytes | str], reading: Reading | None = None) -> Iterator[Observation]:
    """Observations from EVE JSON lines; malformed lines are counted in `reading.skipped` and skipped."""
    r = reading if reading is not None else Reading()
    for line in lines:
        r.lines += 1
        if not line.strip():
            continue
        try:
            obs = eve_observation(line)
        except Malformed as exc:
            r.skipped[exc.reason] += 1
            continue
        if obs is not None:
            yield obs
