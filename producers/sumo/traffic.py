"""SUMO moves the vehicles: the field's own simulator behind the same fleet interface `drive` steps.

`SumoFleet` keeps `Fleet`'s arrays (so telemetry, the advisory listener, the hazard spotter and the
run's recorder work unchanged) but fills them from SUMO each step instead of integrating its own IDM.
The coupling runs in corridor's process through `libsumo` (no server, no socket: it ends with the
process). Advice goes back through the same TraCI calls a V2X coupling makes: a speed cap
(`setMaxSpeed`) while a SLOW_DOWN holds, a firm braking to 0 (`slowDown`) then a cap of 0 while a STOP
holds, lifted when it lapses or the vehicle leaves its tower's region. Hazards become SUMO objects: a wall across lanes
is a stopped vehicle in each lane it closes; a hazard drivers pass slowly caps the speed of those
who see it, as the built-in fleet's drivers do.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.shared.corridor import Corridor
from pipeline.shared.errors import ConfigError
from producers.fleet import Action, Fleet, FleetConfig, Obstacle
from producers.hazard_driving import STOP_DECEL_MPS2
from producers.sumo.build import INSTALL_HINT, BuiltNetwork
from producers.sumo.network import Edge, NetworkPlan

__all__ = ["SumoFleet", "SumoOptions"]

NO_CAP = 100.0  # m/s: a vehicle's own maximum speed when nothing caps it
HAZARD_PREFIX = "hazard-"  # SUMO vehicles that stand for a hazard: not connected, never telemetry
HAZARD_TYPE = "DEFAULT_VEHTYPE"  # SUMO's own type, in every network: a user's scenario need not define ours


@dataclass(frozen=True, slots=True)
class SumoOptions:
    step_s: float  # SUMO's step length: a tick of `drive` (its 1 s at 1 Hz), or a multiple of its sub-step
    fcd_path: Path | None = None  # SUMO's own FCD output (geo), if wanted
    fcd_period_s: float = 1.0


def _libsumo() -> Any:
    try:
        import libsumo  # an optional extra: imported when used
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return libsumo


def _vtype_xml(config: FleetConfig) -> str:
    """Corridor's drivers as a SUMO vehicle type: the same IDM parameters and spread of desired
    speeds, SUMO's own lane-change model (LC2013)."""
    p, spread = config.idm, config.desired_speed_spread
    return (
        '<routes>\n    <vType id="car" vClass="passenger" carFollowModel="IDM" laneChangeModel="LC2013" '
        f'accel="{p.max_accel}" decel="{p.comfort_decel}" emergencyDecel="{p.max_decel}" tau="{p.time_headway_s}" '
        f'minGap="{p.min_gap_m}" delta="{p.delta}" length="{p.vehicle_length_m}" maxSpeed="{NO_CAP}" '
        f'speedFactor="normc(1,{spread},0.8,1.2)"/>\n</routes>\n'
    )


class _Roads:
    """Where a SUMO road id lies on the route's km axis: mainline edges by position along them,
    ramps and junctions at the km where they meet the mainline."""

    def __init__(self, plan: NetworkPlan) -> None:
        self.plan = plan
        self.edges = {e.id: e for e in plan.edges}
        self.main = {side: plan.mainline(side) for side in ("NB", "SB")}
        self.index = {e.id: i for side in self.main.values() for i, e in enumerate(side)}
        self.node_km: dict[str, tuple[float, bool]] = {}
        for e in plan.edges:
            self.node_km.setdefault(e.to_node, (e.to_km, e.northbound))
            self.node_km.setdefault(e.from_node, (e.from_km, e.northbound))

    def place(self, road: str, pos_m: float, lane: int) -> tuple[float, bool, int]:
        """(km, northbound, corridor lane) of a SUMO position."""
        e = self.edges.get(road)
        if e is not None:
            if e.kind != "main":
                return e.from_km, e.northbound, 0
            frac = min(max(pos_m / e.length_m, 0.0), 1.0)
            return e.from_km + (e.to_km - e.from_km) * frac, e.northbound, max(lane - int(e.aux), 0)
        node = road[1:].rsplit("_", 1)[0]  # an internal road ":<node>_<n>": its lanes are not the road's
        km, nb = self.node_km.get(node, (0.0, True))
        return km, nb, -1

    def edge_at(self, km: float, northbound: bool) -> Edge:
        for e in self.main["NB" if northbound else "SB"]:
            if min(e.from_km, e.to_km) <= km <= max(e.from_km, e.to_km):
                return e
        raise ValueError(f"km {km} is off the route")

    def route(self, start: Edge, exit_km: float, northbound: bool) -> list[str]:
        """Edges from `start` to the exit at `exit_km` (an interchange's off-ramp, or the road's end)."""
        side = "NB" if northbound else "SB"
        main = self.main[side]
        i = self.index[start.id] if start.kind == "main" else next(
            k for k, e in enumerate(main) if e.from_node == start.to_node)  # fmt: skip
        head = [start.id] if start.kind != "main" else []
        for ic in self.plan.interchanges:
            if abs(ic.km - exit_km) < 1e-6:
                off = self.plan.ramp(side, "off", ic.waypoint)
                j = next(k for k, e in enumerate(main) if e.to_node == off.from_node)
                if j >= i:
                    return head + [e.id for e in main[i : j + 1]] + [off.id]
        return head + [e.id for e in main[i:]]


class SumoFleet(Fleet):
    """A fleet whose vehicles SUMO drives. Advice is obeyed through TraCI; `close` ends SUMO."""

    def __init__(self, corridor: Corridor, config: FleetConfig, network: BuiltNetwork, options: SumoOptions,
                 start_ms: int = 0, workdir: Path | None = None) -> None:  # fmt: skip
        self.roads = _Roads(network.plan)
        folder = workdir or network.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        vtypes = folder / "corridor.vtypes.xml"
        vtypes.write_text(_vtype_xml(config), encoding="utf-8")
        own = ["-n", str(network.path), "-a", str(vtypes), "--seed", str(config.seed), "--time-to-teleport", "-1",
               "--collision.action", "warn", "--default.speeddev", "0", "--eager-insert", "true"]  # fmt: skip
        self._launch(corridor, config, options, start_ms, own)

    def _launch(self, corridor: Corridor, config: FleetConfig, options: SumoOptions, start_ms: int,
                scenario: list[str]) -> None:  # fmt: skip
        """Start SUMO on `scenario`'s arguments, then the fleet's arrays (which place its vehicles)."""
        self._sumo = _libsumo()
        if _running(self._sumo):
            raise ConfigError("a SUMO simulation is already running in this process")
        self.options = options
        self._ids: dict[str, int] = {}  # SUMO id → slot
        self._vid: dict[int, str] = {}  # slot → SUMO id
        self._sumo_t = 0.0  # SUMO's own clock (simulated s)
        self._gone: dict[str, int] = {}  # off the corridor down an off-ramp, still in SUMO until it arrives
        self._walls: dict[int, list[str]] = {}  # obstacle (by id()) → its stopped vehicles
        self._routes: set[str] = set()
        self.collisions = 0
        self.sumo_cpu_s = 0.0  # CPU time inside SUMO's own steps (the rest of a step is the coupling's)
        cmd = ["sumo", *scenario, "--step-length", f"{options.step_s:g}", "--no-step-log", "true",
               "--no-warnings", "true"]  # fmt: skip
        if options.fcd_path is not None:
            cmd += ["--fcd-output", str(options.fcd_path), "--fcd-output.geo", "true",
                    "--device.fcd.period", f"{options.fcd_period_s:g}"]  # fmt: skip
        with tempfile.TemporaryFile() as said:
            try:
                with _stderr_into(said):  # SUMO says why it refuses on the process's stderr, and only there
                    self._sumo.start(cmd)
            except self._sumo.TraCIException:
                said.seek(0)
                lines = [ln for ln in said.read().decode(errors="replace").splitlines() if ln.strip()]
                reason = lines[-1].removeprefix("Error: ") if lines else "no reason given"
                raise ConfigError(f"SUMO refused its input: {reason}") from None
        try:
            super().__init__(corridor, config, start_ms)
            self._applied_cap = np.full(len(self.active), NO_CAP)
            self._applied_stop = np.zeros(len(self.active), bool)
            self._stopped_by = np.zeros(len(self.active))  # when a vehicle told to stop has braked to 0
        except Exception:
            self.close()
            raise

    # ---- population: vehicles handed to SUMO --------------------------------------------------
    def _populate(self, count: int) -> None:
        """Where the built-in fleet would start its vehicles, SUMO's start."""
        super()._populate(count)
        for slot in np.flatnonzero(self.active).tolist():
            self._add(slot)
        self.active[:] = False  # active, and counted as entered, once SUMO has placed them
        self.entered = 0

    def _add(self, slot: int) -> None:
        km, nb = float(self.km[slot]), bool(self.nb[slot])
        edge = self.roads.edge_at(km, nb)
        self._add_on(slot, edge, abs(km - edge.from_km) * 1000, int(self.lane[slot]) + int(edge.aux))

    def _add_on(self, slot: int, edge: Edge, pos_m: float, lane: int) -> None:
        """Into SUMO's insertion queue, at the fastest speed that is safe where it goes in."""
        edges = self.roads.route(edge, float(self.exit_km[slot]), bool(self.nb[slot]))
        rid = f"r:{edges[0]}>{edges[-1]}"
        if rid not in self._routes:
            self._sumo.route.add(rid, edges)
            self._routes.add(rid)
        vid = str(int(self.num[slot]))
        self._vid[slot] = vid
        self._sumo.vehicle.add(vid, rid, typeID="car", depart="now", departLane=str(min(lane, edge.lanes - 1)),
                               departPos=f"{min(max(pos_m, 0.0), edge.length_m - 1):.1f}",
                               departSpeed="max")  # fmt: skip
        self._ids[vid] = slot

    def _refill(self, dt: float) -> None:
        """Keep the count near the target as the built-in fleet does: vehicles come in at the ends and
        up the on-ramps; one with no room waits at its ramp's start, in SUMO's insertion queue."""
        deficit = self.config.vehicles - (len(self._ids) - len(self._gone))
        if deficit <= 0:
            return
        k = min(deficit, max(1, int(self.config.vehicles * dt / 30)))
        held = np.zeros(len(self.active), bool)
        held[list(self._ids.values())] = True  # in SUMO: waiting, on a ramp, or on the road
        free = np.flatnonzero(~self.active & ~held)[:k]
        ends = self._entries
        for slot in free.tolist():
            nb = bool(self.rng.random() < 0.5)
            pick = int(self.rng.integers(0, len(ends) - 1))
            entry = float(ends[pick] if nb else ends[::-1][pick])
            self._spawn(np.array([slot]), np.array([entry]), np.array([nb]), lane=np.zeros(1, np.int64),
                        speed_share=0.75)  # fmt: skip
            self.active[slot] = False  # until SUMO inserts it
            self.entered -= 1  # counted when it is on the road
            side = "NB" if nb else "SB"
            ramp = next((ic.waypoint for ic in self.roads.plan.interchanges if abs(ic.km - entry) < 1e-6), None)
            if ramp is None:  # an end of the road
                self._add_on(slot, self.roads.main[side][0], 0.0, 0)
            else:
                self._add_on(slot, self.roads.plan.ramp(side, "on", ramp), 0.0, 0)

    # ---- dynamics -----------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        """`drive` integrates in sub-steps of a tick; SUMO steps at its own length (a tick, at most
        one second): between its steps nothing moves."""
        self.t += dt
        due = self._sumo_t + self.options.step_s
        if self.t + 1e-9 < due:
            return
        self._hazards()
        self._advise()
        c0 = time.process_time()
        self._sumo.simulationStep(round(due, 3))
        self.sumo_cpu_s += time.process_time() - c0
        self._sumo_t = due
        self._read()
        self._refill(self.options.step_s)

    def _read(self) -> None:
        sumo = self._sumo
        tc = sumo.constants
        wanted = (tc.VAR_ROAD_ID, tc.VAR_LANEPOSITION, tc.VAR_LANE_INDEX, tc.VAR_SPEED, tc.VAR_ACCELERATION)
        for vid in sumo.simulation.getDepartedIDList():
            if vid in self._ids:  # not a hazard's stopped vehicle
                sumo.vehicle.subscribe(vid, wanted)
        for vid in sumo.simulation.getArrivedIDList():
            slot = self._ids.pop(vid, None)
            if slot is not None and self._gone.pop(vid, None) is None:
                self._leave(slot)  # at the road's end
        self.collisions += sumo.simulation.getCollidingVehiclesNumber()
        results = sumo.vehicle.getAllSubscriptionResults()
        slots, km, nb, lane, v, a, was = [], [], [], [], [], [], []
        place, ids, edges = self.roads.place, self._ids, self.roads.edges
        for vid, r in results.items():
            slot = ids.get(vid)
            if slot is None or vid in self._gone:
                continue
            road = r[tc.VAR_ROAD_ID]
            ramp = edges.get(road)
            if ramp is not None and ramp.kind != "main":
                # the corridor's traffic is on its carriageways: a driver on an on-ramp is not on it yet
                # (as the built-in fleet's waits for a gap unseen), one on an off-ramp has left it
                if ramp.kind == "off" and self.active[slot]:
                    self._gone[vid] = slot
                    self._leave(slot)
                continue
            was.append(bool(self.active[slot]))
            if not was[-1]:
                self.active[slot] = True
                self.entered += 1
            k, n, ln = place(road, r[tc.VAR_LANEPOSITION], r[tc.VAR_LANE_INDEX])
            slots.append(slot)
            km.append(k)
            nb.append(n)
            lane.append(ln)
            v.append(r[tc.VAR_SPEED])
            a.append(r[tc.VAR_ACCELERATION])
        if not slots:
            return
        idx = np.array(slots, np.int64)
        new_lane = np.array(lane, np.int64)
        new_lane = np.where(new_lane < 0, self.lane[idx], new_lane)  # crossing a junction: the lane it was in
        old_km = self.km[idx]
        self.lane_changes += int(((new_lane != self.lane[idx]) & np.array(was, bool)).sum())
        self.km[idx], self.nb[idx], self.lane[idx] = km, nb, new_lane
        self.v[idx], self.a[idx] = v, a
        moved = np.abs(self.km[idx] - old_km)
        self.energy[idx] = np.maximum(self.energy[idx] - np.where(was, moved, 0.0) * 0.015, 0.0)
        new_region = self.corridor.regions.handoff(self.km[idx], self.region[idx])
        changed = (new_region != self.region[idx]) & np.array(was, bool)
        if changed.any():  # the old tower's advice lapses at handoff
            self.adv_until[idx[changed]] = 0.0
            self.adv_action[idx[changed]] = Action.NONE
        self.region[idx] = new_region

    def _advise(self) -> None:
        """Push advice whose effect changed since the last step to SUMO. SLOW_DOWN caps the vehicle's
        speed while it holds. STOP brakes it to a standstill at the firm rate drivers told to stop use
        (`slowDown`), then holds its desired speed at 0: within SUMO's car-following, as our drivers
        take 0 as theirs, so a queue held by advice starts off car by car once it lapses. Both are
        lifted when the advice lapses or the vehicle leaves its tower's region."""
        live = self.active & (self.adv_until > self.t)
        stop = live & (self.adv_action == Action.STOP)
        cap = np.where(live & ~stop & np.isfinite(self.adv_speed), self.adv_speed, NO_CAP)
        cap = np.minimum(cap, self._passing_caps())
        starting = stop & ~self._applied_stop
        for slot in np.flatnonzero(starting).tolist():
            braking_s = max(float(self.v[slot]) / STOP_DECEL_MPS2, 0.1)
            self._sumo.vehicle.slowDown(self._vid[slot], 0.0, braking_s)
            self._stopped_by[slot] = self.t + braking_s
        cap = np.where(stop & (self.t >= self._stopped_by), 0.0, cap)
        for slot in np.flatnonzero(self.active & ((cap != self._applied_cap) | (stop != self._applied_stop))).tolist():
            vid = self._vid[slot]
            if self._applied_stop[slot] and not stop[slot]:
                self._sumo.vehicle.setSpeed(vid, -1.0)  # a braking not yet done is called off
            if cap[slot] != self._applied_cap[slot]:
                self._sumo.vehicle.setMaxSpeed(vid, float(cap[slot]))
            self._applied_cap[slot], self._applied_stop[slot] = cap[slot], stop[slot]

    def _leave(self, slot: int) -> None:
        self.active[slot] = False
        self.region[slot] = -1
        self._lift(slot)
        self.left += 1

    def _lift(self, slot: int) -> None:
        self._applied_cap[slot], self._applied_stop[slot] = NO_CAP, False

    def _passing_caps(self) -> np.ndarray:
        """Per slot, the speed a hazard drivers squeeze past allows those who see it (NO_CAP: none)."""
        cap = np.full(len(self.active), NO_CAP)
        for ob in self.obstacles:
            if ob.pass_speed_mps <= 0 or not ob.start_s <= self.t < ob.end_s:
                continue
            ahead = np.where(self.nb, ob.km - self.km, self.km - ob.km) * 1000
            seen = self.active & (ahead > -30.0) & (ahead < self.config.visibility_m)
            if ob.northbound is not None:
                seen &= self.nb == ob.northbound
            if ob.lanes is not None:
                seen &= np.isin(self.lane, ob.lanes)
            ramp = ob.pass_speed_mps + np.maximum(ahead, 0.0) / self.config.visibility_m * 10.0
            cap = np.where(seen, np.minimum(cap, ramp), cap)
        return cap

    def _hazards(self) -> None:
        """A wall (pass speed 0) is a stopped vehicle in each lane it closes, placed once it starts
        and taken away once it is cleared."""
        for ob in self.obstacles:
            key = id(ob)
            on = ob.start_s <= self.t < ob.end_s
            if ob.pass_speed_mps > 0:
                continue
            if on and key not in self._walls:
                self._walls[key] = self._place_wall(ob, len(self._walls))
            elif not on and key in self._walls:
                for vid in self._walls.pop(key):
                    if vid in self._sumo.vehicle.getIDList():
                        self._sumo.vehicle.remove(vid)
                self._walls[key] = []  # cleared: never placed again

    def _place_wall(self, ob: Obstacle, n: int) -> list[str]:
        placed = []
        for nb in (True, False) if ob.northbound is None else (ob.northbound,):
            edge = self.roads.edge_at(ob.km, nb)
            pos = min(max(abs(ob.km - edge.from_km) * 1000, 5.0), edge.length_m - 1.0)
            through = edge.lanes - int(edge.aux)
            for lane in range(through) if ob.lanes is None else [ln for ln in ob.lanes if ln < through]:
                vid = f"{HAZARD_PREFIX}{n}-{'nb' if nb else 'sb'}-{lane}"
                self._stand(vid, edge.id, pos, lane + int(edge.aux))
                placed.append(vid)
        return placed

    def _stand(self, vid: str, edge: str, pos: float, lane: int) -> None:
        """A stopped vehicle in `lane` of `edge` at `pos`, put there at once, as a crash happens:
        inserting it would wait for a gap the follower can stop in, which dense traffic may not leave
        for minutes. It stays, in its lane, until taken away."""
        rid = f"r:{edge}"
        if rid not in self._routes:
            self._sumo.route.add(rid, [edge])
            self._routes.add(rid)
        self._sumo.vehicle.add(vid, rid, typeID=HAZARD_TYPE, depart="now", departLane=str(lane),
                               departPos=f"{pos:.1f}", departSpeed="0")  # fmt: skip
        x, y = self._sumo.simulation.convert2D(edge, pos, lane)
        self._sumo.vehicle.moveToXY(vid, edge, lane, x, y, keepRoute=2)
        self._sumo.vehicle.setSpeed(vid, 0.0)
        self._sumo.vehicle.setLaneChangeMode(vid, 0)

    def close(self) -> None:
        """End SUMO (its FCD output is complete once this returns)."""
        if _running(self._sumo):
            self._sumo.close()


@contextlib.contextmanager
def _stderr_into(file: Any) -> Iterator[None]:
    """The process's own stderr (file descriptor 2, where SUMO's C++ writes) into `file` meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(file.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _running(sumo: Any) -> bool:
    try:
        sumo.simulation.getTime()
    except Exception:  # libsumo raises its own error when no simulation is loaded
        return False
    return True
