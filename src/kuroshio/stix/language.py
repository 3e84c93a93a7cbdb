"""RFC 5646 language tags as STIX `lang`, `languages` and language-content `contents` keys use them.

The structure is checked per RFC 5646 (language-extlang-script-region-variant-extension-privateuse);
subtags are checked against the ISO registries that pycountry ships (no network needed):
ISO 639-1 for the primary language (RFC 5646 wants the shortest ISO 639 code), ISO 15924 for
scripts, ISO 3166-1 alpha-2 or a UN M.49 area code for regions. Three-letter ISO 639-2 codes are
additionally accepted where `legacy_iso639_2` is set (software `languages`, as the OASIS
validator allows for backward compatibility).
"""

from __future__ import annotations

import re
from functools import lru_cache

_TAG = re.compile(
    r"(?P<lang>[A-Za-z]{2,3})(?:-[A-Za-z]{3}){0,3}"
    r"(?:-(?P<script>[A-Za-z]{4}))?"
    r"(?:-(?P<region>[A-Za-z]{2}|\d{3}))?"
    r"(?:-(?:[A-Za-z\d]{5,8}|\d[A-Za-z\d]{3}))*"
    r"(?:-[0-9A-WYZa-wyz](?:-[A-Za-z\d]{2,8})+)*"
    r"(?:-[Xx](?:-[A-Za-z\d]{1,8})+)?\Z"
)
_PRIVATE = re.compile(r"[Xx](?:-[A-Za-z\d]{1,8})+\Z")
# UN M.49 area codes that RFC 5646 registers as region subtags.
_M49 = frozenset(
    ["001", "002", "003", "005", "009", "011", "013", "014", "015", "017", "018", "019", "021", "029", "030", "034", "035", "039", "053", "054", "057", "061", "142", "143", "145", "150", "151", "154", "155", "202", "419"]
)


@lru_cache(maxsize=1)
def _registries() -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]:
    import pycountry

    two = set()
    three = set()
    for lang in pycountry.languages:
        a2 = getattr(lang, "alpha_2", None)
        if a2:
            two.add(a2)
            three.add(lang.alpha_3)
            b = getattr(lang, "bibliographic", None)
            if b:
                three.add(b)
    scripts = {s.alpha_4.lower() for s in pycountry.scripts}
    regions = {c.alpha_2.lower() for c in pycountry.countries}
    return frozenset(two), frozenset(three), frozenset(scripts), frozenset(regions)


@lru_cache(maxsize=4096)
def is_language_tag(tag: str, legacy_iso639_2: bool = False) -> bool:
    if type(tag) is not str or len(tag) > 64:
        return False
    if _PRIVATE.match(tag):
        return True
    m = _TAG.match(tag)
    if m is None:
        return False
    two, three, scripts, regions = _registries()
    lang = m.group("lang").lower()
    if len(lang) == 2:
        if lang not in two:
            return False
    elif not (legacy_iso639_2 and lang in three):
        return False
    script = m.group("script")
    if script is not None and script.lower() not in scripts:
        return False
    region = m.group("region")
    if region is not None:
        if region.isdigit():
            return region in _M49
        return region.lower() in regions
    return True
