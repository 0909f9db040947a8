"""The corridor as a SUMO network, made from corridor's own route data. Pure: a Route in, XML text out.

Both carriageways are chains of edges cut at every waypoint (so each edge is straight on the route's
polyline), at every change of speed limit or lanes, and around every interchange. Each edge is given
its length on the route's km axis (`length`), not its straight-line length: the waypoints are
approximate and their straight legs sum to less than the road, so SUMO's position along an edge is
exactly corridor's km, and SUMO's geo output lies on the same polyline `Route.lat_lon` draws.

An interior interchange gets, per carriageway, a deceleration lane and an off-ramp before it and an
on-ramp with an acceleration lane after it; the route's two ends are where the mainline starts and
ends. Nodes are written in longitude/latitude: `netconvert --proj.utm` projects them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from pipeline.shared.corridor import Route

__all__ = ["Edge", "Interchange", "NetworkPlan", "plan_network"]

DIVERGE_KM = 0.3  # an off-ramp leaves this far before the interchange's km
MERGE_KM = 0.3  # and its on-ramp joins this far after it
AUX_KM = 0.3  # the length of a deceleration or acceleration lane beside the through lanes
RAMP_M = 400.0  # each ramp's length
RAMP_OFFSET_M = 60.0  # how far to the side the ramp's far end lies (a gentle angle: no sharp curve)
RAMP_SPEED_MPS = 20.1  # 45 mph, a common ramp advisory speed
SIDES = ("NB", "SB")


@dataclass(frozen=True, slots=True)
class Edge:
    id: str
    side: str  # NB or SB
    kind: str  # main, off (an off-ramp) or on (an on-ramp)
    from_km: float  # where a vehicle enters it, on the route's axis (a ramp: where it meets the mainline)
    to_km: float
    lanes: int
    speed_mps: float
    length_m: float
    from_node: str
    to_node: str
    interchange: int = -1  # the waypoint index of a ramp's interchange
    aux: bool = False  # lane 0 is a deceleration or acceleration lane beside the through lanes

    @property
    def northbound(self) -> bool:
        return self.side == "NB"


@dataclass(frozen=True, slots=True)
class Interchange:
    waypoint: int
    name: str
    km: float


@dataclass(frozen=True)
class NetworkPlan:
    """What netconvert is given, and what the coupling needs to place a vehicle on the route."""

    route: Route
    nodes: dict[str, tuple[float, float]]  # id → (lon, lat)
    edges: tuple[Edge, ...]
    interchanges: tuple[Interchange, ...]  # the interior ones, with ramps

    def mainline(self, side: str) -> list[Edge]:
        """One carriageway's through edges in the direction of travel."""
        return [e for e in self.edges if e.side == side and e.kind == "main"]

    def ramp(self, side: str, kind: str, waypoint: int) -> Edge:
        return next(e for e in self.edges if (e.side, e.kind, e.interchange) == (side, kind, waypoint))

    def nodes_xml(self) -> str:
        rows = [f'    <node id="{n}" x="{lon:.7f}" y="{lat:.7f}"/>' for n, (lon, lat) in self.nodes.items()]
        return "<nodes>\n" + "\n".join(rows) + "\n</nodes>\n"

    def edges_xml(self) -> str:
        rows = [f'    <edge id="{e.id}" from="{e.from_node}" to="{e.to_node}" numLanes="{e.lanes}" '
                f'speed="{e.speed_mps:.2f}" length="{e.length_m:.2f}" priority="{1 if e.kind == "on" else 2}"/>'
                for e in self.edges]  # fmt: skip
        return "<edges>\n" + "\n".join(rows) + "\n</edges>\n"

    def connections_xml(self) -> str:
        """Lane by lane, so netconvert guesses nothing: through lanes go straight on (a lane that ends
        where the road narrows has no successor: its drivers move over before it ends); an auxiliary
        lane, always the rightmost (index 0), leads to its off-ramp or comes from its on-ramp."""
        rows: list[str] = []
        for side in SIDES:
            main = self.mainline(side)
            for a, b in itertools.pairwise(main):
                ia, ib = int(a.aux), int(b.aux)
                for k in range(min(a.lanes - ia, b.lanes - ib)):
                    rows.append(_con(a.id, k + ia, b.id, k + ib))
                diverge = any(r.kind == "off" and r.from_node == b.to_node for r in self.edges)
                if ib and not ia and diverge:  # a deceleration lane opens: drivers leaving may take it at once
                    rows.append(_con(a.id, 0, b.id, 0))
                for ramp in self.edges:
                    if ramp.side == side and ramp.kind == "off" and ramp.from_node == a.to_node:
                        rows.append(_con(a.id, 0, ramp.id, 0))
                    if ramp.side == side and ramp.kind == "on" and ramp.to_node == b.from_node:
                        rows.append(_con(ramp.id, 0, b.id, 0))
                # an acceleration lane that ends has no successor: its drivers merge left before its end
        return "<connections>\n" + "\n".join(rows) + "\n</connections>\n"


def _con(a: str, la: int, b: str, lb: int) -> str:
    return f'    <connection from="{a}" to="{b}" fromLane="{la}" toLane="{lb}"/>'


def _interchanges(route: Route) -> tuple[Interchange, ...]:
    last = len(route.waypoints) - 1
    return tuple(Interchange(i, w.name, w.km) for i, w in enumerate(route.waypoints) if w.interchange and 0 < i < last)


def _cuts(route: Route, interchanges: tuple[Interchange, ...]) -> list[float]:
    """Every km where a mainline edge ends, south to north."""
    cuts = {w.km for w in route.waypoints} | {s.from_km for s in route.segments}
    for ic in interchanges:
        for sign in (1.0, -1.0):  # northbound ramps, then southbound's mirrored about the interchange
            cuts |= {ic.km - sign * (DIVERGE_KM + AUX_KM), ic.km - sign * DIVERGE_KM,
                     ic.km + sign * MERGE_KM, ic.km + sign * (MERGE_KM + AUX_KM)}  # fmt: skip
    length = route.length_km
    return sorted(round(c, 4) for c in cuts if 0.0 <= c <= length)


def _node_id(side: str, km: float) -> str:
    return f"{side}_{round(km * 1000):06d}"


def _beside(route: Route, km: float, northbound: bool, metres: float) -> tuple[float, float]:
    """(lon, lat) `metres` to the right of the carriageway at `km`."""
    lat, lon = (float(v[0]) for v in route.lat_lon(np.array([km])))
    heading = float(route.heading_deg(np.array([km]), np.array([northbound]))[0])
    right = math.radians(heading + 90.0)
    dlat = metres * math.cos(right) / 110_574.0
    dlon = metres * math.sin(right) / (111_320.0 * math.cos(math.radians(lat)))
    return lon + dlon, lat + dlat


def plan_network(route: Route) -> NetworkPlan:
    """The plan of the corridor's SUMO network; `netconvert` builds it (producers/sumo/build.py)."""
    interchanges = _interchanges(route)
    cuts = _cuts(route, interchanges)
    nodes: dict[str, tuple[float, float]] = {}
    edges: list[Edge] = []
    for side in SIDES:
        nb = side == "NB"
        lat, lon = route.lat_lon(np.array(cuts))
        for km, la, lo in zip(cuts, lat.tolist(), lon.tolist(), strict=True):
            nodes[_node_id(side, km)] = (lo, la)
        # aux lanes: beside a diverge (before it in the direction of travel) and after a merge
        diverge = {round(ic.km - DIVERGE_KM if nb else ic.km + DIVERGE_KM, 4): ic for ic in interchanges}
        merge = {round(ic.km + MERGE_KM if nb else ic.km - MERGE_KM, 4): ic for ic in interchanges}
        order = cuts if nb else cuts[::-1]
        for a, b in itertools.pairwise(order):
            mid = np.array([(a + b) / 2])
            lanes = int(route.lanes(mid)[0])
            aux = b in diverge or a in merge
            edges.append(Edge(f"{side}_{round(a * 1000):06d}_{round(b * 1000):06d}", side, "main", a, b,
                              lanes + (1 if aux else 0), float(route.speed_limit_mps(mid)[0]), abs(b - a) * 1000,
                              _node_id(side, a), _node_id(side, b), aux=aux))  # fmt: skip
        for km, ic in diverge.items():
            far = f"{side}_off_{ic.waypoint:02d}"
            nodes[far] = _beside(route, ic.km, nb, RAMP_OFFSET_M)
            edges.append(Edge(far, side, "off", km, km, 1, RAMP_SPEED_MPS, RAMP_M, _node_id(side, km), far,
                              ic.waypoint))  # fmt: skip
        for km, ic in merge.items():
            far = f"{side}_on_{ic.waypoint:02d}"
            nodes[far] = _beside(route, ic.km, nb, RAMP_OFFSET_M)
            edges.append(Edge(far, side, "on", km, km, 1, RAMP_SPEED_MPS, RAMP_M, far, _node_id(side, km),
                              ic.waypoint))  # fmt: skip
    return NetworkPlan(route, nodes, tuple(edges), interchanges)
