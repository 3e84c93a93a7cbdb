"""Geography for the maritime picture: distances, flags from MMSIs, the land mask, zones and lines.

Distances are great-circle (haversine, mean Earth radius). Zones are GeoJSON polygons (patrol boxes,
12-nautical-mile buffers around named features, operator areas) and lines (strait gates), tested
with a bounding-box check first and GEOS (shapely) only when the box says maybe. The land mask is a
GeoJSON of land polygons (Natural Earth's `land` layer, or any finer one the operator brings), with
the answer for each 0.1-degree cell cached: most cells are wholly sea or wholly land.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import shapely
from shapely import affinity
from shapely.geometry import LineString, Point, box, shape
from shapely.prepared import prep

EARTH_RADIUS_M = 6_371_008.8
NM = 1852.0  # metres in a nautical mile
KNOT = NM / 3600.0  # metres per second


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def valid_position(lat: float | None, lon: float | None) -> bool:
    """A transmitted position that means a place (91 / 181 mean "not available")."""
    return lat is not None and lon is not None and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0 and \
        not (lat == 0.0 and lon == 0.0)


# --- flags: the Maritime Identification Digits of ship station MMSIs (ITU-R M.585, appendix 43) -----

_MID = """
201 AL 202 AD 203 AT 204 PT 205 BE 206 BY 207 BG 208 VA 209 CY 210 CY 211 DE 212 CY 213 GE 214 MD 215 MT 216 AM
218 DE 219 DK 220 DK 224 ES 225 ES 226 FR 227 FR 228 FR 229 MT 230 FI 231 FO 232 GB 233 GB 234 GB 235 GB 236 GI
237 GR 238 HR 239 GR 240 GR 241 GR 242 MA 243 HU 244 NL 245 NL 246 NL 247 IT 248 MT 249 MT 250 IE 251 IS 252 LI
253 LU 254 MC 255 PT 256 MT 257 NO 258 NO 259 NO 261 PL 262 ME 263 PT 264 RO 265 SE 266 SE 267 SK 268 SM 269 CH
270 CZ 271 TR 272 UA 273 RU 274 MK 275 LV 276 EE 277 LT 278 SI 279 RS 301 AI 303 US 304 AG 305 AG 306 CW 307 AW
308 BS 309 BS 310 BM 311 BS 312 BZ 314 BB 316 CA 319 KY 321 CR 323 CU 325 DM 327 DO 329 GP 330 GD 331 GL 332 GT
334 HN 336 HT 338 US 339 JM 341 KN 343 LC 345 MX 347 MQ 348 MS 350 NI 351 PA 352 PA 353 PA 354 PA 355 PA 356 PA
357 PA 358 PR 359 SV 361 PM 362 TT 364 TC 366 US 367 US 368 US 369 US 370 PA 371 PA 372 PA 373 PA 374 PA 375 VC
376 VC 377 VC 378 VG 379 VI 401 AF 403 SA 405 BD 408 BH 410 BT 412 CN 413 CN 414 CN 416 TW 417 LK 419 IN 422 IR
423 AZ 425 IQ 428 IL 431 JP 432 JP 434 TM 436 KZ 437 UZ 438 JO 440 KR 441 KR 443 PS 445 KP 447 KW 450 LB 451 KG
453 MO 455 MV 457 MN 459 NP 461 OM 463 PK 466 QA 468 SY 470 AE 471 AE 472 TJ 473 YE 475 YE 477 HK 478 BA 501 TF
503 AU 506 MM 508 BN 510 FM 511 PW 512 NZ 514 KH 515 KH 516 CX 518 CK 520 FJ 523 CC 525 ID 529 KI 531 LA 533 MY
536 MP 538 MH 540 NC 542 NU 544 NR 546 PF 548 PH 550 TL 553 PG 555 PN 557 SB 559 AS 561 WS 563 SG 564 SG 565 SG
566 SG 567 TH 570 TO 572 TV 574 VN 576 VU 577 VU 578 WF 601 ZA 603 AO 605 DZ 607 TF 608 SH 609 BI 610 BJ 611 BW
612 CF 613 CM 615 CG 616 KM 617 CV 618 TF 619 CI 620 KM 621 DJ 622 EG 624 ET 625 ER 626 GA 627 GH 629 GM 630 GW
631 GQ 632 GN 633 BF 634 KE 635 TF 636 LR 637 LR 638 SS 642 LY 644 LS 645 MU 647 MG 649 ML 650 MZ 654 MR 655 MW
656 NE 657 NG 659 NA 660 RE 661 RW 662 SD 663 SN 664 SC 665 SH 666 SO 667 SL 668 ST 669 SZ 670 TD 671 TG 672 TN
674 TZ 675 UG 676 CD 677 TZ 678 ZM 679 ZW 701 AR 710 BR 720 BO 725 CL 730 CO 735 EC 740 FK 745 GF 750 GY 755 PY
760 PE 765 SR 770 UY 775 VE
"""
MID_FLAGS: dict[int, str] = dict(zip(map(int, _MID.split()[::2]), _MID.split()[1::2], strict=True))


def mid(mmsi: int) -> int | None:
    """The MID of an MMSI: ship stations (MIDxxxxxx), coast stations (00MIDxxxx), group calls
    (0MIDxxxxx), SAR aircraft (111MIDxxx), aids to navigation (99MIDxxxx), craft with a mother ship
    (98MIDxxxx), handheld radios (8MIDxxxxx); None for the rest (970-974 beacons, test numbers)."""
    s = f"{mmsi:09d}"
    if len(s) != 9:
        return None
    if s.startswith("00"):
        return int(s[2:5])
    if s.startswith("0"):
        return int(s[1:4])
    if s.startswith("111"):
        return int(s[3:6])
    if s.startswith(("98", "99")):
        return int(s[2:5])
    if s[0] == "8":
        return int(s[1:4])
    if s[0] in "234567":
        return int(s[:3])
    return None


def flag(mmsi: int) -> str | None:
    """The ISO 3166 code of the flag an MMSI's MID assigns, or None (no valid MID)."""
    m = mid(mmsi)
    return MID_FLAGS.get(m) if m is not None else None


def is_ship_station(mmsi: int) -> bool:
    return 200_000_000 <= mmsi <= 799_999_999


# --- land -----------------------------------------------------------------------------------------

CELL = 0.1  # degrees: the land mask caches its answer per cell


class Land:
    """Whether a position is on land; `near_land` looks around it."""

    def on_land(self, lat: float, lon: float) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def near_land(self, lat: float, lon: float, metres: float) -> bool:
        """Whether land lies within `metres` of the position (ports, anchorages, the coast)."""
        return self.on_land(lat, lon) or any(self.on_land(*pt) for pt in _around(lat, lon, metres, _EIGHT))

    def well_inside(self, lat: float, lon: float, metres: float) -> bool:
        """Whether the position is on land with land `metres` around it too (coastlines are coarse)."""
        return self.on_land(lat, lon) and all(self.on_land(*pt) for pt in _around(lat, lon, metres, _FOUR))


_FOUR = ((1, 0), (-1, 0), (0, 1), (0, -1))
_EIGHT = (*_FOUR, (0.7, 0.7), (0.7, -0.7), (-0.7, 0.7), (-0.7, -0.7))


def _around(lat: float, lon: float, metres: float, directions: tuple[tuple[float, float], ...]) -> Iterator[tuple[float, float]]:
    """Points `metres` away from a position in the given (north, east) directions."""
    dlat = metres / 111_320.0
    dlon = dlat / max(0.01, math.cos(math.radians(lat)))
    for a, b in directions:
        yield lat + a * dlat, lon + b * dlon


class GlobeLand(Land):
    """The GLOBE 30-arc-second (about 1 km) land mask that the `global-land-mask` package ships (its raster
    marks water), held as packed bits: 117 MB, read in about a second without unpacking the whole raster."""

    ROWS, COLS = 21600, 43200
    PER_DEGREE = 120

    def __init__(self) -> None:
        import importlib.util
        import zipfile

        import numpy as np

        spec = importlib.util.find_spec("global_land_mask")
        if spec is None or spec.origin is None:
            raise ValueError("the global-land-mask package is not installed: install it, or set maritime.land to "
                             "a GeoJSON of land polygons (or to \"none\")")
        path = Path(spec.origin).parent / "globe_combined_mask_compressed.npz"
        row_bytes = self.COLS // 8
        packed = bytearray(self.ROWS * row_bytes)
        with zipfile.ZipFile(path) as z, z.open("mask.npy") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
            if tuple(shape) != (self.ROWS, self.COLS) or dtype != np.bool_:
                raise ValueError(f"{path}: not the expected GLOBE land mask ({shape}, {dtype})")
            for r0 in range(0, self.ROWS, 200):
                n = min(200, self.ROWS - r0)
                rows = np.frombuffer(f.read(n * self.COLS), dtype=np.bool_).reshape(n, self.COLS)
                packed[r0 * row_bytes:(r0 + n) * row_bytes] = np.packbits(rows, axis=1).tobytes()
        self._bits = packed
        self._row_bytes = row_bytes

    def on_land(self, lat: float, lon: float) -> bool:
        row = min(self.ROWS - 1, max(0, int((90.0 - lat) * self.PER_DEGREE)))
        col = min(self.COLS - 1, max(0, int((lon + 180.0) * self.PER_DEGREE)))
        return not self._bits[row * self._row_bytes + (col >> 3)] >> (7 - (col & 7)) & 1  # the mask marks water


class LandMask(Land):
    """Whether a position is on land, from GeoJSON land polygons."""

    def __init__(self, geometries: Iterable[Any]) -> None:
        polys = [g for g in geometries if not g.is_empty]
        self.geometry = shapely.union_all(polys) if polys else shapely.Polygon()
        shapely.prepare(self.geometry)
        self._prepared = prep(self.geometry)
        self._coarse: dict[tuple[int, int], bool | None] = {}  # 1-degree cells: True land, False sea, None mixed
        self._cells: dict[tuple[int, int], bool | None] = {}  # 0.1-degree cells inside mixed ones

    @classmethod
    def from_geojson(cls, path: Path) -> LandMask:
        return cls(_geometries(orjson.loads(path.read_bytes())))

    def on_land(self, lat: float, lon: float) -> bool:
        # whole degrees first (most of the ocean is settled there), then 0.1-degree cells, then the point
        coarse = (math.floor(lat), math.floor(lon))
        state = self._coarse.get(coarse, 0)
        if state == 0:
            state = self._classify_degree(*coarse)
        if state is not None:
            return bool(state)
        state = self._cells[(math.floor(lat / CELL), math.floor(lon / CELL))]
        if state is None:
            return bool(shapely.contains_xy(self.geometry, lon, lat))
        return bool(state)

    def _classify_degree(self, south: int, west: int) -> bool | None:
        """Classify a 1-degree cell (all land, all sea, or crossed by the coast) and, when the coast
        crosses it, its hundred 0.1-degree cells at once (vectorised GEOS calls)."""
        cell = box(west, south, west + 1, south + 1)
        if not self._prepared.intersects(cell):
            state: bool | None = False
        elif self._prepared.contains(cell):
            state = True
        else:
            state = None
            steps = round(1 / CELL)
            keys = [(round(south / CELL) + i, round(west / CELL) + j) for i in range(steps) for j in range(steps)]
            cells = shapely.box([k[1] * CELL for k in keys], [k[0] * CELL for k in keys],
                                [(k[1] + 1) * CELL for k in keys], [(k[0] + 1) * CELL for k in keys])
            touches = shapely.intersects(self.geometry, cells)
            inside = shapely.contains(self.geometry, cells)
            for key, t, c in zip(keys, touches, inside, strict=True):
                self._cells[key] = True if c else (None if t else False)
        self._coarse[(south, west)] = state
        return state



def land_for(setting: str, home: Path) -> Land | None:
    """The land mask a node's `maritime.land` names: "globe" (the packaged 1-km mask, the default),
    a GeoJSON file of land polygons, or "none"."""
    if setting in ("", "none"):
        return None
    if setting == "globe":
        return _globe()
    path = Path(setting) if Path(setting).is_absolute() else home / setting
    return LandMask.from_geojson(path)


_GLOBE: list[GlobeLand] = []


def _globe() -> GlobeLand:
    """One GLOBE mask per process (it is read-only and 117 MB)."""
    if not _GLOBE:
        _GLOBE.append(GlobeLand())
    return _GLOBE[0]


def _geometries(doc: Any) -> list[Any]:
    """Shapely geometries of a GeoJSON FeatureCollection, Feature or geometry."""
    kind = doc.get("type") if isinstance(doc, dict) else None
    if kind == "FeatureCollection":
        return [g for f in doc.get("features", []) for g in _geometries(f)]
    if kind == "Feature":
        return _geometries(doc.get("geometry")) if doc.get("geometry") else []
    if kind in ("Polygon", "MultiPolygon", "LineString", "MultiLineString", "Point", "GeometryCollection"):
        return [shape(doc)]
    raise ValueError("not GeoJSON: expected a FeatureCollection, a Feature or a geometry")


# --- zones and gates -----------------------------------------------------------------------------


def buffer_nm(geometry: Any, nm: float) -> Any:
    """`geometry` grown by `nm` nautical miles (in a local equirectangular frame: exact enough for
    features a few hundred kilometres across, such as islands and their 12-nm territorial seas)."""
    lat0 = geometry.centroid.y
    k = max(0.01, math.cos(math.radians(lat0)))
    flat = affinity.scale(geometry, xfact=k, yfact=1.0, origin=(0, 0))
    grown = flat.buffer(nm / 60.0, quad_segs=16)
    return affinity.scale(grown, xfact=1 / k, yfact=1.0, origin=(0, 0))


@dataclass
class Zone:
    """A named area (entry, exit, dwell) or a gate line (transits with their direction)."""

    name: str
    geometry: Any
    kind: str = "area"  # area | gate
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    _prepared: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.bounds = self.geometry.bounds
        self._prepared = prep(self.geometry)
        if self.kind == "gate" and not isinstance(self.geometry, LineString):
            raise ValueError(f"gate {self.name}: a gate is a GeoJSON LineString")

    def contains(self, lat: float, lon: float) -> bool:
        x0, y0, x1, y1 = self.bounds
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            return False
        return self._prepared.contains(Point(lon, lat))

    def crossing(self, lat1: float, lon1: float, lat2: float, lon2: float) -> int:
        """For a gate: 0 when the move does not cross it; +1 crossing from its left to its right
        (looking along the line from its first point to its last), -1 the other way."""
        x0, y0, x1, y1 = self.bounds
        if max(lon1, lon2) < x0 or min(lon1, lon2) > x1 or max(lat1, lat2) < y0 or min(lat1, lat2) > y1:
            return 0
        move = LineString([(lon1, lat1), (lon2, lat2)])
        if not self._prepared.intersects(move):
            return 0
        coords = list(self.geometry.coords)
        for (ax, ay), (bx, by) in itertools.pairwise(coords):
            if LineString([(ax, ay), (bx, by)]).intersects(move):
                side1 = (bx - ax) * (lat1 - ay) - (by - ay) * (lon1 - ax)
                side2 = (bx - ax) * (lat2 - ay) - (by - ay) * (lon2 - ax)
                if side1 > 0 >= side2:
                    return 1
                if side1 < 0 <= side2:
                    return -1
        return 0


# The gaps of the first island chain that partners watch for transits (approximate gate lines, each
# drawn from the northern/eastern shore to the southern/western one).
FIRST_ISLAND_CHAIN = {
    "Miyako Strait": [(127.65, 26.10), (125.45, 24.80)],
    "Yonaguni-Taiwan": [(123.00, 24.45), (121.87, 24.60)],
    "Bashi Channel": [(121.95, 21.11), (120.85, 21.90)],
}


def gates_of_first_island_chain() -> list[Zone]:
    return [Zone(name, LineString(coords), "gate") for name, coords in FIRST_ISLAND_CHAIN.items()]


def zones_from_geojson(doc: Any, *, name: str | None = None, kind: str | None = None,
                       buffer: float = 0.0) -> list[Zone]:
    """Zones from GeoJSON: each feature one zone, named by its `name` property (or `name`)."""
    out = []
    features = doc.get("features", [doc]) if isinstance(doc, dict) and doc.get("type") == "FeatureCollection" \
        else [doc]
    for i, feature in enumerate(features):
        props = feature.get("properties") or {} if isinstance(feature, dict) and feature.get("type") == "Feature" else {}
        geoms = _geometries(feature)
        if not geoms:
            continue
        geom = shapely.union_all(geoms) if len(geoms) > 1 else geoms[0]
        zname = name or props.get("name") or f"zone {i + 1}"
        if len(features) > 1 and name:
            zname = f"{name} {i + 1}"
        grow = float(props.get("buffer_nm", buffer) or 0.0)
        zkind = kind or props.get("kind") or ("gate" if isinstance(geom, LineString) and not grow else "area")
        if zkind == "area" and (grow or geom.geom_type in ("Point", "LineString", "MultiLineString")):
            geom = buffer_nm(geom, grow or 0.1)
        out.append(Zone(zname, geom, zkind))
    return out
