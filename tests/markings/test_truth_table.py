"""docs/releasability.md's truth table, cell by cell, through the store's query path."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from kuroshio.markings.definitions import TLP1, TLP2

from .conftest import TS, Society

DOC = Path(__file__).resolve().parents[2] / "docs" / "releasability.md"


def table() -> list[tuple[str, dict[str, bool]]]:
    text = DOC.read_text()
    body = text.split("<!-- truth-table:begin -->")[1].split("<!-- truth-table:end -->")[0]
    lines = [ln.strip() for ln in body.strip().splitlines()]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        rows.append((cells[0], {h: c == "yes" for h, c in zip(header[1:], cells[1:], strict=True)}))
    return rows


def markings_of(label: str, society: Society) -> tuple[list[str], list[dict]]:
    """The object_marking_refs a table row names, and the definitions they need."""
    refs: list[str] = []
    definitions: list[dict] = []
    for part in label.split(" + "):
        part = part.strip()
        if m := re.fullmatch(r"TLP:(CLEAR|GREEN|AMBER|AMBER\+STRICT|RED)", part):
            refs.append(TLP2[m.group(1).lower()])
        elif part == "TLP:WHITE":
            refs.append(TLP1["clear"])
        elif m := re.fullmatch(r"TLP1:(GREEN|AMBER|RED)", part):
            refs.append(TLP1[m.group(1).lower()])
        elif m := re.fullmatch(r"rel-to R( \(may pass on\))?", part):
            d = society.releasable_to("R", may_pass_on=bool(m.group(1)))
            definitions.append(d)
            refs.append(d["id"])
        elif part == "statement only, default AMBER":
            d = {"type": "marking-definition", "spec_version": "2.1", "id": f"marking-definition--{uuid.uuid4()}",
                 "created": TS, "definition_type": "statement", "definition": {"statement": "Copyright O"}}
            definitions.append(d)
            refs.append(d["id"])
        elif part == "(none), default AMBER":
            pass
        else:
            raise AssertionError(f"the truth table names a marking the test does not know: {part!r}")
    return refs, definitions


def test_the_table_covers_every_level_and_reader() -> None:
    rows = table()
    assert len(rows) >= 20
    labels = " ".join(label for label, _ in rows)
    for level in ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED", "WHITE"):
        assert f"TLP:{level}" in labels
    assert set(rows[0][1]) == {"anon", *Society.ROLES}


def test_code_and_truth_table_agree(society: Society) -> None:
    for label, expected in table():
        refs, definitions = markings_of(label, society)
        oid = f"indicator--{uuid.uuid4()}"
        obj = {"type": "indicator", "spec_version": "2.1", "id": oid, "created": TS, "modified": TS,
               "pattern_type": "stix", "valid_from": TS, "pattern": "[ipv4-addr:value = '10.0.0.1']"}
        if refs:
            obj["object_marking_refs"] = refs
        details = society.put("O", [*definitions, obj])
        assert not details["failures"], (label, details["failures"])
        got = {reader: society.sees("anon" if reader == "anon" else Society.ROLES[reader], oid)
               for reader in expected}
        assert got == expected, f"row '{label}': the code disagrees with docs/releasability.md"
