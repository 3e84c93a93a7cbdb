"""Markings -> audience: who may see an object, as a set of keys, and the set algebra on audiences.

An audience is a frozenset of keys:

- `*`            everyone, unauthenticated readers of public collections included (TLP:CLEAR)
- `community:C`  every organisation of community C, as it is when the object is read (TLP:GREEN)
- `org:N`        the organisation with store id N

A reader holds keys too (`*`, its `org:N`, its `community:C`); it sees an object when the two sets
share a key. Several markings intersect (the most restrictive wins); the intersection is computed at
write time with the directory of organisations (communities and clients), so that every read is a
plain key match in the query.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .definitions import Marking

Audience = frozenset[str]
EVERYONE: Audience = frozenset({"*"})
NOBODY: Audience = frozenset()


@dataclass
class Directory:
    """What the audience algebra needs to know about organisations."""

    community: dict[int, str] = field(default_factory=dict)  # org id -> community name
    client_of: dict[int, int] = field(default_factory=dict)  # org id -> the org it is a client of
    by_identity: dict[str, int] = field(default_factory=dict)  # STIX identity id -> org id

    def clients(self, orgs: Iterable[int]) -> set[int]:
        targets = set(orgs)
        return {o for o, patron in self.client_of.items() if patron in targets}


def org_key(org_id: int) -> str:
    return f"org:{org_id}"


def reader_keys(org_id: int | None, directory: Directory) -> Audience:
    """The keys of a reader: anonymous (org_id None) or a user of organisation `org_id`."""
    if org_id is None:
        return EVERYONE
    keys = {"*", org_key(org_id)}
    community = directory.community.get(org_id)
    if community:
        keys.add(f"community:{community}")
    return frozenset(keys)


def normalise(audience: Iterable[str], directory: Directory) -> Audience:
    keys = set(audience)
    if "*" in keys:
        return EVERYONE
    communities = {k[10:] for k in keys if k.startswith("community:")}
    if communities:
        keys = {k for k in keys
                if not (k.startswith("org:") and directory.community.get(int(k[4:])) in communities)}
    return frozenset(keys)


def _meet(a: str, b: str, directory: Directory) -> str | None:
    if a == b:
        return a
    if a == "*":
        return b
    if b == "*":
        return a
    if a.startswith("community:") and b.startswith("org:"):
        a, b = b, a
    if a.startswith("org:") and b.startswith("community:"):
        return a if directory.community.get(int(a[4:])) == b[10:] else None
    return None  # two different organisations, or two different communities


def intersect(a: Audience, b: Audience, directory: Directory) -> Audience:
    if "*" in a:
        return normalise(b, directory)
    if "*" in b:
        return normalise(a, directory)
    out = set()
    for x in a:
        for y in b:
            m = _meet(x, y, directory)
            if m is not None:
                out.add(m)
    return normalise(out, directory)


def union(a: Audience, b: Audience, directory: Directory) -> Audience:
    return normalise(a | b, directory)


def within(a: Audience, b: Audience, directory: Directory) -> bool:
    """True when audience `a` is no wider than `b` (a is at least as restrictive)."""
    return intersect(a, b, directory) == normalise(a, directory)


def _orgs(ids: Iterable[int]) -> Audience:
    return frozenset(org_key(i) for i in ids)


def tlp_audience(level: str, origin: int, named: set[int], directory: Directory) -> Audience:
    """The TLP 2.0 meaning of each level for an object originated by `origin` with named recipients."""
    if level == "clear":
        return EVERYONE
    if level == "green":
        community = directory.community.get(origin)
        return frozenset({f"community:{community}"}) if community else _orgs({origin})
    recipients = {origin} | named
    if level == "amber":
        return _orgs(recipients | directory.clients(recipients))
    return _orgs(recipients)  # amber+strict and red: the named recipients only


def resolve(markings: Iterable[Marking], origin: int, directory: Directory) -> Audience:
    """The audience of an object from its markings: each restricting marking allows a set, and the
    object's audience is their intersection. Without a restricting marking: everyone (callers apply
    the collection's default marking first)."""
    marks = [m for m in markings if m.restricts]
    named: set[int] | None = None
    for m in marks:
        if m.kind == "releasable-to":
            orgs = {directory.by_identity[i] for i in m.recipients if i in directory.by_identity}
            named = orgs if named is None else named & orgs
    audience = EVERYONE
    for m in marks:
        if m.kind == "tlp":
            allowed = tlp_audience(m.level, origin, named or set(), directory)
        else:
            orgs = {origin} | {directory.by_identity[i] for i in m.recipients if i in directory.by_identity}
            allowed = _orgs(orgs | directory.clients(orgs) if m.may_pass_on else orgs)
        audience = intersect(audience, allowed, directory)
    return audience


def encode(audience: Audience) -> str:
    """Canonical text of an audience (how the store interns it)."""
    return " ".join(sorted(audience))
