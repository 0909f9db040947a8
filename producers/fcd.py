"""SUMO floating-car data (FCD) in: a SUMO user's trajectories replayed through corridor's towers.

SUMO writes `--fcd-output` as `<fcd-export><timestep time="…"><vehicle id x y angle speed lane …/>`;
with `--fcd-output.geo`, x and y are longitude and latitude (the only form that can be placed on
this corridor). Each position is projected onto the route (km along I-69); its carriageway comes
from the vehicle's heading against the road's. Points further than `max_off_route_km` from the
route are not corridor traffic: they are counted and left out, never silently. SUMO's vehicle ids
become corridor's (veh-0000001, … in order of first appearance); the mapping is kept.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pipeline.shared.corridor import Corridor
from pipeline.shared.errors import ConfigError
from producers.cam import CamTrigger
from producers.fleet import TelemetryBatch

__all__ = ["FcdTrace", "ReplayFleet", "project_onto_route", "read_fcd"]

F = npt.NDArray[np.float64]
I = npt.NDArray[np.int64]  # noqa: E741


@dataclass(slots=True)
class FcdStep:
    t: float
    num: I
    km: F
    northbound: npt.NDArray[np.bool_]
    speed: F
    lane: I


@dataclass(slots=True)
class FcdTrace:
    steps: list[FcdStep]
    ids: dict[str, int] = field(default_factory=dict)  # SUMO id → corridor vehicle number
    off_route: int = 0  # points left out: too far from the corridor

    @property
    def step_s(self) -> float:
        """The trace's time step (SUMO's --step-length as written)."""
        if len(self.steps) < 2:
            return 1.0
        return float(np.median(np.diff([s.t for s in self.steps])))


def project_onto_route(corridor: Corridor, lon: F, lat: F) -> tuple[F, F, F]:
    """(km along the route, distance from it in km, the road's northbound heading there) per point,
    on a local equirectangular plane: exact enough over a few hundred metres of a 78 km route."""
    wp = corridor.route.waypoints
    lat0 = math.radians(float(np.mean([w.lat for w in wp])))
    kx, ky = 111.32 * math.cos(lat0), 110.57  # km per degree
    ax = np.array([w.lon for w in wp]) * kx
    ay = np.array([w.lat for w in wp]) * ky
    akm = np.array([w.km for w in wp])
    px, py = lon[:, None] * kx, lat[:, None] * ky
    dx, dy = np.diff(ax), np.diff(ay)
    seg2 = dx**2 + dy**2
    u = np.clip(((px - ax[:-1]) * dx + (py - ay[:-1]) * dy) / seg2, 0.0, 1.0)
    dist = np.hypot(px - (ax[:-1] + u * dx), py - (ay[:-1] + u * dy))
    best = np.argmin(dist, axis=1)
    rows = np.arange(len(lon))
    km = akm[best] + u[rows, best] * np.diff(akm)[best]
    heading = (np.degrees(np.arctan2(dx[best], dy[best])) + 360.0) % 360.0
    return km, dist[rows, best], heading


def read_fcd(path: Path, corridor: Corridor, max_off_route_km: float = 0.5) -> FcdTrace:
    """A SUMO FCD file (geo coordinates) as corridor traffic; a file that is not one is a ConfigError."""
    trace = FcdTrace([])
    try:
        for _, el in ET.iterparse(path, events=("end",)):
            if el.tag != "timestep":
                continue
            vs = el.findall("vehicle")
            if vs:
                trace.steps.append(_step(float(el.get("time", "0")), vs, corridor, trace, max_off_route_km))
            el.clear()
    except FileNotFoundError:
        raise ConfigError(f"FCD file {path} does not exist") from None
    except (ET.ParseError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not SUMO FCD output ({exc})") from None
    if not trace.steps:
        raise ConfigError(f"{path}: no <timestep> with vehicles on the corridor (was it written with "
                          "--fcd-output.geo?)")  # fmt: skip
    return trace


def _step(t: float, vs: list[ET.Element], corridor: Corridor, trace: FcdTrace, max_off: float) -> FcdStep:
    lon = np.array([float(v.attrib["x"]) for v in vs])
    lat = np.array([float(v.attrib["y"]) for v in vs])
    if np.any(np.abs(lon) > 180) or np.any(np.abs(lat) > 90):
        raise ValueError("x/y are not longitude/latitude: write the FCD with --fcd-output.geo")
    km, off, road = project_onto_route(corridor, lon, lat)
    angle = np.array([float(v.get("angle", "0")) for v in vs])
    on = off <= max_off
    trace.off_route += int((~on).sum())
    num = np.array([trace.ids.setdefault(v.attrib["id"], len(trace.ids) + 1) for v in vs], np.int64)
    # within 90° of the road's northbound heading: northbound
    northbound = np.abs((angle - road + 180.0) % 360.0 - 180.0) < 90.0
    lane = np.array([_lane_index(v.get("lane", "")) for v in vs], np.int64)
    speed = np.array([float(v.get("speed", "0")) for v in vs])
    return FcdStep(t, num[on], km[on], northbound[on], speed[on], lane[on])


def _lane_index(lane: str) -> int:
    """SUMO lane ids end in _<index>, 0 the rightmost, as corridor counts them."""
    tail = lane.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class ReplayFleet:
    """A trace played back as a fleet: `drive` steps it and sends what each time step holds. Replayed
    vehicles do what they did in SUMO: they hear advisories but cannot obey them."""

    def __init__(self, trace: FcdTrace, corridor: Corridor, start_ms: int) -> None:
        self.trace, self.corridor, self.start_ms = trace, corridor, start_ms
        self.t0 = trace.steps[0].t
        self.t = 0.0
        self._next = 0
        self._seq: dict[int, int] = {}
        self.active = np.zeros(0, bool)

    def vehicle_count(self) -> int:
        return int(self.active.sum())

    @property
    def duration_s(self) -> float:
        return self.trace.steps[-1].t - self.t0 + self.trace.step_s

    def step(self, dt: float) -> None:
        self.t += dt

    def telemetry(self, cam: CamTrigger | None = None) -> TelemetryBatch:
        """The trace's next time step once it is due (each sent once; `drive` ticks at the trace's
        step). The trace is what SUMO's vehicles sent: `cam` has no say."""
        steps = self.trace.steps
        if self._next >= len(steps) or steps[self._next].t - self.t0 > self.t + 1e-9:
            return _empty(self.start_ms + int(self.t * 1000))
        s = steps[self._next]
        self._next += 1
        self.active = np.ones(len(s.num), bool)
        route = self.corridor.route
        lat, lon = route.lat_lon(s.km)
        seq = np.array([self._seq.get(n, 0) for n in s.num.tolist()], np.int64)
        for n in s.num.tolist():
            self._seq[n] = self._seq.get(n, 0) + 1
        return TelemetryBatch(
            slot=np.arange(len(s.num), dtype=np.int64), vehicle_num=s.num, seq=seq,
            event_time_ms=self.start_ms + int((s.t - self.t0) * 1000), lat=lat, lon=lon, km=s.km,
            northbound=s.northbound, lane=s.lane, heading=route.heading_deg(s.km, s.northbound), speed=s.speed,
            accel=np.zeros(len(s.num)), brake=np.zeros(len(s.num), bool), energy=np.full(len(s.num), 80.0),
            region=self.corridor.regions.lookup_many(s.km),
        )  # fmt: skip


def _empty(event_time_ms: int) -> TelemetryBatch:
    i, f = np.zeros(0, np.int64), np.zeros(0)
    return TelemetryBatch(slot=i, vehicle_num=i, seq=i, event_time_ms=event_time_ms, lat=f, lon=f, km=f,
                          northbound=np.zeros(0, bool), lane=i, heading=f, speed=f, accel=f,
                          brake=np.zeros(0, bool), energy=f, region=i)  # fmt: skip
