"""STIX 2.1 patterning language: lexer, recursive-descent parser and syntax tree.

Follows the grammar OASIS publishes with the STIX 2.1 specification (part 9, STIXPattern.g4):
observation expressions joined by AND / OR / FOLLOWEDBY (in increasing order of looseness),
qualifiers WITHIN / REPEATS / START..STOP, comparison expressions with = != < <= > >= IN LIKE
MATCHES ISSUBSET ISSUPERSET EXISTS, object paths with keys, list indexes and [*]. Tokens are
chosen by longest match, keywords are case-sensitive, as in the ANTLR lexer.

`parse()` raises `PatternSyntaxError` with the character position and what was expected.
The tree is shared with the correlation engine (correlate/). Trees are cached per pattern text,
so consumers must treat them as read-only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# --- syntax tree -------------------------------------------------------------------------------


class _Star:
    __slots__ = ()

    def __repr__(self) -> str:
        return "*"


STAR = _Star()


@dataclass(slots=True)
class Literal:
    kind: str  # int | float | str | bool | binary | hex | timestamp
    value: object
    text: str


@dataclass(slots=True)
class ObjectPath:
    object_type: str
    steps: tuple[object, ...]  # first is a property name; then str keys, int indexes or STAR


@dataclass(slots=True)
class Comparison:
    path: ObjectPath
    op: str  # = != < <= > >= IN LIKE MATCHES ISSUBSET ISSUPERSET EXISTS
    negated: bool
    value: Literal | tuple[Literal, ...] | None


@dataclass(slots=True)
class CompBool:
    op: str  # AND | OR
    operands: tuple[object, ...]


@dataclass(slots=True)
class Observation:
    expr: object  # Comparison | CompBool


@dataclass(slots=True)
class ObsBool:
    op: str  # AND | OR | FOLLOWEDBY
    operands: tuple[object, ...]


@dataclass(slots=True)
class Qualified:
    expr: object
    kind: str  # WITHIN | REPEATS | STARTSTOP
    args: tuple[object, ...]


class PatternSyntaxError(ValueError):
    def __init__(self, position: int, message: str) -> None:
        super().__init__(f"at character {position + 1}: {message}")
        self.position = position
        self.message = message


# --- lexer -------------------------------------------------------------------------------------

_WS = re.compile("[ \t\r\n\u000b\u000c\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_IDENT = re.compile(r"[a-zA-Z_][a-zA-Z0-9_-]*")
_STRING = re.compile(r"'(?:[^'\\]|\\['\\])*'")
_TIMESTAMP = re.compile(
    r"t'(\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d+)?Z)'"
)
_HEX = re.compile(r"h'((?:[0-9a-fA-F]{2})*)'")
_B64 = "[A-Za-z0-9+/]"
_BINARY = re.compile(rf"b'((?:{_B64}{{4}})*(?:{_B64}{{4}}|{_B64}{{3}}=|{_B64}{{2}}==))'")
_NUMBERS = (
    ("IntNeg", re.compile(r"-(?:0|[1-9]\d*)")),
    ("IntPos", re.compile(r"\+?(?:0|[1-9]\d*)")),
    ("FloatNeg", re.compile(r"-\d*\.\d+")),
    ("FloatPos", re.compile(r"\+?\d*\.\d+")),
)
_KEYWORDS = frozenset(
    ["AND", "OR", "NOT", "FOLLOWEDBY", "LIKE", "MATCHES", "ISSUPERSET", "ISSUBSET", "EXISTS", "LAST", "IN", "START", "STOP", "SECONDS", "WITHIN", "REPEATS", "TIMES"]
)
_PUNCT2 = {"==": "EQ", "!=": "NEQ", "<>": "NEQ", "<=": "LE", ">=": "GE"}
_PUNCT1 = {
    "=": "EQ", "<": "LT", ">": "GT", ":": "COLON", ".": "DOT", ",": "COMMA", "(": "LPAREN", ")": "RPAREN",
    "[": "LBRACK", "]": "RBRACK", "*": "ASTERISK", "+": "PLUS", "-": "MINUS", "^": "POWER", "/": "DIVIDE",
    "'": "QUOTE",
}


def tokenize(text: str) -> list[tuple[str, str, int]]:
    """Split a pattern into (kind, text, position) tokens, ending with an EOF token."""
    out: list[tuple[str, str, int]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        m = _WS.match(text, i)
        if m:
            i = m.end()
            continue
        if c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end >= 0:
                i = end + 2
                continue
        if c == "/" and text.startswith("//", i):
            m = re.compile(r"//[^\r\n]*").match(text, i)
            assert m is not None
            i = m.end()
            continue
        if c == "'":
            m = _STRING.match(text, i)
            if m:
                out.append(("String", m.group(), i))
                i = m.end()
                continue
        if c.isascii() and (c.isalpha() or c == "_"):
            best: tuple[str, str] | None = None
            if c in "thb" and i + 1 < n and text[i + 1] == "'":
                lit = {"t": (_TIMESTAMP, "Timestamp"), "h": (_HEX, "Hex"), "b": (_BINARY, "Binary")}[c]
                m = lit[0].match(text, i)
                if m:
                    best = (lit[1], m.group())
            m = _IDENT.match(text, i)
            assert m is not None
            word = m.group()
            if best is None or len(word) > len(best[1]):
                if word in _KEYWORDS:
                    best = (word, word)
                elif word in ("true", "false"):
                    best = ("Bool", word)
                elif "-" in word:
                    best = ("IdentHyphen", word)
                else:
                    # the hyphen-free prefix wins a tie; a longer hyphenated identifier wins otherwise
                    best = ("Ident", word)
            out.append((best[0], best[1], i))
            i += len(best[1])
            continue
        if c.isdigit() or c in "+-.":
            best_num: tuple[str, str] | None = None
            for kind, rx in _NUMBERS:
                m = rx.match(text, i)
                if m and (best_num is None or len(m.group()) > len(best_num[1])):
                    best_num = (kind, m.group())
            if best_num is not None:
                out.append((best_num[0], best_num[1], i))
                i += len(best_num[1])
                continue
        two = text[i:i + 2]
        if two in _PUNCT2:
            out.append((_PUNCT2[two], two, i))
            i += 2
            continue
        kind = _PUNCT1.get(c)
        out.append((kind or "Invalid", c, i))
        i += 1
    out.append(("EOF", "", n))
    return out


# --- parser ------------------------------------------------------------------------------------

_DESCRIBE = {
    "EOF": "the end of the pattern", "LBRACK": "'['", "RBRACK": "']'", "LPAREN": "'('", "RPAREN": "')'",
    "COLON": "':'", "String": "a string literal", "Ident": "an identifier", "IdentHyphen": "an identifier",
}
_ORDER_OPS = {"LT": "<", "LE": "<=", "GT": ">", "GE": ">="}
_ORDERABLE = frozenset({"IntPos", "IntNeg", "FloatPos", "FloatNeg", "String", "Binary", "Hex", "Timestamp"})


def _describe(tok: tuple[str, str, int]) -> str:
    if tok[0] == "EOF":
        return "the end of the pattern"
    return f"'{tok[1]}'"


class _Parser:
    __slots__ = ("i", "toks")

    def __init__(self, toks: list[tuple[str, str, int]]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> str:
        return self.toks[self.i][0]

    def take(self) -> tuple[str, str, int]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, kind: str, what: str | None = None) -> tuple[str, str, int]:
        tok = self.toks[self.i]
        if tok[0] != kind:
            self.fail(what or _DESCRIBE.get(kind, kind))
        self.i += 1
        return tok

    def fail(self, expected: str) -> None:
        tok = self.toks[self.i]
        raise PatternSyntaxError(tok[2], f"expected {expected}, found {_describe(tok)}")

    # observation level
    def pattern(self) -> object:
        if self.peek() not in ("LBRACK", "LPAREN"):
            self.fail("'[' to open an observation expression")
        expr = self.followed_by()
        if self.peek() != "EOF":
            self.fail("AND, OR, FOLLOWEDBY, a qualifier or the end of the pattern")
        return expr

    def followed_by(self) -> object:
        items = [self.obs_or()]
        while self.peek() == "FOLLOWEDBY":
            self.take()
            items.append(self.obs_or())
        return items[0] if len(items) == 1 else ObsBool("FOLLOWEDBY", tuple(items))

    def obs_or(self) -> object:
        items = [self.obs_and()]
        while self.peek() == "OR":
            self.take()
            items.append(self.obs_and())
        return items[0] if len(items) == 1 else ObsBool("OR", tuple(items))

    def obs_and(self) -> object:
        items = [self.obs_qualified()]
        while self.peek() == "AND":
            self.take()
            items.append(self.obs_qualified())
        return items[0] if len(items) == 1 else ObsBool("AND", tuple(items))

    def obs_qualified(self) -> object:
        kind = self.peek()
        simple = kind == "LBRACK"
        if simple:
            self.take()
            expr: object = Observation(self.comp_or())
            self.expect("RBRACK", "']' to close the observation expression")
        elif kind == "LPAREN":
            self.take()
            expr = self.followed_by()
            self.expect("RPAREN", "')'")
        else:
            self.fail("'[' or '('")
            raise AssertionError
        seen: set[str] | None = set() if simple else None
        while True:
            kind = self.peek()
            start = self.toks[self.i][2]
            if kind == "WITHIN":
                self.take()
                if self.peek() not in ("IntPos", "FloatPos"):
                    self.fail("a positive number of seconds after WITHIN")
                secs = self.take()[1]
                self.expect("SECONDS", "SECONDS")
                expr, q = Qualified(expr, "WITHIN", (float(secs),)), "WITHIN"
            elif kind == "REPEATS":
                self.take()
                n = self.expect("IntPos", "a positive integer after REPEATS")[1]
                self.expect("TIMES", "TIMES")
                expr, q = Qualified(expr, "REPEATS", (int(n),)), "REPEATS"
            elif kind == "START":
                self.take()
                a = self.expect("Timestamp", "a timestamp literal t'...' after START")[1]
                self.expect("STOP", "STOP")
                b = self.expect("Timestamp", "a timestamp literal t'...' after STOP")[1]
                expr, q = Qualified(expr, "STARTSTOP", (a[2:-1], b[2:-1])), "STARTSTOP"
            else:
                return expr
            if seen is not None:
                if q in seen:
                    raise PatternSyntaxError(start, f"the {q.replace('STARTSTOP', 'START/STOP')} qualifier is applied twice to one observation expression")
                seen.add(q)

    # comparison level
    def comp_or(self) -> object:
        items = [self.comp_and()]
        while self.peek() == "OR":
            self.take()
            items.append(self.comp_and())
        return items[0] if len(items) == 1 else CompBool("OR", tuple(items))

    def comp_and(self) -> object:
        items = [self.prop_test()]
        while self.peek() == "AND":
            self.take()
            items.append(self.prop_test())
        return items[0] if len(items) == 1 else CompBool("AND", tuple(items))

    def prop_test(self) -> object:
        kind = self.peek()
        if kind == "LPAREN":
            self.take()
            expr = self.comp_or()
            self.expect("RPAREN", "')'")
            return expr
        if kind == "EXISTS":
            self.take()
            return Comparison(self.object_path(), "EXISTS", False, None)
        path = self.object_path()
        negated = False
        if self.peek() == "NOT":
            self.take()
            negated = True
        kind = self.peek()
        if kind in ("EQ", "NEQ"):
            self.take()
            return Comparison(path, "=" if kind == "EQ" else "!=", negated, self.primitive())
        if kind in _ORDER_OPS:
            self.take()
            if self.peek() not in _ORDERABLE:
                self.fail("an orderable literal (number, string, binary, hex or timestamp)")
            return Comparison(path, _ORDER_OPS[kind], negated, self.literal(self.take()))
        if kind == "IN":
            self.take()
            return Comparison(path, "IN", negated, self.set_literal())
        if kind in ("LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"):
            self.take()
            tok = self.expect("String", f"a string literal after {kind}")
            return Comparison(path, kind, negated, self.literal(tok))
        self.fail("a comparison operator (=, !=, <, <=, >, >=, IN, LIKE, MATCHES, ISSUBSET, ISSUPERSET)")
        raise AssertionError

    def object_path(self) -> ObjectPath:
        if self.peek() not in ("Ident", "IdentHyphen"):
            self.fail("an object type such as file or ipv4-addr")
        object_type = self.take()[1]
        self.expect("COLON", "':' after the object type")
        kind = self.peek()
        if kind == "Ident":
            steps: list[object] = [self.take()[1]]
        elif kind == "String":
            steps = [_unquote(self.take()[1])]
        else:
            self.fail("a property name")
            raise AssertionError
        while True:
            kind = self.peek()
            if kind == "DOT":
                self.take()
                k = self.peek()
                if k == "Ident":
                    steps.append(self.take()[1])
                elif k == "String":
                    steps.append(_unquote(self.take()[1]))
                else:
                    self.fail("a property name after '.'")
            elif kind == "LBRACK":
                self.take()
                k = self.peek()
                if k in ("IntPos", "IntNeg"):
                    steps.append(int(self.take()[1]))
                elif k == "ASTERISK":
                    self.take()
                    steps.append(STAR)
                else:
                    self.fail("a list index or '*'")
                self.expect("RBRACK", "']' to close the list index")
            else:
                return ObjectPath(object_type, tuple(steps))

    def primitive(self) -> Literal:
        kind = self.peek()
        if kind == "Bool" or kind in _ORDERABLE:
            return self.literal(self.take())
        self.fail("a literal value")
        raise AssertionError

    def set_literal(self) -> tuple[Literal, ...]:
        self.expect("LPAREN", "'(' to open the set of values")
        items: list[Literal] = []
        if self.peek() == "RPAREN":
            self.take()
            return ()
        items.append(self.primitive())
        while self.peek() == "COMMA":
            self.take()
            items.append(self.primitive())
        self.expect("RPAREN", "')' or ','")
        return tuple(items)

    @staticmethod
    def literal(tok: tuple[str, str, int]) -> Literal:
        kind, text, _ = tok
        if kind in ("IntPos", "IntNeg"):
            return Literal("int", int(text), text)
        if kind in ("FloatPos", "FloatNeg"):
            return Literal("float", float(text), text)
        if kind == "String":
            return Literal("str", _unquote(text), text)
        if kind == "Bool":
            return Literal("bool", text == "true", text)
        if kind == "Binary":
            return Literal("binary", text[2:-1], text)
        if kind == "Hex":
            return Literal("hex", text[2:-1].lower(), text)
        return Literal("timestamp", text[2:-1], text)


def _unquote(text: str) -> str:
    return text[1:-1].replace("\\'", "'").replace("\\\\", "\\")


# The most common pattern in real feeds, one comparison against a plain string, parsed with a single
# regular expression. Only inputs the full lexer would split into exactly these tokens match.
_FAST = re.compile(
    r"\[ ?(?P<type>[a-z][a-z0-9]*(?:-[a-z0-9]+)*):(?P<first>[a-z_][a-z0-9_]*)"
    r"(?P<rest>(?:\.(?:[a-z_][a-z0-9_]*|'[^'\\]*'))*)"
    r"(?: ?(?P<sym>=|==|!=|<>|<=|>=|<|>) ?| (?P<word>LIKE|MATCHES) ?)'(?P<value>[^'\\]*)' ?\]\Z"
)
_FAST_STEP = re.compile(r"\.(?:([a-z_][a-z0-9_]*)|'([^'\\]*)')")
_FAST_OPS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_BOOL_WORDS = frozenset({"true", "false"})


def _parse_fast(text: str) -> object | None:
    m = _FAST.match(text)
    if m is None:
        return None
    otype, first, rest, sym, word, value = m.groups()
    if otype in _BOOL_WORDS or first in _BOOL_WORDS:
        return None
    if rest:
        steps: list[object] = [first]
        for key, quoted in _FAST_STEP.findall(rest):
            if key in _BOOL_WORDS:
                return None
            steps.append(key or quoted)
        path = ObjectPath(otype, tuple(steps))
    else:
        path = ObjectPath(otype, (first,))
    return Observation(Comparison(path, _FAST_OPS[sym] if sym else word, False, Literal("str", value, f"'{value}'")))


@lru_cache(maxsize=8192)
def parse(text: str) -> object:
    """Parse a STIX 2.1 pattern into its syntax tree (cached: indicators repeat patterns)."""
    tree = _parse_fast(text)
    if tree is not None:
        return tree
    return _Parser(tokenize(text)).pattern()


def parse_full(text: str) -> object:
    """Parse with the full lexer and parser only (the reference the fast path is tested against)."""
    return _Parser(tokenize(text)).pattern()


def comparisons(node: object) -> list[Comparison]:
    """Every comparison in a pattern tree, in order."""
    if type(node) is Observation and type(node.expr) is Comparison:
        return [node.expr]  # the common single-comparison pattern
    out: list[Comparison] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Comparison):
            out.append(n)
        elif isinstance(n, (CompBool, ObsBool)):
            stack.extend(reversed(n.operands))
        elif isinstance(n, (Observation, Qualified)):
            stack.append(n.expr)
    return out
