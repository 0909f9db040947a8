"""Which decoded telemetry updates and hazard reports are believable? Bad ones go to the dead-letter
topic with the reason.

The update checks are masks over a whole batch; only the rows that fail get a reason string. A row
that fails costs that row, never its frame or its region. Bounds shared with the other doors are in
`pipeline.shared.bounds`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.shared.bounds import (
    HLC_MAX,
    MAX_ACCEL_MPS2,
    MAX_EVENT_AGE_MS,
    MAX_HAZARD_LIFETIME_MS,
    MAX_LANE,
    MAX_RELEVANCE_M,
    MAX_TRACES,
    bad_ids,
    event_time_problem,
    hazard_value_problem,
    hlc_problem,
    id_problem,
    lanes_problem,
)
from pipeline.shared.crdt import LWWMap
from pipeline.shared.hazards import OPERATOR
from towers.config import TowerConfig
from towers.frames import Updates

__all__ = [
    "MAX_LANE",
    "Reason",
    "check_updates",
    "drop_bad_hazards",
    "hazard_problem",
    "hazards_problem",
    "structural_problems",
]


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
    BAD_ID = "bad-id"
    BAD_EVENT_TIME = "bad-event-time"
    OUT_OF_RANGE = "value-out-of-range"
    BAD_HAZARD = "bad-hazard"
    SEVERITY = "severity-out-of-range"
    NOT_ITS_REPORTER = "not-its-reporter"


_NUMERIC = (("lat", "lat"), ("lon", "lon"), ("km", "route_km"), ("heading", "heading_deg"),
            ("speed", "speed_mps"), ("accel", "accel_mps2"), ("energy", "energy_pct"))  # fmt: skip
#: an HLC's physical part (ms since the epoch) is its upper 48 bits
_HLC_SHIFT = 16


def structural_problems(ups: Updates, region: int, route_km: float, cfg: TowerConfig) -> npt.NDArray[np.bool_]:
    """Rows that fail a check which does not depend on anyone's clock: junk, whose send time must not
    weigh in the clock-skew estimate."""
    bad = np.zeros(len(ups), np.bool_)
    for attr, _ in _NUMERIC:
        bad |= ~np.isfinite(getattr(ups, attr))
    speed = ups.speed.astype(np.float64)
    bad |= (speed < 0) | (speed > cfg.max_speed_mps)
    bad |= (ups.km < -cfg.off_route_km) | (ups.km > route_km + cfg.off_route_km)
    bad |= (np.abs(ups.lat) > 90) | (np.abs(ups.lon) > 180)
    bad |= ups.region != region
    bad |= (ups.lane < 0) | (ups.lane > MAX_LANE)
    bad |= (ups.heading < 0) | (ups.heading > 360) | (np.abs(ups.accel) > MAX_ACCEL_MPS2)
    bad |= (ups.energy < 0) | (ups.energy > 100) | (ups.seq < 0)
    bad |= bad_ids(ups.ids)
    return bad


def check_updates(
    ups: Updates,
    region: int,
    route_km: float,
    now_ms: int,
    cfg: TowerConfig,
    sent_ms: int | None = None,
    structural: npt.NDArray[np.bool_] | None = None,
) -> list[tuple[int, str]]:
    """(row, `reason: detail`) for every update that may not be merged; the first failing check names
    it. `sent_ms`: the frame's send time (already checked against the tower's clock); `now_ms` for a
    record sent on its own. `structural`: `structural_problems` of these rows, when known already."""
    sent = now_ms if sent_ms is None else sent_ms
    bad = (structural_problems(ups, region, route_km, cfg) if structural is None else structural).copy()
    bad |= ups.hlc <= 0
    bad |= (ups.hlc >> _HLC_SHIFT) - now_ms > cfg.max_clock_drift_ms
    bad |= (ups.event_time - sent > cfg.max_clock_drift_ms) | (sent - ups.event_time > MAX_EVENT_AGE_MS)
    return [(i, _reason(ups, i, region, route_km, now_ms, sent, cfg)) for i in np.flatnonzero(bad).tolist()]


def _reason(ups: Updates, i: int, region: int, route_km: float, now_ms: int, sent: int, cfg: TowerConfig) -> str:
    for attr, field in _NUMERIC:
        value = float(getattr(ups, attr)[i])
        if not np.isfinite(value):
            return f"{Reason.NOT_A_NUMBER}: {field} is {value}"
    speed = float(ups.speed[i])
    if not 0 <= speed <= cfg.max_speed_mps:
        return f"{Reason.SPEED_OUT_OF_RANGE}: {speed:.1f} m/s"
    km, lat, lon = float(ups.km[i]), float(ups.lat[i]), float(ups.lon[i])
    if not -cfg.off_route_km <= km <= route_km + cfg.off_route_km or abs(lat) > 90 or abs(lon) > 180:
        return f"{Reason.OFF_CORRIDOR}: route_km {km:.3f} at ({lat:.4g}, {lon:.4g})"
    if ups.region[i] != region:
        return f"{Reason.WRONG_REGION}: region_id {int(ups.region[i])} on partition {region}"
    if not 0 <= ups.lane[i] <= MAX_LANE:
        return f"{Reason.BAD_LANE}: lane {int(ups.lane[i])} (0–{MAX_LANE})"
    heading, accel, energy = float(ups.heading[i]), float(ups.accel[i]), float(ups.energy[i])
    if not 0 <= heading <= 360 or abs(accel) > MAX_ACCEL_MPS2 or not 0 <= energy <= 100 or ups.seq[i] < 0:
        return f"{Reason.OUT_OF_RANGE}: heading {heading:.4g}°, accel {accel:.4g} m/s², energy {energy:.4g} %, " \
               f"seq {int(ups.seq[i])}"  # fmt: skip
    problem = id_problem(ups.ids[i], "vehicle id")
    if problem is not None:
        return f"{Reason.BAD_ID}: {problem}"
    hlc = int(ups.hlc[i])
    if hlc <= 0:
        return f"{Reason.BAD_CLOCK}: {hlc} is not a hybrid logical clock stamp"
    ahead = (hlc >> _HLC_SHIFT) - now_ms
    if ahead > cfg.max_clock_drift_ms:
        return f"{Reason.CLOCK_DRIFT}: {ahead} ms ahead of the tower's clock"
    return f"{Reason.BAD_EVENT_TIME}: {event_time_problem(int(ups.event_time[i]), sent, cfg.max_clock_drift_ms)}"


def hazard_problem(h: dict[str, Any], region: int, route_km: float, now_ms: int, cfg: TowerConfig) -> str | None:
    """`reason: detail` for a decoded HazardReport that may not be recorded; None when believable."""
    if not -cfg.off_route_km <= h["route_km"] <= route_km + cfg.off_route_km:
        return f"{Reason.OFF_CORRIDOR}: hazard at km {h['route_km']}"
    if abs(h["lat"]) > 90 or abs(h["lon"]) > 180:  # NaN fails neither: its km check above caught none
        return f"{Reason.OFF_CORRIDOR}: hazard at ({h['lat']}, {h['lon']})"
    if h["lat"] != h["lat"] or h["lon"] != h["lon"]:
        return f"{Reason.NOT_A_NUMBER}: hazard position ({h['lat']}, {h['lon']})"
    if h["region_id"] != region:
        return f"{Reason.WRONG_REGION}: hazard of region {h['region_id']} on partition {region}"
    if not 1 <= h["severity"] <= 7:
        return f"{Reason.SEVERITY}: {h['severity']}"
    if not 0 < h["hlc"] <= HLC_MAX:
        return f"{Reason.BAD_CLOCK}: {h['hlc']} is not a hybrid logical clock stamp"
    for what in ("hazard_id", "reporter"):
        problem = id_problem(h[what], what.replace("_", " "))
        if problem is not None:
            return f"{Reason.BAD_ID}: {problem}"
    detected, expires = h["detection_time"], h["expiry_time"]
    problem = event_time_problem(detected, now_ms, cfg.max_clock_drift_ms)
    if problem is not None:
        return f"{Reason.BAD_EVENT_TIME}: detection {problem}"
    if not h["cancelled"] and not 0 < expires - detected <= MAX_HAZARD_LIFETIME_MS:
        lifetime = expires - detected
        return f"{Reason.BAD_EVENT_TIME}: expires {lifetime} ms after its detection (0–{MAX_HAZARD_LIFETIME_MS})"
    problem = lanes_problem(h["lanes_blocked"])
    if problem is not None:
        return f"{Reason.BAD_LANE}: {problem}"
    if not 0 <= h["relevance_distance_m"] <= MAX_RELEVANCE_M:
        return f"{Reason.OUT_OF_RANGE}: relevance distance {h['relevance_distance_m']} m (0–{MAX_RELEVANCE_M})"
    if len(h["traces_km"]) > MAX_TRACES or not all(abs(x) <= 1_000 for x in h["traces_km"]):
        return f"{Reason.OUT_OF_RANGE}: {len(h['traces_km'])} traces (at most {MAX_TRACES}, each within ±1000 km)"
    if not (0 <= h["cause_code"] <= 255 and 0 <= h["sub_cause_code"] <= 255):
        return f"{Reason.OUT_OF_RANGE}: cause {h['cause_code']}/{h['sub_cause_code']} (0–255)"
    return None


def authority_problem(h: dict[str, Any], current: dict[str, Any] | None, towers: Collection[str]) -> str | None:
    """A live hazard is changed (updated, or cancelled) only by whoever reported it, a tower or the
    traffic operator: anyone else could otherwise silence it with a cancel, a severity of 1 or a
    lifetime of 1 ms. (Reporter names are as sent: the radio link's identities are what bind them.)"""
    reporter = h["reporter"]
    if current is None or reporter == current.get("source") or reporter == OPERATOR or reporter in towers:
        return None
    action = "cancel" if h["cancelled"] else "change"
    return (f"{Reason.NOT_ITS_REPORTER}: {reporter!r} may not {action} hazard {h['hazard_id']!r}, reported by "
            f"{current.get('source')!r} (only its reporter, a tower or the operator may)")  # fmt: skip


def _entry_problem(hid: str, entry: tuple[int, str, Any], now_ms: int, max_ahead_ms: int) -> str | None:
    ts, replica, value = entry
    problem = (
        id_problem(hid, "hazard id")
        or id_problem(replica, "replica")
        or hlc_problem(ts, now_ms, max_ahead_ms)
        or hazard_value_problem(value)
    )
    return None if problem is None else f"{Reason.BAD_HAZARD}: {hid[:24]!r}: {problem}"


def hazards_problem(hazards: LWWMap, now_ms: int, max_ahead_ms: int) -> str | None:
    """The first entry of a hazards map (from tower-sync, a table or etcd) that is not believable:
    its id, its stamp or its value; None when every entry is."""
    for hid, entry in hazards.entries.items():
        problem = _entry_problem(hid, entry, now_ms, max_ahead_ms)
        if problem is not None:
            return problem
    return None


def drop_bad_hazards(hazards: LWWMap, now_ms: int, max_ahead_ms: int) -> int:
    """Remove the entries `hazards_problem` would name (state read back from a table); how many."""
    bad = [hid for hid, entry in hazards.entries.items() if _entry_problem(hid, entry, now_ms, max_ahead_ms)]
    for hid in bad:
        del hazards.entries[hid]
    return len(bad)
