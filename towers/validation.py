"""Is a decoded telemetry update believable? Bad ones go to the dead-letter topic with the reason."""

from __future__ import annotations

import math
from typing import Any

from pipeline.crdt.hlc import unpack
from towers.config import TowerConfig

__all__ = ["Reason", "check_update"]


class Reason:
    """Dead-letter reasons (the `reason` header's first word)."""

    UNDECODABLE = "undecodable"
    UNKNOWN_SCHEMA = "unknown-schema"
    WRONG_TYPE = "wrong-message-type"
    NOT_A_NUMBER = "not-a-number"
    SPEED_OUT_OF_RANGE = "speed-out-of-range"
    OFF_CORRIDOR = "off-corridor"
    WRONG_REGION = "wrong-region"
    CLOCK_DRIFT = "clock-drift"


_NUMERIC = ("lat", "lon", "route_km", "heading_deg", "speed_mps", "accel_mps2", "energy_pct")


def check_update(update: dict[str, Any], region: int, route_km: float, now_ms: int, cfg: TowerConfig) -> str | None:
    """None if the update may be merged, else `reason: detail` for the dead-letter header."""
    for key in _NUMERIC:
        value = update[key]
        if not math.isfinite(value):
            return f"{Reason.NOT_A_NUMBER}: {key} is {value}"
    speed = update["speed_mps"]
    if not 0 <= speed <= cfg.max_speed_mps:
        return f"{Reason.SPEED_OUT_OF_RANGE}: {speed:.1f} m/s"
    km = update["route_km"]
    if not -cfg.off_route_km <= km <= route_km + cfg.off_route_km or not (-90 <= update["lat"] <= 90):
        return f"{Reason.OFF_CORRIDOR}: route_km {km:.3f}"
    if update["region_id"] != region:
        return f"{Reason.WRONG_REGION}: region_id {update['region_id']} on partition {region}"
    ahead = unpack(update["hlc"])[0] - now_ms if update["hlc"] >= 0 else 0
    if ahead > cfg.max_clock_drift_ms:
        return f"{Reason.CLOCK_DRIFT}: {ahead} ms ahead of the tower's clock"
    return None
