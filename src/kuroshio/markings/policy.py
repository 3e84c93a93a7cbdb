"""Marking an incoming object: resolve its markings to audiences, apply the collection's default, check rules.

`Policy.mark()` runs on every valid object before it is canonicalised and stored. It refuses
markings the node does not know (an unknown marking is never treated as public), EXERCISE-marked
objects outside exercise collections, and stamps the collection's default marking on objects that
carry no marking that restricts their audience. It returns the object's own audience, the audiences
of its granular markings, and the ids its visibility depends on (relationship ends, sighted objects,
container members), which the store combines into the effective audience.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..stix.validate import SPECS
from . import audience as aud
from .definitions import PREDEFINED, Marking, MarkingError, interpret

CONTAINERS = frozenset({"report", "grouping", "note", "opinion"})
SHAPE_GRANULAR, SHAPE_CONTAINER, SHAPE_SIGHTING = 1, 2, 4


class Marked(NamedTuple):
    obj: dict[str, Any]
    origin: int
    own: aud.Audience
    granular: tuple[tuple[tuple[str, ...], aud.Audience], ...]
    ends: tuple[str, ...]  # every one must be visible for the object to be visible
    members: tuple[str, ...]  # at least one must be visible; the others are removed per reader
    member_parts: tuple[aud.Audience | None, ...]  # per member: audience of its granular marking, if any
    shape: int


class MarkingRefused(Exception):
    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail


@dataclass
class Policy:
    """What marking an envelope needs: known markings, the organisations, the collection's settings."""

    registry: dict[str, Marking | None]  # marking definitions known to the node (None: known, not understood)
    directory: aud.Directory
    default_marking: str
    exercise_collection: bool
    submitter_org: int
    defined_here: dict[str, Marking | None] = field(default_factory=dict)  # from the envelope being marked
    _memo: dict[tuple[tuple[str, ...], int], tuple[list[Marking], list[str] | None, aud.Audience]] = field(
        default_factory=dict, repr=False)

    def learn(self, objects: list[Any]) -> None:
        """Note the marking definitions an envelope brings, so its other objects may use them."""
        for o in objects:
            if isinstance(o, dict) and o.get("type") == "marking-definition" and isinstance(o.get("id"), str):
                try:
                    self.defined_here[o["id"]] = interpret(o)
                except (MarkingError, KeyError, TypeError, AttributeError):
                    self.defined_here[o["id"]] = None

    def _marking(self, mid: str, where: str) -> Marking:
        # a definition the node already holds keeps its meaning: an envelope cannot redefine it
        m = PREDEFINED.get(mid) or self.registry.get(mid) or self.defined_here.get(mid)
        if m is None:
            if mid in self.registry or mid in self.defined_here:
                raise MarkingRefused("unknown-marking", f"property '{where}' uses {mid}, a marking definition this "
                                                        "node stores but does not understand, so it cannot decide "
                                                        "who may see the object")
            raise MarkingRefused("unknown-marking", f"property '{where}' uses {mid}, a marking definition this node "
                                                    "does not know: send the definition first, or use a TLP marking")
        return m

    def mark(self, obj: dict[str, Any], submitter: int | None = None) -> Marked:
        """`submitter`: the organisation that vouches for this object when it is not the envelope's
        submitter (a partner node relays objects signed by their originators)."""
        directory = self.directory
        creator = obj.get("created_by_ref")
        fallback = self.submitter_org if submitter is None else submitter
        origin = directory.by_identity.get(creator, fallback) if isinstance(creator, str) else fallback
        refs = obj.get("object_marking_refs") or []
        definition = obj.get("type") == "marking-definition"
        key = (tuple(refs), origin)
        known = None if definition else self._memo.get(key)
        if known is None:
            markings = [self._marking(r, "object_marking_refs") for r in refs]
            if any(m.kind == "exercise" for m in markings) and not self.exercise_collection:
                raise MarkingRefused("exercise", "is marked EXERCISE: exercise objects are only accepted in exercise "
                                                 "collections")
            stamped = None
            if not any(m.restricts for m in markings) and not definition:
                markings.append(self._marking(self.default_marking, "the collection's default marking"))
                stamped = [*refs, self.default_marking]
            own = aud.resolve(markings, origin, directory)
            if definition:
                own = aud.intersect(own, self._definition_audience(obj, origin), directory)
            else:
                self._memo[key] = (markings, stamped, own)  # objects of an envelope mostly share their markings
        else:
            markings, stamped, own = known
        if stamped is not None:
            obj = {**obj, "object_marking_refs": stamped}
        granular: list[tuple[tuple[str, ...], aud.Audience]] = []
        for i, gm in enumerate(obj.get("granular_markings") or []):
            ref = gm.get("marking_ref")
            if ref is None:
                continue  # a language granular marking
            m = self._marking(ref, f"granular_markings[{i}].marking_ref")
            if m.kind == "exercise" and not self.exercise_collection:
                raise MarkingRefused("exercise", f"granular_markings[{i}] marks part of the object EXERCISE: exercise "
                                                 "content is only accepted in exercise collections")
            granular.append((tuple(gm["selectors"]), aud.intersect(own, aud.resolve([*markings, m], origin, directory),
                                                                   directory)))
        t = obj["type"]
        by_selector: dict[str, aud.Audience] = {}
        for selectors, part in granular:
            for sel in selectors:
                by_selector[sel] = aud.intersect(by_selector.get(sel, own), part, directory)
        if by_selector:
            own = self._required_parts(obj, own, by_selector)
        ends: tuple[str, ...] = ()
        members: tuple[str, ...] = ()
        member_parts: tuple[aud.Audience | None, ...] = ()
        shape = SHAPE_GRANULAR if granular else 0
        if t == "relationship":
            ends = (obj["source_ref"], obj["target_ref"])
        elif t == "sighting":
            ends = (obj["sighting_of_ref"],)
            if obj.get("where_sighted_refs") or obj.get("observed_data_refs"):
                shape |= SHAPE_SIGHTING
        elif t in CONTAINERS:
            members = tuple(obj["object_refs"])
            member_parts = tuple(by_selector.get(f"object_refs.[{i}]") for i in range(len(members)))
            if not any(p is not None for p in member_parts):
                member_parts = ()
            shape |= SHAPE_CONTAINER
        return Marked(obj, origin, own, tuple(granular), ends, members, member_parts, shape)

    def _required_parts(self, obj: dict[str, Any], own: aud.Audience,
                        by_selector: dict[str, aud.Audience]) -> aud.Audience:
        """A reader who may not see a required property (or every element of a required list, or every
        one of the properties an object needs one of) would receive invalid STIX: such granular markings
        narrow the whole object. `by_selector` gives the audience each selector leaves visible."""
        directory = self.directory
        spec = SPECS.get(obj["type"])
        required = spec.required if spec is not None else ("type", "id", "spec_version")
        if obj["type"] == "malware" and obj.get("is_family"):
            required = (*required, "name")  # a malware family must be named (STIX 2.1 section 4.11)
        any_of = spec.any_of if spec is not None else ()
        for prop in required:
            if prop in by_selector:
                own = aud.intersect(own, by_selector[prop], directory)
            value = obj.get(prop)
            if isinstance(value, list) and any(f"{prop}.[{i}]" in by_selector for i in range(len(value))):
                reach: aud.Audience = aud.NOBODY
                for i in range(len(value)):
                    reach = aud.union(reach, by_selector.get(f"{prop}.[{i}]", own), directory)
                own = aud.intersect(own, reach, directory)
        present = [p for p in any_of if p in obj]
        if present and all(p in by_selector for p in present):
            reach = aud.NOBODY
            for p in present:
                reach = aud.union(reach, by_selector[p], directory)
            own = aud.intersect(own, reach, directory)
        return own

    def _definition_audience(self, obj: dict[str, Any], origin: int) -> aud.Audience:
        """Who may see a marking definition itself: a releasable-to list names organisations, so only
        they (and its originator) may read it; other definitions are public unless marked."""
        m = self.defined_here.get(obj["id"]) or PREDEFINED.get(obj["id"])
        if m is not None and m.kind == "releasable-to":
            return aud.resolve([m], origin, self.directory)
        return aud.EVERYONE
