"""`make demo`: a partner node on 127.0.0.1 with demo users and intelligence loaded, served until Ctrl-C."""

from __future__ import annotations

import gzip
import json
import os
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console

from .config import CONFIG_FILE
from .ingest import ingest
from .markings.definitions import TLP2
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
        record = ingest(node.store, operator, coll, objects[i:i + 1000])
        ok += record.success_count
        bad += record.failure_count
    return ok, bad


def prepare_demo(home: Path, port: int, data: Path, console: Console) -> tuple[Node, dict[str, str]]:
    home = home.resolve()
    fresh = not (home / CONFIG_FILE).exists()
    node = Node.init(home, "TWN", org_name="Taiwan", port=port) if fresh else Node.open(home)
    creds_file = home / "demo-credentials.json"
    if fresh:
        _, token = node.add_user("analyst", Role.CONTRIBUTOR, password=DEMO_PASSWORD, token=True)
        node.add_user("reader", Role.READER, password=DEMO_PASSWORD)
        node.add_user("admin", Role.ADMIN, password=DEMO_PASSWORD)
        # Japan's liaison officer: a partner in TWN's community, reading the shared collection
        jpn = node.ensure_organisation("JPN", partner=True, country="JP")
        node.add_user("liaison", Role.READER, org="JPN", password=DEMO_PASSWORD)
        node.store.grant(node.collection(node.config.default_api_root, "shared").id, jpn.id, can_read=True,
                         can_write=False)
        fd = os.open(creds_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"token": token}, f)
    creds = json.loads(creds_file.read_text())
    coll = node.collection(node.config.default_api_root, "shared")
    record = ingest(node.store, node.operator(), coll, demo_objects(node.config.identity))
    console.print(f"  demo set: {record.success_count} objects in 'shared'")
    if data.is_dir():
        for sub, collection in (("stix/oasis-examples", "shared"), ("stix/attack", "reference")):
            for path in sorted((data / sub).glob("*.json*")):
                ok, bad = _load_file(node, path, collection)
                console.print(f"  {path.name}: {ok} objects in '{collection}'" + (f", {bad} rejected" if bad else ""))
    else:
        console.print(f"  ({data} not found: only the built-in demo set is loaded)")
    return node, creds


def run_demo(home: Path, port: int, data: Path, console: Console) -> None:
    import uvicorn

    from .taxii import create_app

    console.print("[bold]Kuroshio demo[/]: preparing the TWN node ...")
    node, creds = prepare_demo(home, port, data, console)
    base = f"http://127.0.0.1:{port}"
    root = node.config.default_api_root
    shared = node.collection(root, "shared")
    console.print()
    console.print(f"[bold]Node TWN (Taiwan)[/] serves TAXII 2.1 at {base}/taxii2/", highlight=False)
    console.print(f"  API root      {base}/{root}/", highlight=False)
    console.print(f"  collections   shared ({shared.id}), reference", highlight=False)
    console.print(f"  users         analyst / reader / admin (TWN), liaison (JPN, a partner); password "
                  f"{DEMO_PASSWORD}", highlight=False)
    console.print("  releasability the TIDEWATER report is TLP:GREEN with a TLP:RED paragraph: liaison receives it "
                  "without that paragraph and without the AMBER+STRICT staging-server indicator", highlight=False)
    console.print(f"  API token     {creds['token']} (analyst)", highlight=False)
    console.print()
    console.print("Try:", highlight=False)
    console.print(f"  curl -s -u analyst:{DEMO_PASSWORD} -H 'Accept: application/taxii+json;version=2.1' "
                  f"'{base}/{root}/collections/shared/objects/?limit=5'", highlight=False, soft_wrap=True)
    console.print(f"  curl -s -H 'Authorization: Bearer {creds['token']}' "
                  f"-H 'Accept: application/taxii+json;version=2.1' {base}/{root}/collections/", highlight=False,
                  soft_wrap=True)
    console.print("Ctrl-C stops the node.")
    try:
        uvicorn.run(create_app(node), host="127.0.0.1", port=port, log_level="warning", server_header=False)
    finally:
        node.close()
