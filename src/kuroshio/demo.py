"""`make demo`: two partner nodes, Taiwan (TWN) and Japan (JPN), on 127.0.0.1, linked both ways, with demo
users and intelligence loaded; shows live what each side received and what it did not, then TWN's
sensor log matched against the indicators and the sightings JPN receives, then TWN's AIS picture of
a scenario around Taiwan and the maritime events JPN receives; Ctrl-C stops both."""

from __future__ import annotations

import gzip
import json
import os
import uuid
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from .config import CONFIG_FILE
from .markings.definitions import TLP2, releasable_to
from .node import Node
from .principals import Role
from .stix.stream import iter_objects

DEMO_PASSWORD = "kuroshio-demo"  # printed to the terminal: demo credentials only
_NS = uuid.UUID("6f1c2d4e-6b0a-4c1e-9a51-4b5552534849")  # names the demo objects so reloading is idempotent


def _id(kind: str, name: str) -> str:
    return f"{kind}--{uuid.uuid5(_NS, name)}"


def demo_objects(identity: str) -> list[dict[str, Any]]:
    """A small, self-contained demo set: a campaign against shipping in the East China Sea."""
    ts = "2026-11-01T00:00:00.000Z"
    base = {"spec_version": "2.1", "created": ts, "modified": ts, "created_by_ref": identity}
    actor = {**base, "type": "intrusion-set", "id": _id("intrusion-set", "actor"), "name": "TIDEWATER",
             "description": "Intrusion set targeting port logistics and maritime operators in East Asia.",
             "aliases": ["Demo Actor"], "first_seen": "2026-06-01T00:00:00Z"}
    malware = {**base, "type": "malware", "id": _id("malware", "loader"), "name": "HarbourLoader",
               "is_family": True, "malware_types": ["remote-access-trojan"]}
    ip = {**base, "type": "indicator", "id": _id("indicator", "ip"), "name": "HarbourLoader C2 address",
          "pattern": "[ipv4-addr:value = '203.0.113.77']", "pattern_type": "stix", "valid_from": ts,
          "indicator_types": ["malicious-activity"]}
    domain = {**base, "type": "indicator", "id": _id("indicator", "domain"), "name": "HarbourLoader C2 domain",
              "pattern": "[domain-name:value = 'update.harbour-logistics.example']", "pattern_type": "stix",
              "valid_from": ts, "indicator_types": ["malicious-activity"]}
    rels = [
        {**base, "type": "relationship", "id": _id("relationship", f"{a}-{b}"), "relationship_type": r,
         "source_ref": a, "target_ref": b}
        for a, r, b in ((ip["id"], "indicates", malware["id"]), (domain["id"], "indicates", malware["id"]),
                        (actor["id"], "uses", malware["id"]))
    ]
    source = {**base, "type": "indicator", "id": _id("indicator", "source"), "name": "Staging server (source-protected)",
              "pattern": "[ipv4-addr:value = '198.51.100.23']", "pattern_type": "stix", "valid_from": ts,
              "indicator_types": ["malicious-activity"], "object_marking_refs": [TLP2["amber+strict"]]}
    report = {**base, "type": "report", "id": _id("report", "report"), "name": "TIDEWATER activity against ports",
              "published": ts, "report_types": ["threat-actor"],
              "description": "Joint cyber-defence centre summary of TIDEWATER activity (demo data). Staging server "
                             "identified by a human source inside the port operator.",
              "labels": ["maritime", "ports"],
              "object_refs": [actor["id"], malware["id"], ip["id"], domain["id"], source["id"],
                              *[r["id"] for r in rels]],
              "object_marking_refs": [TLP2["green"]],
              # the paragraph naming the source is TLP:RED: partners receive the report without it
              "granular_markings": [{"selectors": ["description"], "marking_ref": TLP2["red"]}]}
    return [actor, malware, ip, domain, source, *rels, report]


def _load_file(node: Node, path: Path, collection: str) -> tuple[int, int]:
    coll = node.collection(node.config.default_api_root, collection)
    operator = node.operator()
    opener = gzip.open if path.suffix == ".gz" else open
    ok = bad = 0
    with opener(path, "rb") as fp:
        objects = list(iter_objects(fp))
    # marking definitions first: an object whose marking the node does not know yet is refused
    objects.sort(key=lambda o: not (isinstance(o, dict) and o.get("type") == "marking-definition"))
    for i in range(0, len(objects), 1000):
        record = node.ingest(operator, coll, objects[i:i + 1000])
        ok += record.success_count
        bad += record.failure_count
    return ok, bad


def twn_extras(identity: str, jpn_identity: str) -> list[dict[str, Any]]:
    """TWN's objects for JPN only and for nobody else: a releasable-to definition, an AMBER indicator released
    to JPN only, and a TLP:RED note that stays home."""
    ts = "2026-11-02T00:00:00.000Z"
    rel = releasable_to(_id("marking-definition", "rel-jpn"), [(jpn_identity, "JPN", "JP")], created_by=identity,
                        created=ts)
    base = {"spec_version": "2.1", "created": ts, "modified": ts, "created_by_ref": identity}
    amber = {**base, "type": "indicator", "id": _id("indicator", "amber-jpn"), "name": "Phishing sender (for JPN)",
             "pattern": "[email-addr:value = 'ops@harbour-logistics.example']", "pattern_type": "stix",
             "valid_from": ts, "object_marking_refs": [TLP2["amber"], rel["id"]]}
    note = {**base, "type": "note", "id": _id("note", "red"), "content": "Source handling notes: stays in Taiwan.",
            "object_refs": [_id("report", "report")], "object_marking_refs": [TLP2["red"]]}
    return [rel, amber, note]


def jpn_objects(identity: str) -> list[dict[str, Any]]:
    """JPN's contribution: a TLP:GREEN maritime report with its indicator, shared both ways."""
    ts = "2026-11-03T00:00:00.000Z"
    base = {"spec_version": "2.1", "created": ts, "modified": ts, "created_by_ref": identity}
    ind = {**base, "type": "indicator", "id": _id("indicator", "jpn-ais"), "name": "Spoofed AIS relay",
           "pattern": "[ipv4-addr:value = '192.0.2.44']", "pattern_type": "stix", "valid_from": ts,
           "indicator_types": ["malicious-activity"], "object_marking_refs": [TLP2["green"]]}
    report = {**base, "type": "report", "id": _id("report", "jpn-report"), "name": "AIS spoofing near Yonaguni",
              "published": ts, "report_types": ["indicator"], "object_refs": [ind["id"]],
              "description": "Japan's maritime centre saw spoofed AIS positions relayed from this address.",
              "object_marking_refs": [TLP2["green"]]}
    return [ind, report]


def jpn_for_twn(identity: str, twn_identity: str) -> list[dict[str, Any]]:
    """JPN's TLP:AMBER indicator released to TWN only: TWN's sensors will see it, JPN will learn it."""
    ts = "2026-11-04T00:00:00.000Z"
    rel = releasable_to(_id("marking-definition", "rel-twn"), [(twn_identity, "TWN", "TW")], created_by=identity,
                        created=ts)
    ind = {"spec_version": "2.1", "created": ts, "modified": ts, "created_by_ref": identity, "type": "indicator",
           "id": _id("indicator", "jpn-amber"), "name": "Spear-phishing infrastructure (for TWN)",
           "pattern": "[domain-name:value = 'portal.ferry-schedule.example']", "pattern_type": "stix",
           "valid_from": "2026-01-01T00:00:00Z", "indicator_types": ["malicious-activity"],
           "object_marking_refs": [TLP2["amber"], rel["id"]]}
    return [rel, ind]


def sensor_log(now_us: int) -> list[bytes]:
    """A few Suricata EVE lines from TWN's sensor, timed just before `now_us`: a DNS query for JPN's AMBER
    domain, traffic to JPN's GREEN address and to TWN's own C2 address, and ordinary traffic."""
    import time

    def stamp(offset_s: int) -> str:
        secs = now_us // 1_000_000 - offset_s
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".000000+0000"

    def event(offset: int, dest: str, **extra: Any) -> bytes:
        return orjson.dumps({"timestamp": stamp(offset), "event_type": extra.pop("event_type", "flow"),
                             "src_ip": "10.20.0.15", "src_port": 49152 + offset, "dest_ip": dest,
                             "dest_port": extra.pop("port", 443), "proto": extra.pop("proto", "TCP"), **extra})

    return [
        event(300, "10.20.0.1", event_type="dns", port=53, proto="UDP",
              dns={"type": "query", "rrname": "portal.ferry-schedule.example", "rrtype": "A"}),
        event(240, "192.0.2.44"),
        event(180, "192.0.2.44"),
        event(120, "203.0.113.77", event_type="http", port=80,
              http={"hostname": "update.harbour-logistics.example", "url": "/payload.bin"}),
        event(60, "198.51.100.200"),
    ]


def correlate_demo(node: Node, log: Path, console: Console) -> dict[str, int]:
    """TWN's sensor log through the node's correlation: the sightings it publishes go back to JPN."""
    from .correlate.observations import read_eve
    from .correlate.service import Correlator

    correlator = Correlator(node)
    try:
        correlator.refresh()
        correlator.catch_up()
        correlator.observe(read_eve(log.read_bytes().splitlines()))
        published = correlator.flush()
    finally:
        correlator.close()
    counts = {"indicators": len(correlator.index), "observations": correlator.counts["observations"],
              "matches": correlator.counts["matches"], "sightings": published}
    console.print(f"  TWN's sensor log {log.name}: {counts['observations']} observations against "
                  f"{counts['indicators']} indicators, {counts['matches']} matches, {published} sightings published",
                  highlight=False)
    return counts


def maritime_demo(node: Node, data: Path, console: Console) -> dict[str, int]:
    """TWN's receivers hear the East Asia scenario; its events are published TLP:AMBER releasable to JPN."""
    from .maritime.geo import gates_of_first_island_chain, zones_from_geojson
    from .maritime.scenario import east_asia
    from .maritime.service import MaritimeService

    if node.config.maritime.releasable_to != ["JPN"]:
        node.config.maritime.releasable_to = ["JPN"]
        node.config.save()
    scenario = east_asia()
    zones = [*zones_from_geojson({"type": "FeatureCollection", "features": scenario.zones}),
             *gates_of_first_island_chain()]
    svc = MaritimeService(node, zones=zones)  # the node's land mask (the packaged GLOBE 1-km mask by default)
    try:
        svc.feed(scenario.lines(), "rTWN-Yonaguni")
        svc.close_readers()
        published = svc.publish()
    finally:
        svc.close()
    events = dict(svc.stats.events)
    console.print(f"  TWN's AIS receivers: {svc.stats.messages:,} messages, {len(svc.picture.vessels)} vessels, "
                  f"{sum(events.values())} events ({', '.join(f'{k} {n}' for k, n in sorted(events.items()))}); "
                  f"{published} objects published, TLP:AMBER releasable to JPN", highlight=False)
    return events


def _maritime_report(jpn: Node, console: Console) -> bool:
    """When TWN's maritime events have reached JPN: a table of them; False while none has."""
    from rich.table import Table

    from .store import ObjectFilter

    coll = jpn.collection(jpn.config.default_api_root, "shared")
    rows = jpn.store.query(jpn.operator(), coll, ObjectFilter(types=["maritime-event"], limit=1000)).rows
    events = [orjson.loads(r.raw) for r in rows if r.raw is not None]
    if not events:
        return False
    table = Table("event", "status", "start", title="TWN's maritime picture, as JPN receives it")
    for e in sorted(events, key=lambda e: e["start_time"]):
        table.add_row(e["name"], e["status"], e["start_time"][:16])
    console.print(table)
    return True


def prepare_demo(home: Path, port: int, data: Path, console: Console, *,
                 jpn_identity: dict[str, Any] | None = None) -> tuple[Node, dict[str, str]]:
    """TWN's demo node. With `jpn_identity` (the JPN node's), JPN is that organisation, ready to link."""
    node, fresh, creds = _demo_node(home, "TWN", "Taiwan", port)
    if fresh:
        node.add_user("reader", Role.READER, password=DEMO_PASSWORD)
        if jpn_identity is not None:
            node.store.add_organisation("JPN", jpn_identity, community=node.config.community, country="JP")
        # Japan's liaison officer: a partner in TWN's community, reading the shared collection
        jpn = node.ensure_organisation("JPN", partner=True, country="JP")
        node.add_user("liaison", Role.READER, org="JPN", password=DEMO_PASSWORD)
        node.store.grant(node.collection(node.config.default_api_root, "shared").id, jpn.id, can_read=True,
                         can_write=False)
    coll = node.collection(node.config.default_api_root, "shared")
    jpn_org = node.store.organisation("JPN")
    assert jpn_org is not None
    record = node.ingest(node.operator(), coll, [*demo_objects(node.config.identity),
                                                 *twn_extras(node.config.identity, jpn_org.identity_id)])
    console.print(f"  TWN demo set: {record.success_count} objects in 'shared'")
    if data.is_dir():
        for sub, collection in (("stix/oasis-examples", "shared"), ("stix/attack", "reference")):
            for path in sorted((data / sub).glob("*.json*")):
                ok, bad = _load_file(node, path, collection)
                console.print(f"  {path.name}: {ok} objects in '{collection}'" + (f", {bad} rejected" if bad else ""))
    else:
        console.print(f"  ({data} not found: only the built-in demo set is loaded)")
    return node, creds


def _demo_node(home: Path, org: str, name: str, port: int) -> tuple[Node, bool, dict[str, str]]:
    """A demo node, created with its analyst and admin on first use (re-used after); whether it is new;
    the analyst's API token, kept in DIR/demo-credentials.json (mode 0600)."""
    home = home.resolve()
    fresh = not (home / CONFIG_FILE).exists()
    node = Node.init(home, org, org_name=name, port=port) if fresh else Node.open(home)
    creds_file = home / "demo-credentials.json"
    if fresh:
        _, token = node.add_user("analyst", Role.CONTRIBUTOR, password=DEMO_PASSWORD, token=True)
        node.add_user("admin", Role.ADMIN, password=DEMO_PASSWORD)
        fd = os.open(creds_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"token": token}, f)
    return node, fresh, json.loads(creds_file.read_text())


def prepare_jpn(home: Path, port: int, console: Console) -> tuple[Node, dict[str, str]]:
    node, _, creds = _demo_node(home, "JPN", "Japan", port)
    record = node.ingest(node.operator(), node.collection(node.config.default_api_root, "shared"),
                         jpn_objects(node.config.identity))
    console.print(f"  JPN demo set: {record.success_count} objects in 'shared'")
    return node, creds


def link_nodes(a: Node, b: Node) -> None:
    """Link two demo nodes both ways, as their two operators would with cards and tokens."""
    from .federation import links

    if a.config.partner(b.config.org) is not None and b.config.partner(a.config.org) is not None:
        return

    token_for_b = links.add_partner(a, links.parse_card(links.card(b), "TWN/JPN demo"), poll_interval=1.0)
    token_for_a = links.add_partner(b, links.parse_card(links.card(a), "TWN/JPN demo"), poll_interval=1.0)
    links.set_credentials(a, b.config.org, token_for_a)
    links.set_credentials(b, a.config.org, token_for_b)


def _watch(nodes: dict[str, Node], console: Console, stop: Any, log: Path | None = None,
           data: Path | None = None) -> None:
    """Print, as it happens, what each node pulled and pushed and what it refused; then what arrived where;
    then, once JPN's indicators reached TWN, TWN's sensor log correlated and the sightings JPN receives."""
    from .federation import links
    from .store import ObjectFilter

    seen: dict[tuple[str, str], tuple[int, int, int, int]] = {}
    reported = correlated = sighted = maritime = pictured = False
    while not stop.wait(1.0):
        twn, jpn = nodes["TWN"], nodes["JPN"]
        if sighted and not maritime and data is not None:
            maritime = True
            maritime_demo(twn, data, console)
        if maritime and not pictured:
            pictured = _maritime_report(jpn, console)
        if reported and not correlated and log is not None:
            coll = twn.collection(twn.config.default_api_root, "shared")
            if twn.store.query(twn.operator(), coll, ObjectFilter(ids=[_id("indicator", "jpn-amber")])).rows:
                correlated = True
                correlate_demo(twn, log, console)
        if correlated and not sighted:
            sighted = _sightings_report(jpn, console)
        for org, node in nodes.items():
            for st in links.status(node):
                now = (st.get("received", 0), st.get("rejected", 0), st.get("pushed", 0), st.get("push_rejected", 0))
                if now != seen.get((org, st["org"]), (0, 0, 0, 0)):
                    seen[(org, st["org"])] = now
                    console.print(f"  {org}: pulled {now[0]} from {st['org']} ({now[1]} refused), pushed {now[2]} "
                                  f"to {st['org']} ({now[3]} refused there)", highlight=False)
        if not reported:
            arrived = True
            for org, oid in (("JPN", _id("report", "report")), ("TWN", _id("report", "jpn-report"))):
                node = nodes[org]
                coll = node.collection(node.config.default_api_root, "shared")
                arrived &= bool(node.store.query(node.operator(), coll, ObjectFilter(ids=[oid])).rows)
            if arrived:
                reported = True
                _report(nodes, console)


def _sightings_report(jpn: Node, console: Console) -> bool:
    """When sightings from TWN have reached JPN: a table of them; False while none has."""
    from rich.table import Table

    from .store import ObjectFilter

    coll = jpn.collection(jpn.config.default_api_root, "shared")
    rows = jpn.store.query(jpn.operator(), coll, ObjectFilter(types=["sighting"], limit=1000)).rows
    sightings = [orjson.loads(r.raw) for r in rows if r.raw is not None]
    names = {_id("indicator", "jpn-amber"): "JPN spear-phishing domain (AMBER, for TWN)",
             _id("indicator", "jpn-ais"): "JPN spoofed AIS relay (GREEN)",
             _id("indicator", "ip"): "TWN's own C2 address (GREEN)",
             _id("indicator", "domain"): "TWN's own C2 domain (GREEN)"}
    if not any(s["sighting_of_ref"] in names and "jpn" in names[s["sighting_of_ref"]].lower() for s in sightings):
        return False
    table = Table("indicator", "seen by", "count", "sighting's markings", title="What JPN learnt from TWN's sensors")
    for s in sightings:
        if s["sighting_of_ref"] not in names:
            continue  # example sightings from the loaded data sets
        marks = ", ".join("TLP:" + k.upper() for k, v in TLP2.items() if v in s.get("object_marking_refs", []))
        if len(s.get("object_marking_refs", [])) > 1:
            marks += ", releasable to JPN"
        table.add_row(names.get(s["sighting_of_ref"], s["sighting_of_ref"]), "TWN", str(s["count"]), marks)
    console.print(table)
    return True


def _report(nodes: dict[str, Node], console: Console) -> None:
    from rich.table import Table

    from .store import ObjectFilter

    twn, jpn = nodes["TWN"], nodes["JPN"]
    coll = jpn.collection(jpn.config.default_api_root, "shared")
    held = {r.id: orjson.loads(r.raw) for r in jpn.store.query(jpn.operator(), coll, ObjectFilter(limit=10000)).rows
            if r.raw is not None}
    table = Table("TWN's object", "marking", "at JPN", title="What JPN received from TWN")
    jpn_id = jpn.config.identity
    rows = [(o, m) for o, m in (
        (_id("report", "report"), "TLP:GREEN, description TLP:RED"),
        (_id("indicator", "ip"), "TLP:GREEN (collection default)"),
        (_id("indicator", "amber-jpn"), "TLP:AMBER, releasable to JPN"),
        (_id("indicator", "source"), "TLP:AMBER+STRICT"),
        (_id("note", "red"), "TLP:RED"))]
    names = {_id("report", "report"): "TIDEWATER report", _id("indicator", "ip"): "C2 address indicator",
             _id("indicator", "amber-jpn"): "phishing sender indicator", _id("indicator", "source"):
             "staging server (source-protected)", _id("note", "red"): "source handling note"}
    for oid, marking in rows:
        got = held.get(oid)
        if got is None:
            verdict = "[red]not received[/]"
        elif oid == _id("report", "report"):
            verdict = "[green]received[/], " + ("without the RED paragraph" if "description" not in got else
                                                "[red]WITH the RED paragraph[/]")
        else:
            verdict = "[green]received[/], signature verifies" if jpn.verifier.verify(got) else "received"
        table.add_row(names[oid], marking, verdict)
    console.print(table)
    twn_coll = twn.collection(twn.config.default_api_root, "shared")
    at_twn = {r.id for r in twn.store.query(twn.operator(), twn_coll, ObjectFilter(limit=10000)).rows}
    back = _id("report", "jpn-report") in at_twn
    console.print(f"  and TWN {'received' if back else 'has not yet received'} JPN's TLP:GREEN report "
                  f"(created by {jpn_id[:20]}...)", highlight=False)


def run_demo(home: Path, port: int, data: Path, console: Console) -> None:
    import threading

    import uvicorn

    from .federation.service import FederationService
    from .taxii import create_app
    from .tls import server_config

    console.print("[bold]Kuroshio demo[/]: preparing two partner nodes, Taiwan (TWN) and Japan (JPN) ...")
    jpn, jpn_creds = prepare_jpn(home / "JPN", port + 1, console)
    jpn_org = jpn.store.organisation("JPN")
    assert jpn_org is not None
    twn, creds = prepare_demo(home / "TWN", port, data, console,
                              jpn_identity=orjson.loads(jpn.store.organisation_identity(jpn_org.id)))
    link_nodes(twn, jpn)
    jpn.ingest(jpn.operator(), jpn.collection(jpn.config.default_api_root, "shared"),
               jpn_for_twn(jpn.config.identity, twn.config.identity))
    log = home.resolve() / "TWN" / "sensor-eve.json"
    import time

    log.write_bytes(b"\n".join(sensor_log(time.time_ns() // 1000)) + b"\n")
    nodes = {"TWN": twn, "JPN": jpn}
    servers = []
    for node in (twn, jpn):
        config = server_config(node, create_app(node), "127.0.0.1", node.config.port, log_level="warning",
                               server_header=False, lifespan="off")
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # Ctrl-C is handled here
        servers.append(server)
    threads = [threading.Thread(target=s.run, daemon=True) for s in servers]
    for t in threads:
        t.start()
    services = [FederationService(n) for n in (twn, jpn)]
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(nodes, console, stop, log, data), daemon=True)
    root = twn.config.default_api_root
    console.print()
    for node, c, extra in ((twn, creds, "analyst / reader / admin (TWN), liaison (a JPN user on TWN's node)"),
                           (jpn, jpn_creds, "analyst / admin (JPN)")):
        base = f"http://127.0.0.1:{node.config.port}"
        console.print(f"[bold]Node {node.config.org} ({node.config.org_name})[/] serves TAXII 2.1 at {base}/taxii2/",
                      highlight=False)
        console.print(f"  users      {extra}; password {DEMO_PASSWORD}", highlight=False)
        console.print(f"  API token  {c['token']} (analyst)", highlight=False)
        console.print(f"  try        curl -s -u analyst:{DEMO_PASSWORD} -H 'Accept: application/taxii+json;"
                      f"version=2.1' '{base}/{root}/collections/shared/objects/?limit=5'", highlight=False,
                      soft_wrap=True)
    console.print()
    console.print("The nodes sync both ways (pull and push, signed). What each receives appears below, then "
                  "TWN's sensor log is matched against the indicators and the sightings go back to JPN; "
                  "Ctrl-C stops both.")
    console.print(f"  more sensor data: kuroshio observe {log.parent} {log} --follow   (append EVE lines to {log.name})",
                  highlight=False, soft_wrap=True)
    try:
        for svc in services:
            svc.start()
        watcher.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.5)
    except KeyboardInterrupt:
        console.print("stopping ...")
    finally:
        stop.set()
        for svc in services:
            svc.stop()
        for s in servers:
            s.should_exit = True
        for t in threads:
            t.join(10)
        for node in (twn, jpn):
            node.close()
