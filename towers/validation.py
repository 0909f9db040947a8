"""Which decoded telemetry updates are believable? Bad ones go to the dead-letter topic with the reason.

The checks are masks over a whole batch; only the rows that fail get a reason string.
"""

from __future__ import annotations

import numpy as np

from towers.config import TowerConfig
from towers.frames import Updates

__all__ = ["MAX_LANE", "Reason", "check_updates"]

#: lanes are counted from the right; a vehicle state stores the index in one byte
MAX_LANE = 15


class Reason:
    """Dead-letter reasons (the `reason` header's first word)."""

    UNDECODABLE = "undecodable"
    UNKNOWN_SCHEMA = "unknown-schema"
    WRONG_TYPE = "wrong-message-type"
    NOT_A_NUMBER = "not-a-number"
    SPEED_OUT_OF_RANGE = "speed-out-of-range"
    OFF_CORRIDOR = "off-corridor"
    WRONG_REGION = "wrong-region"
    BAD_CLOCK = "bad-hlc"
    CLOCK_DRIFT = "clock-drift"
    BAD_LANE = "lane-out-of-range"


_NUMERIC = (("lat", "lat"), ("lon", "lon"), ("km", "route_km"), ("heading", "heading_deg"),
            ("speed", "speed_mps"), ("accel", "accel_mps2"), ("energy", "energy_pct"))  # fmt: skip
#: an HLC's physical part (ms since the epoch) is its upper 48 bits
_HLC_SHIFT = 16


def check_updates(ups: Updates, region: int, route_km: float, now_ms: int, cfg: TowerConfig) -> list[tuple[int, str]]:
    """(row, `reason: detail`) for every update that may not be merged; the first failing check names it."""
    n = len(ups)
    bad = np.zeros(n, np.bool_)
    for attr, _ in _NUMERIC:
        bad |= ~np.isfinite(getattr(ups, attr))
    speed = ups.speed.astype(np.float64)
    bad |= (speed < 0) | (speed > cfg.max_speed_mps)
    bad |= (ups.km < -cfg.off_route_km) | (ups.km > route_km + cfg.off_route_km) | (np.abs(ups.lat) > 90)
    bad |= ups.region != region
    bad |= ups.hlc <= 0
    bad |= (ups.hlc >> _HLC_SHIFT) - now_ms > cfg.max_clock_drift_ms
    bad |= (ups.lane < 0) | (ups.lane > MAX_LANE)
    return [(i, _reason(ups, i, region, route_km, now_ms, cfg)) for i in np.flatnonzero(bad).tolist()]


def _reason(ups: Updates, i: int, region: int, route_km: float, now_ms: int, cfg: TowerConfig) -> str:
    for attr, field in _NUMERIC:
        value = float(getattr(ups, attr)[i])
        if not np.isfinite(value):
            return f"{Reason.NOT_A_NUMBER}: {field} is {value}"
    speed = float(ups.speed[i])
    if not 0 <= speed <= cfg.max_speed_mps:
        return f"{Reason.SPEED_OUT_OF_RANGE}: {speed:.1f} m/s"
    km = float(ups.km[i])
    if not -cfg.off_route_km <= km <= route_km + cfg.off_route_km or abs(float(ups.lat[i])) > 90:
        return f"{Reason.OFF_CORRIDOR}: route_km {km:.3f}"
    if ups.region[i] != region:
        return f"{Reason.WRONG_REGION}: region_id {int(ups.region[i])} on partition {region}"
    hlc = int(ups.hlc[i])
    if hlc <= 0:
        return f"{Reason.BAD_CLOCK}: {hlc} is not a hybrid logical clock stamp"
    ahead = (hlc >> _HLC_SHIFT) - now_ms
    if ahead > cfg.max_clock_drift_ms:
        return f"{Reason.CLOCK_DRIFT}: {ahead} ms ahead of the tower's clock"
    return f"{Reason.BAD_LANE}: lane {int(ups.lane[i])} (0–{MAX_LANE})"
