"""The indicator index: which indicators an observation matches, at a cost that does not grow with
the number of indicators for the common forms.

Each bracketed part of a pattern (a leaf) is filed under keys that are a necessary condition for it
to hold: equality and IN on strings and numbers, CIDR membership (IPv4 blocks of /16 and longer found
by the first seven characters of an address's text), LIKE with a literal prefix or suffix,
`MATCHES '^literal'`, number ranges. `match_many` groups a batch's objects per type, reads each indexed
path over the group and looks the values up together, in C where it can (map over dict.get, the
equality tables, the address probe); `match` is a batch of one. Where a key decides the leaf exactly
(a single positive comparison), a hit is a match without
evaluation; otherwise the leaf is evaluated (evaluate.py) on the observation the keys point at. Leaves
with no usable key (negations, order, MATCHES, EXISTS …) are evaluated on every observation that
holds an object of their type.

A pattern of one leaf is decided by one observation. Others (AND / OR / FOLLOWEDBY across
observations, qualifiers) keep, per indicator, the recent observations that satisfied one of their
leaves (`horizon`, at most `window` of them) and are decided over those each time one arrives; a match
consumes them, so the next match needs new observations.
"""

from __future__ import annotations

import bisect
import gc
import operator
import socket
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import Any, NamedTuple

from ..stix import pattern as p
from .evaluate import Observed, Pattern, TooComplex, parse_network, select, stamp_us

HORIZON_S = 86_400  # how far back a compound pattern looks by default
WINDOW = 256  # observations kept per compound indicator


class Hit(NamedTuple):
    """An indicator matched: the observation that completed the match (and the others it needed)."""

    indicator_id: str
    modified: str
    observation: Observed
    others: tuple[Observed, ...] = ()


# --- keys ---------------------------------------------------------------------------------------
# A key is (kind, value): "v" equality value, "n4"/"n6" network (prefix length, masked int),
# "p" literal prefix (LIKE, MATCHES '^…'), "s" literal suffix of a LIKE, "above"/"below" a number
# an order comparison needs the value to be above (>, >=) or below (<, <=).

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
    """A literal equality keys can hold (strings and numbers), else None."""
    return lit.value if lit.kind in ("str", "int", "float") else None


def _network_key(text: str) -> Key | None:
    net = parse_network(text)
    if net is None:
        return None
    bits = 32 if net.version == 4 else 128
    kind = "n4" if net.version == 4 else "n6"
    return kind, (net.prefixlen, int(net.network_address) >> (bits - net.prefixlen))


def _comparison_keys(comp: p.Comparison) -> tuple[list[Key], bool] | None:
    """Keys for one comparison and whether they decide it exactly; None if it has none."""
    if comp.negated or comp.op in ("!=", "EXISTS", "ISSUPERSET"):
        return None
    last = comp.path.steps[-1]
    if type(last) is str and (last.endswith("_hex") or last.endswith("_bin")):
        return None  # values are binaries: equality with strings goes through their bytes
    if comp.op in _RANGE_OPS:
        lit = comp.value
        if lit.kind not in ("int", "float"):  # type: ignore[union-attr]
            return None
        return [(_RANGE_OPS[comp.op], lit.value)], False  # type: ignore[union-attr]
    if comp.op == "MATCHES":
        prefix = _regex_prefix(unicodedata.normalize("NFC", comp.value.value))  # type: ignore[union-attr]
        return ([("p", prefix)], False) if len(prefix) >= 3 else None
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


_RANGE_OPS = {">": "above", ">=": "above", "<": "below", "<=": "below"}
_REGEX_SPECIAL = frozenset(".^$*+?{}[]\\|()")


def _regex_prefix(rx: str) -> str:
    """The literal text a regular expression anchored with ^ requires at the start ('' if none)."""
    if not rx.startswith("^"):
        return ""
    out = []
    for c in rx[1:]:
        if c in _REGEX_SPECIAL:
            if c in "*?{" and out:
                out.pop()  # the last character is optional or repeated
            break
        out.append(c)
    return "".join(out)


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


_HEAD7 = operator.itemgetter(slice(None, 7))  # the shortest dotted quad ("1.2.3.4") has seven characters


def _heads7(plen: int, masked: int) -> set[str]:
    """The first seven characters of the text of every address in an IPv4 block of /16 or longer: the
    first two octets are fixed, and only as many digits of the fourth as seven characters reach."""
    lo = masked << (32 - plen)
    hi = lo | ((1 << (32 - plen)) - 1)
    a, b = lo >> 24, (lo >> 16) & 255
    heads: set[str] = set()
    for c in range((lo >> 8) & 255, ((hi >> 8) & 255) + 1):
        head = f"{a}.{b}.{c}."
        if len(head) >= 7:
            heads.add(head[:7])
        else:
            d_lo, d_hi = (lo & 255, hi & 255) if plen >= 24 else (0, 255)
            heads.update((head + str(d))[:7] for d in range(d_lo, d_hi + 1))
    return heads


_IPV4_SEEN: dict[str, int | None] = {}  # sensors see the same addresses again and again


def _ipv4(text: str) -> int | None:
    """A dotted-quad IPv4 address as an integer (the forms Python's ipaddress accepts), else None."""
    try:
        packed = socket.inet_aton(text)
    except (OSError, ValueError):  # not an address; a NUL or a non-ASCII character
        value = None
    else:
        # inet_aton also takes "1.2.3", hex, octal and trailing junk: only the canonical dotted quad (four
        # decimal parts of at most 255, no leading zero) reads back as the same text
        value = int.from_bytes(packed, "big") if socket.inet_ntoa(packed) == text else None
    if len(_IPV4_SEEN) >= 1 << 16:
        _IPV4_SEEN.clear()
    _IPV4_SEEN[text] = value
    return value


class _Ranges:
    """Leaves that need a number above (or below) a threshold: one binary search finds them all."""

    __slots__ = ("above", "entries", "keys")

    def __init__(self, above: bool) -> None:
        self.above = above
        self.entries: list[tuple[float, LeafRef]] = []
        self.keys: list[float] | None = []

    def add(self, threshold: float, ref: LeafRef) -> None:
        bisect.insort(self.entries, (threshold, ref))
        self.keys = None

    def remove(self, ident: str) -> None:
        self.entries = [e for e in self.entries if e[1][0] != ident]
        self.keys = None

    def lookup(self, v: float, out: list[list[LeafRef]]) -> None:
        if not self.entries:
            return
        keys = self.keys
        if keys is None:
            keys = self.keys = [t for t, _ in self.entries]
        if self.above:  # leaves whose threshold is at most the value
            cut = bisect.bisect_right(keys, v)
            if cut:
                out.append([ref for _, ref in self.entries[:cut]])
        else:
            cut = bisect.bisect_left(keys, v)
            if cut < len(keys):
                out.append([ref for _, ref in self.entries[cut:]])


def _getter(steps: tuple[Any, ...]) -> Any:
    """A fast reader of an object path made of plain keys and single references (else None)."""
    if any(type(s) is not str or s.endswith(("_refs", "_hex", "_bin")) for s in steps):
        return None
    if len(steps) == 1:
        return None  # read inline by Index.match
    plan = tuple((s, s.endswith("_ref")) for s in steps)
    if len(plan) == 2:  # the common shapes, without the loop: hashes.'SHA-256', dst_ref.value
        (a, a_ref), (b, b_ref) = plan
        if not a_ref and not b_ref:
            def read_key_key(obj: dict[str, Any], objects: dict[str, dict[str, Any]]) -> Any:
                v = obj.get(a)
                return v.get(b) if type(v) is dict else None

            return read_key_key
        if a_ref and not b_ref:
            def read_ref_key(obj: dict[str, Any], objects: dict[str, dict[str, Any]]) -> Any:
                r = obj.get(a)
                o = objects.get(r) if type(r) is str else None
                return o.get(b) if o is not None else None

            return read_ref_key

    def read(obj: dict[str, Any], objects: dict[str, dict[str, Any]]) -> Any:
        v: Any = obj
        for key, ref in plan:
            if type(v) is not dict:
                return None
            v = v.get(key)
            if ref:
                v = objects.get(v) if type(v) is str else None
        return v

    return read


class _PathTable:
    __slots__ = (
        "above",
        "affixes",
        "below",
        "by7",
        "by24",
        "dotted",
        "eq",
        "fast",
        "nets",
        "nets4",
        "nets6",
        "prefixes",
        "ranges",
        "read",
        "steps",
        "suffixes",
        "wide4",
    )

    def __init__(self, steps: tuple[Any, ...]) -> None:
        self.steps = steps
        first = steps[0]
        self.fast = len(steps) == 1 and not first.endswith(("_ref", "_refs", "_hex", "_bin"))
        self.read = _getter(steps)
        self.above = _Ranges(True)
        self.below = _Ranges(False)
        self.nets = self.affixes = self.ranges = False  # which kinds of keys are filed here
        # IPv4 blocks of /9 or longer by the text of their addresses (see _file4), so that the many addresses
        # in no block are never parsed and a whole batch is probed in C; then checked on the parsed address
        self.by7: dict[str, list[tuple[int, int, list[LeafRef]]]] = {}
        self.by24: dict[str, list[tuple[int, int, list[LeafRef]]]] = {}
        self.wide4: list[tuple[int, int, list[LeafRef]]] = []
        self.eq: dict[Any, list[LeafRef]] = {}
        self.nets4: dict[int, dict[int, list[LeafRef]]] = {}
        self.nets6: dict[int, dict[int, list[LeafRef]]] = {}
        self.prefixes: dict[int, dict[str, list[LeafRef]]] = {}
        self.suffixes: dict[int, dict[str, list[LeafRef]]] = {}
        # suffixes that start with a dot (domain forms), filed without it: the text after some dot of a value
        self.dotted: dict[str, list[LeafRef]] = {}

    def file(self, key: Key, ref: LeafRef) -> list[LeafRef] | _Ranges:
        """File a leaf under a key; returns where it went (for removal)."""
        kind, value = key
        if kind == "above" or kind == "below":
            ranges = self.above if kind == "above" else self.below
            ranges.add(value, ref)
            self.ranges = True
            return ranges
        bucket = self.bucket(key)
        bucket.append(ref)
        self.nets = bool(self.nets4 or self.nets6)
        self.affixes = bool(self.prefixes or self.suffixes or self.dotted)
        return bucket

    def bucket(self, key: Key) -> list[LeafRef]:
        kind, value = key
        if kind == "v":
            return self.eq.setdefault(value, [])
        if kind in ("n4", "n6"):
            table = self.nets4 if kind == "n4" else self.nets6
            plen, masked = value
            bucket = table.setdefault(plen, {}).get(masked)
            if bucket is None:
                bucket = table[plen][masked] = []
                if kind == "n4":
                    self._file4(plen, masked, bucket)
            return bucket
        if kind == "s" and value.startswith("."):
            return self.dotted.setdefault(value[1:], [])
        table2 = self.prefixes if kind == "p" else self.suffixes
        return table2.setdefault(len(value), {}).setdefault(value, [])

    def _file4(self, plen: int, masked: int, bucket: list[LeafRef]) -> None:
        """File an IPv4 block for the address probe: a block of /17 to /32 under the text of the /24s it
        covers ("a.b.c", at most 128) with its addresses' first seven characters marked; a block of /9 to
        /16 under its addresses' first seven characters, which for a dotted quad always hold its first two
        octets whole; a wider one in a list every address is checked against."""
        entry = (32 - plen, masked, bucket)
        if plen > 16:
            for head in _heads7(plen, masked):
                self.by7.setdefault(head, [])
            first = (masked << (32 - plen)) >> 8
            for x in range(first, first + (1 << max(0, 24 - plen))):
                self.by24.setdefault(f"{x >> 16}.{(x >> 8) & 255}.{x & 255}", []).append(entry)
        elif plen > 8:
            for x in range(masked << (16 - plen), (masked + 1) << (16 - plen)):
                for head in _heads7(16, x):
                    self.by7.setdefault(head, []).append(entry)
        else:
            self.wide4.append(entry)

    def empty(self) -> bool:
        return not (self.eq or self.nets4 or self.nets6 or self.prefixes or self.suffixes or self.dotted
                    or self.above.entries or self.below.entries)

    def lookup(self, v: Any, out: list[list[LeafRef]]) -> None:
        """Append to `out` the leaves filed under keys the value `v` hits."""
        tv = type(v)
        if tv is str:
            hit = self.eq.get(v)
            if hit:
                out.append(hit)
            if self.nets:
                self.networks(v, out)
            if self.affixes:
                self.affixes_many([v], [0], [out])
        elif tv is int or tv is float:
            hit = self.eq.get(v)
            if hit:
                out.append(hit)
            if self.ranges:
                self.above.lookup(v, out)
                self.below.lookup(v, out)

    def networks(self, v: str, out: list[list[LeafRef]]) -> None:
        """Blocks holding the string `v`. An IPv4 address's first seven characters find the blocks near it,
        so an address in no block is never parsed."""
        if self.wide4 or v[:7] in self.by7 or "/" in v or ":" in v:
            self._blocks(v, out)

    def networks_many(self, values: list[Any], owners: list[int], types: set[type],
                      found: list[list[list[LeafRef]]]) -> None:
        """`networks` for a batch's values (`owners[k]`: the observation `values[k]` came from; `types`:
        the values' types), in C over the batch: every value's first seven characters, then, for those near
        a block, whether they name a /16 block's address or fall in a /24 some longer block covers; only
        those, and values that are not dotted quads (IPv6 addresses, CIDR blocks), take a step in Python."""
        if self.wide4 or types != _STR_ONLY:  # blocks wider than /9, or values of other types
            networks = self.networks
            for v, i in zip(values, owners, strict=True):
                if type(v) is str:
                    networks(v, found[i])
            return
        by7, by24 = self.by7, self.by24
        heads = list(map(_HEAD7, values))
        near = list(compress(range(len(values)), map(by7.__contains__, heads)))
        joined = "\n".join(values)
        odd = [k for k in range(len(values)) if "/" in values[k] or (":" in values[k] and self.nets6)] \
            if "/" in joined or (self.nets6 and ":" in joined) else []
        if near:
            texts = list(map(values.__getitem__, near))
            flags = list(map(bool, map(by7.__getitem__, map(heads.__getitem__, near))))  # a /9–/16 block's address
            if by24:
                flags = list(map(operator.or_, flags, map(by24.__contains__, map(_HEAD, map(_AT_LAST_DOT, texts)))))
            near = list(compress(near, flags))
        for k in sorted({*near, *odd}) if odd else near:
            self._blocks(values[k], found[owners[k]])

    def _blocks(self, v: str, out: list[list[LeafRef]]) -> None:
        addr = _IPV4_SEEN.get(v, -1)
        if addr == -1:
            addr = _ipv4(v)
        if addr is None:
            self._networks(v, out)
            return
        for entries in (self.by7.get(v[:7]), self.by24.get(v.rpartition(".")[0]) if self.by24 else None, self.wide4):
            if entries:
                for shift, masked, hit in entries:
                    if addr >> shift == masked and hit:
                        out.append(hit)

    def affixes_many(self, values: list[str], owners: list[int], found: list[list[list[LeafRef]]]) -> None:
        """Append to `found[owners[k]]` the leaves filed under literal prefixes and suffixes of the string
        `values[k]` (NFC), each table probed over the whole batch in C: a prefix or suffix length at a time,
        and the domain forms a dot at a time (the text after every value's first dot, then after its
        second, …)."""
        joined = "".join(values)
        if not joined.isascii():
            values = [v if v.isascii() else unicodedata.normalize("NFC", v) for v in values]
        for tables, cut in ((self.prefixes, _head), (self.suffixes, _tail)):
            for length, table in tables.items():
                keys = list(map(cut(length), values))  # a shorter value gives itself, which no key equals
                for key, i in compress(zip(keys, owners, strict=True), map(table.__contains__, keys)):
                    hit = table[key]
                    if hit:
                        found[i].append(hit)
        dotted = self.dotted
        if not dotted or "." not in joined:
            return
        rest, who = values, owners
        while rest:
            parts = list(map(_AT_DOT, rest))
            dots = list(map(_SEPARATOR, parts))  # "." where the value had one more dot, else ""
            rest, who = list(compress(map(_AFTER, parts), dots)), list(compress(who, dots))
            for key, i in compress(zip(rest, who, strict=True), map(dotted.__contains__, rest)):
                hit = dotted[key]
                if hit:
                    found[i].append(hit)

    def _networks(self, v: str, out: list[list[LeafRef]]) -> None:
        """Blocks holding `v` when it is a CIDR block or an IPv6 address."""
        if ":" in v and not self.nets6:
            return  # an IPv6 address or block (the only texts with a colon that parse), and no IPv6 blocks here
        net = parse_network(v)
        if net is None:
            return
        bits, tables = (32, self.nets4) if net.version == 4 else (128, self.nets6)
        base = int(net.network_address)
        for plen, table in tables.items():
            if plen <= net.prefixlen:
                hit = table.get(base >> (bits - plen))
                if hit:
                    out.append(hit)


_KEYABLE = frozenset({str, int, float})  # value types keys are made of (a bool would find the number's leaves)
_STR_ONLY = {str}
_AT_DOT = operator.methodcaller("partition", ".")
_AT_LAST_DOT = operator.methodcaller("rpartition", ".")
_HEAD = operator.itemgetter(0)
_SEPARATOR = operator.itemgetter(1)
_AFTER = operator.itemgetter(2)


def _only(types: set[type] | frozenset[type], values: list[Any], owners: list[int]) -> tuple[list[Any], list[int]]:
    """The values of the given types, with the observations they came from."""
    keep = [type(v) in types for v in values]
    return list(compress(values, keep)), list(compress(owners, keep))


def _head(n: int) -> operator.itemgetter[str]:
    """Reads a string's first `n` characters."""
    return operator.itemgetter(slice(None, n))


def _tail(n: int) -> operator.itemgetter[str]:
    """Reads a string's last `n` characters."""
    return operator.itemgetter(slice(-n, None) if n else slice(0, 0))

# --- indicators ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Indicator:
    id: str
    modified: str
    text: str
    until: int | None  # valid_until, microseconds
    until_text: str | None
    simple: bool  # one leaf, no qualifier
    buckets: list[list[LeafRef] | _Ranges]  # where its refs are filed (for removal)
    compiled: Pattern | None = None
    within: int | None = None  # the pattern's outermost WITHIN, microseconds
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
        self._batch: dict[str, tuple[tuple[tuple[_PathTable, str | None, Any], ...], list[LeafRef] | None]] | None = None
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
        ind = _Indicator(ident, modified, text, until, indicator.get("valid_until"), simple, [])
        self._batch = None
        needs_evaluation = not simple
        if not simple:
            try:
                root = ind.pattern().root  # compiled now, so that a pattern the evaluator cannot take is refused
            except ValueError as exc:
                self.stats.rejected[ident] = f"the pattern cannot be evaluated: {exc}"
                return self.stats.rejected[ident]
            # what is kept is the horizon, not the pattern's own WITHIN: observations arrive out of order (a
            # partner's observed-data late, a sensor's threads), and a late one pairs with an older one
            ind.recent = deque(maxlen=self.window)
            if getattr(root, "op", None) == "WITHIN":
                ind.within = root.arg  # type: ignore[union-attr]
            self.stats.compound += 1
        for number, leaf in enumerate(leaves):
            keys = _expr_keys(leaf.expr)
            if keys is None:
                types = sorted(_types(leaf.expr))
                for t in types:
                    bucket = self._residual.setdefault(t, [])
                    bucket.append((ident, number, False))
                    ind.buckets.append(bucket)
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
                ind.buckets.append(table.file(key, (ident, number, exact)))
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

    def pattern_text(self, indicator_id: str) -> str | None:
        ind = self._indicators.get(indicator_id)
        return None if ind is None else ind.text

    def indicator_object(self, indicator_id: str) -> dict[str, Any] | None:
        """What the index keeps of an indicator, as an object `add` takes (to index it elsewhere)."""
        ind = self._indicators.get(indicator_id)
        if ind is None:
            return None
        obj = {"id": ind.id, "modified": ind.modified, "pattern": ind.text, "pattern_type": "stix"}
        if ind.until_text is not None:
            obj["valid_until"] = ind.until_text
        return obj

    def remove_refs(self, ind: _Indicator) -> None:
        self._batch = None
        for bucket in ind.buckets:
            if type(bucket) is list:
                bucket[:] = [r for r in bucket if r[0] != ind.id]
            else:
                bucket.remove(ind.id)
        ind.buckets.clear()

    def remove(self, indicator_id: str) -> None:
        ind = self._indicators.pop(indicator_id, None)
        if ind is None:
            return
        self.remove_refs(ind)
        if not ind.simple:
            self.stats.compound -= 1
        self.stats.indicators = len(self._indicators)

    def match(self, obs: Observed) -> list[Hit]:
        """The indicators this observation matches (alone, or with recent ones for compound patterns)."""
        return self.match_many([obs])[0]

    def match_many(self, batch: list[Observed]) -> list[list[Hit]]:
        """`match` for each observation of a batch, in order (the same hits): the values of the whole
        batch are gathered per indexed path first, then looked up together, in C where the lookup allows
        (equality, the address probe) — which is what makes sensor feeds fast."""
        # what a batch allocates is freed by reference counting: the cyclic collector, which would walk
        # every live object many times a batch, waits until the batch is done
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._match_many(batch)
        finally:
            if was_enabled:
                gc.enable()

    def _match_many(self, batch: list[Observed]) -> list[list[Hit]]:
        of_type = self._batch_plan()
        # per object type: its objects across the batch and, in a parallel list, the observation each came from
        groups: dict[str, tuple[list[dict[str, Any]], list[int]]] = {}
        for i, obs in enumerate(batch):
            for otype, objs in obs.by_type.items():
                g = groups.get(otype)
                if g is None:
                    if otype not in of_type:
                        continue
                    g = groups[otype] = ([], [])
                if len(objs) == 1:
                    g[0].append(objs[0])
                    g[1].append(i)
                else:
                    g[0].extend(objs)
                    g[1].extend(repeat(i, len(objs)))
        found: list[list[list[LeafRef]]] = [[] for _ in batch]
        for otype, (objs, owners) in groups.items():
            entries, res = of_type[otype]
            if res:
                for i in dict.fromkeys(owners):
                    found[i].append(res)
            scopes = None  # each object's observation's objects, where references are resolved
            for table, name, read in entries:
                if name is not None:  # a property of the object itself: read in C
                    values = list(map(operator.methodcaller("get", name), objs))
                    self._look_up_batch(table, values, owners, found)
                    continue
                if scopes is None:
                    scopes = [batch[i].objects for i in owners]
                if read is not None:
                    values = list(map(read, objs, scopes))
                else:  # list indexes, [*], lists of references: every value the path selects
                    pairs = [(v, i) for obj, i, scope in zip(objs, owners, scopes, strict=True)
                             for v in select(obj, table.steps, scope)]
                    self._look_up_batch(table, [v for v, _ in pairs], [i for _, i in pairs], found)
                    continue
                self._look_up_batch(table, values, owners, found)
        # an observation nothing was found for keeps its empty list as its (empty) hits; the others are decided
        out: list[Any] = found
        for i in compress(range(len(batch)), found):
            out[i] = self._decide(batch[i], found[i])
        return out

    @staticmethod
    def _look_up_batch(table: _PathTable, values: list[Any], owners: list[int],
                       found: list[list[list[LeafRef]]]) -> None:
        """Look up a batch's values of one path (`owners[k]`: the observation `values[k]` came from;
        None where the object has no value there)."""
        types = set(map(type, values))
        if not types <= _KEYABLE:  # None, and values no key is made of (lists, objects, booleans): left out
            values, owners = _only(_KEYABLE, values, owners)
            types &= _KEYABLE
        if not values:
            return
        if table.ranges or (not table.fast and table.read is None):
            lookup = table.lookup
            for v, i in zip(values, owners, strict=True):
                lookup(v, found[i])
            return
        eq = table.eq
        if eq:  # looked up in C over the batch
            hits = set(filter(eq.__contains__, values))
            if hits:
                for v, i in compress(zip(values, owners, strict=True), map(hits.__contains__, values)):
                    found[i].append(eq[v])
        if table.nets:
            table.networks_many(values, owners, types, found)
        if table.affixes:  # LIKE prefixes and suffixes, MATCHES '^…'
            if types != _STR_ONLY:
                values, owners = _only(_STR_ONLY, values, owners)
            table.affixes_many(values, owners, found)

    def _batch_plan(self) -> dict[str, tuple[tuple[tuple[_PathTable, str | None, Any], ...], list[LeafRef] | None]]:
        """Per object type: its indexed paths (table, plain key or reader) and the leaves evaluated
        on every object of the type; rebuilt when indicators come or go."""
        if self._batch is None:
            self._batch = {
                otype: (tuple((t, t.steps[0] if t.fast else None, t.read)
                              for t in self._paths.get(otype, {}).values() if not t.empty()),
                        self._residual.get(otype) or None)
                for otype in set(self._paths) | set(self._residual)
            }
        return self._batch

    def _decide(self, obs: Observed, found: list[list[LeafRef]]) -> list[Hit]:
        hits: list[Hit] = []
        leaves: dict[str, set[int]] = {}
        checked: dict[tuple[str, int], bool] = {}
        indicators = self._indicators
        done: set[str] = set()
        for bucket in found:
            for ident, number, exact in bucket:
                if exact:
                    ind = indicators[ident]
                    if ind.simple:  # the key decided it: a match, unless expired or already counted
                        if ident not in done:
                            done.add(ident)
                            if ind.until is None or obs.first < ind.until:
                                hits.append(Hit(ident, ind.modified, obs))
                        continue
                else:
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
            if ident in done:
                continue
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
        while recent and recent[0][0].last < obs.first - self.horizon_us:
            recent.popleft()
        recent.append((obs, numbers))
        pattern = ind.pattern()
        # what came before this observation did not match (a match consumes it, and more observations only add
        # bindings), so a match binds this one: under an outermost WITHIN, only observations within its width
        # of this one can be bound with it
        if ind.within is None:
            kept = list(recent)
        else:
            lo, hi = obs.first - ind.within, obs.last + ind.within
            kept = [(o, nums) for o, nums in recent if o.last >= lo and o.first <= hi]
        observations = [o for o, _ in kept]
        hits = [[i for i, (_, nums) in enumerate(kept) if n in nums] for n in range(len(pattern.leaves))]
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

