"""Advisory rules, column-wise: from a region's swarm and the hazards around it to per-vehicle advice.

- a hazard ahead within `lookahead_km` on the vehicle's carriageway → advice that fits it
  (`hazard_advice`): a blocking one (an animal, an accident, a stopped vehicle, ...) → SLOW_DOWN, the
  advised speed falling linearly with distance from the limit to `approach_speed_mps`, and STOP
  within `stop_km`; ice or an open work zone → SLOW_DOWN to a reduced speed (by severity; the
  work-zone limit) held through the stretch, with no stop;
- a queue of stopped vehicles ahead is a hazard too (derived by `detect_queues`);
- well below the carriageway's mean speed with a clear road ahead → SPEED_UP to the mean;
- advice that would repeat the last one to the same vehicle is held back for `cooldown_s`, and a
  vehicle already slower than the speed it would be advised is not told to slow down;
  a vehicle whose reason to slow down has gone is told KEEP (its limit) at once.

Every rule is evaluated for all the vehicles of a batch at once; only the advice that goes out is
turned into Python objects. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from towers.config import TowerConfig
from towers.swarm import ACTIONS, KEEP, SLOW_DOWN, SPEED_UP, STOP, Cooldowns

__all__ = ["Advice", "SpeedLimits", "Swarm", "advise", "detect_queues"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


class SpeedLimits:
    """km → posted limit (m/s), for arrays of positions."""

    def __init__(self, starts: list[float], limits: list[float]) -> None:
        self.starts, self.limits = np.asarray(starts, np.float64), np.asarray(limits, np.float64)

    def __call__(self, km: F64) -> F64:
        return self.limits[np.maximum(0, np.searchsorted(self.starts, km, side="right") - 1)]


@dataclass(frozen=True, slots=True)
class Advice:
    vehicle_id: str
    northbound: bool
    action: str
    target_speed_mps: float
    reason: str
    hazard_id: str | None
    trigger_event_time: int
    trigger_hlc: int
    route_km: float | None = None  # where the vehicle was when it sent the triggering message


@dataclass(frozen=True, slots=True)
class Swarm:
    """The vehicles to advise, as columns (one row each), and who they are."""

    slots: I64
    ids: Callable[[int], str]  # slot -> vehicle id
    km: F64
    v: F64
    nb: Bools
    et: I64
    hlc: I64  # each row's trigger stamp (its own message's HLC, or the hazard's)


BLOCKING = frozenset({"OBSTACLE", "ANIMAL", "PEDESTRIAN", "STOPPED_VEHICLE", "ACCIDENT", "WRONG_WAY_DRIVER"})
#: traffic itself: vehicles are slowed towards its end and stop behind it by following the car ahead;
#: told to STOP 300 m short, each would start a new queue end further back, a wave of advice racing
#: upstream faster than any real one
QUEUES = frozenset({"END_OF_QUEUE", "STATIONARY_TRAFFIC"})


def hazard_advice(kind: str, severity: int, cfg: TowerConfig, lanes_closed: int = 0) -> tuple[bool, float | None]:
    """What a hazard calls for: (traffic stops before it, the speed to hold through it, or None for
    the approach profile: from the limit down to `approach_speed_mps` at the hazard). A blocking
    hazard stops traffic (or, minor, slows it) unless it leaves a lane open (`lanes_closed` of the
    carriageway's `cfg.lanes`; 0: all), when traffic slows to pass it; a queue's end is approached
    slowly; ice and an open work zone slow it."""
    if kind in QUEUES:
        return False, None
    if 0 < lanes_closed < cfg.lanes and (kind in BLOCKING or kind == "WORK_ZONE"):
        return False, cfg.work_zone_speed_mps if kind == "WORK_ZONE" else cfg.lane_closed_speed_mps
    if kind == "ICE":
        return False, cfg.ice_light_mps if severity <= 3 else cfg.ice_mps if severity <= 5 else cfg.ice_severe_mps
    if kind == "WORK_ZONE":
        return severity >= 7, cfg.work_zone_speed_mps
    if kind in BLOCKING and severity <= cfg.minor_severity:
        return False, cfg.minor_speed_mps
    return True, cfg.approach_speed_mps  # blocking, or a kind this tower does not know: the safe side


def _closed(h: dict[str, Any]) -> int:
    """How many lanes a hazard closes (0: every lane; older reports say nothing, so all)."""
    lanes = h.get("lanes") or ""
    return len(lanes.split(",")) if lanes else 0


def advise(
    swarm: Swarm,
    hazards: dict[str, dict[str, Any]],
    mean_speed: tuple[float, float],
    limit: SpeedLimits,
    cooldown: Cooldowns,
    cfg: TowerConfig,
    now_ms: int,
    gap_ahead_km: Callable[[Bools, F64], F64] = lambda nb, km: np.full(len(km), np.inf),
) -> list[Advice]:
    """The advice that goes out for these vehicles now. `gap_ahead_km` tells the distance to the next
    vehicle ahead on the same carriageway (the "clear road" test)."""
    listed = list(hazards.items())
    if not listed:  # the common case: only vehicles once slowed down, or slow ones, may hear anything
        mean = np.where(swarm.nb, mean_speed[0], mean_speed[1])
        maybe = cooldown.advised_slow(swarm.slots) | (swarm.v < cfg.slow_share * mean)
        if not maybe.all():
            swarm = _subset(swarm, np.flatnonzero(maybe))
    n = len(swarm.slots)
    if n == 0:
        return []
    km, v, nb = swarm.km, swarm.v, swarm.nb
    nearest, which = np.full(n, np.inf), np.full(n, -1)
    policy = [hazard_advice(h["type"], int(h.get("severity", 5)), cfg, _closed(h)) for _, h in listed]
    for j, (_, h) in enumerate(listed):
        d = np.where(nb, h["km"] - km, km - h["km"])
        applies = nb if h["dir"] == "NORTHBOUND" else ~nb if h["dir"] == "SOUTHBOUND" else True
        holds = not policy[j][0] and policy[j][1] is not None
        behind = -cfg.reduced_extent_km if holds else 0.0  # a speed to hold holds through its stretch
        d = np.where(d >= behind, np.maximum(d, 0.0), -1.0)
        closer = applies & (d >= 0.0) & (d <= (h.get("relevance_km") or cfg.lookahead_km)) & (d < nearest)
        nearest[closer], which[closer] = d[closer], j
    lim = limit(km)
    was_slowed = cooldown.advised_slow(swarm.slots)
    ahead = which >= 0
    stops = np.array([p[0] for p in policy] + [False])[which]  # which = -1 reads the padding
    hold = np.array([np.nan if p[1] is None else p[1] for p in policy] + [0.0])[which]
    stop = ahead & stops & (nearest < cfg.stop_km)
    span = cfg.lookahead_km - cfg.stop_km
    frac = (nearest - cfg.stop_km) / span if span > 0 else np.ones(n)
    approach = cfg.approach_speed_mps + (lim - cfg.approach_speed_mps) * frac
    slow_target = np.minimum(lim, np.where(stops | np.isnan(hold), approach, hold))
    slow = ahead & ~stop & ~((v <= slow_target) & ~was_slowed)  # already slower than advised: nothing yet
    keep = ~ahead & was_slowed
    mean = np.where(nb, mean_speed[0], mean_speed[1])
    up = ~ahead & ~was_slowed & (mean > 0) & (v < cfg.slow_share * mean) & (v < lim)
    if up.any():  # slow because the road ahead is busy: nothing to gain
        need = np.maximum(cfg.clear_gap_m, cfg.clear_headway_s * mean[up])
        up[up] = gap_ahead_km(nb[up], km[up]) * 1000 >= need
    action = np.select([stop, slow, keep, up], [STOP, SLOW_DOWN, KEEP, SPEED_UP], -1)
    target = np.round(np.select([slow, keep, up], [slow_target, lim, np.minimum(mean, lim)], 0.0), 1)
    cand = np.flatnonzero(action >= 0)
    if not len(cand):
        return []
    cand = cand[cooldown.allow(swarm.slots[cand], action[cand], target[cand], now_ms)]
    out = []
    for i in cand.tolist():
        a = int(action[i])
        hid: str | None = None
        if a in (STOP, SLOW_DOWN):
            hid, h = listed[int(which[i])]
            what = h["type"].lower().replace("_", " ")
            reason = f"{what} {nearest[i] * 1000:.0f} m ahead" if nearest[i] > 0 else f"{what}: hold the speed"
        elif a == KEEP:
            reason = "road ahead clear again"
        else:
            reason = f"{v[i] * 3.6:.0f} km/h against a swarm mean of {mean[i] * 3.6:.0f} km/h, road clear"
        out.append(
            Advice(
                swarm.ids(int(swarm.slots[i])), bool(nb[i]), ACTIONS[a], float(target[i]), reason, hid,
                int(swarm.et[i]), int(swarm.hlc[i]), round(float(km[i]), 3),
            )
        )  # fmt: skip
    return out


def _subset(swarm: Swarm, rows: I64) -> Swarm:
    return Swarm(swarm.slots[rows], swarm.ids, swarm.km[rows], swarm.v[rows], swarm.nb[rows], swarm.et[rows],
                 swarm.hlc[rows])  # fmt: skip


def detect_queues(km: F64, v: F64, nb: Bools, cfg: TowerConfig) -> dict[bool, tuple[float, int] | None]:
    """Per carriageway, the tail (most upstream km) of a queue of stopped vehicles and its length:
    the first densest run of at least `queue_min_vehicles` within `queue_span_km`."""
    out: dict[bool, tuple[float, int] | None] = {True: None, False: None}
    stopped = v < cfg.stopped_mps
    for north in (True, False):
        x = np.sort(km[stopped & (nb == north)] * (1.0 if north else -1.0))  # upstream first
        if len(x) < cfg.queue_min_vehicles:
            continue
        first = np.searchsorted(x, x - cfg.queue_span_km, side="left")
        count = np.arange(len(x)) - first + 1
        i = int(count.argmax())
        if count[i] >= cfg.queue_min_vehicles:
            tail = float(x[first[i]])
            out[north] = (tail if north else -tail, int(count[i]))
    return out
