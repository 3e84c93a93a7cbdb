"""STIX 2.1 validation speed: Kuroshio's validator against the OASIS `stix2` parser and `stix2-validator`.

Same run, same objects: every object of the real bundles in ../shared/data/stix (ATT&CK, ATLAS,
Attack Flow, the OASIS examples) plus the invalid cases of ../shared/data/stix-invalid, each
validated one by one (custom content allowed, as the OASIS tools' default mode). Prints objects/s
(median of several passes) and the ratios, and checks that the verdicts agree with stix2-validator.

    python bench/validate_vs_oasis.py [--data ../shared/data] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import stix2
from stix2validator import ValidationOptions, validate_instance

from kuroshio.stix.validate import validate


def load_objects(data: Path) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted((data / "stix").glob("*/*.json*")):
        if path.parent.name == "taxii":
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            doc = json.load(f)
        objects.extend(doc["objects"] if doc.get("type") == "bundle" else [doc])
    cases = json.loads((data / "stix-invalid" / "stix21-validator-invalid-cases.json").read_text())["cases"]
    for case in cases:
        inst = case["instance"]
        if inst.get("type") != "bundle" and isinstance(inst.get("id"), str):
            objects.append(inst)
    return objects


def rate(label: str, fn: Any, objects: list[dict[str, Any]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        for o in objects:
            fn(o)
        samples.append(len(objects) / (time.perf_counter() - t))
    median = statistics.median(samples)
    print(f"  {label:22} {median:>10,.0f} objects/s   (passes: {', '.join(f'{s:,.0f}' for s in samples)})", flush=True)
    return median


def stix2_parse(obj: dict[str, Any]) -> None:
    try:
        stix2.parse(obj, allow_custom=True)
    except Exception:  # an invalid object is a verdict, not a failure of the benchmark
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("KUROSHIO_DATA", "../shared/data")))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data} not found: give --data the folder of the real third-party data")
    logging.disable(logging.CRITICAL)
    objects = load_objects(args.data)
    options = ValidationOptions()
    print(f"{len(objects):,} objects (real bundles and the validator's invalid cases), validated one by one")
    ours = rate("kuroshio", lambda o: validate(o, allow_custom=True), objects, args.repeat)
    parse = rate("stix2.parse", stix2_parse, objects, max(1, args.repeat // 2))
    oasis = rate("stix2-validator", lambda o: validate_instance(o, options), objects, max(1, args.repeat // 2))
    print(f"  ratio: {ours / parse:,.1f}x stix2.parse, {ours / oasis:,.1f}x stix2-validator")
    agree = sum((validate(o, allow_custom=True) is None) == validate_instance(o, options).is_valid for o in objects)
    print(f"  same verdict as stix2-validator on {agree:,} of {len(objects):,} objects "
          "(the differences are the deliberate ones listed in tests/stix/test_validate_oasis.py)")


if __name__ == "__main__":
    main()
