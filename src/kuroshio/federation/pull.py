"""Pulling from a partner's node over TAXII 2.1: discovery, paging, durable checkpoints, backoff.

For each exchanged collection the puller pages the partner's objects endpoint following TAXII 2.1
exactly: it follows `next` while the server offers it, and otherwise asks with `added_after` set
to the last `X-TAXII-Date-Added-Last` it received; never both in one request. Every version is
asked for (`match[version]=all`): all versions are kept everywhere. Each page is stored through the
node's one way in (ingest.py) as the partner's service principal, so every object's signature is
verified and its markings judged again here; the page's checkpoint is written in the same
transaction as its objects, so a crash at any point loses nothing and stores nothing twice (a page
stored before the crash is re-read at most once, and storing it again changes nothing).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx
import orjson

from .. import tls
from ..config import PartnerConfig
from ..node import Node, NodeError
from ..stix import timestamps
from . import links

log = logging.getLogger("kuroshio.federation")

TAXII = "application/taxii+json;version=2.1"
PAGE = 1000  # objects asked for per request
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class PartnerError(Exception):
    """Talking to a partner failed; the message says what the partner answered or why it could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status the partner answered, if it answered


class RateLimit:
    """At most `per_second` requests per second (spaced evenly)."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event | None = None) -> None:
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)


_COLLECTION_URLS: dict[tuple[str, str], str] = {}  # (discovery URL, alias) -> collection URL


def forget_collection(link: PartnerConfig, alias: str) -> None:
    _COLLECTION_URLS.pop((link.url, alias), None)


class PartnerClient:
    """A TAXII 2.1 client for one partner link (bearer token or client certificate; https with a pinned CA)."""

    def __init__(self, node: Node, link: PartnerConfig, *, timeout: float = 30.0) -> None:
        self.link = link
        headers = {"Accept": TAXII}
        token = links.token_of(node, link)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        verify = tls.client_context(node.config, link.ca_file, link.client_cert, link.client_key)
        self.http = httpx.Client(headers=headers, timeout=timeout, verify=verify, follow_redirects=False)
        self.limit = RateLimit(link.max_requests_per_second)

    def close(self) -> None:
        self.http.close()

    def get(self, url: str, params: dict[str, str] | None = None) -> tuple[Any, httpx.Headers]:
        self.limit.wait()
        try:
            r = self.http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise PartnerError(f"{self.link.org}: cannot reach {url}: {exc}") from None
        return self._json(r), r.headers

    def post(self, url: str, body: bytes) -> Any:
        self.limit.wait()
        try:
            r = self.http.post(url, content=body, headers={"Content-Type": TAXII})
        except httpx.HTTPError as exc:
            raise PartnerError(f"{self.link.org}: cannot reach {url}: {exc}") from None
        return self._json(r)

    def _json(self, r: httpx.Response) -> Any:
        if r.status_code >= 400:
            detail = r.text[:300].replace("\n", " ")
            raise PartnerError(f"{self.link.org}: {r.request.method} {r.request.url} answered {r.status_code}: {detail}",
                               r.status_code)
        if len(r.content) > MAX_RESPONSE_BYTES:
            raise PartnerError(f"{self.link.org}: answer larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            return orjson.loads(r.content)
        except orjson.JSONDecodeError as exc:
            raise PartnerError(f"{self.link.org}: {r.request.url} answered something that is not JSON ({exc})") from None

    def collection_url(self, alias: str) -> str:
        """The URL of the partner's collection with this alias (or id, or title), found by discovery once per
        link (a pull every few seconds need not walk discovery again); forget() drops it after a failure."""
        known = _COLLECTION_URLS.get((self.link.url, alias))
        if known is not None:
            return known
        discovery, _ = self.get(self.link.url)
        roots = discovery.get("api_roots") if isinstance(discovery, dict) else None
        if not isinstance(roots, list) or not roots:
            raise PartnerError(f"{self.link.org}: {self.link.url} lists no API roots")
        default = discovery.get("default")
        ordered = ([default] if isinstance(default, str) else []) + [r for r in roots if r != default]
        for root in ordered:
            root_url = urljoin(self.link.url, root)
            root_url = root_url if root_url.endswith("/") else root_url + "/"
            found, _ = self.get(urljoin(root_url, "collections/"))
            for c in (found.get("collections") or []) if isinstance(found, dict) else []:
                if isinstance(c, dict) and alias in (c.get("alias"), c.get("id"), c.get("title")):
                    url = urljoin(root_url, f"collections/{c['id']}/")
                    _COLLECTION_URLS[(self.link.url, alias)] = url
                    return url
        raise PartnerError(f"{self.link.org}: no collection '{alias}' that this node may read at {self.link.url}")


@dataclass
class PullReport:
    pages: int = 0
    received: int = 0
    stored: int = 0
    rejected: int = 0
    last_added: str = ""  # X-TAXII-Date-Added-Last of the last page with objects
    rejections: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # the checkpoint after the last page


def pull_collection(node: Node, client: PartnerClient, alias: str, *, page: int = PAGE,
                    stop: threading.Event | None = None) -> PullReport:
    """Pull everything new in one exchanged collection, page by page, each page durable with its checkpoint."""
    link = client.link
    coll = node.collection(node.config.default_api_root, alias)
    principal = links.partner_principal(node, link.org)
    key = links.checkpoint_key(link.org, alias)
    raw = node.store.sync_state(key)
    state = orjson.loads(raw) if raw else {"next": None, "added_after": None}
    url = client.collection_url(alias) + "objects/"
    report = PullReport()

    def params_of(st: dict[str, Any]) -> dict[str, str]:
        params = {"limit": str(page), "match[version]": "all"}
        if st.get("next"):
            params["next"] = st["next"]
        elif st.get("added_after"):
            params["added_after"] = st["added_after"]
        return params

    # the next page is fetched while this one is verified and stored: the partner serves as we write
    with ThreadPoolExecutor(1, thread_name_prefix=f"prefetch-{link.org}") as prefetch:
        pending = prefetch.submit(client.get, url, params_of(state))
        while stop is None or not stop.is_set():
            pending, more = _pull_page(node, principal, coll, client, url, key, state, pending, prefetch, params_of,
                                       report)
            state = report.state
            if not more:
                break
    return report


def _pull_page(node: Node, principal: Any, coll: Any, client: PartnerClient, url: str, key: str,
               state: dict[str, Any], pending: Future[Any], prefetch: ThreadPoolExecutor, params_of: Any,
               report: PullReport) -> tuple[Future[Any], bool]:
    """Store one fetched page with its checkpoint, having asked for the next one already."""
    link = client.link
    try:
        envelope, headers = pending.result()
    except PartnerError as exc:
        if state.get("next") and exc.status in (400, 404, 410, 422):
            # a `next` the server no longer honours (it restarted, or the token expired): continue from
            # the last page's X-TAXII-Date-Added-Last instead; what comes twice is stored once
            state = {"next": None, "added_after": state.get("added_after")}
            node.store.set_sync_state(key, orjson.dumps(state).decode())
        raise
    if not isinstance(envelope, dict) or not isinstance(envelope.get("objects", []), list):
        raise PartnerError(f"{link.org}: {url} answered something that is not a TAXII envelope")
    objects = envelope.get("objects", [])
    more = envelope.get("more") is True
    nxt = envelope.get("next") if isinstance(envelope.get("next"), str) else None
    last = headers.get("X-TAXII-Date-Added-Last")
    if last is not None and timestamps.check(last) is not None:
        raise PartnerError(f"{link.org}: X-TAXII-Date-Added-Last {last!r} is not a timestamp")
    # added_after is tracked while following next too, so that a `next` the server forgets costs one page
    after = last if objects and last else state.get("added_after")
    new = {"next": nxt if more and nxt else None, "added_after": after}
    if more and not nxt and not (objects and last):
        raise PartnerError(f"{link.org}: {url} says there is more but offers neither next nor "
                           "X-TAXII-Date-Added-Last to continue from")
    if more:
        pending = prefetch.submit(client.get, url, params_of(new))
    report.pages += 1
    if objects:
        record = node.ingest(principal, coll, objects, checkpoint=(key, orjson.dumps(new).decode()))
        report.received += len(objects)
        report.stored += record.success_count
        report.rejected += record.failure_count
        if record.failure_count:
            for entry in orjson.loads(record.details)["failures"]:
                if "message" in entry and len(report.rejections) < 20:
                    report.rejections.append(entry["message"])
        report.last_added = last or report.last_added
    elif new != state:
        node.store.set_sync_state(key, orjson.dumps(new).decode())
    report.state = new
    return pending, more


def merge(total: Any, part: Any) -> None:
    """Add one collection's report to a link's: counts add up, lists extend, the latest text wins."""
    for name in type(total).__dataclass_fields__:
        mine, theirs = getattr(total, name), getattr(part, name)
        setattr(total, name, (theirs or mine) if isinstance(mine, (str, dict)) else mine + theirs)


def record_health(node: Node, org: str, *, report: PullReport | None = None, error: str | None = None,
                  pushed: Any = None) -> None:
    """Update a link's health: last success, lag, errors, counts (shown by `kuroshio partner status`)."""
    key = links.health_key(org)
    raw = node.store.sync_state(key)
    h: dict[str, Any] = orjson.loads(raw) if raw else {"received": 0, "rejected": 0, "errors": 0}
    now = timestamps.now()
    if error is not None:
        h["errors"] = h.get("errors", 0) + 1
        h["consecutive_errors"] = h.get("consecutive_errors", 0) + 1
        h["last_error"] = error[:500]
        h["last_error_at"] = now
    if report is not None:
        h["last_success"] = now
        h["consecutive_errors"] = 0
        h["received"] = h.get("received", 0) + report.received
        h["rejected"] = h.get("rejected", 0) + report.rejected
        if report.rejections:
            h["last_rejections"] = report.rejections[-5:]
        if report.last_added:
            h["last_added"] = report.last_added
        if h.get("last_added"):
            # lag: how far behind the partner's newest object the last successful pull left us
            h["lag_s"] = 0.0 if not report.received else round(
                (timestamps.now_micros() - timestamps.to_micros(h["last_added"])) / 1e6, 3)
        h["backlog"] = 0  # a pull ends when the partner says there is nothing more
    if pushed is not None:
        if not pushed.sent and "last_push" in h:
            return  # nothing new: spare the write
        h["last_push"] = now
        h["consecutive_errors"] = 0
        h["pushed"] = h.get("pushed", 0) + pushed.sent
        h["push_rejected"] = h.get("push_rejected", 0) + pushed.rejected
        if pushed.rejections:
            h["last_push_rejections"] = pushed.rejections[-5:]
    node.store.set_sync_state(key, orjson.dumps(h).decode())


def pull(node: Node, link: PartnerConfig, *, stop: threading.Event | None = None, page: int = PAGE) -> PullReport:
    """One pull of every exchanged collection of a link; health is recorded either way."""
    client = PartnerClient(node, link)
    total = PullReport()
    try:
        for alias in link.collections:
            try:
                merge(total, pull_collection(node, client, alias, stop=stop, page=page))
            except PartnerError:
                forget_collection(link, alias)  # the partner may have moved it: discover again next time
                raise
    except (PartnerError, NodeError) as exc:
        record_health(node, link.org, error=str(exc))
        raise
    finally:
        client.close()
    record_health(node, link.org, report=total)
    if total.rejected:
        log.warning("pull partner=%s rejected=%d first=%s", link.org, total.rejected,
                    total.rejections[0] if total.rejections else "")
    return total


def backoff(attempt: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter: a random delay up to base * 2^attempt, capped."""
    return random.uniform(0.0, min(cap, base * (2 ** min(attempt, 20))))
