"""The STIX 2.1 patterning language's meaning: a compiled pattern tested against a set of observations.

Part 9 of the specification decides; where it leaves room, the OASIS reference matcher
(stix2-matcher, STIX 2.1 mode) does, so that both give the same verdict. Where Kuroshio deliberately
differs, docs/correlation.md lists the case and the section of the specification that decides it.

An observation (`Observed`) is what one observed-data object says: the cyber-observables seen, from
`first` to `last` (microseconds since the epoch), `count` times. A comparison expression holds for an
observation when one of its objects of the named type (the root) satisfies it; `AND` inside brackets
needs one root to satisfy both sides. Observation expressions bind instances of observations
(`count` of each) to the bracketed parts: `AND` and `FOLLOWEDBY` need distinct instances, `REPEATS n`
n distinct bindings, `WITHIN` and `START … STOP` restrict their times.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..stix import pattern as p
from ..stix import timestamps

# Types of STIX domain and relationship objects: a pattern's object path never selects them.
SDO_TYPES = frozenset(
    ["attack-pattern", "bundle", "campaign", "course-of-action", "extension-definition", "grouping", "identity", "incident", "indicator", "infrastructure", "intrusion-set", "language-content", "location", "malware", "malware-analysis", "marking-definition", "note", "observed-data", "opinion", "relationship", "report", "threat-actor", "tool", "sighting", "vulnerability"]
)
# A REPEATS / AND / FOLLOWEDBY search that would look at more candidate bindings gives up (no match).
MAX_BINDINGS = 200_000


class TooComplex(Exception):
    """Deciding the pattern would take more than `MAX_BINDINGS` candidate bindings."""


# --- observations -------------------------------------------------------------------------------

def stamp_us(text: Any) -> int | None:
    """A STIX timestamp as microseconds since the epoch (digits after the sixth dropped), or None."""
    if type(text) is not str or timestamps.check(text) is not None:
        return None
    return timestamps.to_micros(text)


@dataclass(slots=True)
class Observed:
    """One observation: its cyber-observables by id, its time span and how often it was seen."""

    objects: dict[str, dict[str, Any]]
    first: int
    last: int
    count: int = 1
    ref: Any = None  # what the caller wants back: an observed-data id, a log position
    by_type: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.by_type:
            for obj in self.objects.values():
                t = obj.get("type")
                if type(t) is str and t not in SDO_TYPES:
                    self.by_type.setdefault(t, []).append(obj)


def observed_from_stix(observed_data: dict[str, Any], scos: dict[str, dict[str, Any]]) -> Observed | None:
    """An `Observed` from a STIX 2.1 observed-data object and the SCOs it references (or embeds)."""
    first = stamp_us(observed_data.get("first_observed"))
    last = stamp_us(observed_data.get("last_observed"))
    count = observed_data.get("number_observed")
    if first is None or last is None or last < first or type(count) is not int or count < 1:
        return None
    objects: dict[str, dict[str, Any]] = {}
    embedded = observed_data.get("objects")
    if isinstance(embedded, dict):  # deprecated embedded form: keys are the references
        for key, obj in embedded.items():
            if isinstance(obj, dict):
                objects[key] = obj
    for ref in observed_data.get("object_refs") or ():
        obj = scos.get(ref)
        if obj is not None:
            objects[ref] = obj
    if "id" in observed_data:
        objects.setdefault(observed_data["id"], observed_data)
    return Observed(objects, first, last, count, observed_data.get("id"))


# --- values -------------------------------------------------------------------------------------


class Stamp(int):
    """A timestamp literal (microseconds since the epoch), kept apart from integers."""


def literal_value(lit: p.Literal) -> Any:
    """The Python value of a pattern literal: str, int, float, bool, bytes or Stamp."""
    kind = lit.kind
    if kind == "binary":
        return base64.standard_b64decode(lit.value)  # type: ignore[arg-type]
    if kind == "hex":
        return binascii.a2b_hex(lit.value)  # type: ignore[arg-type]
    if kind == "timestamp":
        us = stamp_us(lit.value)
        if us is None:
            raise ValueError(f"'{lit.value}' is not a valid timestamp")
        return Stamp(us)
    return lit.value


def _latin1(text: str) -> bytes | None:
    """A string as bytes when every code point is below 256 (how STIX compares strings to binaries)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return None


def _is_number(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


def equals(value: Any, lit: Any) -> bool:
    """STIX equality of an observed value and a literal: same kind, or string against binary."""
    tl = type(lit)
    tv = type(value)
    if tl is str:
        if tv is str:
            return value == lit
        if tv is bytes:
            return _latin1(lit) == value
        return False
    if tl is int or tl is float:
        return (tv is int or tv is float) and value == lit
    if tl is bool:
        return tv is bool and value == lit
    if tl is bytes:
        if tv is bytes:
            return value == lit
        if tv is str:
            return _latin1(value) == lit
        return False
    if tl is Stamp:
        return tv is str and stamp_us(value) == lit
    return False


def _order(value: Any, lit: Any) -> int | None:
    """-1, 0 or 1 comparing an observed value with a literal; None where STIX defines no order."""
    tl, tv = type(lit), type(value)
    a: Any
    b: Any
    if tl is int or tl is float:
        if not _is_number(value):
            return None
        a, b = value, lit
    elif tl is str:
        if tv is str:
            a, b = value, lit
        elif tv is bytes:
            a, b = value, _latin1(lit)
            if b is None:
                return None
        else:
            return None
    elif tl is bytes:
        if tv is bytes:
            a, b = value, lit
        elif tv is str:
            a, b = _latin1(value), lit
            if a is None:
                return None
        else:
            return None
    elif tl is Stamp:
        a, b = stamp_us(value), int(lit)
        if a is None:
            return None
    else:
        return None
    return (a > b) - (a < b)


def like_regex(like: str) -> re.Pattern[str]:
    """LIKE as a regular expression: % any run of characters, _ any one character, all of the value."""
    out = []
    for c in unicodedata.normalize("NFC", like):
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
    return re.compile("".join(out), re.DOTALL)


def parse_network(text: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An address or CIDR block as a network (host bits ignored), or None if it is neither."""
    if type(text) is not str or not text or text.strip() != text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _within_network(inner: Any, outer: Any) -> bool:
    a, b = parse_network(inner), parse_network(outer)
    if a is None or b is None or a.version != b.version:
        return False
    return a.subnet_of(b)  # type: ignore[arg-type]


Predicate = Callable[[Any], bool]


def predicate(comp: p.Comparison) -> Predicate:
    """The test a comparison applies to each value its object path selects (NOT included)."""
    op, neg = comp.op, comp.negated
    base: Predicate
    if op == "EXISTS":
        return lambda v: True
    if op in ("=", "!="):
        lit = literal_value(comp.value)  # type: ignore[arg-type]
        flip = neg != (op == "!=")
        return (lambda v: not equals(v, lit)) if flip else (lambda v: equals(v, lit))
    if op in ("<", "<=", ">", ">="):
        lit = literal_value(comp.value)  # type: ignore[arg-type]
        want = {"<": (-1,), "<=": (-1, 0), ">": (1,), ">=": (1, 0)}[op]

        def base(v: Any) -> bool:
            return _order(v, lit) in want

    elif op == "IN":
        lits = [literal_value(x) for x in comp.value]  # type: ignore[union-attr]

        def base(v: Any) -> bool:
            return any(equals(v, x) for x in lits)

    elif op == "LIKE":
        rx = like_regex(comp.value.value)  # type: ignore[union-attr]

        def base(v: Any) -> bool:
            if type(v) is bytes:
                try:
                    v = v.decode("utf-8")
                except UnicodeDecodeError:
                    return False
            if type(v) is not str:
                return False
            return rx.fullmatch(unicodedata.normalize("NFC", v)) is not None

    elif op == "MATCHES":
        text = unicodedata.normalize("NFC", comp.value.value)  # type: ignore[union-attr]
        try:
            rx_s = re.compile(text)
        except (re.error, OverflowError, RecursionError):
            rx_s = None  # an expression Python cannot compile never matches
        raw = _latin1(text)
        rx_b = None
        if raw is not None and rx_s is not None:
            try:
                rx_b = re.compile(raw)
            except (re.error, OverflowError, RecursionError):
                rx_b = None

        def base(v: Any) -> bool:
            if type(v) is str:
                return rx_s is not None and rx_s.search(unicodedata.normalize("NFC", v)) is not None
            if type(v) is bytes:
                return rx_b is not None and rx_b.search(v) is not None
            return False

    elif op == "ISSUBSET":
        outer = comp.value.value  # type: ignore[union-attr]

        def base(v: Any) -> bool:
            return _within_network(v, outer)

    elif op == "ISSUPERSET":
        inner = comp.value.value  # type: ignore[union-attr]

        def base(v: Any) -> bool:
            return _within_network(inner, v)

    else:  # pragma: no cover - the parser knows no other operator
        raise ValueError(f"unknown operator {op}")
    return (lambda v: not base(v)) if neg else base


# --- object paths -------------------------------------------------------------------------------


def _suffixed(key: str, value: Any) -> Any:
    """Values of *_hex and *_bin properties are binaries (_NOTHING when they are not valid ones)."""
    decode = binascii.a2b_hex if key.endswith("_hex") else base64.standard_b64decode if key.endswith("_bin") else None
    if decode is None:
        return value
    if type(value) is not str:
        return _NOTHING
    try:
        return decode(value)
    except (binascii.Error, ValueError):
        return _NOTHING


_NOTHING = object()


def select(root: dict[str, Any], steps: tuple[Any, ...], objects: dict[str, dict[str, Any]]) -> list[Any]:
    """The values an object path's steps select from one root object (references followed inside
    the observation; unresolved references, absent keys and out-of-range indexes select nothing)."""
    current: list[Any] = [root]
    for step in steps:
        nxt: list[Any] = []
        if type(step) is str:
            for item in current:
                if type(item) is dict and step in item:
                    v = _suffixed(step, item[step])
                    if v is not _NOTHING:
                        nxt.append(v)
            if step.endswith("_ref"):
                nxt = [objects[r] for r in nxt if type(r) is str and r in objects]
            elif step.endswith("_refs"):
                nxt = [[objects[r] for r in lst if type(r) is str and r in objects] for lst in nxt if type(lst) is list]
                nxt = [lst for lst in nxt if lst]
        elif step is p.STAR:
            for item in current:
                if type(item) is list:
                    nxt.extend(item)
        else:
            for item in current:
                if type(item) is list and 0 <= step < len(item):
                    nxt.append(item[step])
        if not nxt:
            return nxt
        current = nxt
    return current


# --- comparison expressions ---------------------------------------------------------------------


class Test:
    """A compiled comparison expression: `roots(obs)` is the set of ids of root objects satisfying it."""

    __slots__ = ()

    def roots(self, obs: Observed) -> set[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def holds(self, obs: Observed) -> bool:
        return bool(self.roots(obs))


class CompTest(Test):
    __slots__ = ("comp", "object_type", "pred", "steps")

    def __init__(self, comp: p.Comparison) -> None:
        self.comp = comp
        self.object_type = comp.path.object_type
        self.steps = comp.path.steps
        self.pred = predicate(comp)

    def roots(self, obs: Observed) -> set[str]:
        out: set[str] = set()
        pred = self.pred
        for obj in obs.by_type.get(self.object_type, ()):
            for v in select(obj, self.steps, obs.objects):
                if pred(v):
                    out.add(obj.get("id", id(obj)))  # type: ignore[arg-type]
                    break
        return out

    def holds(self, obs: Observed) -> bool:
        pred = self.pred
        for obj in obs.by_type.get(self.object_type, ()):
            for v in select(obj, self.steps, obs.objects):
                if pred(v):
                    return True
        return False


class BoolTest(Test):
    __slots__ = ("op", "parts")

    def __init__(self, op: str, parts: list[Test]) -> None:
        self.op = op
        self.parts = parts

    def roots(self, obs: Observed) -> set[str]:
        if self.op == "OR":
            out: set[str] = set()
            for t in self.parts:
                out |= t.roots(obs)
            return out
        acc = self.parts[0].roots(obs)
        for t in self.parts[1:]:
            if not acc:
                break
            acc &= t.roots(obs)
        return acc


def compile_test(expr: object) -> Test:
    if type(expr) is p.Comparison:
        return CompTest(expr)
    assert type(expr) is p.CompBool
    return BoolTest(expr.op, [compile_test(x) for x in expr.operands])


# --- observation expressions --------------------------------------------------------------------

Instance = tuple[int, int]  # (observation index, which of its `count` sightings)
Binding = tuple[Instance, ...]


@dataclass(slots=True)
class Leaf:
    test: Test
    number: int  # position among the pattern's bracketed expressions


@dataclass(slots=True)
class Node:
    op: str  # AND | OR | FOLLOWEDBY | WITHIN | REPEATS | STARTSTOP
    parts: list[Any]
    arg: Any = None


def compile_expr(tree: object, leaves: list[Leaf]) -> Leaf | Node:
    t = type(tree)
    if t is p.Observation:
        leaf = Leaf(compile_test(tree.expr), len(leaves))  # type: ignore[attr-defined]
        leaves.append(leaf)
        return leaf
    if t is p.ObsBool:
        return Node(tree.op, [compile_expr(x, leaves) for x in tree.operands])  # type: ignore[attr-defined]
    assert t is p.Qualified
    inner = compile_expr(tree.expr, leaves)  # type: ignore[attr-defined]
    kind, args = tree.kind, tree.args  # type: ignore[attr-defined]
    if kind == "WITHIN":
        return Node("WITHIN", [inner], round(float(args[0]) * 1_000_000))
    if kind == "REPEATS":
        return Node("REPEATS", [inner], int(args[0]))
    start, stop = stamp_us(args[0]), stamp_us(args[1])
    if start is None or stop is None:
        raise ValueError("START and STOP need valid timestamps")
    return Node("STARTSTOP", [inner], (start, stop))


def binding_size(node: Leaf | Node) -> int:
    """How many observation instances one binding of `node` holds at most."""
    if type(node) is Leaf:
        return 1
    if node.op == "REPEATS":
        return binding_size(node.parts[0]) * node.arg
    if node.op == "OR":
        return max(binding_size(x) for x in node.parts)
    if node.op in ("WITHIN", "STARTSTOP"):
        return binding_size(node.parts[0])
    return sum(binding_size(x) for x in node.parts)


def _disjoint(a: Binding, b: Binding) -> bool:
    return not set(a).intersection(b)


class _Search:
    __slots__ = ("budget", "cap", "firsts", "lasts", "leaf_hits", "observations")

    def __init__(self, observations: list[Observed], leaf_hits: list[list[int]], cap: int) -> None:
        self.observations = observations
        self.leaf_hits = leaf_hits
        self.cap = cap
        self.firsts = [o.first for o in observations]
        self.lasts = [o.last for o in observations]
        self.budget = MAX_BINDINGS

    def spend(self) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise TooComplex

    def bindings(self, node: Leaf | Node) -> Iterator[Binding]:
        if type(node) is Leaf:
            for i in self.leaf_hits[node.number]:
                for k in range(min(self.observations[i].count, self.cap)):
                    yield ((i, k),)
            return
        op = node.op
        if op == "OR":
            for part in node.parts:
                yield from self.bindings(part)
        elif op == "AND" or op == "FOLLOWEDBY":
            acc = list(self.bindings(node.parts[0]))
            for part in node.parts[1:]:
                if not acc:
                    return
                rhs = list(self.bindings(part))
                joined = []
                for a in acc:
                    for b in rhs:
                        self.spend()
                        if _disjoint(a, b) and (op == "AND" or self._ordered(a, b)):
                            joined.append(a + b)
                acc = joined
            yield from acc
        elif op == "WITHIN":
            width = node.arg
            for b in self.bindings(node.parts[0]):
                self.spend()
                if max(self.firsts[i] for i, _ in b) <= min(self.lasts[i] for i, _ in b) + width:
                    yield b
        elif op == "STARTSTOP":
            start, stop = node.arg
            if start >= stop:
                return
            for b in self.bindings(node.parts[0]):
                self.spend()
                if all(self._in_window(i, start, stop) for i, _ in b):
                    yield b
        else:  # REPEATS
            n = node.arg
            items = list(self.bindings(node.parts[0]))
            yield from self._combinations(items, n)

    def _ordered(self, a: Binding, b: Binding) -> bool:
        return max(self.firsts[i] for i, _ in a) <= min(self.lasts[i] for i, _ in b)

    def _in_window(self, i: int, start: int, stop: int) -> bool:
        first, last = self.firsts[i], self.lasts[i]
        # some moment of [first, last] lies in [start, stop)
        return first < stop and last >= start

    def _combinations(self, items: list[Binding], n: int) -> Iterator[Binding]:
        if n == 1:
            yield from items
            return
        for combo in itertools.combinations(range(len(items)), n):
            self.spend()
            used: set[Instance] = set()
            ok = True
            for j in combo:
                if used.intersection(items[j]):
                    ok = False
                    break
                used.update(items[j])
            if ok:
                yield tuple(itertools.chain.from_iterable(items[j] for j in combo))


class Pattern:
    """A STIX pattern compiled for evaluation."""

    __slots__ = ("cap", "leaves", "root", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        tree = p.parse(text)
        self.leaves: list[Leaf] = []
        self.root = compile_expr(tree, self.leaves)
        self.cap = binding_size(self.root)

    @property
    def simple(self) -> bool:
        """One bracketed expression with no qualifier: one observation decides."""
        return type(self.root) is Leaf

    def matches(self, observations: list[Observed], leaf_hits: list[list[int]] | None = None) -> bool:
        """Whether some binding of the observations satisfies the pattern. `leaf_hits` (observation
        indexes per bracketed expression), when the caller already knows them, saves testing again."""
        if leaf_hits is None:
            leaf_hits = [[i for i, o in enumerate(observations) if leaf.test.holds(o)] for leaf in self.leaves]
        if self.simple:
            return bool(leaf_hits[0])
        search = _Search(observations, leaf_hits, self.cap)
        for _ in search.bindings(self.root):
            return True
        return False
