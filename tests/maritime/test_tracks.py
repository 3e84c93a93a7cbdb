"""Track storage on both backends: positions by vessel and by area and time window, retention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kuroshio.maritime.tracks import PostgresTracks, SqliteTracks, Tracks
from kuroshio.store.base import Store


def _tracks(store: Store, tmp_path: Path) -> Tracks:
    if store.backend == "postgres":
        return PostgresTracks(store.connection)  # type: ignore[attr-defined]
    return SqliteTracks(tmp_path / "tracks.db")


def test_positions_by_vessel_area_and_time_with_retention(store: Any, tmp_path: Path) -> None:
    tracks = _tracks(store, tmp_path)
    try:
        t0 = 1_767_225_600.0
        rows = [(416000001, t0 + i * 60, 24.0 + i * 0.01, 122.0, 12.0, 0.0, "rTWN1") for i in range(50)]
        rows += [(431000002, t0 + i * 60, 30.0, 179.9 + (i % 2) * -359.8, 8.0, 90.0, "rJPN1") for i in range(10)]
        tracks.append(rows, [(416000001, "HAI AN 7", "BX123", 9300001, 70, "TW", "KEELUNG", t0, t0 + 2940)])
        tracks.append([], [(416000001, "HAI AN 7", "BX123", 9300001, 70, "TW", "KAOHSIUNG", t0 - 60, t0 + 3000)])
        assert tracks.vessels() == 1
        track = tracks.track(416000001, since=t0 + 600, until=t0 + 1200)
        assert [round(p.t - t0) for p in track] == list(range(600, 1260, 60))
        assert track[0].lat == 24.1 and track[0].source == "rTWN1"
        box = tracks.area(24.1, 121.9, 24.2, 122.1, since=t0, until=t0 + 86400)
        assert {p.mmsi for p in box} == {416000001} and len(box) == 11
        across = tracks.area(29.0, 179.0, 31.0, -179.0)  # west > east: across the antimeridian
        assert len(across) == 10
        assert tracks.prune(1 / 24, newest=t0 + 4200) == 20  # an hour before the newest: the first 10 minutes go
        assert len(tracks.track(416000001)) == 50 - 10 and len(tracks.track(431000002)) == 0
    finally:
        tracks.close()
