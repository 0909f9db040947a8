"""Advisory rules: from a region's swarm and the hazards around it to per-vehicle advice. Pure.

- a hazard ahead within `lookahead_km` on the vehicle's carriageway → SLOW_DOWN, the advised speed
  falling linearly with distance from the limit to `approach_speed_mps`; STOP within `stop_km`;
- a queue of stopped vehicles ahead is a hazard too (derived by `detect_queues`);
- well below the carriageway's mean speed with a clear road ahead → SPEED_UP to the mean;
- advice that would repeat the last one to the same vehicle is held back for `cooldown_s`, and a
  vehicle already slower than the speed it would be advised is not told to slow down;
  a vehicle whose reason to slow down has gone is told KEEP (its limit) at once.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from towers.config import TowerConfig

__all__ = ["Advice", "Cooldown", "SpeedLimits", "advise", "detect_queues"]


class SpeedLimits:
    """km → posted limit (m/s), with `bisect` rather than NumPy: called once per vehicle update."""

    def __init__(self, starts: list[float], limits: list[float]) -> None:
        self.starts, self.limits = starts, limits

    def __call__(self, km: float) -> float:
        return self.limits[max(0, bisect.bisect_right(self.starts, km) - 1)]


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


@dataclass
class Cooldown:
    """Last advice per vehicle, so an unchanged advisory is not repeated within the cool-down."""

    seconds: float
    last: dict[str, tuple[str, float, int]] = field(default_factory=dict)

    def allow(self, vid: str, action: str, speed: float, now_ms: int) -> bool:
        prev = self.last.get(vid)
        if (
            prev is not None
            and prev[0] == action
            and abs(prev[1] - speed) < 2.0
            and now_ms - prev[2] < self.seconds * 1000
        ):
            return False
        self.last[vid] = (action, speed, now_ms)
        return True

    def advised_slow(self, vid: str) -> bool:
        prev = self.last.get(vid)
        return prev is not None and prev[0] in ("SLOW_DOWN", "STOP")

    def forget(self, vids: Iterable[str]) -> None:
        for vid in vids:
            self.last.pop(vid, None)


def _ahead_km(hazard_km: float, km: float, northbound: bool) -> float:
    return hazard_km - km if northbound else km - hazard_km


def _applies(hazard: dict[str, Any], northbound: bool) -> bool:
    d = hazard["dir"]
    return d == "BOTH" or (d == "NORTHBOUND") == northbound


def advise(
    vehicles: Iterable[tuple[str, dict[str, Any], int]],
    hazards: dict[str, dict[str, Any]],
    mean_speed: tuple[float, float],
    limit: Callable[[float], float],
    cooldown: Cooldown,
    cfg: TowerConfig,
    now_ms: int,
    trigger_hlc: int | None = None,
    gap_ahead_km: Callable[[bool, float], float] = lambda nb, km: float("inf"),
) -> list[Advice]:
    """Advice for each `(vehicle_id, state, hlc)`; `trigger_hlc` overrides the trigger stamp (a hazard
    report, rather than the vehicle's own message, caused this evaluation). `gap_ahead_km` tells
    the distance to the next vehicle ahead on the same carriageway (the "clear road" test)."""
    by_dir = {nb: [(hid, h) for hid, h in hazards.items() if _applies(h, nb)] for nb in (True, False)}
    out: list[Advice] = []
    span = cfg.lookahead_km - cfg.stop_km
    for vid, s, hlc in vehicles:
        nb, km, v = s["nb"], s["km"], s["v"]
        nearest: tuple[float, str, dict[str, Any]] | None = None
        for hid, h in by_dir[nb]:
            d = _ahead_km(h["km"], km, nb)
            if 0.0 <= d <= cfg.lookahead_km and (nearest is None or d < nearest[0]):
                nearest = (d, hid, h)
        lim = limit(km)
        trigger = hlc if trigger_hlc is None else trigger_hlc
        if nearest is not None:
            d, hid, h = nearest
            if d < cfg.stop_km:
                action, target = "STOP", 0.0
            else:
                frac = (d - cfg.stop_km) / span if span > 0 else 1.0
                target = min(lim, cfg.approach_speed_mps + (lim - cfg.approach_speed_mps) * frac)
                action = "SLOW_DOWN"
                if v <= target and not cooldown.advised_slow(vid):
                    continue  # already slower than advised (crawling in a queue): nothing to say yet
            reason = f"{h['type'].lower().replace('_', ' ')} {d * 1000:.0f} m ahead"
            advice = Advice(vid, nb, action, round(target, 1), reason, hid, s["et"], trigger)
        elif cooldown.advised_slow(vid):
            advice = Advice(vid, nb, "KEEP", round(lim, 1), "road ahead clear again", None, s["et"], trigger)
        else:
            mean = mean_speed[0] if nb else mean_speed[1]
            if not (mean > 0 and v < cfg.slow_share * mean and v < lim):
                continue
            if gap_ahead_km(nb, km) * 1000 < max(cfg.clear_gap_m, cfg.clear_headway_s * mean):
                continue  # slow because the road ahead is busy: nothing to gain
            advice = Advice(
                vid,
                nb,
                "SPEED_UP",
                round(min(mean, lim), 1),
                f"{v * 3.6:.0f} km/h against a swarm mean of {mean * 3.6:.0f} km/h, road clear",
                None,
                s["et"],
                trigger,
            )
        if cooldown.allow(vid, advice.action, advice.target_speed_mps, now_ms):
            out.append(advice)
    return out


def detect_queues(vehicles: dict[str, dict[str, Any]], cfg: TowerConfig) -> dict[bool, tuple[float, int] | None]:
    """Per carriageway, the tail (most upstream km) of a queue of stopped vehicles and its length."""
    out: dict[bool, tuple[float, int] | None] = {True: None, False: None}
    for nb in (True, False):
        stopped = sorted(
            (s["km"] if nb else -s["km"]) for s in vehicles.values() if s["nb"] == nb and s["v"] < cfg.stopped_mps
        )
        best: tuple[float, int] | None = None
        j = 0
        for i in range(len(stopped)):
            while stopped[i] - stopped[j] > cfg.queue_span_km:
                j += 1
            if i - j + 1 >= cfg.queue_min_vehicles and (best is None or i - j + 1 > best[1]):
                best = (stopped[j] if nb else -stopped[j], i - j + 1)
        out[nb] = best
    return out
