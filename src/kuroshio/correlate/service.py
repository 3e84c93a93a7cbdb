"""The node's correlation service: the indicators it holds, matched against what its sensors observe,
sightings published back through the one way in, observations kept for retro-hunts.

`Correlator(node)` loads every indicator the node holds (all collections but exercise ones) into an
`Index` and keeps it current (`refresh`: indicators added since the last look, new versions replace old
ones, revoked ones leave). `observe(...)` matches sensor observations, keeps them in the history and
tallies hits; `flush()` publishes the changed sightings (node.ingest as the node itself: validated,
marked, signed, audited, stored, pushed to partners like any other object). `catch_up()` hunts the
indicators not yet hunted with their current pattern over the observations kept before they entered
the live index (the last `correlate.hunt_days` days), so each observation meets each pattern once.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ..node import Node
from ..stix import pattern as p
from ..stix import timestamps
from ..store.base import Collection, ObjectFilter
from .evaluate import Observed, Pattern, select, stamp_us
from .history import History
from .index import Hit, Index
from .observations import Observation
from .sightings import IndicatorFacts, SightingWriter, Tally, day_of, sighting_id, strictest_tlp
from .warninglists import WarningLists

PAGE = 1000
BATCH = 1000  # observations matched together (Index.match_many)
FREEZE_AFTER = 1000  # indicators taken in at once, after which the collector leaves them alone
Progress = Callable[[int, int], None]  # (done, total)


def observed(obs: Observation) -> Observed | None:
    """A sensor observation (observations.py) as the matcher's `Observed`."""
    when = obs.at or stamp_us(obs.time)
    if when is None:
        return None
    return Observed({o["id"]: o for o in obs.objects}, when, when, 1)


class Correlator:
    """Indicators × observations → sightings, for one node."""

    def __init__(self, node: Node, *, sensor: str | None = None, lists: WarningLists | None = None) -> None:
        self.node = node
        self.cfg = node.config.correlate
        store = node.store
        orgs = {o.name: o for o in store.organisations()}
        name = sensor or node.config.org
        if name not in orgs:
            raise ValueError(f"no organisation '{name}' on this node: sensors report for the node's organisation "
                             f"({node.config.org}) or an organisation added with `kuroshio org add`")
        self.sensor = orgs[name]
        self.principal = node.operator()
        self.collection = node.collection(node.config.default_api_root, self.cfg.collection)
        self.index = Index()
        self.facts: dict[str, IndicatorFacts] = {}
        self._cursors: dict[str, int] = {}
        self.lists = lists if lists is not None else WarningLists.from_paths(
            node.config.path(x) for x in self.cfg.warning_lists)
        self.writer = SightingWriter(
            node.config.identity, release_to_originator=self.cfg.release_to_originator,
            level=self.cfg.sighting_marking,
            names={o.identity_id: (o.name, o.country) for o in orgs.values()},
        )
        self.tallies: dict[tuple[str, str, str], Tally] = {}
        self.history = History.of_node(node.config.home)
        self._pending_history: list[tuple[int, str, str, list[dict[str, Any]]]] = []
        self.counts: Counter[str] = Counter()
        self.lock = threading.RLock()

    def close(self) -> None:
        self.history.close()

    # -- indicators ---------------------------------------------------------------------------------

    def refresh(self) -> list[str]:
        """Take in indicators stored since the last call; returns the ids that are new or changed."""
        changed: list[str] = []
        for coll in self.node.store.collections():
            if coll.exercise:
                continue  # exercise indicators are matched in exercise mode only
            changed += self._refresh_collection(coll)
        if len(changed) >= FREEZE_AFTER:
            # the index is long-lived: keep the cyclic collector from walking its million objects each
            # time matching allocates (a full collection would otherwise cost ~0.1 s, many times a minute)
            gc.collect()
            gc.freeze()
        return changed

    def _refresh_collection(self, coll: Collection) -> list[str]:
        changed = []
        default = _level_of(coll.default_marking)
        cursor = self._cursors.get(coll.id)
        while True:
            page = self.node.store.query(self.principal, coll, ObjectFilter(
                added_after=cursor, types=["indicator"], limit=PAGE), way="correlate")
            with self.lock:
                for row in page.rows:
                    if row.raw is None:
                        continue
                    obj = orjson.loads(row.raw)
                    before = obj["id"] in self.index
                    problem = self.index.add(obj)
                    if problem is None and obj["id"] in self.index:
                        self.facts[obj["id"]] = IndicatorFacts(
                            strictest_tlp(obj.get("object_marking_refs"), default), obj.get("created_by_ref"))
                        changed.append(obj["id"])
                    elif before and obj["id"] not in self.index:
                        self.facts.pop(obj["id"], None)
                        self.counts["indicators-retired"] += 1
                    elif problem not in (None, "not a STIX pattern", "revoked"):
                        self.counts["indicators-refused"] += 1
            nxt = page.next_cursor
            if page.rows:
                cursor = page.rows[-1].date_added if nxt is None else nxt
            if nxt is None:
                break
        if cursor is not None:
            self._cursors[coll.id] = cursor
        return changed

    # -- observations -------------------------------------------------------------------------------

    def observe(self, observations: Iterable[Observation], *, keep: bool = True) -> int:
        """Match sensor observations; returns how many hits they made (after warning lists)."""
        hits = 0
        sensor = self.sensor.name
        batch: list[Observed] = []
        for obs in observations:
            o = observed(obs)
            if o is None:
                self.counts["observations-without-time"] += 1
                continue
            self.counts["observations"] += 1
            if keep:
                self._pending_history.append((o.first, sensor, obs.kind, obs.objects))
            batch.append(o)
            if len(batch) >= BATCH:
                hits += self._match(batch)
                batch = []
        if batch:
            hits += self._match(batch)
        return hits

    def _match(self, batch: list[Observed]) -> int:
        hits = 0
        with self.lock:
            for found in self.index.match_many(batch):
                for hit in found:
                    hits += self._record(hit)
        return hits

    def _record(self, hit: Hit) -> int:
        listed = self._warning(hit)
        if listed is not None:
            self.counts[f"suppressed:{listed}"] += 1
            return 0
        facts = self.facts.get(hit.indicator_id)
        if facts is None:
            return 0
        obs = hit.observation
        day = day_of(obs.first)
        key = (hit.indicator_id, self.sensor.identity_id, day)
        tally = self.tallies.get(key)
        if tally is None:
            tally = self._stored_tally(hit.indicator_id, day)
            self.tallies[key] = tally
        tally.add(obs, self.cfg.examples)
        self.counts["matches"] += 1
        return 1

    def _stored_tally(self, indicator: str, day: str) -> Tally:
        sid = sighting_id(indicator, self.sensor.identity_id, day)
        page = self.node.store.query(self.principal, self.collection, ObjectFilter(ids=[sid], limit=1),
                                     way="correlate")
        if page.rows and page.rows[0].raw is not None:
            return Tally.from_stored(orjson.loads(page.rows[0].raw), indicator, self.sensor.identity_id, day)
        return Tally(sid, indicator, self.sensor.identity_id, day, created=timestamps.now())

    def _warning(self, hit: Hit) -> str | None:
        """The warning list a value the indicator named in this observation is on, if any."""
        if not len(self.lists):
            return None
        text = self.index.pattern_text(hit.indicator_id)
        if text is None:
            return None
        obs = hit.observation
        for comp in p.comparisons(p.parse(text)):
            if comp.negated or comp.op in ("!=", "EXISTS"):
                continue
            for root in obs.by_type.get(comp.path.object_type, ()):
                for v in select(root, comp.path.steps, obs.objects):
                    name = self.lists.listed(v)
                    if name is not None:
                        return name
        return None

    # -- publishing ---------------------------------------------------------------------------------

    def flush(self) -> int:
        """Keep pending observations (and forget those kept longer than `correlate.keep_days`); publish
        the sightings that changed. Returns sightings published."""
        self.keep_pending()
        self.history.prune(self.cfg.keep_days)
        with self.lock:
            changed = [t for t in self.tallies.values() if t.changed]
            objects: list[dict[str, Any]] = []
            done: list[tuple[Tally, list[dict[str, Any]]]] = []
            now = time.time_ns() // 1000
            for tally in changed:
                objs = self.writer.objects(tally, self.facts[tally.indicator], now)
                objects += objs
                done.append((tally, objs))
        if not objects:
            return 0
        record = self.node.ingest(self.principal, self.collection, _unique(objects))
        refused = _refusals(record.details)
        published = 0
        for tally, objs in done:
            if objs[-1]["id"] in refused:
                self.counts["sightings-refused"] += 1
                continue
            self.writer.published(tally, objs)
            published += 1
        self.counts["sightings-published"] += published
        return published

    # -- retro-hunt ---------------------------------------------------------------------------------

    def keep_pending(self) -> int:
        """Write the observations waiting for the history; returns the number of the newest kept."""
        if self._pending_history:
            batch, self._pending_history = self._pending_history, []
            self.history.append(batch)
        return self.history.last_n()

    def unhunted(self, ids: Iterable[str] | None = None) -> list[str]:
        """Indicators (default: all indexed) not yet hunted with their current pattern."""
        done = self.history.hunted()
        with self.lock:
            candidates = list(ids) if ids is not None else list(self.facts)
            return [i for i in candidates if (t := self.index.pattern_text(i)) is not None and done.get(i) != t]

    def catch_up(self, ids: Iterable[str] | None = None, *, progress: Progress | None = None) -> int:
        """Hunt the indicators not yet hunted (default: all) over what was kept before this moment:
        later observations meet them in the live index. Returns the hits."""
        until = self.keep_pending()
        todo = self.unhunted(ids)
        if not todo:
            return 0
        return self.hunt(todo, until_n=until, progress=progress)

    def hunt(self, indicator_ids: Iterable[str] | None = None, *, days: float | None = None,
             until_n: int | None = None, progress: Progress | None = None) -> int:
        """Match indicators (default: all) against the kept observations of the last `days` days
        (default `correlate.hunt_days`), up to observation number `until_n`; returns the hits.
        The indicators are then recorded as hunted with their patterns."""
        days = self.cfg.hunt_days if days is None else days
        since = time.time_ns() // 1000 - int(days * 86_400_000_000)
        index = Index(horizon_s=self.index.horizon_us // 1_000_000)
        hunted: list[tuple[str, str]] = []
        before = self.history.hunted()
        counted: dict[str, Pattern] = {}  # earlier one-observation patterns: what they matched was counted
        with self.lock:
            for ident in (list(self.facts) if indicator_ids is None else indicator_ids):
                obj = self.index.indicator_object(ident)
                if obj is None:
                    continue
                index.add(obj)
                hunted.append((ident, obj["pattern"]))
                old = before.get(ident)
                if old is not None and old != obj["pattern"]:
                    try:
                        earlier = Pattern(old)
                    except (ValueError, p.PatternSyntaxError):
                        continue
                    if earlier.simple:
                        counted[ident] = earlier
        if not len(index):
            return 0
        total = self.history.count(since, until_n)
        hits = done = 0
        batch: list[Observed] = []

        def hunt_batch() -> int:
            found = 0
            with self.lock:
                for matched in index.match_many(batch):
                    for hit in matched:
                        earlier = counted.get(hit.indicator_id)
                        if earlier is not None and earlier.matches([hit.observation]):
                            continue  # the earlier version of the pattern counted it already
                        found += self._record(hit)
            return found

        for _sensor, obs in self.history.read(since, until_n):
            batch.append(obs)
            done += 1
            if len(batch) == BATCH:
                hits += hunt_batch()
                batch = []
                if progress is not None:
                    progress(done, total)
        if batch:
            hits += hunt_batch()
        if progress is not None and done % BATCH:
            progress(done, total)
        self.history.mark_hunted(hunted)
        self.counts["hunted"] += done
        return hits


def _level_of(marking_id: str) -> str:
    return strictest_tlp([marking_id], "amber")


def _unique(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One copy of each object (several sightings may show the same observable or marking)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for o in objects:
        key = (o["id"], o.get("modified", ""))
        if key not in seen:
            seen.add(key)
            out.append(o)
    return out


def _refusals(details: bytes) -> set[str]:
    """Ids of objects the store refused, other than for being stored already."""
    try:
        entries = orjson.loads(details) if details else {}
    except orjson.JSONDecodeError:
        return set()
    failures = entries.get("failures", []) if isinstance(entries, dict) else []
    return {f.get("id") for f in failures if "already stored" not in (f.get("message") or "")}

