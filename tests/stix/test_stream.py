"""Incremental bundle reading: same objects as a whole-document parse, at every buffer size."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kuroshio.stix.stream import StreamError, iter_objects

TRICKY = {"type": "note", "content": "braces } { ] [ and \"quotes\" and \\ and \u00e9 \U0001f600", "n": [1, {"a": []}]}


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_bundle_envelope_array_and_single_object(chunk: int) -> None:
    objects = [TRICKY, {"type": "x", "id": "x--1"}, {"k": "\"objects\": [1]"}]
    docs = {
        "bundle": {"type": "bundle", "id": "bundle--1", "spec_version": "2.1", "objects": objects},
        "envelope": {"more": False, "objects": objects, "next": "n"},
        "array": objects,
    }
    for doc in docs.values():
        got = list(iter_objects(io.BytesIO(orjson.dumps(doc)), chunk_size=chunk))
        assert got == objects
    single = list(iter_objects(io.BytesIO(orjson.dumps(TRICKY)), chunk_size=chunk))
    assert single == [TRICKY]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=8) | st.integers(-(2**62), 2**62), max_size=4), max_size=8),
       st.integers(min_value=1, max_value=40))
def test_matches_whole_parse(objects: list[dict[str, object]], chunk: int) -> None:
    data = orjson.dumps({"id": "x", "objects": objects, "z": {"objects": [9]}}, option=orjson.OPT_INDENT_2)
    assert list(iter_objects(io.BytesIO(data), chunk_size=chunk)) == objects


def test_broken_documents_are_reported() -> None:
    for bad in (b"", b'{"objects": [{"a": 1}', b'{"objects": [{"a": 1,}]}', b'xx{"objects": []}'):
        with pytest.raises(StreamError):
            list(iter_objects(io.BytesIO(bad), chunk_size=4))


def test_real_bundle(data_dir: Path) -> None:
    path = data_dir / "stix" / "attack" / "mobile-attack-17.1.json.gz"
    with gzip.open(path, "rb") as f:
        streamed = list(iter_objects(f, chunk_size=4096))
    with gzip.open(path, "rb") as f:
        whole = orjson.loads(f.read())["objects"]
    assert streamed == whole
