"""The road: waypoints with cumulative km, and per-segment speed limits and lanes.

Positions are kept as km along the route (a 1-D coordinate) and turned into lat/lon only for the
wire: vehicles, regions and hazards all live on the same axis, which keeps the simulation and the
tower rules vectorisable.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.shared.corridor.errors import RouteError

__all__ = ["MPH", "Route", "Segment", "Waypoint", "load_route"]

MPH = 0.44704  # m/s per mph
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Waypoint:
    name: str
    km: float
    lat: float
    lon: float
    interchange: bool


@dataclass(frozen=True, slots=True)
class Segment:
    from_km: float
    to_km: float
    speed_limit_mps: float
    lanes: int


@dataclass(frozen=True)
class Route:
    name: str
    waypoints: tuple[Waypoint, ...]
    segments: tuple[Segment, ...]
    # derived in __post_init__, for the vectorised lookups
    _km: FloatArray = field(init=False, repr=False, compare=False)
    _lat: FloatArray = field(init=False, repr=False, compare=False)
    _lon: FloatArray = field(init=False, repr=False, compare=False)
    _seg_start: FloatArray = field(init=False, repr=False, compare=False)
    _seg_limit: FloatArray = field(init=False, repr=False, compare=False)
    _seg_lanes: npt.NDArray[np.int64] = field(init=False, repr=False, compare=False)
    _leg_heading: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        km = [w.km for w in self.waypoints]
        object.__setattr__(self, "_km", np.array(km))
        object.__setattr__(self, "_lat", np.array([w.lat for w in self.waypoints]))
        object.__setattr__(self, "_lon", np.array([w.lon for w in self.waypoints]))
        object.__setattr__(self, "_seg_start", np.array([s.from_km for s in self.segments]))
        object.__setattr__(self, "_seg_limit", np.array([s.speed_limit_mps for s in self.segments]))
        object.__setattr__(self, "_seg_lanes", np.array([s.lanes for s in self.segments], np.int64))
        # Heading per leg, northbound; southbound is the opposite.
        lat, lon = self._lat, self._lon
        dy = np.diff(lat)
        dx = np.diff(lon) * np.cos(np.radians((lat[:-1] + lat[1:]) / 2))
        object.__setattr__(self, "_leg_heading", (np.degrees(np.arctan2(dx, dy)) + 360.0) % 360.0)

    @property
    def length_km(self) -> float:
        return self.waypoints[-1].km

    @property
    def interchanges_km(self) -> tuple[float, ...]:
        return tuple(w.km for w in self.waypoints if w.interchange)

    def lat_lon(self, km: FloatArray) -> tuple[FloatArray, FloatArray]:
        return np.interp(km, self._km, self._lat), np.interp(km, self._km, self._lon)

    def heading_deg(self, km: FloatArray, northbound: npt.NDArray[np.bool_]) -> FloatArray:
        leg = np.clip(np.searchsorted(self._km, km, side="right") - 1, 0, len(self.waypoints) - 2)
        nb = self._leg_heading[leg]
        return np.where(northbound, nb, (nb + 180.0) % 360.0)

    def _segment(self, km: FloatArray) -> npt.NDArray[np.intp]:
        return np.clip(np.searchsorted(self._seg_start, km, side="right") - 1, 0, len(self.segments) - 1)

    def speed_limit_mps(self, km: FloatArray) -> FloatArray:
        return self._seg_limit[self._segment(km)]

    def lanes(self, km: FloatArray) -> npt.NDArray[np.int64]:
        return self._seg_lanes[self._segment(km)]

    def nearest_waypoint(self, km: float) -> Waypoint:
        return min(self.waypoints, key=lambda w: abs(w.km - km))


def _num(obj: dict[str, Any], key: str, where: str) -> float:
    value = obj.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise RouteError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def parse_route(data: dict[str, Any], source: str = "route") -> Route:
    """Validate and build a route; every fault is one line naming the file and the entry."""
    raw_wps = data.get("waypoints")
    if not isinstance(raw_wps, list) or len(raw_wps) < 2:
        raise RouteError(f"{source}: a route needs a list of at least 2 waypoints")
    wps = []
    for i, w in enumerate(raw_wps):
        where = f"{source}: waypoint {i}"
        if not isinstance(w, dict):
            raise RouteError(f"{where} is not an object")
        lat, lon, km = _num(w, "lat", where), _num(w, "lon", where), _num(w, "km", where)
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise RouteError(f"{where}: lat/lon ({lat}, {lon}) out of range")
        wps.append(Waypoint(str(w.get("name", f"waypoint {i}")), km, lat, lon, bool(w.get("interchange", False))))
    if wps[0].km != 0:
        raise RouteError(f"{source}: the first waypoint must be at km 0, not {wps[0].km}")
    for a, b in itertools.pairwise(wps):
        if b.km <= a.km:
            raise RouteError(f"{source}: km must increase along the route ({a.name!r} {a.km} → {b.name!r} {b.km})")
    raw_segs = data.get("segments")
    if not isinstance(raw_segs, list) or not raw_segs:
        raise RouteError(f"{source}: a route needs a non-empty list of segments (speed limit, lanes)")
    segs = []
    for i, s in enumerate(raw_segs):
        where = f"{source}: segment {i}"
        if not isinstance(s, dict):
            raise RouteError(f"{where} is not an object")
        mph, lanes = _num(s, "speed_limit_mph", where), s.get("lanes")
        if mph <= 0 or not isinstance(lanes, int) or lanes < 1:
            raise RouteError(f"{where}: speed limit must be > 0 and lanes a whole number ≥ 1")
        segs.append(Segment(_num(s, "from_km", where), _num(s, "to_km", where), mph * MPH, lanes))
    _check_cover(source, "segments", [(s.from_km, s.to_km) for s in segs], wps[-1].km)
    return Route(str(data.get("name", source)), tuple(wps), tuple(segs))


def _check_cover(source: str, what: str, spans: list[tuple[float, float]], length: float) -> None:
    """Spans must tile [0, length] exactly: no gap, no overlap, none empty."""
    tol = 1e-6
    if abs(spans[0][0]) > tol:
        raise RouteError(f"{source}: {what} must start at km 0, not {spans[0][0]}")
    for i, (lo, hi) in enumerate(spans):
        if hi <= lo:
            raise RouteError(f"{source}: {what} {i} is empty or reversed ({lo} → {hi} km)")
        if i and abs(lo - spans[i - 1][1]) > tol:
            kind = "overlap" if lo < spans[i - 1][1] else "gap"
            raise RouteError(f"{source}: {what} {i - 1} and {i} {kind} ({spans[i - 1][1]} vs {lo} km)")
    if abs(spans[-1][1] - length) > tol:
        raise RouteError(f"{source}: {what} end at km {spans[-1][1]}, the route at {length}")


def load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RouteError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise RouteError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RouteError(f"{path}: expected a JSON object")
    return data


def load_route(path: Path) -> Route:
    return parse_route(load_json(path), str(path))
