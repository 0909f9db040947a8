"""What a run leaves for its report: trajectories, hazard passages, advice, load. Pure (NumPy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from producers.fleet import Action, Fleet, Obstacle
from producers.hazard_driving import STOP_DECEL_MPS2

__all__ = ["HazardTrack", "Recorder"]

F = npt.NDArray[np.float64]

APPROACH_KM = (0.2, 0.4)  # "before reaching it": speeds measured 200–400 m upstream of a hazard
SURPRISED_KM = 0.5  # vehicles this close when a hazard appears could not have been warned in time
SECTION_KM = (5.0, 1.0)  # a hazard's section: this far upstream of it to this far past it
DISCHARGE_WATCH_S = 300.0  # after a hazard is cleared, vehicles crossing its place are timed this long
FREE_FLOW_FROM_S = 60.0  # free-flow speeds: sampled from here (the fleet settled) until the first hazard
FREE_FLOW_CLEAR_KM = 1.0  # and only this far from any interchange (no merging or leaving there)


@dataclass
class HazardTrack:
    """How traffic met one hazard while it was on the road."""

    hazard_id: str
    km: float
    northbound: bool | None
    start_s: float
    end_s: float = float("inf")
    passing_mps: list[float] = field(default_factory=list)  # speed of each warned vehicle passing it
    #: vehicles first told to slow down or stop while they could still stop before it (braking as
    #: drivers told to stop do, STOP_DECEL_MPS2), and those told later than that
    advised: set[int] = field(default_factory=set)
    advised_late: set[int] = field(default_factory=set)
    #: vehicles that passed it not warned in time though they were further than SURPRISED_KM when it
    #: appeared: no advice, or too late to stop (their region's worker dead and not yet taken over, say)
    unadvised_passing_mps: list[float] = field(default_factory=list)
    #: vehicles warned in time whose advice had lapsed when they reached it: their tower said nothing
    #: for longer than the advice's validity (a worker killed, a rebalance), counted apart, not hidden
    lapsed_passing_mps: list[float] = field(default_factory=list)
    approach_mps: list[float] = field(default_factory=list)  # speeds 200–400 m upstream, every tick
    surprised: set[int] = field(default_factory=set)  # vehicles within SURPRISED_KM when it appeared
    surprised_passing_mps: list[float] = field(default_factory=list)
    passed_in_lane: dict[int, int] = field(default_factory=dict)  # lane → vehicles that passed it there
    lanes: int = 2  # through lanes where it stands
    cleared_crossings_s: list[float] = field(default_factory=list)  # when vehicles passed its place once cleared
    #: through its section (SECTION_KM upstream to 1 km past it, on its carriageway): when each vehicle
    #: came in, and how long each took that came out while it stood or within DISCHARGE_WATCH_S after
    section_in_s: dict[int, float] = field(default_factory=dict)
    section_s: list[float] = field(default_factory=list)


MIN_COLUMNS = 300  # a run's pictures keep at least this many moments, however large the fleet


class Recorder:
    """Trajectories for the space-time picture cover the whole run at any size: past `max_points`
    every other kept tick is dropped (and ticks are kept half as often from then on), and a fleet too
    large for `MIN_COLUMNS` moments keeps a fixed share of its vehicles (chosen by number, so each
    kept vehicle's trajectory is whole)."""

    def __init__(self, regions: int, max_points: int = 400_000, interchanges_km: tuple[float, ...] = ()) -> None:
        self.regions = regions
        self.interchanges_km = np.array(interchanges_km)
        self.free_flow_kmh = np.zeros(200, np.int64)  # vehicles sampled per km/h (0–199)
        self.vehicle_km = 0.0  # driven by the whole fleet, for rates per distance
        self.lane_changes = 0
        self.max_points = max_points
        # (tick, t, km, v, northbound, vehicle number, lane) of each tick kept
        self._ticks: list[tuple[int, F, F, F, npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
        self._tick_no = 0
        self.tick_stride = 1  # every how many ticks one is kept
        self.vehicle_stride = 1  # one vehicle in this many is kept
        self.load: list[npt.NDArray[np.int64]] = []  # updates per region per tick
        self.load_t: list[float] = []
        self.hazards: dict[str, HazardTrack] = {}
        self._prev_km: npt.NDArray[np.float64] | None = None
        self._prev_active: npt.NDArray[np.bool_] | None = None
        self._prev_num: npt.NDArray[np.int64] | None = None
        self.points = 0

    def hazard_on(self, hazard_id: str, ob: Obstacle, fleet: Fleet) -> None:
        lanes = int(fleet.corridor.route.lanes(np.array([ob.km]))[0])
        track = HazardTrack(hazard_id, ob.km, ob.northbound, ob.start_s, lanes=lanes)
        idx = np.flatnonzero(fleet.active)
        nb, km = fleet.nb[idx], fleet.km[idx]
        ahead = np.where(nb, ob.km - km, km - ob.km)
        affected = np.ones(len(idx), bool) if ob.northbound is None else nb == ob.northbound
        track.surprised = set(fleet.num[idx[affected & (ahead >= 0) & (ahead < SURPRISED_KM)]].tolist())
        self.hazards[hazard_id] = track

    def hazard_off(self, hazard_id: str, t: float) -> None:
        if hazard_id in self.hazards:
            self.hazards[hazard_id].end_s = t

    def tick(self, fleet: Fleet) -> None:
        idx = np.flatnonzero(fleet.active)
        km, v, nb = fleet.km[idx], fleet.v[idx], fleet.nb[idx]
        self.load_t.append(fleet.t)
        self.load.append(np.bincount(fleet.region[idx], minlength=self.regions))
        self._keep(fleet, idx, km, v, nb)
        self._flow(fleet, idx, km, v)
        for h in self.hazards.values():
            # the step that brought the fleet to `t` ran with the hazard on the road if it started before
            # `t` and had not been cleared before `t` (events fire between a tick's physics and its telemetry)
            if h.end_s < fleet.t < h.end_s + DISCHARGE_WATCH_S:
                self._discharge(fleet, idx, km, nb, h)
            if h.start_s <= fleet.t < h.end_s + DISCHARGE_WATCH_S:
                self._section(fleet, idx, km, nb, h)
            if not h.start_s <= fleet.t <= h.end_s:
                continue
            affected = np.ones(len(idx), bool) if h.northbound is None else nb == h.northbound
            ahead = np.where(nb, h.km - km, km - h.km)
            if fleet.t < h.end_s:
                self._approach(fleet, idx, v, affected, ahead, h)
            if h.start_s == fleet.t:
                continue
            if self._prev_km is not None and self._prev_active is not None and self._prev_num is not None:
                was = self._prev_km[idx]
                before = np.where(nb, h.km - was, was - h.km)
                same = self._prev_active[idx] & (self._prev_num[idx] == fleet.num[idx])  # a slot can be reused
                crossed = affected & same & (before > 0) & (ahead <= 0)
                for ln in fleet.lane[idx[crossed]].tolist():
                    h.passed_in_lane[ln] = h.passed_in_lane.get(ln, 0) + 1
                in_force = fleet.adv_until[idx[crossed]] > fleet.t  # any advice, even KEEP: that is no lapse
                for num, speed, kept in zip(fleet.num[idx[crossed]].tolist(), v[crossed].tolist(), in_force.tolist(),
                                            strict=True):  # fmt: skip
                    if num in h.surprised:
                        h.surprised_passing_mps.append(speed)
                    elif num in h.advised:
                        (h.passing_mps if kept else h.lapsed_passing_mps).append(speed)
                    else:
                        h.unadvised_passing_mps.append(speed)
        self._prev_km, self._prev_active, self._prev_num = fleet.km.copy(), fleet.active.copy(), fleet.num.copy()

    def _approach(self, fleet: Fleet, idx: npt.NDArray[np.int64], v: F, affected: npt.NDArray[np.bool_], ahead: F,
                  h: HazardTrack) -> None:  # fmt: skip
        """Speeds before it, and who was told to slow down or stop in time (or too late)."""
        near = affected & (ahead >= APPROACH_KM[0]) & (ahead <= APPROACH_KM[1])
        h.approach_mps.extend(v[near].tolist())
        told = (
            affected
            & np.isin(fleet.adv_action[idx], (Action.SLOW_DOWN, Action.STOP))
            & (fleet.adv_until[idx] > fleet.t)
        )
        first = told & ~np.isin(fleet.num[idx], list(h.advised | h.advised_late))
        if first.any():
            can_stop = ahead[first] * 1000 >= v[first] ** 2 / (2 * STOP_DECEL_MPS2)
            nums = fleet.num[idx[first]]
            h.advised.update(nums[can_stop].tolist())
            h.advised_late.update(nums[~can_stop].tolist())

    def _flow(self, fleet: Fleet, idx: npt.NDArray[np.int64], km: F, v: F) -> None:
        """Distance driven and lane changes (for a rate per distance), and free-flow speeds: before any
        hazard, away from the interchanges."""
        if self._prev_km is not None and self._prev_active is not None and self._prev_num is not None:
            same = self._prev_active[idx] & (self._prev_num[idx] == fleet.num[idx])
            self.vehicle_km += float(np.abs(km[same] - self._prev_km[idx[same]]).sum())
        self.lane_changes = fleet.lane_changes
        if self.hazards or fleet.t < FREE_FLOW_FROM_S:
            return
        away = np.ones(len(km), bool)
        if len(self.interchanges_km):
            away = np.abs(km[:, None] - self.interchanges_km[None, :]).min(axis=1) >= FREE_FLOW_CLEAR_KM
        self.free_flow_kmh += np.bincount(np.clip((v[away] * 3.6).astype(np.int64), 0, 199), minlength=200)

    def _discharge(self, fleet: Fleet, idx: npt.NDArray[np.int64], km: F, nb: npt.NDArray[np.bool_],
                   h: HazardTrack) -> None:  # fmt: skip
        """Vehicles passing a cleared hazard's place: the queue behind it discharging."""
        if self._prev_km is None or self._prev_active is None or self._prev_num is None:
            return
        affected = np.ones(len(idx), bool) if h.northbound is None else nb == h.northbound
        was = self._prev_km[idx]
        before = np.where(nb, h.km - was, was - h.km)
        ahead = np.where(nb, h.km - km, km - h.km)
        same = self._prev_active[idx] & (self._prev_num[idx] == fleet.num[idx])
        crossed = int((affected & same & (before > 0) & (ahead <= 0)).sum())
        h.cleared_crossings_s.extend([fleet.t] * crossed)

    def _section(self, fleet: Fleet, idx: npt.NDArray[np.int64], km: F, nb: npt.NDArray[np.bool_],
                 h: HazardTrack) -> None:  # fmt: skip
        """Travel times through the hazard's section: in at SECTION_KM[0] upstream, out SECTION_KM[1] past it."""
        if self._prev_km is None or self._prev_active is None or self._prev_num is None:
            return
        affected = np.ones(len(idx), bool) if h.northbound is None else nb == h.northbound
        same = affected & self._prev_active[idx] & (self._prev_num[idx] == fleet.num[idx])
        was, now = self._prev_km[idx], km
        before = np.where(nb, h.km - was, was - h.km)  # km still to go to the hazard
        ahead = np.where(nb, h.km - now, now - h.km)
        came_in = same & (before > SECTION_KM[0]) & (ahead <= SECTION_KM[0])
        went_out = same & (before > -SECTION_KM[1]) & (ahead <= -SECTION_KM[1])
        for num in fleet.num[idx[came_in]].tolist():
            h.section_in_s[num] = fleet.t
        for num in fleet.num[idx[went_out]].tolist():
            t_in = h.section_in_s.pop(num, None)
            if t_in is not None:
                h.section_s.append(fleet.t - t_in)

    def traffic(self) -> dict[str, Any]:
        """Measures to hold one fleet model against another on the same scenario."""
        n = int(self.free_flow_kmh.sum())
        cum = np.cumsum(self.free_flow_kmh)

        def pct(q: float) -> float | None:
            return float(np.searchsorted(cum, q * n)) if n else None

        return {
            "free_flow_kmh": {"p10": pct(0.1), "p50": pct(0.5), "p90": pct(0.9), "samples": n},
            "vehicle_km": round(self.vehicle_km, 1),
            "lane_changes_per_100_vehicle_km": round(100 * self.lane_changes / self.vehicle_km, 2)
            if self.vehicle_km
            else None,
        }

    def _keep(self, fleet: Fleet, idx: npt.NDArray[np.int64], km: npt.NDArray[np.float64],
              v: npt.NDArray[np.float64], nb: npt.NDArray[np.bool_]) -> None:  # fmt: skip
        tick, self._tick_no = self._tick_no, self._tick_no + 1
        if tick % self.tick_stride:
            return
        per_tick = max(1, self.max_points // MIN_COLUMNS)
        if len(idx) > per_tick * self.vehicle_stride:
            self.vehicle_stride = -(-len(idx) // per_tick)
        sel = fleet.num[idx] % self.vehicle_stride == 0
        self._ticks.append((tick, np.full(int(sel.sum()), fleet.t), km[sel].copy(), v[sel].copy(), nb[sel].copy(),
                            fleet.num[idx][sel].copy(), fleet.lane[idx][sel].copy()))  # fmt: skip
        self.points += int(sel.sum())
        while self.points > self.max_points and len(self._ticks) > 1:
            self.tick_stride *= 2
            self._ticks = [k for k in self._ticks if k[0] % self.tick_stride == 0]
            self.points = sum(len(k[1]) for k in self._ticks)

    def trajectories(self) -> dict[str, npt.NDArray[Any]]:
        if not self._ticks:
            none = np.zeros(0, np.int64)
            return {"t": np.zeros(0), "km": np.zeros(0), "v": np.zeros(0), "nb": np.zeros(0, bool), "num": none,
                    "lane": none}  # fmt: skip
        _, t, km, v, nb, num, lane = zip(*self._ticks, strict=True)
        return {"t": np.concatenate(t), "km": np.concatenate(km), "v": np.concatenate(v), "nb": np.concatenate(nb),
                "num": np.concatenate(num), "lane": np.concatenate(lane)}  # fmt: skip
