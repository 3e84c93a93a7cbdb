"""The indicator index: which indicators an observation matches, at a cost that does not grow with
the number of indicators for the common forms.

Each bracketed part of a pattern (a leaf) is filed under keys that are a necessary condition for it
to hold: equality and IN on strings and numbers (one hash lookup per observed value), CIDR membership
(one lookup per prefix length in use), LIKE with a literal prefix or suffix (one lookup per length in
use). Where a key decides the leaf exactly (a single positive comparison), a hit is a match without
evaluation; otherwise the leaf is evaluated (evaluate.py) on the observation the keys point at. Leaves
with no usable key (negations, order, MATCHES, EXISTS …) are evaluated on every observation that
holds an object of their type.

A pattern of one leaf is decided by one observation. Others (AND / OR / FOLLOWEDBY across
observations, qualifiers) keep, per indicator, the recent observations that satisfied one of their
leaves (`horizon`, at most `window` of them) and are decided over those each time one arrives; a match
consumes them, so the next match needs new observations.
"""

from __future__ import annotations

import socket
import unicodedata
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..stix import pattern as p
from .evaluate import Observed, Pattern, TooComplex, parse_network, select, stamp_us

HORIZON_S = 86_400  # how far back a compound pattern looks by default
WINDOW = 256  # observations kept per compound indicator


@dataclass(frozen=True, slots=True)
class Hit:
    """An indicator matched: the observation that completed the match (and the others it needed)."""

    indicator_id: str
    modified: str
    observation: Observed
    others: tuple[Observed, ...] = ()


# --- keys ---------------------------------------------------------------------------------------
# A key is (kind, value): "v" equality value, "n4"/"n6" network (prefix length, masked int),
# "p" literal prefix of a LIKE, "s" literal suffix of a LIKE.

Key = tuple[str, Any]


def _leaf_nodes(tree: object) -> list[p.Observation]:
    """The bracketed expressions of a pattern, in the order evaluate.compile_expr numbers them."""
    out: list[p.Observation] = []

    def walk(node: object) -> None:
        t = type(node)
        if t is p.Observation:
            out.append(node)  # type: ignore[arg-type]
        elif t is p.ObsBool:
            for x in node.operands:  # type: ignore[attr-defined]
                walk(x)
        else:
            walk(node.expr)  # type: ignore[attr-defined]

    walk(tree)
    return out


def _plain_value(lit: p.Literal) -> Any:
    if lit.kind == "str":
        return lit.value
    if lit.kind in ("int", "float"):
        return lit.value
    return None


def _network_key(text: str) -> Key | None:
    net = parse_network(text)
    if net is None:
        return None
    bits = 32 if net.version == 4 else 128
    kind = "n4" if net.version == 4 else "n6"
    return kind, (net.prefixlen, int(net.network_address) >> (bits - net.prefixlen) if net.prefixlen else 0)


def _comparison_keys(comp: p.Comparison) -> tuple[list[Key], bool] | None:
    """Keys for one comparison and whether they decide it exactly; None if it has none."""
    if comp.negated or comp.op in ("!=", "<", "<=", ">", ">=", "MATCHES", "EXISTS", "ISSUPERSET"):
        return None
    last = comp.path.steps[-1]
    if type(last) is str and (last.endswith("_hex") or last.endswith("_bin")):
        return None  # values are binaries: equality with strings goes through their bytes
    if comp.op == "=":
        v = _plain_value(comp.value)  # type: ignore[arg-type]
        return ([("v", v)], True) if v is not None else None
    if comp.op == "IN":
        vals = [_plain_value(x) for x in comp.value]  # type: ignore[union-attr]
        if not vals or any(v is None for v in vals):
            return None
        return [("v", v) for v in vals], True
    if comp.op == "ISSUBSET":
        key = _network_key(comp.value.value)  # type: ignore[union-attr]
        return ([key], True) if key is not None else None
    # LIKE: a literal prefix before the first wildcard, else a literal suffix after the last
    text = unicodedata.normalize("NFC", comp.value.value)  # type: ignore[union-attr]
    cut = min((i for i in (text.find("%"), text.find("_")) if i >= 0), default=len(text))
    if cut >= 3 or cut == len(text):
        return [("p", text[:cut])], False
    tail = max(text.rfind("%"), text.rfind("_")) + 1
    if len(text) - tail >= 3:
        return [("s", text[tail:])], False
    return None


Scoped = tuple[str, tuple[Any, ...], Key]  # (object type, path steps, key)


def _expr_keys(expr: object) -> tuple[list[Scoped], bool] | None:
    """Keys that at least one of must hit for a comparison expression to hold."""
    if type(expr) is p.Comparison:
        got = _comparison_keys(expr)
        if got is None:
            return None
        path = expr.path
        return [(path.object_type, path.steps, k) for k in got[0]], got[1]
    assert type(expr) is p.CompBool
    parts = [_expr_keys(x) for x in expr.operands]
    if expr.op == "OR":
        if any(x is None for x in parts):
            return None
        return [k for x in parts for k in x[0]], False  # type: ignore[index]
    usable = [x for x in parts if x is not None]
    if not usable:
        return None
    best = min(usable, key=lambda x: (x[0][0][2][0] != "v", len(x[0])))
    return best[0], False


# --- per-path tables ----------------------------------------------------------------------------

LeafRef = tuple[str, int, bool]  # (indicator id, leaf number, key decides the leaf)


def _ipv4(text: str) -> int | None:
    """A dotted-quad IPv4 address as an integer (the forms Python's ipaddress accepts), else None."""
    if text.count(".") != 3 or not text.isascii():
        return None
    try:
        packed = socket.inet_aton(text)
    except OSError:
        return None
    if socket.inet_ntoa(packed) != text:  # leading zeros, short forms, hex: not an IPv4 address
        return None
    return int.from_bytes(packed, "big")


class _PathTable:
    __slots__ = ("eq", "fast", "nets4", "nets6", "prefixes", "steps", "suffixes")

    def __init__(self, steps: tuple[Any, ...]) -> None:
        self.steps = steps
        first = steps[0]
        self.fast = len(steps) == 1 and not first.endswith(("_ref", "_refs"))
        self.eq: dict[Any, list[LeafRef]] = {}
        self.nets4: dict[int, dict[int, list[LeafRef]]] = {}
        self.nets6: dict[int, dict[int, list[LeafRef]]] = {}
        self.prefixes: dict[int, dict[str, list[LeafRef]]] = {}
        self.suffixes: dict[int, dict[str, list[LeafRef]]] = {}

    def bucket(self, key: Key) -> list[LeafRef]:
        kind, value = key
        if kind == "v":
            return self.eq.setdefault(value, [])
        if kind in ("n4", "n6"):
            table = self.nets4 if kind == "n4" else self.nets6
            plen, masked = value
            return table.setdefault(plen, {}).setdefault(masked, [])
        table2 = self.prefixes if kind == "p" else self.suffixes
        return table2.setdefault(len(value), {}).setdefault(value, [])

    def empty(self) -> bool:
        return not (self.eq or self.nets4 or self.nets6 or self.prefixes or self.suffixes)

    def lookup(self, v: Any, out: list[list[LeafRef]]) -> None:
        tv = type(v)
        if tv is str:
            hit = self.eq.get(v)
            if hit:
                out.append(hit)
            if self.nets4 or self.nets6:
                self._networks(v, out)
            if self.prefixes or self.suffixes:
                nv = v if v.isascii() else unicodedata.normalize("NFC", v)
                n = len(nv)
                for length, table in self.prefixes.items():
                    if length <= n:
                        hit = table.get(nv[:length])
                        if hit:
                            out.append(hit)
                for length, table in self.suffixes.items():
                    if length <= n:
                        hit = table.get(nv[n - length:])
                        if hit:
                            out.append(hit)
        elif tv is int or tv is float:
            hit = self.eq.get(v)
            if hit:
                out.append(hit)

    def _networks(self, v: str, out: list[list[LeafRef]]) -> None:
        addr = _ipv4(v) if "/" not in v else None
        if addr is not None:
            for plen, table in self.nets4.items():
                hit = table.get(addr >> (32 - plen) if plen else 0)
                if hit:
                    out.append(hit)
            return
        net = parse_network(v)
        if net is None:
            return
        bits, tables = (32, self.nets4) if net.version == 4 else (128, self.nets6)
        base = int(net.network_address)
        for plen, table in tables.items():
            if plen <= net.prefixlen:
                hit = table.get(base >> (bits - plen) if plen else 0)
                if hit:
                    out.append(hit)


# --- indicators ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Indicator:
    id: str
    modified: str
    text: str
    until: int | None  # valid_until, microseconds
    simple: bool  # one leaf, no qualifier
    buckets: list[list[LeafRef]]  # where its refs are filed (for removal)
    residual_types: list[str]
    compiled: Pattern | None = None
    horizon: int = HORIZON_S * 1_000_000
    recent: deque[tuple[Observed, frozenset[int]]] | None = None

    def pattern(self) -> Pattern:
        if self.compiled is None:
            self.compiled = Pattern(self.text)
        return self.compiled


@dataclass
class IndexStats:
    indicators: int = 0
    exact_leaves: int = 0
    keyed_leaves: int = 0
    residual_leaves: int = 0
    compound: int = 0
    too_complex: int = 0
    rejected: dict[str, str] = field(default_factory=dict)  # indicator id -> why it is not indexed


class Index:
    """Indicators by the keys of their patterns; `match(observation)` returns the hits."""

    def __init__(self, horizon_s: int = HORIZON_S, window: int = WINDOW) -> None:
        self.horizon_us = horizon_s * 1_000_000
        self.window = window
        self._paths: dict[str, dict[tuple[Any, ...], _PathTable]] = {}
        self._residual: dict[str, list[LeafRef]] = {}
        self._indicators: dict[str, _Indicator] = {}
        self.stats = IndexStats()

    def __len__(self) -> int:
        return len(self._indicators)

    def __contains__(self, indicator_id: str) -> bool:
        return indicator_id in self._indicators

    def add(self, indicator: dict[str, Any]) -> str | None:
        """File an indicator (replacing an earlier version); None, or why it will not match."""
        ident, modified = indicator.get("id"), indicator.get("modified") or indicator.get("created") or ""
        if type(ident) is not str:
            return "the indicator has no id"
        old = self._indicators.get(ident)
        if old is not None:
            if old.modified > modified:
                return None  # an older version arrived late
            self.remove(ident)
        if indicator.get("revoked") is True:
            return "revoked"
        if indicator.get("pattern_type") != "stix" or type(indicator.get("pattern")) is not str:
            return "not a STIX pattern"
        text = indicator["pattern"]
        until = stamp_us(indicator["valid_until"]) if "valid_until" in indicator else None
        try:
            tree = p.parse(text)
        except (p.PatternSyntaxError, RecursionError) as exc:
            self.stats.rejected[ident] = f"the pattern does not parse: {exc}"
            return self.stats.rejected[ident]
        leaves = _leaf_nodes(tree)
        simple = type(tree) is p.Observation
        ind = _Indicator(ident, modified, text, until, simple, [], [])
        needs_evaluation = not simple
        if not simple:
            try:
                pattern = ind.pattern()
            except ValueError as exc:
                self.stats.rejected[ident] = f"the pattern cannot be evaluated: {exc}"
                return self.stats.rejected[ident]
            ind.recent = deque(maxlen=self.window)
            root = pattern.root
            ind.horizon = self.horizon_us
            if getattr(root, "op", None) == "WITHIN":
                ind.horizon = min(self.horizon_us, root.arg)  # type: ignore[union-attr]
            self.stats.compound += 1
        for number, leaf in enumerate(leaves):
            keys = _expr_keys(leaf.expr)
            if keys is None:
                types = sorted(_types(leaf.expr))
                for t in types:
                    bucket = self._residual.setdefault(t, [])
                    bucket.append((ident, number, False))
                    ind.buckets.append(bucket)
                ind.residual_types.extend(types)
                self.stats.residual_leaves += 1
                needs_evaluation = True
                continue
            scoped, exact = keys
            if exact:
                self.stats.exact_leaves += 1
            else:
                self.stats.keyed_leaves += 1
                needs_evaluation = True
            for otype, steps, key in scoped:
                table = self._paths.setdefault(otype, {}).get(steps)
                if table is None:
                    table = self._paths[otype][steps] = _PathTable(steps)
                bucket = table.bucket(key)
                bucket.append((ident, number, exact))
                ind.buckets.append(bucket)
        if needs_evaluation:
            try:
                ind.pattern()
            except ValueError as exc:
                self.remove_refs(ind)
                self.stats.rejected[ident] = f"the pattern cannot be evaluated: {exc}"
                return self.stats.rejected[ident]
        self._indicators[ident] = ind
        self.stats.indicators = len(self._indicators)
        return None

    def remove_refs(self, ind: _Indicator) -> None:
        for bucket in ind.buckets:
            bucket[:] = [r for r in bucket if r[0] != ind.id]
        ind.buckets.clear()

    def remove(self, indicator_id: str) -> None:
        ind = self._indicators.pop(indicator_id, None)
        if ind is None:
            return
        self.remove_refs(ind)
        if not ind.simple:
            self.stats.compound -= 1
        self.stats.indicators = len(self._indicators)

    def update(self, indicators: Iterable[dict[str, Any]]) -> None:
        for ind in indicators:
            self.add(ind)

    def match(self, obs: Observed) -> list[Hit]:
        """The indicators this observation matches (alone, or with recent ones for compound patterns)."""
        found: list[list[LeafRef]] = []
        paths = self._paths
        residual = self._residual
        for otype, objs in obs.by_type.items():
            tables = paths.get(otype)
            if tables:
                for table in tables.values():
                    if table.fast:
                        name = table.steps[0]
                        for obj in objs:
                            v = obj.get(name)
                            if v is not None:
                                table.lookup(v, found)
                    else:
                        for obj in objs:
                            for v in select(obj, table.steps, obs.objects):
                                table.lookup(v, found)
            res = residual.get(otype)
            if res:
                found.append(res)
        if not found:
            return []
        return self._decide(obs, found)

    def _decide(self, obs: Observed, found: list[list[LeafRef]]) -> list[Hit]:
        hits: list[Hit] = []
        leaves: dict[str, set[int]] = {}
        checked: dict[tuple[str, int], bool] = {}
        indicators = self._indicators
        for bucket in found:
            for ident, number, exact in bucket:
                if not exact:
                    key = (ident, number)
                    ok = checked.get(key)
                    if ok is None:
                        ind = indicators[ident]
                        ok = checked[key] = ind.pattern().leaves[number].test.holds(obs)
                    if not ok:
                        continue
                got = leaves.get(ident)
                if got is None:
                    leaves[ident] = {number}
                else:
                    got.add(number)
        for ident, numbers in leaves.items():
            ind = indicators[ident]
            if ind.until is not None and obs.first >= ind.until:
                continue
            if ind.simple:
                hits.append(Hit(ident, ind.modified, obs))
                continue
            hit = self._compound(ind, obs, frozenset(numbers))
            if hit is not None:
                hits.append(hit)
        return hits

    def _compound(self, ind: _Indicator, obs: Observed, numbers: frozenset[int]) -> Hit | None:
        recent = ind.recent
        assert recent is not None
        while recent and recent[0][0].last < obs.first - ind.horizon:
            recent.popleft()
        recent.append((obs, numbers))
        pattern = ind.pattern()
        observations = [o for o, _ in recent]
        hits = [[i for i, (_, nums) in enumerate(recent) if n in nums] for n in range(len(pattern.leaves))]
        try:
            if not pattern.matches(observations, hits):
                return None
        except TooComplex:
            self.stats.too_complex += 1
            return None
        recent.clear()  # a match consumes what led to it: the next one needs new observations
        return Hit(ind.id, ind.modified, obs, tuple(observations[:-1]))


def _types(expr: object) -> set[str]:
    if type(expr) is p.Comparison:
        return {expr.path.object_type}
    out: set[str] = set()
    for x in expr.operands:  # type: ignore[attr-defined]
        out |= _types(x)
    return out

