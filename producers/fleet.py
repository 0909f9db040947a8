"""The fleet: vehicles driving both carriageways of the corridor, stepped together with NumPy.

State is a struct of arrays over a fixed capacity (one slot per vehicle, `active` marks live ones),
so one step of 20,000 vehicles is a handful of array operations: sort by (carriageway, lane,
progress), find each vehicle's leader, apply the IDM, move, hand off between tower regions.

Vehicles enter at the route's ends and interchanges and leave at their destination interchange,
so the count stays near the target. Hazards are stationary obstacles that drivers see only from
`visibility_m` away; an advisory from a tower lowers their desired speed long before that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from pipeline.shared.corridor import Corridor
from producers.cam import CamTrigger
from producers.hazard_driving import STOP_DECEL_MPS2
from producers.idm import IdmParams, idm_accel
from producers.mobil import MobilParams, lane_changes

__all__ = ["Action", "Fleet", "FleetConfig", "Obstacle", "TelemetryBatch"]

F = npt.NDArray[np.float64]
I = npt.NDArray[np.int64]  # noqa: E741
B = npt.NDArray[np.bool_]

LANES = 2  # per carriageway: the corridor's narrowest stretch (Sample Rd → Smith Valley Rd)
MERGE_GAP_KM = 0.03  # an entering vehicle needs this much room ahead of it in the right-hand lane
MERGE_BEHIND_KM = 0.08  # and this much behind it: the follower comes on faster than the merging car


class Action:
    """Advisory actions as the fleet stores them (mirrors the ControlAdvisory enum)."""

    NONE, SLOW_DOWN, SPEED_UP, KEEP, STOP = 0, 1, 2, 3, 4
    BY_NAME: ClassVar[dict[str, int]] = {"SLOW_DOWN": 1, "SPEED_UP": 2, "KEEP": 3, "STOP": 4}


@dataclass(frozen=True, slots=True)
class FleetConfig:
    vehicles: int = 300
    seed: int = 7
    idm: IdmParams = field(default_factory=IdmParams)
    visibility_m: float = 150.0  # how far ahead a driver sees an obstacle unaided
    desired_speed_spread: float = 0.08  # drivers' desired speed: limit × N(1, spread)
    first_num: int = 0  # the first vehicle number (ids `veh-<num>`): two fleets on one road need their own
    mobil: MobilParams | None = field(default_factory=MobilParams)  # None: every vehicle keeps its lane
    obeys: bool = True  # False: drivers hear advice and ignore it (the towers' effect measured by its absence)


@dataclass(slots=True)
class Obstacle:
    """Something on the road at `km` between `start_s` and `end_s` (`end_s` may be moved to clear it).

    `pass_speed_mps` 0 blocks `lanes` (None: every lane of the carriageway): drivers in a blocked lane
    stop before it unless they change lanes (`producers.mobil`); above 0, drivers in those lanes
    squeeze past at that speed (an animal on the shoulder, debris). Either way they only react once
    it is within `FleetConfig.visibility_m`: slowing down any earlier is what the towers' advice is for."""

    km: float
    northbound: bool | None  # None: both carriageways
    start_s: float
    end_s: float
    pass_speed_mps: float = 0.0
    lanes: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class TelemetryBatch:
    """One telemetry message per listed vehicle, as arrays (encoded in bulk by `TelemetryEncoder`)."""

    slot: I
    vehicle_num: I
    seq: I
    event_time_ms: int
    lat: F
    lon: F
    km: F
    northbound: B
    lane: I
    heading: F
    speed: F
    accel: F
    brake: B
    energy: F
    region: I

    def __len__(self) -> int:
        return len(self.slot)

    def take(self, idx: npt.NDArray[np.int64]) -> TelemetryBatch:
        """The messages at `idx`, in that order."""
        return TelemetryBatch(**{
            f: getattr(self, f) if f == "event_time_ms" else getattr(self, f)[idx] for f in self.__dataclass_fields__
        })  # fmt: skip


class Fleet:
    def __init__(self, corridor: Corridor, config: FleetConfig, start_ms: int = 0) -> None:
        self.corridor = corridor
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.t = 0.0  # simulated seconds since start
        self.start_ms = start_ms
        n = max(16, int(config.vehicles * 1.5) + 16)
        self.active = np.zeros(n, bool)
        self.num = np.zeros(n, np.int64)
        self.km = np.zeros(n)
        self.nb = np.zeros(n, bool)
        self.lane = np.zeros(n, np.int64)
        self.changed_at = np.full(n, -np.inf)  # simulated time of each vehicle's last lane change
        self.lane_changes = 0
        self.v = np.zeros(n)
        self.a = np.zeros(n)
        self.factor = np.ones(n)
        self.exit_km = np.zeros(n)
        self.seq = np.zeros(n, np.int64)
        self.region = np.full(n, -1, np.int64)
        self.energy = np.zeros(n)
        self.adv_action = np.zeros(n, np.int64)
        self.adv_speed = np.full(n, np.inf)
        self.adv_until = np.zeros(n)
        #: when the message that triggered the advice in force was sent (simulated s): advice triggered
        #: earlier is out of date (a tower catching up on a backlog advises from old positions)
        self.adv_trigger = np.full(n, -np.inf)
        self.outdated_ignored = 0
        self.next_num = config.first_num
        self.obstacles: list[Obstacle] = []
        self.entered = self.left = 0
        route = corridor.route
        self._length_m = route.length_km * 1000
        self._entries = np.array(route.interchanges_km)
        self._populate(config.vehicles)

    # ---- population -------------------------------------------------------------------------
    def _spawn(self, slots: I, km: F, nb: B, lane: I | None = None, speed_share: float = 0.9) -> None:
        k = len(slots)
        rng = self.rng
        self.active[slots] = True
        self.num[slots] = np.arange(self.next_num, self.next_num + k)
        self.next_num += k
        self.km[slots] = km
        self.nb[slots] = nb
        self.lane[slots] = rng.integers(0, LANES, k) if lane is None else lane
        self.changed_at[slots] = -np.inf
        limit = self.corridor.route.speed_limit_mps(km)
        self.factor[slots] = np.clip(rng.normal(1.0, self.config.desired_speed_spread, k), 0.8, 1.2)
        self.v[slots] = limit * self.factor[slots] * speed_share
        self.a[slots] = 0.0
        self.seq[slots] = 0
        self.region[slots] = self.corridor.regions.lookup_many(km)
        self.energy[slots] = rng.uniform(20, 100, k)
        self.adv_action[slots] = Action.NONE
        self.adv_speed[slots] = np.inf
        self.adv_until[slots] = 0.0
        self.adv_trigger[slots] = -np.inf
        # Destination: an interchange (or the end) beyond the entry in the direction of travel.
        ends = self._entries
        lo = np.where(nb, km + 1.0, ends[0])
        hi = np.where(nb, ends[-1], km - 1.0)
        pick = lo + rng.random(k) * (hi - lo)
        idx = np.clip(np.searchsorted(ends, pick), 0, len(ends) - 1)
        dest = ends[idx]
        far_end = np.where(nb, ends[-1], ends[0])
        bad = np.where(nb, dest <= km, dest >= km)
        self.exit_km[slots] = np.where(bad | (rng.random(k) < 0.4), far_end, dest)
        self.entered += k

    def _populate(self, count: int) -> None:
        """Vehicles spread at random over the road, no two of a lane closer than a safe spacing."""
        slots = np.arange(count)
        km = np.sort(self.rng.uniform(0.05, self.corridor.route.length_km - 0.05, count))
        self._spawn(slots, km, self.rng.random(count) < 0.5)
        idm = self.config.idm
        # a gap to follow at the speed they start with (about 25 m/s), as dense traffic allows
        lane_km = 2 * LANES * self.corridor.route.length_km
        spacing = min(idm.vehicle_length_m + idm.min_gap_m + 25.0 * idm.time_headway_s, 800 * lane_km / count) / 1000
        for nb in (True, False):
            for ln in range(LANES):
                sel = slots[(self.nb[slots] == nb) & (self.lane[slots] == ln)]  # sorted by km already
                steps = np.arange(len(sel)) * spacing
                # each at least `spacing` past the one before: x'_i = max_{j ≤ i}(x_j − j·d) + i·d
                self.km[sel] = np.maximum.accumulate(self.km[sel] - steps) + steps
                # all at one speed, that of the limit (their own desired speeds spread them out later),
                # no faster than their gap allows: nobody starts out braking hard
                ahead = np.diff(self.km[sel]) * 1000  # to the next one up the road (km order)
                gap_m = np.append(ahead, np.inf) if nb else np.append(np.inf, ahead)  # to the one in front
                room = np.maximum(gap_m - idm.vehicle_length_m - idm.min_gap_m, 0.0) / idm.time_headway_s
                self.v[sel] = np.minimum(0.9 * self.corridor.route.speed_limit_mps(self.km[sel]), room)

    def _refill(self, dt: float) -> None:
        """Enter vehicles at ends and interchanges to keep the count near the target: from the on-ramp
        into the right-hand lane, a little below the limit, and only into a gap there (a driver with no
        gap waits on the ramp: the count catches up later)."""
        deficit = self.config.vehicles - int(self.active.sum())
        if deficit <= 0:
            return
        k = min(deficit, max(1, int(self.config.vehicles * dt / 30)))  # ≤ 1/30 of the fleet a second
        free = np.flatnonzero(~self.active)[:k]
        k = len(free)
        nb = self.rng.random(k) < 0.5
        ends = self._entries
        entry = ends[self.rng.integers(0, len(ends) - 1, k)]  # never enter at the far end
        entry = np.where(nb, entry, ends[::-1][self.rng.integers(0, len(ends) - 1, k)])
        gap = np.array([self._room_at(e, n) for e, n in zip(entry.tolist(), nb.tolist(), strict=True)], bool)
        # two entering at one ramp in one step: the first only
        _, first = np.unique(np.stack([entry, nb]), axis=1, return_index=True)
        once = np.zeros(k, bool)
        once[first] = True
        go = gap & once
        self._spawn(free[go], entry[go], nb[go], lane=np.zeros(int(go.sum()), np.int64), speed_share=0.75)

    def _room_at(self, km: float, northbound: bool) -> bool:
        """A gap in the right-hand lane at `km`: nobody within the merging distance ahead, nor within
        what the follower needs to let a slower car in (`MERGE_BEHIND_KM`) behind."""
        ahead = np.where(northbound, self.km - km, km - self.km)
        near = self.active & (self.nb == northbound) & (self.lane == 0)
        return not (near & (ahead > -MERGE_BEHIND_KM) & (ahead < MERGE_GAP_KM)).any()

    # ---- dynamics ---------------------------------------------------------------------------
    def desired_speed(self, idx: I) -> F:
        limit = self.corridor.route.speed_limit_mps(self.km[idx]) * self.factor[idx]
        advised = np.where(self.adv_until[idx] > self.t, self.adv_speed[idx], np.inf)
        return np.minimum(limit, advised)

    def step(self, dt: float) -> None:
        idx = np.flatnonzero(self.active)
        if len(idx):
            p = self.config.idm
            km, nb, v = self.km[idx], self.nb[idx], self.v[idx]
            progress = np.where(nb, km * 1000.0, self._length_m - km * 1000.0)
            group = self.lane[idx] + np.where(nb, 0, LANES)
            order = np.lexsort((progress, group))
            s, g = progress[order], group[order]
            same = np.append(g[1:] == g[:-1], False)
            gap = np.where(same, np.append(s[1:], np.inf) - s - p.vehicle_length_m, np.inf)
            v_sorted = v[order]
            dv = np.where(same, v_sorted - np.append(v_sorted[1:], 0.0), 0.0)
            gap_u = np.empty_like(gap)
            dv_u = np.empty_like(dv)
            gap_u[order], dv_u[order] = gap, dv
            v0 = self.desired_speed(idx)
            lane = self.lane[idx]
            walls = np.full((LANES, len(idx)), np.inf)  # per lane, a wall seen ahead (for lane changes)
            for ob in self.obstacles:
                if not ob.start_s <= self.t < ob.end_s:
                    continue
                ob_prog = np.where(nb, ob.km * 1000.0, self._length_m - ob.km * 1000.0)
                ahead = ob_prog - progress
                seen = (ahead > -30.0) & (ahead < self.config.visibility_m)
                if ob.northbound is not None:
                    seen &= nb == ob.northbound
                blocked = range(LANES) if ob.lanes is None else ob.lanes
                in_lane = np.isin(lane, blocked)
                if ob.pass_speed_mps <= 0:  # a wall: a stationary leader in each lane it blocks
                    front = seen & (ahead > -1.0)
                    # nobody changes into a blocked lane until 30 m past the obstacle (the closure's taper)
                    for ln in blocked:
                        walls[ln] = np.where(seen, np.minimum(walls[ln], np.maximum(ahead, 0.0)), walls[ln])
                    hit = front & in_lane & (ahead < gap_u)
                    gap_u = np.where(hit, np.maximum(ahead, 0.0), gap_u)
                    dv_u = np.where(hit, v, dv_u)
                else:  # drivers brake to the passing speed, harder the later they see it
                    ramp = ob.pass_speed_mps + np.maximum(ahead, 0.0) / self.config.visibility_m * 10.0
                    v0 = np.where(seen & in_lane, np.minimum(v0, ramp), v0)
            stop = (self.adv_action[idx] == Action.STOP) & (self.adv_until[idx] > self.t)
            v0 = np.where(stop, 0.0, v0)
            # told to stop, a driver brakes firmly; otherwise at the comfortable rate of a new limit
            free_decel = np.where(stop, max(STOP_DECEL_MPS2, p.comfort_decel), p.comfort_decel)
            acc = idm_accel(v, v0, gap_u, dv_u, p, free_decel)
            if self.config.mobil is not None:
                free = self.t - self.changed_at[idx] >= self.config.mobil.cooldown_s
                movers, acc_new = lane_changes(progress, group, lane, v, v0, acc, gap_u, dv_u, walls, free, p,
                                               self.config.mobil, free_decel)  # fmt: skip
                if len(movers):
                    acc[movers] = acc_new
                    self.lane[idx[movers]] = 1 - lane[movers]
                    self.changed_at[idx[movers]] = self.t
                    self.lane_changes += len(movers)
            v_new = np.maximum(v + acc * dt, 0.0)
            moved = (v + v_new) / 2 * dt / 1000.0
            self.km[idx] = km + np.where(nb, moved, -moved)
            self.v[idx], self.a[idx] = v_new, (v_new - v) / dt
            self.energy[idx] = np.maximum(self.energy[idx] - moved * 0.015, 0.0)
            new_region = self.corridor.regions.handoff(self.km[idx], self.region[idx])
            changed = new_region != self.region[idx]
            if changed.any():
                moved_idx = idx[changed]
                self.adv_until[moved_idx] = 0.0  # the old tower's advice lapses at handoff
                self.adv_action[moved_idx] = Action.NONE
            self.region[idx] = new_region
            done = np.where(nb, self.km[idx] >= self.exit_km[idx], self.km[idx] <= self.exit_km[idx])
            if done.any():
                self.active[idx[done]] = False
                self.left += int(done.sum())
        self.t += dt
        self._refill(dt)

    # ---- I/O-facing views -------------------------------------------------------------------
    def telemetry(self, cam: CamTrigger | None = None) -> TelemetryBatch:
        """One message per active vehicle at the current simulated time (sequence numbers advance);
        with `cam`, only from the vehicles its generation rules say send now."""
        idx = np.flatnonzero(self.active)
        route = self.corridor.route
        km = self.km[idx]
        heading = route.heading_deg(km, self.nb[idx])
        if cam is not None:  # headings are needed for the rules anyway: computed once, then kept for those sent
            due = cam.due(idx, self.num[idx], self.t, km, heading, self.v[idx])
            idx, km, heading = idx[due], km[due], heading[due]
        lat, lon = route.lat_lon(km)
        seq = self.seq[idx].copy()
        self.seq[idx] += 1
        return TelemetryBatch(
            slot=idx,
            vehicle_num=self.num[idx],
            seq=seq,
            event_time_ms=self.start_ms + int(self.t * 1000),
            lat=lat,
            lon=lon,
            km=km,
            northbound=self.nb[idx],
            lane=self.lane[idx],
            heading=heading,
            speed=self.v[idx],
            accel=self.a[idx],
            brake=(self.a[idx] < -1.0) | ((self.v[idx] < 0.5) & (self.a[idx] <= 0)),
            energy=self.energy[idx],
            region=self.region[idx],
        )

    def obey(
        self,
        vehicle_num: int | None,
        region: int,
        northbound: bool | None,
        action: int,
        speed: float,
        until_s: float,
        trigger_s: float = np.inf,
    ) -> int:
        """Apply an advisory to one vehicle, or to every vehicle of `region` (and carriageway); returns
        how many vehicles took it. Vehicles outside the region ignore it: they listen to their own tower.
        Advice triggered (`trigger_s`, simulated s) before the advice a vehicle follows is out of date
        and ignored, as a V2X receiver drops a message older than the one it acts on: a tower that took
        over a region advises from its backlog's old positions until it has caught up."""
        if not self.config.obeys:
            return 0
        mask = self.active & (self.region == region)
        if vehicle_num is not None:
            mask &= self.num == vehicle_num
        if northbound is not None:
            mask &= self.nb == northbound
        hit = np.flatnonzero(mask)
        current = self.adv_trigger[hit] <= trigger_s
        self.outdated_ignored += int((~current).sum())
        hit = hit[current]
        self.adv_trigger[hit] = trigger_s
        self.adv_action[hit] = action
        # SPEED_UP means "back to your own desired speed": it lifts any cap rather than setting one.
        self.adv_speed[hit] = np.inf if action == Action.SPEED_UP else speed
        self.adv_until[hit] = until_s
        return len(hit)

    def vehicle_count(self) -> int:
        return int(self.active.sum())
