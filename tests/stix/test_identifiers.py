"""Deterministic SCO ids: UUIDv5 over the RFC 8785 form of the ID contributing properties."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from kuroshio.stix.canonical import canonical
from kuroshio.stix.identifiers import SCO_NAMESPACE, sco_id

_text = st.text(max_size=20)
_plain = st.recursive(st.one_of(_text, st.integers(-(2**53) + 1, 2**53 - 1)),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.from_regex(r"[a-zA-Z_-]{1,8}", fullmatch=True), inner, max_size=3),
                      max_leaves=8)


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), _plain, min_size=1, max_size=5))
def test_plain_form_gives_the_canonical_id(contributing: dict) -> None:
    """What the sensor mappings build (ASCII keys; strings, safe integers, lists and objects of them)
    needs no canonical check: the id is the same, and it is uuid5 of the canonical form."""
    expected = f"x-thing--{uuid.uuid5(SCO_NAMESPACE, canonical(contributing).decode())}"
    assert sco_id("x-thing", contributing) == expected
    assert sco_id("x-thing", contributing, plain=True) == expected


def test_ids_agree_with_the_oasis_library() -> None:
    import stix2

    for obj, contributing in (
        (stix2.IPv4Address(value="203.0.113.7"), {"value": "203.0.113.7"}),
        (stix2.DomainName(value="例え.jp"), {"value": "例え.jp"}),
        (stix2.File(name="a b.exe", hashes={"SHA-256": "ab" * 32}), {"name": "a b.exe", "hashes": {"SHA-256": "ab" * 32}}),
    ):
        assert sco_id(obj.type, contributing, plain=True) == obj.id
