"""Pushing to a partner's node over TAXII 2.1: a durable per-partner outbox, envelopes, status resources.

The outbox of a partner is the part of each exchanged collection after the partner's push cursor,
as the partner's organisation may see it. It is filled by the local write itself: every stored
object gets its `date_added` in the write's transaction, in commit order (the same guarantee that
makes TAXII paging exact), so nothing written can be missed and nothing needs a second write. A
push step reads the next page through the principal-filtered query as the partner's service user
(the same path every reader takes), POSTs it as one envelope, follows the status resource until it
is complete, and only then moves the cursor (durably). A crash anywhere sends a page again, which
the partner stores once (`id` + `modified`). Objects the partner signed itself are not sent back.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..config import PartnerConfig
from ..node import Node
from ..store import ObjectFilter
from . import links
from .pull import PartnerClient, PartnerError, forget_collection, merge

PAGE = 1000
STATUS_WAIT_SECONDS = 60.0


def cursor_key(org: str, alias: str) -> str:
    return f"push:{org}:{alias}"


@dataclass
class PushReport:
    envelopes: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    rejections: list[str] = field(default_factory=list)


def push_collection(node: Node, client: PartnerClient, alias: str, *, stop: threading.Event | None = None,
                    page: int = PAGE) -> PushReport:
    link = client.link
    coll = node.collection(node.config.default_api_root, alias)
    principal = links.partner_principal(node, link.org)
    key = cursor_key(link.org, alias)
    raw = node.store.sync_state(key)
    cursor = int(raw) if raw else None
    url = client.collection_url(alias)
    report = PushReport()
    while stop is None or not stop.is_set():
        flt = ObjectFilter(versions=("all",), limit=page, cursor=cursor)
        result = node.store.query(principal, coll, flt, way="push")
        if not result.rows:
            break
        # what the partner may see, as it may see it, less what it sent us itself
        objects = [r.raw for r in node.for_partner(principal, result).rows if r.raw is not None]
        if objects:
            body = b'{"objects":[' + b",".join(objects) + b"]}"
            status = client.post(url + "objects/", body)
            status = _until_complete(client, url, status, stop)
            report.envelopes += 1
            report.sent += len(objects)
            report.accepted += int(status.get("success_count", 0))
            report.rejected += int(status.get("failure_count", 0))
            for f in (status.get("failures") or [])[:5]:
                if isinstance(f, dict) and len(report.rejections) < 20:
                    report.rejections.append(str(f.get("message", f.get("id", ""))))
        cursor = result.rows[-1].date_added
        node.store.set_sync_state(key, str(cursor))
        if not result.more:
            break
    return report


def _until_complete(client: PartnerClient, collection_url: str, status: object,
                    stop: threading.Event | None) -> dict:
    if not isinstance(status, dict) or "id" not in status:
        raise PartnerError(f"{client.link.org}: the answer to a POST is not a TAXII status resource")
    root = collection_url.split("collections/")[0]
    deadline = time.monotonic() + STATUS_WAIT_SECONDS
    delay = 0.05
    while status.get("status") != "complete":
        if time.monotonic() > deadline or (stop is not None and stop.is_set()):
            raise PartnerError(f"{client.link.org}: status {status.get('id')} still pending after "
                               f"{STATUS_WAIT_SECONDS:.0f} s; the envelope is sent again later")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
        status, _ = client.get(f"{root}status/{status['id']}/")
        if not isinstance(status, dict):
            raise PartnerError(f"{client.link.org}: a status resource answer is not JSON object")
    return status


def push(node: Node, link: PartnerConfig, *, stop: threading.Event | None = None, page: int = PAGE) -> PushReport:
    client = PartnerClient(node, link)
    total = PushReport()
    try:
        for alias in link.collections:
            try:
                merge(total, push_collection(node, client, alias, stop=stop, page=page))
            except PartnerError:
                forget_collection(link, alias)  # the partner may have moved it: discover again next time
                raise
    finally:
        client.close()
    return total
