"""The indicator index: same verdicts as full evaluation, lifecycle of indicators, streams of observations."""

from __future__ import annotations

import unicodedata
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kuroshio.correlate.evaluate import Pattern, TooComplex, observed_from_stix
from kuroshio.correlate.index import Index

from .test_evaluate import CASES, _obs, _sco, observation_sets, patterns


def _indicator(pattern: str, n: int = 1, **extra: object) -> dict:
    return {
        "type": "indicator", "id": f"indicator--{uuid.UUID(int=n, version=4)}", "modified": "2026-01-01T00:00:00.000Z",
        "pattern": pattern, "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z", **extra,
    }


def _ids(index: Index, obs) -> set[str]:  # type: ignore[no-untyped-def]
    return {h.indicator_id for h in index.match(obs)}


def test_common_forms_hit_through_the_index() -> None:
    index = Index()
    forms = [
        "[ipv4-addr:value = '203.0.113.7']", "[ipv4-addr:value ISSUBSET '198.51.100.0/24']",
        "[ipv6-addr:value ISSUBSET '2001:db8::/32']", "[domain-name:value = 'evil.example']",
        "[domain-name:value LIKE '%.evil.example']", "[url:value LIKE 'http://bad.example/%']",
        f"[file:hashes.'SHA-256' = '{'ab' * 32}']", "[network-traffic:dst_ref.value = '203.0.113.7']",
        "[ipv4-addr:value IN ('192.0.2.1', '192.0.2.2')]",
    ]
    for n, form in enumerate(forms):
        assert index.add(_indicator(form, n)) is None
    assert index.stats.residual_leaves == 0
    ip = _sco("ipv4-addr", 100, value="203.0.113.7")
    flow = _sco("network-traffic", 101, dst_ref=ip["id"], protocols=["tcp"])
    assert _ids(index, _obs([ip, flow])) == {_indicator(forms[0], 0)["id"], _indicator(forms[7], 7)["id"]}
    assert len(index.match(_obs([_sco("ipv4-addr", 102, value="198.51.100.200")]))) == 1
    assert len(index.match(_obs([_sco("ipv4-addr", 103, value="198.51.101.1")]))) == 0
    assert len(index.match(_obs([_sco("ipv6-addr", 104, value="2001:db8:1::5")]))) == 1
    assert len(index.match(_obs([_sco("domain-name", 105, value="www.evil.example")]))) == 1
    assert len(index.match(_obs([_sco("domain-name", 106, value="notevil.example")]))) == 0
    assert len(index.match(_obs([_sco("url", 107, value="http://bad.example/x.php")]))) == 1
    assert len(index.match(_obs([_sco("file", 108, hashes={"SHA-256": "ab" * 32})]))) == 1
    assert len(index.match(_obs([_sco("ipv4-addr", 109, value="192.0.2.2")]))) == 1


def test_lifecycle_update_revoke_valid_until() -> None:
    index = Index()
    ip = _obs([_sco("ipv4-addr", 1, value="192.0.2.1")], "2026-03-01T00:00:00Z")
    first = _indicator("[ipv4-addr:value = '192.0.2.1']")
    assert index.add(first) is None
    assert len(index.match(ip)) == 1
    # a new version replaces the old pattern
    assert index.add({**first, "modified": "2026-02-01T00:00:00.000Z", "pattern": "[ipv4-addr:value = '192.0.2.9']"}) is None
    assert index.match(ip) == []
    assert len(index) == 1
    # an older version arriving late changes nothing
    index.add(first)
    assert index.match(ip) == []
    # past valid_until: no longer matches observations after it
    index.add({**first, "modified": "2026-02-02T00:00:00.000Z", "valid_until": "2026-02-15T00:00:00Z"})
    assert index.match(ip) == []
    assert len(index.match(_obs([_sco("ipv4-addr", 1, value="192.0.2.1")], "2026-02-10T00:00:00Z"))) == 1
    # revoked: gone
    assert index.add({**first, "modified": "2026-02-03T00:00:00.000Z", "revoked": True}) == "revoked"
    assert len(index) == 0
    assert index.match(ip) == []


def test_residual_and_keyed_leaves_are_evaluated() -> None:
    index = Index()
    index.add(_indicator("[file:size > 1000000]", 1))  # no key: evaluated on every file
    index.add(_indicator("[file:name LIKE 'inv%' AND file:size < 10]", 2))  # keyed, not exact
    big = _obs([_sco("file", 3, name="invoice.pdf", size=2_000_000)])
    small = _obs([_sco("file", 4, name="invoice.pdf", size=5)])
    assert _ids(index, big) == {_indicator("", 1)["id"]}
    assert _ids(index, small) == {_indicator("", 2)["id"]}
    assert index.match(_obs([_sco("ipv4-addr", 5, value="192.0.2.1")])) == []


def test_compound_patterns_over_a_stream() -> None:
    index = Index()
    text = "([ipv4-addr:value = '192.0.2.1'] FOLLOWEDBY [domain-name:value = 'c2.example']) WITHIN 60 SECONDS"
    index.add(_indicator(text))
    ip = _sco("ipv4-addr", 1, value="192.0.2.1")
    dom = _sco("domain-name", 2, value="c2.example")
    assert index.match(_obs([dom], "2026-01-01T00:00:00Z")) == []
    assert index.match(_obs([ip], "2026-01-01T00:00:10Z")) == []
    hits = index.match(_obs([dom], "2026-01-01T00:00:50Z"))
    assert len(hits) == 1 and len(hits[0].others) == 2
    # the match consumed what led to it: another domain alone is not a new match
    assert index.match(_obs([dom], "2026-01-01T00:00:55Z")) == []
    assert index.match(_obs([ip], "2026-01-01T00:01:00Z")) == []
    assert len(index.match(_obs([dom], "2026-01-01T00:01:30Z"))) == 1
    # too late for the window
    assert index.match(_obs([ip], "2026-01-01T00:03:00Z")) == []
    assert index.match(_obs([dom], "2026-01-01T00:05:00Z")) == []


def test_a_late_observation_pairs_with_an_older_one_within_the_window() -> None:
    """Observations arrive out of order: one at 00:00:10 does not push the one at 00:00:00 out of a
    WITHIN 1 SECONDS pattern's reach while a late one from 00:00:00 may still arrive."""
    index = Index()
    index.add(_indicator("([ipv4-addr:value = '192.0.2.2'] AND [ipv4-addr:value = '192.0.2.1']) WITHIN 1 SECONDS"))
    first, second = _sco("ipv4-addr", 1, value="192.0.2.1"), _sco("ipv4-addr", 2, value="192.0.2.2")
    assert index.match(_obs([first], "2026-01-01T00:00:00Z")) == []
    assert index.match(_obs([first], "2026-01-01T00:00:10Z")) == []
    hits = index.match(_obs([second], "2026-01-01T00:00:00.500Z"))  # late: pairs with the first, not the 00:00:10
    assert len(hits) == 1 and hits[0].others[0].first == 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def test_a_match_under_within_is_evidenced_by_the_observations_in_its_window() -> None:
    """Observations outside the WITHIN width of the one that completes a match are neither evaluated
    with it nor reported as its evidence (which keeps a pattern hit by every observation cheap)."""
    index = Index()
    index.add(_indicator("([ipv4-addr:value = '192.0.2.1'] AND [ipv4-addr:value = '192.0.2.2']) WITHIN 5 SECONDS"))
    a, b = _sco("ipv4-addr", 1, value="192.0.2.1"), _sco("ipv4-addr", 2, value="192.0.2.2")
    for t in ("00:00:00", "00:01:40", "00:03:20"):
        assert index.match(_obs([a], f"2026-01-01T{t}Z")) == []
    hits = index.match(_obs([b], "2026-01-01T00:03:21Z"))
    assert len(hits) == 1 and [o.first for o in hits[0].others] == [1_767_225_800_000_000]  # 00:03:20 only


def test_unparseable_and_foreign_patterns_are_reported() -> None:
    index = Index()
    bad = _indicator("[ipv4-addr:value = ")
    assert "at character" in (index.add(bad) or "")
    assert index.stats.rejected[bad["id"]].startswith("the pattern does not parse")
    assert index.add({**_indicator("alert tcp any any -> any any", 2), "pattern_type": "snort"}) == "not a STIX pattern"
    assert len(index) == 0


@settings(max_examples=max(300, CASES), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(pattern=patterns(), sets=observation_sets(), names=st.just(None))
def test_index_agrees_with_evaluation(pattern: str, sets: list, names: None) -> None:
    """Fed one observation at a time, the index reports a hit exactly when the pattern matches the
    observations since its last match (a match consumes the observations that led to it)."""
    index = Index(horizon_s=10**6)
    assert index.add(_indicator(pattern)) is None
    compiled = Pattern(pattern)
    pending = []
    for od, objs in sets:
        obs = observed_from_stix(od, {o["id"]: o for o in objs})
        assert obs is not None
        if compiled.simple:
            expected = compiled.matches([obs])
        else:
            pending.append(obs)
            try:
                expected = compiled.matches(pending)
            except TooComplex:
                return
            if expected:
                pending.clear()
        assert bool(index.match(obs)) == expected, pattern


@given(st.lists(st.integers(0, 300), min_size=4, max_size=4), st.sampled_from(["", " ", "0", ".1", "/8", "x"]))
def test_ipv4_reader_agrees_with_ipaddress(parts: list[int], junk: str) -> None:

    from kuroshio.correlate.index import _ipv4

    for text in (".".join(map(str, parts)), ".".join(map(str, parts)) + junk, junk + ".".join(map(str, parts))):
        assert _ipv4(text) == _ipv4_by_ipaddress(text), text


def _ipv4_by_ipaddress(text: str) -> int | None:
    import ipaddress

    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError:
        return None


@settings(max_examples=max(200, CASES // 2), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(pats=st.lists(patterns(), min_size=1, max_size=4), sets=observation_sets(), cut=st.integers(0, 3))
def test_batches_match_as_one_at_a_time(pats: list[str], sets: list, cut: int) -> None:
    """Index.match_many gives, observation by observation, the hits Index.match gives (compound state too)."""
    one, many = Index(horizon_s=10**6), Index(horizon_s=10**6)
    for n, text in enumerate(pats):
        one.add(_indicator(text, n))
        many.add(_indicator(text, n))
    observations = [observed_from_stix(od, {o["id"]: o for o in objs}) for od, objs in sets]
    expected = [sorted(h.indicator_id for h in one.match(o)) for o in observations]
    got = [sorted(h.indicator_id for h in hits) for part in (observations[:cut], observations[cut:])
           for hits in many.match_many(part)]
    assert got == expected


@settings(max_examples=max(200, CASES // 5), deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.one_of(st.integers(9, 32), st.integers(0, 8))),
                min_size=1, max_size=6),
       st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=40), st.integers(0, 255))
def test_cidr_blocks_hold_the_addresses_ipaddress_says(blocks: list[tuple[int, int]], addresses: list[int],
                                                       third: int) -> None:
    """IPv4 blocks of every length are found through the text of an address (Index.match_many probes a
    whole batch that way; Index.match one address): every address a block holds, and no other."""
    import ipaddress

    from kuroshio.correlate.evaluate import Observed

    index = Index()
    nets = []
    for n, (base, plen) in enumerate(blocks):
        net = ipaddress.IPv4Network((base, plen), strict=False)
        nets.append(net)
        index.add(_indicator(f"[ipv4-addr:value ISSUBSET '{net}']", n + 1))
    # addresses at random, and in, at the edges of and next to each block (short octets make the shortest texts)
    candidates = [*addresses, *(int(n.network_address) for n in nets), *(int(n.broadcast_address) for n in nets),
                  *((int(n.network_address) + a % n.num_addresses) for n in nets for a in addresses[:3]),
                  *((int(n.network_address) - 1) % 2**32 for n in nets),
                  *((int(n.broadcast_address) + 1) % 2**32 for n in nets),
                  *((int(n.network_address) & 0xFFFF0000) | (third << 8) | (third % 10) for n in nets)]
    batch = [Observed({"ipv4-addr--a": {"type": "ipv4-addr", "value": str(ipaddress.IPv4Address(a))}}, 0, 0, 1, a)
             for a in candidates]
    for obs, hits in zip(batch, index.match_many(batch), strict=True):
        addr = ipaddress.IPv4Address(obs.ref)
        expected = {f"indicator--{uuid.UUID(int=n + 1, version=4)}" for n, net in enumerate(nets) if addr in net}
        assert {h.indicator_id for h in hits} == expected, (str(addr), [str(n) for n in nets])
    table = next(iter(index._paths["ipv4-addr"].values()))  # the one-value probe (values of mixed types take it)
    for obs in batch:
        addr = ipaddress.IPv4Address(obs.ref)
        one: list[list] = []
        table.networks(str(addr), one)
        expected = {f"indicator--{uuid.UUID(int=n + 1, version=4)}" for n, net in enumerate(nets) if addr in net}
        assert {ref[0] for bucket in one for ref in bucket} == expected, (str(addr), [str(n) for n in nets])


def test_seven_character_heads_cover_every_address_of_a_block() -> None:
    import ipaddress

    from kuroshio.correlate.index import _heads7

    for text in ("1.2.0.0/16", "10.0.0.0/20", "1.1.1.0/24", "9.9.9.8/30", "100.200.0.0/16", "12.34.56.0/22",
                 "1.2.3.4/32", "255.255.255.0/24"):
        net = ipaddress.IPv4Network(text)
        heads = _heads7(net.prefixlen, int(net.network_address) >> (32 - net.prefixlen))
        assert {str(a)[:7] for a in net} == heads, text


def test_values_of_any_shape_in_a_batch_never_raise() -> None:
    """Garbage values (lists, objects, booleans, None) sit in a batch beside a hit: the hit is found,
    the garbage matches nothing and raises nothing."""
    from kuroshio.correlate.evaluate import Observed

    index = Index()
    index.add(_indicator("[ipv4-addr:value = '203.0.113.7']", 1))
    index.add(_indicator("[ipv4-addr:value ISSUBSET '198.51.100.0/24']", 2))
    index.add(_indicator("[network-traffic:dst_port = 443]", 3))
    shapes = [["203.0.113.7"], {"a": 1}, True, None, 7, 2.5, "", "198.51.100.9", "203.0.113.7"]
    batch = [Observed({"x": {"type": "ipv4-addr", "value": v}, "t": {"type": "network-traffic", "dst_port": v}},
                      0, 0, 1, n) for n, v in enumerate(shapes)]
    got = [sorted(h.indicator_id[-1] for h in hits) for hits in index.match_many(batch)]
    assert got == [[], [], [], [], [], [], [], ["2"], ["1"]]
    assert [sorted(h.indicator_id[-1] for h in index.match(o)) for o in batch] == got


@given(st.one_of(st.text(alphabet="0123456789.x /:\x00\n+-", max_size=20), st.text(max_size=20)))
def test_ipv4_reader_agrees_with_ipaddress_on_any_text(text: str) -> None:
    from kuroshio.correlate.index import _ipv4

    assert _ipv4(text) == _ipv4_by_ipaddress(text), repr(text)


_AFFIX_TEXT = st.text(alphabet="ab.é%_", max_size=8)


@settings(max_examples=max(300, CASES), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["p", "s"]), _AFFIX_TEXT), min_size=1, max_size=6),
       st.lists(st.one_of(_AFFIX_TEXT, st.text(max_size=8)), min_size=1, max_size=30))
def test_a_batch_of_strings_finds_the_affixes_each_string_finds(keys: list[tuple[str, str]], values: list[str]) -> None:
    """Prefixes, suffixes and domain forms (a suffix that starts with a dot) probed over a whole batch
    find, string by string, what each string alone finds, and that is every key the NFC form of the
    string starts (prefix) or ends (suffix) with — dots at either end, runs of dots, text that NFC
    changes included."""
    from kuroshio.correlate.index import _PathTable

    table = _PathTable(("value",))
    filed = [(kind, unicodedata.normalize("NFC", text)) for kind, text in keys]
    for n, key in enumerate(filed):
        table.file(key, (f"indicator--{n}", 0, False))
    values = [unicodedata.normalize("NFD", v) if n % 3 == 0 else v for n, v in enumerate(values)]
    one: list[list] = [[] for _ in values]
    for v, out in zip(values, one, strict=True):
        table.affixes_many([v], [0], [out])
    many: list[list] = [[] for _ in values]
    table.affixes_many(values, list(range(len(values))), many)
    assert [sorted(map(id, x)) for x in many] == [sorted(map(id, x)) for x in one]
    for v, out in zip(values, many, strict=True):
        nv = unicodedata.normalize("NFC", v)
        expected = {f"indicator--{n}" for n, (kind, text) in enumerate(filed)
                    if (nv.startswith(text) if kind == "p" else nv.endswith(text))}
        assert {ref[0] for bucket in out for ref in bucket} == expected, (v, filed)
