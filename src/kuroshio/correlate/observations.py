"""Observations from sensors' logs as STIX 2.1 cyber-observables: Suricata EVE JSON and Zeek (JSON and TSV).

One log line becomes one `Observation`: when it was seen, the STIX cyber-observable objects it
shows (addresses, domain names, URLs, files with their hashes, certificates, the network traffic
between them), with deterministic ids so the same observable seen twice is one object. Lines that
cannot be read are counted by reason (`Malformed`) and skipped: garbage in a log never stops a run.
"""

from __future__ import annotations

import calendar
import ipaddress
import operator
import re
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson

from ..stix.identifiers import sco_id
from ..stix.properties import is_hostname
from ..stix.validate import validate

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
    at: int = 0  # the same time in microseconds since the epoch

    def add(self, obj: dict[str, Any], contributing: tuple[str, ...]) -> str:
        # the mappings below build SCOs from strings, ports, sizes and lists of strings: plain JSON
        ident = obj["id"] = sco_id(obj["type"], {k: obj[k] for k in contributing if k in obj}, plain=True)
        obj["spec_version"] = "2.1"
        if not self._holds(ident):
            self.objects.append(obj)
        return ident

    def add_value(self, kind: str, value: str) -> str:
        """An observable identified by its `value` alone (addresses, domain names, URLs)."""
        key = (kind, value)
        ident = _VALUE_IDS.get(key)
        if ident is None:
            ident = sco_id(kind, {"value": value}, plain=True)
            _remember(_VALUE_IDS, key, ident)
        if not self._holds(ident):
            self.objects.append({"type": kind, "value": value, "id": ident, "spec_version": "2.1"})
        return ident

    def _holds(self, ident: str) -> bool:
        """Whether an observable with this id is already in the observation (a handful at most)."""
        return ident in map(_ID_OF, self.objects)


# Sensors see the same addresses and names again and again: what was worked out once is remembered
# (bounded: a table is emptied when it reaches MEMO entries).
MEMO = 1 << 16
_ID_OF = operator.itemgetter("id")
_VALUE_IDS: dict[tuple[str, str], str] = {}
_ADDRESSES: dict[str, tuple[str, str] | None] = {}
_HOSTNAMES: dict[str, bool] = {}
_SECONDS: dict[tuple[str | None, ...], tuple[str, int]] = {}


def _remember(table: dict[Any, Any], key: Any, value: Any) -> None:
    if len(table) >= MEMO:
        table.clear()
    table[key] = value


_EVE_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{1,6})(?:([+-])(\d\d):?(\d\d)|Z)\Z")


def _stix_time(value: Any) -> tuple[str, int]:
    """Suricata's `2017-01-30T16:12:26.985026+0100` as a STIX UTC timestamp (milliseconds), and in
    microseconds since the epoch."""
    if not isinstance(value, str):
        raise Malformed("no-timestamp")
    m = _EVE_TIME.match(value)
    if m is None:
        raise Malformed("bad-timestamp")
    y, mo, d, h, mi, s, frac, sign, oh, om = m.groups()
    second_of = (y, mo, d, h, mi, s, sign, oh, om)  # a sensor logs many events in the same second
    known = _SECONDS.get(second_of)
    if known is None:
        known = _utc_second(y, mo, d, h, mi, s, sign, oh, om)
        _remember(_SECONDS, second_of, known)
    base, secs = known
    ms = frac.ljust(6, "0")[:3]
    return base + ms + "Z", secs * 1_000_000 + int(ms) * 1000


def _utc_second(y: str, mo: str, d: str, h: str, mi: str, s: str, sign: str | None, oh: str | None,
                om: str | None) -> tuple[str, int]:
    """A local second of an EVE timestamp as the UTC text up to the decimal point, and seconds since the epoch."""
    year, month, day, hour, minute, second = int(y), int(mo), int(d), int(h), int(mi), int(s)
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1] and hour < 24 and minute < 60
            and second < 60 and (sign is None or (int(oh or 0) < 24 and int(om or 0) < 60))):
        raise Malformed("bad-timestamp")
    secs = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if sign is not None:
        secs -= (1 if sign == "+" else -1) * (int(oh or 0) * 3600 + int(om or 0) * 60)
    if not 0 <= secs < 253402300800:  # years 1970 to 9999
        raise Malformed("bad-timestamp")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".", secs


def _address(obs: Observation, value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    known = _ADDRESSES.get(value, False)
    if known is False:
        try:
            ip = ipaddress.ip_address(value)
            known = ("ipv4-addr" if ip.version == 4 else "ipv6-addr", str(ip))
        except ValueError:
            known = None
        _remember(_ADDRESSES, value, known)
    if known is None:
        raise Malformed("bad-address")
    return obs.add_value(*known)


def _domain(obs: Observation, value: Any) -> str | None:
    """A domain-name SCO for a host name; DNS names that are not host names (SRV service labels such as
    _http._tcp.example.org) are not domain-name observables in STIX and are left out."""
    if not isinstance(value, str):
        return None
    name = value.rstrip(".").lower()
    ok = _HOSTNAMES.get(name)
    if ok is None:
        ok = is_hostname(name)
        _remember(_HOSTNAMES, name, ok)
    if not ok:
        return None
    return obs.add_value("domain-name", name)


_HASHES = (("md5", "MD5"), ("sha1", "SHA-1"), ("sha256", "SHA-256"))


def _url(scheme: str, host: str, path: str) -> str:
    """An absolute URI (RFC 3986) from a request's host and target: characters a URI may not hold as they
    are (spaces, |, {, }, non-ASCII) are percent-encoded, as a browser would send them."""
    target = path if path.startswith("/") else "/" + path
    return f"{scheme}://{host}{quote(target, safe=_URI_SAFE)}"


_URI_SAFE = "/:?#[]@!$&'()*+,;=%-._~"


def _add_url(obs: Observation, value: str) -> None:
    """A url SCO, when the value is an absolute URI STIX accepts (a request to a bare internal host name
    or with a malformed target is not one)."""
    key = ("url", value)
    if key not in _VALUE_IDS:
        obj = {"type": "url", "spec_version": "2.1", "id": "url--00000000-0000-5000-8000-000000000000", "value": value}
        if validate(obj) is not None:
            return
    obs.add_value("url", value)


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
    text, at = _stix_time(event.get("timestamp"))
    obs = Observation(text, kind, at=at)
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
            _add_url(obs, _url(scheme, host, path))
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


# -- Zeek --------------------------------------------------------------------------------------------


def _zeek_time(value: Any) -> tuple[str, int]:
    """Zeek's epoch seconds, or the ISO 8601 time some exporters write, as a STIX UTC timestamp
    (milliseconds), and in microseconds since the epoch."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise Malformed("bad-timestamp") from None
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            value = when.timestamp()
    if not isinstance(value, (int, float)) or not 0 <= value < 32503680000:
        raise Malformed("bad-timestamp")
    when = datetime.fromtimestamp(value, UTC)
    us = int(when.timestamp()) * 1_000_000 + when.microsecond // 1000 * 1000
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", us


def zeek_observation(path: str, record: dict[str, Any]) -> Observation:
    """The observation in one Zeek record of log `path` (conn, dns, http, ssl, files, x509, ...)."""
    text, at = _zeek_time(record.get("ts"))
    obs = Observation(text, path, at=at)
    src, dst = _address(obs, record.get("id.orig_h")), _address(obs, record.get("id.resp_h"))
    if src and dst:
        traffic: dict[str, Any] = {"type": "network-traffic", "src_ref": src, "dst_ref": dst, "start": obs.time,
                                   "protocols": [str(record.get("proto") or "ip").lower()]}
        service = record.get("service")
        if isinstance(service, str) and service and service.lower() not in traffic["protocols"]:
            traffic["protocols"].append(service.lower().split(",")[0])
        for key, stix_key in (("id.orig_p", "src_port"), ("id.resp_p", "dst_port")):
            port = record.get(key)
            if isinstance(port, int) and 0 <= port <= 65535:
                traffic[stix_key] = port
        obs.add(traffic, ("start", "src_ref", "dst_ref", "src_port", "dst_port", "protocols"))
    if path == "dns":
        _domain(obs, record.get("query"))
        for answer in record.get("answers") or []:
            try:
                _address(obs, answer)
            except Malformed:
                _domain(obs, answer)  # a CNAME or other name answer
    elif path == "http":
        host, uri = record.get("host"), record.get("uri")
        _domain(obs, host)
        if isinstance(host, str) and isinstance(uri, str) and is_hostname(host.lower()):
            _add_url(obs, _url("http", host.lower(), uri))
    elif path == "ssl":
        _domain(obs, record.get("server_name"))
    elif path == "files":
        f: dict[str, Any] = {"type": "file"}
        hashes = {stix: record[eve].lower() for eve, stix in _HASHES if isinstance(record.get(eve), str)}
        if hashes:
            f["hashes"] = hashes
        name = record.get("filename")
        if isinstance(name, str) and name:
            f["name"] = name.replace("\\", "/").rsplit("/", 1)[-1] or name
        if isinstance(record.get("total_bytes"), int) and record["total_bytes"] >= 0:
            f["size"] = record["total_bytes"]
        if "hashes" in f or "name" in f:
            obs.add(f, ("hashes", "name", "extensions", "parent_directory_ref"))
        for host in [*(record.get("tx_hosts") or []), *(record.get("rx_hosts") or [])]:
            _address(obs, host)
    elif path == "x509":
        cert: dict[str, Any] = {"type": "x509-certificate"}
        for key, stix_key in (("certificate.serial", "serial_number"), ("certificate.subject", "subject"),
                              ("certificate.issuer", "issuer")):
            if isinstance(record.get(key), str) and record[key]:
                cert[stix_key] = record[key]
        fingerprint = record.get("fingerprint")
        if isinstance(fingerprint, str) and len(fingerprint) in (40, 64):
            cert["hashes"] = {"SHA-1" if len(fingerprint) == 40 else "SHA-256": fingerprint.lower()}
        if len(cert) > 1:
            obs.add(cert, ("hashes", "serial_number"))
    return obs


_ZEEK_INTS = ("port", "count", "int")


def _tsv_value(raw: str, kind: str, header: dict[str, str]) -> Any:
    if raw == header.get("unset_field", "-"):
        return None
    if kind.startswith(("set[", "vector[", "table[")):
        if raw == header.get("empty_field", "(empty)"):
            return []
        inner = kind[kind.index("[") + 1:-1]
        return [_tsv_value(v, inner, header) for v in raw.split(header.get("set_separator", ","))]
    if kind in _ZEEK_INTS:
        try:
            return int(raw)
        except ValueError:
            raise Malformed("bad-number") from None
    if kind in ("time", "interval", "double"):
        try:
            return float(raw)
        except ValueError:
            raise Malformed("bad-number") from None
    if kind == "bool":
        return raw == "T"
    return raw


def _until_damaged(lines: Iterable[bytes | str], reading: Reading) -> Iterator[bytes | str]:
    """The lines of a file, stopping (and counting it) where a compressed file is cut or damaged."""
    it = iter(lines)
    while True:
        try:
            yield next(it)
        except StopIteration:
            return
        except (EOFError, OSError, zlib.error):
            reading.skipped["damaged-file"] += 1
            return


def zeek_records(lines: Iterable[bytes | str], reading: Reading, path_hint: str = "") -> Iterator[tuple[str, dict]]:
    """(log path, record) from Zeek JSON lines or a TSV log with its header; bad lines are counted."""
    header: dict[str, str] = {}
    fields: list[str] = []
    types: list[str] = []
    for line in _until_damaged(lines, reading):
        reading.lines += 1
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        if len(text) > MAX_LINE:
            reading.skipped["too-long"] += 1
            continue
        if text.startswith("#"):
            key, _, value = text[1:].partition(header.get("separator", "\t") if fields or "separator" in header
                                                else " ")
            if key == "separator":
                header["separator"] = value.encode().decode("unicode_escape")
            elif key == "fields":
                fields = value.split(header.get("separator", "\t"))
            elif key == "types":
                types = value.split(header.get("separator", "\t"))
            else:
                header[key] = value
            continue
        try:
            if text.startswith("{"):
                record = orjson.loads(text)
                if not isinstance(record, dict):
                    raise Malformed("not-a-record")
                path = path_hint
                if len(record) == 1 and isinstance(next(iter(record.values())), dict):
                    path, record = next(iter(record.items()))  # {"http": {...}} as some pipelines write
                yield (path or header.get("path", ""), record)
            elif fields:
                values = text.split(header.get("separator", "\t"))
                if len(values) != len(fields):
                    raise Malformed("wrong-field-count")
                kinds = types if len(types) == len(fields) else ["string"] * len(fields)
                record = {}
                for name, kind, raw in zip(fields, kinds, values, strict=True):
                    value = _tsv_value(raw, kind, header)
                    if value is not None:
                        record[name] = value
                yield (header.get("path", path_hint), record)
            else:
                raise Malformed("no-header")
        except orjson.JSONDecodeError:
            reading.skipped["not-json"] += 1
        except Malformed as exc:
            reading.skipped[exc.reason] += 1


def read_zeek(lines: Iterable[bytes | str], reading: Reading | None = None, path_hint: str = "") -> Iterator[Observation]:
    """Observations from a Zeek log (JSON lines or TSV); malformed lines are counted and skipped."""
    r = reading if reading is not None else Reading()
    for path, record in zeek_records(lines, r, path_hint):
        try:
            yield zeek_observation(path, record)
        except Malformed as exc:
            r.skipped[exc.reason] += 1
