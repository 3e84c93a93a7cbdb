"""Indicator matching: Kuroshio's index against the OASIS reference matcher (stix2-matcher), same run.

Indicators: a realistic mix (IPv4 and IPv6 equality, CIDR blocks, domains, domain suffixes, URLs,
file hashes, about 1 % compound patterns with qualifiers, some forms no index can decide). Observations:
what sensors' logs give (an address pair and its network traffic, with a DNS name, an HTTP URL or a
file and its hashes), about 0.5 % of them carrying a value some indicator names, every one distinct
(no value cache helps), one second apart, generated from fixed seeds outside the timed part (building
observations from log lines is not part of it: `bench/observe.py` measures whole logs). Each batch of
1,000 is generated just before it is matched, as the correlation service reads a batch and then matches
it; a second figure ("cold") generates 50,000 at a time first, so that every batch comes from memory
no cache holds any more — the same observations either way.

Measured: index build time (parse, compile, file), resident memory the index adds, observations/s
on one core through `Index.match_many` in batches of 1,000 as the correlation service uses it (batches
just built, and cold), and through `Index.match` one at a time, passes alternating (medians), hits. stix2-matcher cannot do 1,000,000
observations against 100,000 patterns (it evaluates one pattern against one set of observations per
call), so it runs on a subset and is compared per evaluation: (pattern, observation) pairs per second,
and the observations/s that means against the full indicator set.

    python bench/correlate.py                       # 100,000 indicators, 1,000,000 observations
    python bench/correlate.py --indicators 10000 --observations 200000
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import time
import uuid
from typing import Any

from kuroshio.correlate.evaluate import Observed
from kuroshio.correlate.index import Index

TS = "2026-01-01T00:00:00.000Z"
T0 = 1_767_225_600_000_000  # 2026-01-01 in microseconds
BATCH = 1000  # observations matched together, as the correlation service does


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def ip4(r: random.Random) -> str:
    return f"{r.randint(1, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"


def ip6(r: random.Random) -> str:
    return "2001:db8:" + ":".join(f"{r.randint(0, 65535):x}" for _ in range(6))


WORDS = ["alpha", "bravo", "cobalt", "delta", "ember", "falcon", "garnet", "harbor", "indigo", "jasper", "kelp", "lotus"]


def domain(r: random.Random) -> str:
    return f"{r.choice(WORDS)}{r.randint(0, 10**6)}.{r.choice(['com', 'net', 'org', 'tw', 'jp', 'info'])}"


def sha256(r: random.Random) -> str:
    return f"{r.getrandbits(256):064x}"


def md5(r: random.Random) -> str:
    return f"{r.getrandbits(128):032x}"


def make_indicators(n: int, r: random.Random) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Indicators and, per kind, values that hit them (so some observations match)."""
    hits: dict[str, list[str]] = {"ip4": [], "ip6": [], "domain": [], "url": [], "sha256": [], "md5": []}
    out = []
    for i in range(n):
        x = r.random()
        if x < 0.30:
            v = ip4(r)
            hits["ip4"].append(v)
            pattern = f"[ipv4-addr:value = '{v}']"
        elif x < 0.35:
            v = ip6(r)
            hits["ip6"].append(v)
            pattern = f"[ipv6-addr:value = '{v}']"
        elif x < 0.43:
            plen = r.choice([16, 20, 22, 24, 24, 24, 28, 30])
            base = ip4(r).rsplit(".", 1)[0] + ".0"
            pattern = f"[ipv4-addr:value ISSUBSET '{base}/{plen}']"
        elif x < 0.45:
            pattern = f"[network-traffic:dst_ref.value ISSUBSET '{ip4(r).rsplit('.', 1)[0]}.0/24']"
        elif x < 0.68:
            v = domain(r)
            hits["domain"].append(v)
            pattern = f"[domain-name:value = '{v}']"
        elif x < 0.72:
            v = domain(r)
            hits["domain"].append("www." + v)
            pattern = f"[domain-name:value LIKE '%.{v}']"
        elif x < 0.82:
            v = f"http://{domain(r)}/{r.choice(WORDS)}/{r.randint(0, 9999)}.php"
            hits["url"].append(v)
            pattern = f"[url:value = '{v}']"
        elif x < 0.92:
            v = sha256(r)
            hits["sha256"].append(v)
            pattern = f"[file:hashes.'SHA-256' = '{v}']"
        elif x < 0.985:
            v = md5(r)
            hits["md5"].append(v)
            pattern = f"[file:hashes.MD5 = '{v}' OR file:hashes.'SHA-1' = '{sha256(r)[:40]}']"
        elif x < 0.99:  # forms the index cannot decide by key
            pattern = r.choice([
                f"[file:size > {r.randint(10**6, 10**9)} AND file:name MATCHES '^{r.choice(WORDS)}']",
                f"[network-traffic:dst_port != {r.randint(1, 65535)} AND network-traffic:src_port = {r.randint(1, 65535)}]",
            ])
        else:  # compound, with qualifiers
            a, d = ip4(r), domain(r)
            hits["ip4"].append(a)
            hits["domain"].append(d)
            pattern = r.choice([
                f"([ipv4-addr:value = '{a}'] FOLLOWEDBY [domain-name:value = '{d}']) WITHIN 300 SECONDS",
                f"[ipv4-addr:value = '{a}'] REPEATS 3 TIMES",
                f"([domain-name:value = '{d}'] AND [ipv4-addr:value = '{a}']) START t'2026-01-01T00:00:00Z' STOP t'2027-01-01T00:00:00Z'",
            ])
        out.append({
            "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.UUID(int=i + 1, version=4)}",
            "created": TS, "modified": TS, "pattern": pattern, "pattern_type": "stix", "valid_from": TS,
        })
    return out, hits


def make_observations(n: int, hits: dict[str, list[str]], r: random.Random, hit_rate: float) -> list[Observed]:
    out = []
    for i in range(n):
        hit = r.random() < hit_rate

        def pick(kind: str, make: Any, hit: bool = hit) -> str:
            return r.choice(hits[kind]) if hit and hits[kind] else make(r)

        src = {"type": "ipv4-addr", "id": f"ipv4-addr--s{i}", "value": ip4(r)}
        dst = {"type": "ipv4-addr", "id": f"ipv4-addr--d{i}", "value": pick("ip4", ip4)}
        flow = {
            "type": "network-traffic", "id": f"network-traffic--{i}", "src_ref": src["id"], "dst_ref": dst["id"],
            "src_port": r.randint(1024, 65535), "dst_port": r.choice([53, 80, 443, 8080]), "protocols": ["ipv4", "tcp"],
        }
        objs = [src, dst, flow]
        kind = r.random()
        if kind < 0.4:
            objs.append({"type": "domain-name", "id": f"domain-name--{i}", "value": pick("domain", domain)})
        elif kind < 0.7:
            objs.append({"type": "url", "id": f"url--{i}", "value": pick("url", lambda rr: f"http://{domain(rr)}/index.html")})
        elif kind < 0.85:
            objs.append({
                "type": "file", "id": f"file--{i}", "name": f"{r.choice(WORDS)}.bin", "size": r.randint(100, 10**6),
                "hashes": {"SHA-256": pick("sha256", sha256), "MD5": pick("md5", md5)},
            })
        elif kind < 0.9:
            objs[1] = {"type": "ipv6-addr", "id": f"ipv6-addr--d{i}", "value": pick("ip6", ip6)}
            flow["dst_ref"] = objs[1]["id"]
        out.append(Observed({o["id"]: o for o in objs}, T0, T0, 1, i))
    return out


def run_ours(indicators: list[dict[str, Any]], chunks: Any, total: int, passes: int) -> dict[str, Any]:
    """Build the index, then match `total` observations `passes` times in each mode; `chunks(cold)` gives
    them in chunks generated outside the timed part (the same observations on every pass and in every mode)."""
    gc.collect()
    before = rss_mb()
    t = time.perf_counter()
    index = Index()
    for ind in indicators:
        index.add(ind)
    build = time.perf_counter() - t
    gc.collect()
    memory = rss_mb() - before
    gc.freeze()  # as the correlation service does after taking in many indicators
    modes = ("batch", "cold", "single")
    rates: dict[str, list[float]] = {m: [] for m in modes}
    hits = 0
    step = 1_000_000  # one second between observations
    for p in range(len(modes) * passes):  # in turn: batches just built, cold batches, one at a time
        mode = modes[p % len(modes)]
        hits = k = 0
        elapsed = 0.0
        for chunk in chunks(mode == "cold"):
            for obs in chunk:
                obs.first = obs.last = T0 + (p * total + k) * step  # time moves on from pass to pass
                k += 1
            t = time.perf_counter()
            if mode == "single":
                for obs in chunk:
                    hits += len(index.match(obs))
            else:
                for start in range(0, len(chunk), BATCH):
                    hits += sum(len(h) for h in index.match_many(chunk[start:start + BATCH]))
            elapsed += time.perf_counter() - t
        rates[mode].append(k / elapsed)
    return {"build_s": build, "memory_mb": memory, "hits": hits, "stats": index.stats,
            **{m: statistics.median(r) for m, r in rates.items()}, **{f"{m}_rates": r for m, r in rates.items()}}


def run_matcher(indicators: list[dict[str, Any]], pool: list[Observed], patterns: int, observations: int) -> dict[str, Any]:
    from stix2matcher.matcher import Pattern as RefPattern

    t = time.perf_counter()
    compiled = [RefPattern(ind["pattern"], "2.1") for ind in indicators[:patterns]]
    compile_s = time.perf_counter() - t
    bundles = []
    for obs in pool[:observations]:
        od = {
            "type": "observed-data", "id": f"observed-data--{uuid.uuid4()}", "first_observed": "2026-01-01T00:00:00Z",
            "last_observed": "2026-01-01T00:00:00Z", "number_observed": 1, "object_refs": list(obs.objects),
        }
        bundles.append({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [od, *obs.objects.values()]})
    t = time.perf_counter()
    hits = errors = 0
    for b in bundles:
        for pat in compiled:
            try:
                if pat.match([b]):
                    hits += 1
            except Exception:  # e.g. an IPv6 address against an IPv4 CIDR: the matcher raises
                errors += 1
    elapsed = time.perf_counter() - t
    return {"compile_per_s": patterns / compile_s, "evals_per_s": patterns * observations / elapsed, "hits": hits, "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--indicators", type=int, default=100_000)
    ap.add_argument("--observations", type=int, default=1_000_000)
    ap.add_argument("--cold-chunk", type=int, default=50_000,
                    help="observations generated at a time for the cold figure (outside the timing)")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--hit-rate", type=float, default=0.005)
    ap.add_argument("--matcher-patterns", type=int, default=1000)
    ap.add_argument("--matcher-observations", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    r = random.Random(args.seed)
    indicators, hit_values = make_indicators(args.indicators, r)

    def batch(b: int) -> list[Observed]:  # the b-th batch of observations, the same on every call
        size = min(BATCH, args.observations - b * BATCH)
        return make_observations(size, hit_values, random.Random(args.seed * 1_000_003 + b), args.hit_rate)

    def chunks(cold: bool) -> Any:
        batches = range(-(-args.observations // BATCH))
        if not cold:
            yield from map(batch, batches)
            return
        per = max(1, args.cold_chunk // BATCH)
        for start in range(0, len(batches), per):
            yield [obs for b in batches[start:start + per] for obs in batch(b)]

    print(f"{args.indicators:,} indicators, {args.observations:,} distinct observations (generated outside the "
          f"timing: each batch just before it is matched; cold: {args.cold_chunk:,} at a time), one core")
    ours = run_ours(indicators, chunks, args.observations, args.passes)
    s = ours["stats"]
    print(f"kuroshio index: build {ours['build_s']:.2f} s ({args.indicators / ours['build_s']:,.0f} indicators/s), "
          f"memory +{ours['memory_mb']:.0f} MB, leaves exact/keyed/residual {s.exact_leaves:,}/{s.keyed_leaves:,}/{s.residual_leaves:,}, "
          f"compound {s.compound:,}")
    for mode, label in (("batch", "match_many, batches of 1,000"), ("cold", "match_many, cold batches     "),
                        ("single", "match, one at a time         ")):
        print(f"kuroshio {label}: {ours[mode]:,.0f} observations/s (median of {args.passes}: "
              f"{', '.join(f'{x:,.0f}' for x in ours[mode + '_rates'])})" + (f", {ours['hits']:,} hits per pass" if mode == "single" else ""))
    evals = ours["batch"] * args.indicators
    if args.matcher_patterns:
        ref = run_matcher(indicators, batch(0), args.matcher_patterns, args.matcher_observations)
        print(f"stix2-matcher: {args.matcher_patterns:,} patterns x {args.matcher_observations} observations: "
              f"compiles {ref['compile_per_s']:,.0f} patterns/s, {ref['evals_per_s']:,.0f} evaluations/s "
              f"= {ref['evals_per_s'] / args.indicators:.3f} observations/s against {args.indicators:,} indicators "
              f"({ref['evals_per_s'] / 1000:.1f} observations/s against 1,000; {ref['errors']} evaluations raised)")
        print(f"ratio per evaluation (kuroshio / stix2-matcher): {evals / ref['evals_per_s']:,.0f}x")


if __name__ == "__main__":
    main()
