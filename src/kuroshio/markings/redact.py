"""Per-reader copies of objects: remove what a reader may not see from an object it may see.

Three things are removed: properties and list elements under a granular marking the reader is not
in the audience of; references of a container (report, grouping, note, opinion) to objects the
reader cannot see; and a sighting's `where_sighted_refs` / `observed_data_refs` the reader cannot
see. Removing list elements shifts later indices, so the selectors of the granular markings that
remain are renumbered; granular markings whose content is gone are dropped with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

import orjson

from ..stix.canonical import canonical
from .policy import SHAPE_CONTAINER, SHAPE_GRANULAR, SHAPE_SIGHTING

Path = tuple[object, ...]
_INDEX = re.compile(r"\[(\d+)\]\Z")


def parse_selector(selector: str) -> Path:
    out: list[object] = []
    for seg in selector.split("."):
        m = _INDEX.match(seg)
        out.append(int(m.group(1)) if m else seg)
    return tuple(out)


def format_selector(path: Path) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path)


def redact(raw: bytes, shape: int, granular: list[tuple[list[str], int]] | None,
           visible_aid: Callable[[int], bool], visible_id: Callable[[str], bool]) -> bytes:
    """The reader's copy of an object (canonical JSON), or `raw` itself when nothing is hidden."""
    obj = orjson.loads(raw)
    hidden: set[Path] = set()
    if shape & SHAPE_GRANULAR and granular:
        for selectors, aid in granular:
            if not visible_aid(aid):
                hidden.update(parse_selector(s) for s in selectors)
    if shape & SHAPE_CONTAINER:
        for i, ref in enumerate(obj.get("object_refs", ())):
            if not visible_id(ref):
                hidden.add(("object_refs", i))
    if shape & SHAPE_SIGHTING:
        for prop in ("where_sighted_refs", "observed_data_refs"):
            for i, ref in enumerate(obj.get(prop, ())):
                if not visible_id(ref):
                    hidden.add((prop, i))
    if not hidden:
        return raw
    return canonical(remove(obj, hidden))


# Objects whose only per-reader rewriting is granular markings have a few possible copies, one per
# set of granular audiences the reader is in: they are computed when the object is stored (the store
# keeps them in object_views), so a read picks one instead of rewriting JSON. Up to
# MAX_VIEW_AUDIENCES distinct audiences (2^n - 1 copies); beyond that the copy is made at read time.
MAX_VIEW_AUDIENCES = 4


def audiences_of(granular: list[tuple[list[str], int]]) -> list[int]:
    """The distinct audience ids of an object's granular markings, in mask-bit order."""
    return sorted({aid for _, aid in granular})


def views(raw: bytes, granular: list[tuple[list[str], int]]) -> list[tuple[int, bytes]]:
    """Every reader copy of a granular-only object but the full one, as (mask, canonical JSON)."""
    aids = audiences_of(granular)
    if len(aids) > MAX_VIEW_AUDIENCES:
        return []
    out = []
    for mask in range((1 << len(aids)) - 1):
        seen = {a for i, a in enumerate(aids) if mask >> i & 1}
        out.append((mask, redact(raw, SHAPE_GRANULAR, granular, seen.__contains__, lambda _ref: True)))
    return out


def mask_of(granular: list[tuple[list[str], int]], visible_aid: Callable[[int], bool]) -> tuple[int, bool]:
    """Which view a reader gets: the mask of the granular audiences it is in, and whether that is all."""
    aids = audiences_of(granular)
    mask = 0
    for i, a in enumerate(aids):
        if visible_aid(a):
            mask |= 1 << i
    return mask, mask == (1 << len(aids)) - 1


def remove(obj: dict[str, Any], hidden: Collection[Path]) -> dict[str, Any]:
    """Remove every hidden path from `obj` and renumber the granular markings that remain."""
    hidden = {p for p in hidden if p}
    deleted: dict[Path, set[int]] = {}  # list path -> indices removed from it
    for path in sorted(hidden, key=len):
        if any(path[:i] in hidden for i in range(1, len(path))):
            continue  # an ancestor goes anyway
        parent_path, last = path[:-1], path[-1]
        parent = _get(obj, parent_path)
        if isinstance(last, int) and isinstance(parent, list) and last < len(parent):
            deleted.setdefault(parent_path, set()).add(last)
        elif isinstance(last, str) and isinstance(parent, dict):
            parent.pop(last, None)
    for list_path, indices in sorted(deleted.items(), key=lambda kv: -len(kv[0])):
        lst = _get(obj, list_path)
        if isinstance(lst, list):
            for i in sorted(indices, reverse=True):
                del lst[i]
            if not lst and len(list_path) == 1:
                obj.pop(list_path[0], None)  # STIX lists are never empty: drop the property
    kept = []
    for gm in obj.get("granular_markings", ()):
        selectors = []
        for sel in gm.get("selectors", ()):
            new = _renumber(parse_selector(sel), hidden, deleted)
            if new is not None and _get(obj, new) is not _MISSING:
                selectors.append(format_selector(new))
        if selectors:
            kept.append({**gm, "selectors": selectors})
    if "granular_markings" in obj:
        if kept:
            obj["granular_markings"] = kept
        else:
            del obj["granular_markings"]
    return obj


_MISSING = object()


def _get(obj: Any, path: Path) -> Any:
    node = obj
    for seg in path:
        if isinstance(seg, int):
            if not isinstance(node, list) or seg >= len(node):
                return _MISSING
            node = node[seg]
        else:
            if not isinstance(node, dict) or seg not in node:
                return _MISSING
            node = node[seg]
    return node


def _renumber(path: Path, hidden: Collection[Path], deleted: dict[Path, set[int]]) -> Path | None:
    """The path after removal, or None when the path itself was removed."""
    for i in range(1, len(path) + 1):
        if path[:i] in hidden:
            return None
    out: list[object] = []
    for i, seg in enumerate(path):
        if isinstance(seg, int):
            gone = deleted.get(path[:i], ())
            seg = seg - sum(1 for d in gone if d < seg)
        out.append(seg)
    return tuple(out)
