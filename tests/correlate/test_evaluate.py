"""Pattern evaluation: the STIX 2.1 patterning semantics, and a differential test against the OASIS
reference matcher (stix2-matcher, STIX 2.1 mode) on generated patterns and observations."""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kuroshio.correlate.evaluate import Observed, Pattern, TooComplex, observed_from_stix, stamp_us

CASES = int(os.environ.get("KUROSHIO_MATCHER_CASES", "400"))


def _sco(otype: str, n: int, **props: object) -> dict:
    return {"type": otype, "spec_version": "2.1", "id": f"{otype}--{uuid.UUID(int=n, version=4)}", **props}


def _obs(scos: list[dict], first: str = "2026-01-01T00:00:00Z", last: str | None = None, count: int = 1) -> Observed:
    od = {
        "type": "observed-data", "id": f"observed-data--{uuid.uuid4()}", "first_observed": first,
        "last_observed": last or first, "number_observed": count, "object_refs": [s["id"] for s in scos],
    }
    got = observed_from_stix(od, {s["id"]: s for s in scos})
    assert got is not None
    return got


def _m(pattern: str, *observations: Observed) -> bool:
    return Pattern(pattern).matches(list(observations))


IP1 = _sco("ipv4-addr", 1, value="10.0.0.1")
IP2 = _sco("ipv4-addr", 2, value="192.168.1.9")
FLOW = _sco("network-traffic", 3, src_ref=IP1["id"], dst_ref=IP2["id"], dst_port=443, protocols=["ipv4", "tcp"])
FILE = _sco("file", 4, name="invoice.exe", size=2048, hashes={"SHA-256": "ab" * 32}, magic_number_hex="4D5A")
DOMAIN = _sco("domain-name", 5, value="mail.example.com")


def test_comparisons_on_values_hashes_paths_and_references() -> None:
    o = _obs([IP1, IP2, FLOW, FILE, DOMAIN])
    assert _m("[ipv4-addr:value = '10.0.0.1']", o)
    assert not _m("[ipv4-addr:value = '10.0.0.2']", o)
    assert _m("[ipv4-addr:value ISSUBSET '10.0.0.0/8']", o)
    assert _m("[ipv4-addr:value ISSUBSET '192.168.0.0/16']", o)
    assert not _m("[ipv4-addr:value ISSUBSET '172.16.0.0/12']", o)
    assert _m(f"[file:hashes.'SHA-256' = '{'ab' * 32}']", o)
    assert _m("[file:size > 1000 AND file:name LIKE '%.exe']", o)
    assert not _m("[file:size > 1000 AND file:name LIKE '%.dll']", o)
    assert _m("[file:magic_number_hex = h'4d5a']", o)  # binary values compare as bytes
    assert _m("[network-traffic:dst_ref.value = '192.168.1.9']", o)
    assert _m("[network-traffic:protocols[*] = 'tcp']", o)
    assert _m("[network-traffic:protocols[1] = 'tcp']", o)
    assert not _m("[network-traffic:protocols[0] = 'tcp']", o)
    assert _m("[network-traffic:dst_port IN (80, 443)]", o)
    assert _m("[domain-name:value MATCHES '^mail\\\\.']", o)
    assert _m("[domain-name:value NOT LIKE '%.org']", o)
    assert _m("[EXISTS file:hashes.'SHA-256']", o)
    assert not _m("[EXISTS file:hashes.MD5]", o)
    # one root object must satisfy both sides of AND inside brackets
    assert not _m("[ipv4-addr:value = '10.0.0.1' AND ipv4-addr:value = '192.168.1.9']", o)
    assert _m("[ipv4-addr:value = '10.0.0.1' OR ipv4-addr:value = '1.1.1.1']", o)
    # a pattern never selects domain objects (observed-data itself)
    assert not _m("[observed-data:number_observed = 1]", o)


def test_observation_operators_and_qualifiers() -> None:
    a = _obs([IP1], "2026-01-01T00:00:00Z")
    b = _obs([DOMAIN], "2026-01-01T00:00:30Z")
    assert _m("[ipv4-addr:value = '10.0.0.1'] AND [domain-name:value = 'mail.example.com']", a, b)
    assert not _m("[ipv4-addr:value = '10.0.0.1'] AND [domain-name:value = 'mail.example.com']", a)
    assert _m("[ipv4-addr:value = '10.0.0.1'] FOLLOWEDBY [domain-name:value = 'mail.example.com']", a, b)
    assert not _m("[domain-name:value = 'mail.example.com'] FOLLOWEDBY [ipv4-addr:value = '10.0.0.1']", a, b)
    both = "([ipv4-addr:value = '10.0.0.1'] AND [domain-name:value = 'mail.example.com'])"
    assert _m(f"{both} WITHIN 30 SECONDS", a, b)
    assert not _m(f"{both} WITHIN 29 SECONDS", a, b)
    assert _m("[ipv4-addr:value = '10.0.0.1'] REPEATS 2 TIMES", a, _obs([IP1], "2026-01-01T00:01:00Z"))
    assert not _m("[ipv4-addr:value = '10.0.0.1'] REPEATS 2 TIMES", a)
    assert _m("[ipv4-addr:value = '10.0.0.1'] REPEATS 3 TIMES", _obs([IP1], count=3))  # number_observed counts
    window = "START t'2026-01-01T00:00:00Z' STOP t'2026-01-01T00:00:30Z'"
    assert _m(f"[ipv4-addr:value = '10.0.0.1'] {window}", a)
    assert not _m(f"[domain-name:value = 'mail.example.com'] {window}", b)  # STOP is exclusive


def test_ipv6_and_cidr_values() -> None:
    o = _obs([_sco("ipv6-addr", 9, value="2001:db8::1"), _sco("ipv4-addr", 10, value="10.1.0.0/16")])
    assert _m("[ipv6-addr:value ISSUBSET '2001:db8::/32']", o)
    assert _m("[ipv4-addr:value ISSUBSET '10.0.0.0/8']", o)
    assert _m("[ipv4-addr:value ISSUPERSET '10.1.2.3']", o)
    assert not _m("[ipv4-addr:value ISSUBSET '10.1.2.0/24']", o)


def test_garbage_values_never_raise() -> None:
    weird = _sco("file", 11, name=["x"], size="big", hashes="none", created="yesterday", x_hex="zz", x_bin="!!")
    o = _obs([weird])
    for text in (
        "[file:name = 'x']", "[file:size > 1]", "[file:hashes.MD5 = 'a']", "[file:created > t'2020-01-01T00:00:00Z']",
        "[file:x_hex = h'00']", "[file:x_bin = b'AAAA']", "[file:name ISSUBSET '10.0.0.0/8']", "[file:name MATCHES '(']",
    ):
        assert _m(text, o) is False


def test_timestamps() -> None:
    assert stamp_us("2026-01-01T00:00:00Z") == 1_767_225_600_000_000
    assert stamp_us("2026-01-01T00:00:00.1234567Z") == 1_767_225_600_123_456
    assert stamp_us("2026-02-30T00:00:00Z") is None
    assert stamp_us("2026-01-01t00:00:00z") is None


def test_search_budget_gives_up_on_combinatorial_patterns() -> None:
    many = [_obs([IP1], f"2026-01-01T00:00:{i:02d}Z") for i in range(40)]
    text = "([ipv4-addr:value = '10.0.0.1'] REPEATS 12 TIMES) WITHIN 5 SECONDS"
    with pytest.raises(TooComplex):
        Pattern(text).matches(many)


# --- differential test against stix2-matcher ---------------------------------------------------

VALUES = {
    "ipv4-addr": ["10.0.0.1", "10.0.0.2", "10.1.2.3", "192.168.1.1", "8.8.8.8"],
    "domain-name": ["a.example.com", "b.example.com", "example.org", "xn--d1acpjx3f.xn--p1ai"],
}
TIMES = ["2026-01-01T00:00:00Z", "2026-01-01T00:00:10Z", "2026-01-01T00:01:00Z", "2026-01-01T01:00:00.5Z"]
CIDRS = ["10.0.0.0/8", "10.0.0.0/24", "10.0.0.2/32", "192.168.0.0/16", "0.0.0.0/1", "8.8.8.0/24"]
NAMES = ["a.exe", "b.dll", "A.EXE", "readme.txt", "ünïcode.doc"]
HASHES = ["d41d8cd98f00b204e9800998ecf8427e", "0cc175b9c0f1b6a831c399e269772661"]


@st.composite
def scos(draw: st.DrawFn, n0: int) -> list[dict]:
    out: list[dict] = []
    n = n0
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["ipv4-addr", "domain-name", "file", "network-traffic"]))
        n += 1
        if kind in VALUES:
            out.append(_sco(kind, n, value=draw(st.sampled_from(VALUES[kind]))))
        elif kind == "file":
            props: dict = {"name": draw(st.sampled_from(NAMES))}
            if draw(st.booleans()):
                props["size"] = draw(st.sampled_from([0, 10, 2048, 2048.0, -1]))
            if draw(st.booleans()):
                props["hashes"] = {"MD5": draw(st.sampled_from(HASHES))}
            out.append(_sco("file", n, **props))
        else:
            src = _sco("ipv4-addr", n + 100, value=draw(st.sampled_from(VALUES["ipv4-addr"])))
            dst = _sco("ipv4-addr", n + 200, value=draw(st.sampled_from(VALUES["ipv4-addr"])))
            out += [src, dst, _sco(
                "network-traffic", n, src_ref=src["id"], dst_ref=dst["id"],
                dst_port=draw(st.sampled_from([53, 80, 443])), is_active=draw(st.booleans()),
                protocols=draw(st.lists(st.sampled_from(["ipv4", "tcp", "udp", "dns"]), min_size=1, max_size=3)),
            )]
    return out


def _q(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


@st.composite
def comparisons(draw: st.DrawFn) -> str:
    path, kind = draw(st.sampled_from([
        ("ipv4-addr:value", "ip"), ("domain-name:value", "str"), ("file:name", "name"), ("file:size", "int"),
        ("file:hashes.MD5", "hash"), ("network-traffic:dst_port", "int"), ("network-traffic:src_ref.value", "ip"),
        ("network-traffic:dst_ref.value", "ip"), ("network-traffic:protocols[*]", "proto"),
        ("network-traffic:protocols[0]", "proto"), ("network-traffic:is_active", "bool"), ("file:x_absent", "str"),
    ]))
    not_ = "NOT " if draw(st.integers(0, 4)) == 0 else ""
    if kind == "bool":
        return f"{path} {not_}{draw(st.sampled_from(['=', '!=']))} {draw(st.sampled_from(['true', 'false']))}"
    if kind == "int":
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "IN"]))
        if op == "IN":
            vals = draw(st.lists(st.sampled_from(["0", "10", "53", "443", "2048"]), min_size=1, max_size=3))
            return f"{path} {not_}IN ({', '.join(vals)})"
        return f"{path} {not_}{op} {draw(st.sampled_from(['0', '10', '53', '443', '2048', '2048.0', '-1', '1.5']))}"
    pool = {
        "ip": VALUES["ipv4-addr"], "str": VALUES["domain-name"], "name": NAMES, "hash": HASHES,
        "proto": ["ipv4", "tcp", "udp", "dns"],
    }[kind]
    ops = ["=", "!=", "<", ">", "IN", "LIKE", "MATCHES"] + (["ISSUBSET", "ISSUPERSET"] if kind == "ip" else [])
    op = draw(st.sampled_from(ops))
    value = draw(st.sampled_from([*pool, "zzz", ""]))
    if op == "IN":
        vals = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
        return f"{path} {not_}IN ({', '.join(_q(v) for v in vals)})"
    if op == "LIKE":
        cut = draw(st.integers(0, max(len(value), 0)))
        like = draw(st.sampled_from([value[:cut] + "%", "%" + value[cut:], value.replace("e", "_"), value]))
        return f"{path} {not_}LIKE {_q(like)}"
    if op == "MATCHES":
        rx = draw(st.sampled_from(["^10\\.", "example", "\\.(exe|dll)$", "^[a-c]", "(?i)a\\.exe", "tcp|udp"]))
        return f"{path} {not_}MATCHES {_q(rx)}"
    if op == "ISSUBSET":
        return f"{path} {not_}ISSUBSET {_q(draw(st.sampled_from(CIDRS)))}"
    if op == "ISSUPERSET":
        return f"{path} {not_}ISSUPERSET {_q(draw(st.sampled_from(VALUES['ipv4-addr'])))}"
    return f"{path} {not_}{op} {_q(value)}"


@st.composite
def comparison_expressions(draw: st.DrawFn) -> str:
    parts = draw(st.lists(comparisons(), min_size=1, max_size=3))
    out = parts[0]
    for part in parts[1:]:
        out = f"{out} {draw(st.sampled_from(['AND', 'OR']))} {part}"
    return f"[{out}]"


@st.composite
def patterns(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 2 or draw(st.integers(0, 2)) == 0:
        expr = draw(comparison_expressions())
    else:
        left = draw(patterns(depth + 1))
        right = draw(patterns(depth + 1))
        expr = f"({left} {draw(st.sampled_from(['AND', 'OR', 'FOLLOWEDBY']))} {right})"
    q = draw(st.integers(0, 5))
    if q == 0:
        expr = f"{expr} WITHIN {draw(st.sampled_from(['1', '10', '60', '3600', '0.5']))} SECONDS"
    elif q == 1:
        expr = f"{expr} REPEATS {draw(st.integers(1, 3))} TIMES"
    elif q == 2:
        a, b = sorted(draw(st.lists(st.sampled_from(TIMES), min_size=2, max_size=2)))
        expr = f"{expr} START t'{a}' STOP t'{b}'"
    return expr


@st.composite
def observation_sets(draw: st.DrawFn) -> list[tuple[dict, list[dict]]]:
    out = []
    for i in range(draw(st.integers(1, 3))):
        objs = draw(scos(i * 1000))
        first = draw(st.sampled_from(TIMES))
        last = draw(st.sampled_from([t for t in TIMES if t >= first]))
        od = {
            "type": "observed-data", "spec_version": "2.1", "id": f"observed-data--{uuid.UUID(int=i + 1, version=4)}",
            "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z", "first_observed": first,
            "last_observed": last, "number_observed": draw(st.integers(1, 3)), "object_refs": [o["id"] for o in objs],
        }
        out.append((od, objs))
    return out


def _reference(pattern: str, sets: list[tuple[dict, list[dict]]]) -> bool | None:
    """stix2-matcher's verdict, or None where it raises (a case it does not implement)."""
    from stix2matcher.matcher import match

    bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [x for od, objs in sets for x in (od, *objs)]}
    try:
        return bool(match(pattern, [bundle], stix_version="2.1"))
    except Exception:
        return None


@pytest.mark.slow
@settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(pattern=patterns(), sets=observation_sets())
def test_same_verdicts_as_stix2_matcher(pattern: str, sets: list[tuple[dict, list[dict]]]) -> None:
    pytest.importorskip("stix2matcher")
    expected = _reference(pattern, sets)
    assume(expected is not None)
    observations = []
    for od, objs in sets:
        got = observed_from_stix(od, {o["id"]: o for o in objs})
        assert got is not None
        observations.append(got)
    try:
        ours = Pattern(pattern).matches(observations)
    except TooComplex:
        assume(False)
        return
    assert ours == expected, f"{pattern} on {sets}"
