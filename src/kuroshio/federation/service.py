"""The federation service that runs beside `kuroshio serve`: one pulling thread per partner link.

Each thread pulls its partner's exchanged collections, waits the link's poll interval, and pulls
again; after an error it waits with exponential backoff and full jitter (1 s doubling up to 5 min),
so an unreachable or failing partner costs little and recovers by itself. Links added or removed
with `kuroshio partner` while the node runs are picked up within a poll interval.
"""

from __future__ import annotations

import logging
import threading

from ..config import PartnerConfig
from ..node import Node, NodeError
from .pull import PartnerError, backoff, pull, record_health
from .push import push

log = logging.getLogger("kuroshio.federation")


class FederationService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.stop_event = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        self._supervisor = threading.Thread(target=self._supervise, name="federation", daemon=True)
        self._supervisor.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for t in [self._supervisor, *self._threads.values()]:
            if t is not None:
                t.join(timeout)

    def _supervise(self) -> None:
        while not self.stop_event.is_set():
            self.node.refresh_config()
            for link in self.node.config.partners:
                for kind, wanted in (("pull", link.pulls), ("push", link.pushes)):
                    name = f"{kind}-{link.org}"
                    t = self._threads.get(name)
                    if wanted and (t is None or not t.is_alive()):
                        t = threading.Thread(target=self._loop, args=(link.org, kind), name=name, daemon=True)
                        self._threads[name] = t
                        t.start()
            self.stop_event.wait(2.0)

    def _link(self, org: str, kind: str = "pull") -> PartnerConfig | None:
        link = self.node.config.partner(org)
        if link is None:
            return None
        return link if (link.pulls if kind == "pull" else link.pushes) else None

    def _loop(self, org: str, kind: str) -> None:
        """Pull (every poll interval) or push (as soon as something is written here, or every poll interval
        for writes by other processes) until unlinked or stopped; back off after errors."""
        attempt = 0
        seen = self.node.writes
        while not self.stop_event.is_set():
            link = self._link(org, kind)
            if link is None:
                return  # unlinked, or no longer in this direction
            seen = self.node.writes  # writes from here on wake the next push
            try:
                if kind == "pull":
                    r = pull(self.node, link, stop=self.stop_event)
                    moved = f"received={r.received} stored={r.stored} rejected={r.rejected}" if r.received else ""
                else:
                    p = push(self.node, link, stop=self.stop_event)
                    record_health(self.node, org, pushed=p)
                    moved = f"sent={p.sent} accepted={p.accepted} rejected={p.rejected}" if p.sent else ""
                attempt = 0
                if moved:
                    log.info("%s partner=%s %s", kind, org, moved)
            except Exception as exc:  # a failure (or a bug) must not stop federation with the other partners
                delay = backoff(attempt)
                attempt += 1
                if kind == "push":
                    record_health(self.node, org, error=f"push: {exc}")
                if isinstance(exc, (PartnerError, NodeError)):
                    log.warning("%s failed partner=%s attempt=%d retry_in=%.1fs error=%s", kind, org, attempt, delay,
                                exc)
                else:
                    log.exception("%s crashed partner=%s retry_in=%.1fs", kind, org, delay)
                self.stop_event.wait(delay)
                continue
            if kind == "push":
                self.node.wait_for_write(seen, link.poll_interval)
            else:
                self.stop_event.wait(link.poll_interval)
