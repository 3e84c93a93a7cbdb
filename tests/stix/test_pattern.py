"""The STIX pattern parser against the OASIS stix2-patterns validator: the same verdict on every pattern.

Deliberate differences, excluded from the comparison:
- `hashes.<algorithm> IN (...)`: stix2-patterns checks the text of the whole set as one digest and
  so rejects every such pattern; we check each member of the set (STIX 2.1 part 9.4 allows IN on
  any property).
- inputs on which stix2-patterns raises an exception instead of giving a verdict (e.g. negative
  list indexes crash its inspector) are skipped.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import stix2patterns
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stix2patterns.validator import run_validator

from kuroshio.stix import pattern as stix_pattern
from kuroshio.stix.validate import check_pattern, pattern_syntax_problem

SPEC_EXAMPLES = Path(stix2patterns.__file__).parent / "test" / "v21" / "spec_examples.txt"


def theirs(text: str) -> bool | None:
    try:
        return not run_validator(text, "2.1")
    except Exception:
        return None


def ours(text: str) -> bool:
    return pattern_syntax_problem(text) is None


_HASH_IN = re.compile(r"hashes\.\S+\s+(?:NOT\s+)?IN")


def _comparable(text: str) -> bool:
    return not _HASH_IN.search(text)


def test_spec_examples_parse() -> None:
    examples = [ln.strip() for ln in SPEC_EXAMPLES.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(examples) > 20
    for text in examples:
        assert ours(text) == theirs(text), text


# --- a generator of patterns from the grammar, with token-level damage ----------------------------

TYPES = ["file", "ipv4-addr", "domain-name", "network-traffic", "x-usb-device", "process", "a", "x_y", "win-registry-key"]
PATHS = ["name", "value", "hashes.MD5", "hashes.'SHA-256'", "hashes.SHA1", "size", "extensions.'windows-pebinary-ext'"
         ".sections[*].entropy", "src_ref.value", "child_refs[0].name", "'quoted name'", "x_custom.deep[*].k",
         "parent_directory_ref.path", "hashes.'SHA-1'", "a.b-c", "values[1]", "AND", "in"]
STRINGS = ["'abc'", "'it\\'s'", "'back\\\\slash'", "'9e107d9d372bb6826bd81d3542a419d6'",
           "'2fd4e1c67a2d28fced849ee1bb76e7391b93eb12'", "'%.exe'", "'^evil.*'", "'10.0.0.0/8'", "''", "'bad\\n'"]
LITERALS = [*STRINGS, "1", "-1", "+5", "0", "01", "3.14", "-.5", "+.5", "1.", "true", "false", "h'ff00'", "h'f'",
                      "b'AAAA'", "b'AA=='", "b'A='", "t'2016-01-01T00:00:00Z'", "t'2016-13-01T00:00:00Z'",
                      "t'2016-01-01T00:00:00.123Z'"]
OPS = ["=", "==", "!=", "<>", "<", "<=", ">", ">=", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET", "NOT =", "NOT LIKE",
       "IN", "NOT IN"]
QUALIFIERS = ["WITHIN 5 SECONDS", "WITHIN 2.5 SECONDS", "REPEATS 3 TIMES", "REPEATS 0 TIMES", "WITHIN -1 SECONDS",
              "START t'2016-01-01T00:00:00Z' STOP t'2017-01-01T00:00:00Z'", "START '2016' STOP '2017'"]


def _comparison(r: random.Random) -> str:
    if r.random() < 0.08:
        return f"EXISTS {r.choice(TYPES)}:{r.choice(PATHS)}"
    op = r.choice(OPS)
    if op.endswith("IN"):
        value = "(" + ", ".join(r.choice(LITERALS) for _ in range(r.randint(0, 3))) + ")"
    else:
        value = r.choice(LITERALS)
    return f"{r.choice(TYPES)}:{r.choice(PATHS)} {op} {value}"


def _comparison_expr(r: random.Random, depth: int = 0) -> str:
    if depth < 2 and r.random() < 0.35:
        join = r.choice([" AND ", " OR "])
        inner = join.join(_comparison_expr(r, depth + 1) for _ in range(r.randint(2, 3)))
        return f"({inner})" if r.random() < 0.5 else inner
    return _comparison(r)


def _observation(r: random.Random, depth: int = 0) -> str:
    if depth < 2 and r.random() < 0.3:
        join = r.choice([" AND ", " OR ", " FOLLOWEDBY "])
        expr = "(" + join.join(_observation(r, depth + 1) for _ in range(r.randint(2, 3))) + ")"
    else:
        expr = f"[{_comparison_expr(r)}]"
    for _ in range(r.choice([0, 0, 0, 1, 1, 2])):
        expr += " " + r.choice(QUALIFIERS)
    return expr


def generate(seed: int) -> str:
    r = random.Random(seed)
    text = _observation(r)
    if r.random() < 0.3:
        text += r.choice([" AND ", " OR ", " FOLLOWEDBY "]) + _observation(r)
    if r.random() < 0.35:  # damage: delete, duplicate or insert a character
        chars = list(text)
        for _ in range(r.randint(1, 2)):
            i = r.randrange(len(chars))
            action = r.random()
            if action < 0.4:
                del chars[i]
            elif action < 0.7:
                chars.insert(i, chars[i])
            else:
                chars.insert(i, r.choice("[]()'\"=:.,-+ *\\/atbh0"))
            if not chars:
                chars = ["["]
        text = "".join(chars)
    return text


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32))
def test_same_verdict_as_stix2_patterns(seed: int) -> None:
    text = generate(seed)
    if not _comparable(text):
        return
    expected = theirs(text)
    if expected is None:
        return
    assert ours(text) == expected, text


@pytest.mark.parametrize("text", [
    "[file:hashes.MD5 = 'abc']",  # digest of the wrong length
    "[a:b = 1] WITHIN 5 SECONDS WITHIN 6 SECONDS",  # one qualifier twice on one observation
    "file:name = 'x'",  # no brackets
    "[file:name = 'x'",
    "[file:name = 'x' AND]",
    "[file:name IN ('a' 'b')]",
    "[file:name = x]",
])
def test_rejections_name_a_position(text: str) -> None:
    problem = pattern_syntax_problem(text)
    assert problem is not None and ("character" in problem or "hash" in problem)


def test_syntax_tree() -> None:
    tree = stix_pattern.parse("([ipv4-addr:value = '1.2.3.4' OR ipv4-addr:value ISSUBSET '10.0.0.0/8'] AND "
                              "[file:hashes.'SHA-256' != 'x']) WITHIN 300 SECONDS")
    assert isinstance(tree, stix_pattern.Qualified) and tree.kind == "WITHIN" and tree.args == (300.0,)
    comps = stix_pattern.comparisons(tree)
    assert [c.op for c in comps] == ["=", "ISSUBSET", "!="]
    assert comps[2].path == stix_pattern.ObjectPath("file", ("hashes", "SHA-256"))
    assert comps[0].value == stix_pattern.Literal("str", "1.2.3.4", "'1.2.3.4'")


def test_indicator_name_rules() -> None:
    assert check_pattern("[x-custom-thing:some_prop = 1]") is None
    assert check_pattern("[ab:name = 'x']") is not None  # type names have at least 3 characters
    assert check_pattern("[file:n = 'x']") is not None  # property names have at least 3 characters
    assert check_pattern("[file:id = 'x']") is None  # ... unless the type defines them


_IDENT = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_TYPE = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4}){0,2}", fullmatch=True)
_STEP = _IDENT.map(lambda s: "." + s) | st.from_regex(r"[A-Za-z0-9 _.-]{0,10}", fullmatch=True).map(lambda s: f".'{s}'")


@settings(max_examples=500, deadline=None)
@given(_TYPE, _IDENT, st.lists(_STEP, max_size=3), st.sampled_from(["=", "==", "!=", "<>", "<", "<=", ">", ">=", " LIKE",
       " MATCHES"]), st.from_regex(r"[^'\\\\]{0,20}", fullmatch=True), st.booleans(), st.booleans())
def test_fast_path_builds_the_same_tree_as_the_full_parser(otype: str, first: str, steps: list[str], op: str,
                                                           value: str, space_in: bool, space_out: bool) -> None:
    sp = " " if space_in else ""
    text = f"[{sp}{otype}:{first}{''.join(steps)}{' ' if space_out or op.startswith(' ') else ''}{op.strip()}" \
           f"{' ' if space_out else ''}'{value}'{sp}]"
    fast = stix_pattern._parse_fast(text)
    try:
        full = stix_pattern.parse_full(text)
    except stix_pattern.PatternSyntaxError:
        assert fast is None, text
        return
    if fast is not None:
        assert fast == full, text
