"""A user's own SUMO scenario on the corridor: their network, vehicle types and demand, our towers.

The `.sumocfg` runs as SUMO is told to; corridor only watches and advises. Each vehicle is placed
on the corridor by its position: SUMO's coordinates back to longitude and latitude (the network must
be geo-referenced), projected onto the route (km along I-69), the carriageway from its heading
against the road's. A vehicle further than `max_off_route_km` from the route is not corridor
traffic: it sends nothing and is counted. Towers cover I-69 by position, so a network that lies
nowhere near the route is refused in one line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline.shared.corridor import Corridor
from pipeline.shared.errors import ConfigError
from producers.fcd import project_onto_route
from producers.fleet import FleetConfig, Obstacle
from producers.sumo.traffic import HAZARD_PREFIX, SumoFleet, SumoOptions

__all__ = ["SumoCfgFleet"]

MAX_OFF_ROUTE_KM = 0.5  # further from I-69 than this, a vehicle is not on the corridor
LANE_PROBE_M = (0.0, 6.0, -6.0, 12.0, -12.0)  # where to look beside the route for each carriageway's lanes


class SumoCfgFleet(SumoFleet):
    """Vehicles of a user's `.sumocfg`, sending as corridor's do and obeying the towers through TraCI.
    The user's demand is theirs: nothing is added to keep a count."""

    def __init__(self, corridor: Corridor, config: FleetConfig, cfg: Path, options: SumoOptions,
                 start_ms: int = 0, max_off_route_km: float = MAX_OFF_ROUTE_KM) -> None:  # fmt: skip
        if not cfg.is_file():
            raise ConfigError(f"--sumo-cfg {cfg}: no such file")
        self.max_off_route_km = max_off_route_km
        self.off_corridor = 0  # vehicle-steps SUMO moved off the corridor (never sent)
        self.not_carried = 0  # vehicles on the corridor with no slot left (`vehicles` sets how many fit)
        self.hazards_not_placed = 0  # hazard lanes no lane of the user's network was found for
        self._launch(corridor, config, options, start_ms, ["-c", str(cfg)])
        try:
            self._check_on_corridor(cfg)
        except ConfigError:
            self.close()
            raise

    def _check_on_corridor(self, cfg: Path) -> None:
        (x0, y0), (x1, y1) = self._sumo.simulation.getNetBoundary()
        corners = [self._sumo.simulation.convertGeo(x, y) for x, y in ((x0, y0), (x1, y1))]
        if any(abs(lon) > 180 or abs(lat) > 90 for lon, lat in corners) or corners[0] == (x0, y0):
            raise ConfigError(f"{cfg}: its network is not geo-referenced; towers find vehicles by position "
                              "(build it with netconvert --proj.utm, or from OpenStreetMap)")  # fmt: skip
        lon = np.linspace(corners[0][0], corners[1][0], 9)
        lat = np.linspace(corners[0][1], corners[1][1], 9)
        grid_lon, grid_lat = (a.ravel() for a in np.meshgrid(lon, lat))
        _, off, _ = project_onto_route(self.corridor, grid_lon, grid_lat)
        span_km = math.hypot((corners[1][0] - corners[0][0]) * 86.0, (corners[1][1] - corners[0][1]) * 110.6)
        if float(off.min()) > self.max_off_route_km + span_km / 8:
            raise ConfigError(f"{cfg}: its network lies {float(off.min()):.1f} km or more from I-69 "
                              f"({self.corridor.route.name}); towers cover the corridor by position, so a network "
                              "elsewhere needs its own route and tower regions (CORRIDOR_ROUTE_FILE, "
                              "CORRIDOR_TOWERS_FILE)")  # fmt: skip

    # ---- the user's demand: nothing added, nothing placed ---------------------------------------
    def _populate(self, count: int) -> None:
        self.active[:] = False

    def _refill(self, dt: float) -> None:
        return

    def _read(self) -> None:
        sumo = self._sumo
        tc = sumo.constants
        wanted = (tc.VAR_POSITION, tc.VAR_ANGLE, tc.VAR_LANE_INDEX, tc.VAR_SPEED, tc.VAR_ACCELERATION)
        for vid in sumo.simulation.getDepartedIDList():
            if not vid.startswith(HAZARD_PREFIX):
                sumo.vehicle.subscribe(vid, wanted)
        for vid in sumo.simulation.getArrivedIDList():
            slot = self._ids.pop(vid, None)
            if slot is not None:
                self._vid.pop(slot, None)
                if self.active[slot]:
                    self._leave(slot)
        self.collisions += sumo.simulation.getCollidingVehiclesNumber()
        results = sumo.vehicle.getAllSubscriptionResults()
        if not results:
            return
        ids = list(results)
        geo = np.array([sumo.simulation.convertGeo(*results[v][tc.VAR_POSITION]) for v in ids])
        km, off, road = project_onto_route(self.corridor, geo[:, 0], geo[:, 1])
        angle = np.array([results[v][tc.VAR_ANGLE] for v in ids])
        northbound = np.abs((angle - road + 180.0) % 360.0 - 180.0) < 90.0
        on = off <= self.max_off_route_km
        self.off_corridor += int((~on).sum())
        slots, keep = [], []
        for i, vid in enumerate(ids):
            slot = self._ids.get(vid)
            if not on[i]:
                if slot is not None and self.active[slot]:
                    self._leave(slot)  # drove off the corridor: its slot stays its own until it arrives
                continue
            if slot is None:
                slot = self._take_slot(vid)
                if slot is None:
                    continue
            if not self.active[slot]:
                self.active[slot] = True
                self.entered += 1
            slots.append(slot)
            keep.append(i)
        if not slots:
            return
        idx, sel = np.array(slots, np.int64), np.array(keep, np.int64)
        self.km[idx], self.nb[idx] = km[sel], northbound[sel]
        lane = np.array([results[ids[i]][tc.VAR_LANE_INDEX] for i in keep], np.int64)
        self.lane_changes += int((lane != self.lane[idx]).sum())
        self.lane[idx] = lane
        self.v[idx] = [results[ids[i]][tc.VAR_SPEED] for i in keep]
        self.a[idx] = [results[ids[i]][tc.VAR_ACCELERATION] for i in keep]
        self.region[idx] = self.corridor.regions.handoff(self.km[idx], self.region[idx])

    def _take_slot(self, vid: str) -> int | None:
        held = np.zeros(len(self.active), bool)
        held[list(self._ids.values())] = True
        free = np.flatnonzero(~held)
        if not len(free):
            self.not_carried += 1
            return None
        slot = int(free[0])
        self.num[slot] = self.next_num
        self.next_num += 1
        self.seq[slot] = 0
        self.region[slot] = -1
        self.energy[slot] = 80.0
        self.adv_action[slot], self.adv_speed[slot], self.adv_until[slot] = 0, np.inf, 0.0
        self.adv_trigger[slot] = -np.inf
        self._lift(slot)
        self._ids[vid], self._vid[slot] = slot, vid
        return slot

    # ---- hazards on the user's network ----------------------------------------------------------
    def _place_wall(self, ob: Obstacle, n: int) -> list[str]:
        """A stopped vehicle in each closed lane of the carriageway's road nearest the hazard: the
        lanes are looked for beside the route, on a road heading the carriageway's way."""
        placed: list[str] = []
        route = self.corridor.route
        lat, lon = (float(a[0]) for a in route.lat_lon(np.array([ob.km])))
        for nb in (True, False) if ob.northbound is None else (ob.northbound,):
            heading = float(route.heading_deg(np.array([ob.km]), np.array([nb]))[0])
            found = self._road_heading(lon, lat, heading)
            if found is None:
                self.hazards_not_placed += 1
                continue
            edge, pos = found
            lanes = self._sumo.edge.getLaneNumber(edge)
            for lane in range(lanes) if ob.lanes is None else [ln for ln in ob.lanes if ln < lanes]:
                vid = f"{HAZARD_PREFIX}{n}-{'nb' if nb else 'sb'}-{lane}"
                self._stand(vid, edge, pos, lane)
                placed.append(vid)
        return placed

    def _road_heading(self, lon: float, lat: float, heading: float) -> tuple[str, float] | None:
        right = math.radians(heading + 90.0)
        for metres in LANE_PROBE_M:
            plon = lon + metres * math.sin(right) / (111_320.0 * math.cos(math.radians(lat)))
            plat = lat + metres * math.cos(right) / 110_574.0
            edge, pos, _ = self._sumo.simulation.convertRoad(plon, plat, True, "passenger")
            if not edge or edge.startswith(":"):
                continue
            shape = self._sumo.lane.getShape(f"{edge}_0")
            (x0, y0), (x1, y1) = shape[0], shape[-1]
            along = (math.degrees(math.atan2(x1 - x0, y1 - y0)) + 360.0) % 360.0
            if abs((along - heading + 180.0) % 360.0 - 180.0) < 60.0:
                return edge, float(pos)
        return None
