"""Hazard reports (DENM-like records) as corridor builds them: one place for the cause codes."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.shared.corridor import Corridor, load_corridor
from pipeline.shared.crdt.hlc import HybridClock
from pipeline.shared.errors import ConfigError

__all__ = ["CAUSE_CODES", "hazard_record"]

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
) -> dict[str, Any]:
    """A HazardReport record on `corridor` (the shipped I-69 one unless given)."""
    corridor = corridor or load_corridor()
    if kind not in CAUSE_CODES:
        raise ConfigError(f"unknown hazard type {kind!r}; choose from {', '.join(CAUSE_CODES)}")
    if direction not in ("NORTHBOUND", "SOUTHBOUND", "BOTH"):
        raise ConfigError(f"direction must be NORTHBOUND, SOUTHBOUND or BOTH, not {direction!r}")
    if not 0 <= corridor_km <= corridor.route.length_km:
        raise ConfigError(f"km {corridor_km} is off the corridor (0–{corridor.route.length_km})")
    if not 1 <= severity <= 7:
        raise ConfigError("severity must be 1–7")
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
    }
