"""Hazard reports (DENM-like records) as corridor builds them: one place for the cause codes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.shared.bounds import MAX_HAZARD_LIFETIME_MS, MAX_RELEVANCE_M, id_problem
from pipeline.shared.corridor import Corridor, load_corridor
from pipeline.shared.crdt.hlc import HybridClock
from pipeline.shared.errors import ConfigError

__all__ = ["CAUSE_CODES", "DEFAULT_RELEVANCE_M", "OPERATOR", "hazard_record", "traces"]

DEFAULT_RELEVANCE_M = 3000  # the towers' default look-ahead
#: the reporter name of the traffic operator (`corridor hazard`), who may change or cancel any hazard
OPERATOR = "operator"
TRACE_STEP_KM = 0.5

#: DENM cause codes (ETSI EN 302 637-3) of each hazard type.
CAUSE_CODES = {
    "OBSTACLE": 10,
    "ANIMAL": 11,
    "PEDESTRIAN": 12,
    "STOPPED_VEHICLE": 94,
    "ICE": 6,
    "WORK_ZONE": 3,
    "ACCIDENT": 2,
    "STATIONARY_TRAFFIC": 1,
    "WRONG_WAY_DRIVER": 14,
    "END_OF_QUEUE": 27,
}


def hazard_record(
    corridor_km: float,
    kind: str,
    direction: str,
    severity: int,
    event_time_ms: int,
    validity_s: float,
    hazard_id: str,
    reporter: str,
    cancelled: bool = False,
    clock: HybridClock | None = None,
    corridor: Corridor | None = None,
    lanes_blocked: Sequence[int] = (),
    sub_cause: int = 0,
    relevance_m: int = 0,
) -> dict[str, Any]:
    """A HazardReport record on `corridor` (the shipped I-69 one unless given). `lanes_blocked`: the
    lanes it closes (0 = right-hand; none given: every lane); its traces are the approach, a point
    every `TRACE_STEP_KM` up to `relevance_m` (or `DEFAULT_RELEVANCE_M`) upstream."""
    corridor = corridor or load_corridor()
    if kind not in CAUSE_CODES:
        raise ConfigError(f"unknown hazard type {kind!r}; choose from {', '.join(CAUSE_CODES)}")
    if direction not in ("NORTHBOUND", "SOUTHBOUND", "BOTH"):
        raise ConfigError(f"direction must be NORTHBOUND, SOUTHBOUND or BOTH, not {direction!r}")
    if not 0 <= corridor_km <= corridor.route.length_km:
        raise ConfigError(f"km {corridor_km} is off the corridor (0–{corridor.route.length_km})")
    if not 1 <= severity <= 7:
        raise ConfigError("severity must be 1–7")
    if any(not 0 <= ln < 8 for ln in lanes_blocked):
        raise ConfigError(f"lanes blocked are lane numbers 0–7 (0 = the right-hand lane), not {list(lanes_blocked)}")
    if not 0 <= relevance_m <= MAX_RELEVANCE_M:
        raise ConfigError(f"the relevance distance is 0–{MAX_RELEVANCE_M} m, not {relevance_m}")
    if not 0 < validity_s <= MAX_HAZARD_LIFETIME_MS / 1000:
        raise ConfigError(f"a hazard is valid for 1 ms to {MAX_HAZARD_LIFETIME_MS // 1000:,} s, not {validity_s}")
    for what, value in (("hazard id", hazard_id), ("reporter", reporter)):
        if (problem := id_problem(value, what)) is not None:
            raise ConfigError(problem)
    lat, lon = corridor.route.lat_lon(np.array([corridor_km]))
    return {
        "hazard_id": hazard_id,
        "hazard_type": kind,
        "cause_code": CAUSE_CODES[kind],
        "route_km": corridor_km,
        "lat": float(lat[0]),
        "lon": float(lon[0]),
        "direction": direction,
        "severity": severity,
        "detection_time": event_time_ms,
        "expiry_time": event_time_ms + int(validity_s * 1000),
        "cancelled": cancelled,
        "hlc": (clock or HybridClock()).now(),
        "reporter": reporter,
        "region_id": corridor.regions.lookup(corridor_km),
        "sub_cause_code": sub_cause,
        "lanes_blocked": sorted(set(lanes_blocked)),
        "relevance_distance_m": relevance_m,
        "traces_km": traces(corridor_km, direction, relevance_m or DEFAULT_RELEVANCE_M, corridor.route.length_km),
    }


def traces(km: float, direction: str, relevance_m: int, length_km: float) -> list[float]:
    """The approach to an event on one carriageway, nearest first; none for both carriageways (each
    has its own approach, and a receiver knows both from the position)."""
    if direction == "BOTH":
        return []
    upstream = -1.0 if direction == "NORTHBOUND" else 1.0
    steps = int(relevance_m / 1000 / TRACE_STEP_KM)
    points = [round(km + upstream * TRACE_STEP_KM * i, 3) for i in range(1, steps + 1)]
    return [p for p in points if 0.0 <= p <= length_km]
