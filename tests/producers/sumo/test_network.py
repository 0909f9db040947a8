"""The corridor's SUMO network: planned from the route data, then built by netconvert and read back."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sumolib

from pipeline.shared.corridor import load_corridor
from producers.sumo.build import build_network
from producers.sumo.network import DIVERGE_KM, MERGE_KM, plan_network
from tests.helpers import assert_one_line_error, corridor

ROUTE = load_corridor().route
PLAN = plan_network(ROUTE)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> sumolib.net.Net:
    built = build_network(ROUTE, tmp_path_factory.mktemp("cache"))
    return sumolib.net.readNet(str(built.path), withInternal=False)


@pytest.mark.parametrize("side", ["NB", "SB"])
def test_each_carriageway_is_one_chain_the_route_s_length_long(side: str) -> None:
    main = PLAN.mainline(side)
    assert all(a.to_node == b.from_node for a, b in itertools.pairwise(main)), "no gap, no branch"
    assert sum(e.length_m for e in main) == pytest.approx(ROUTE.length_km * 1000)
    ends = (main[0].from_km, main[-1].to_km)
    assert ends == ((0.0, ROUTE.length_km) if side == "NB" else (ROUTE.length_km, 0.0))


def test_through_lanes_and_limits_are_the_route_s_and_an_auxiliary_lane_only_beside_a_ramp() -> None:
    for e in PLAN.edges:
        if e.kind != "main":
            continue
        mid = np.array([(e.from_km + e.to_km) / 2])
        assert e.lanes - int(e.aux) == int(ROUTE.lanes(mid)[0]), e
        assert e.speed_mps == pytest.approx(float(ROUTE.speed_limit_mps(mid)[0])), e
        diverges = {r.from_node for r in PLAN.edges if r.kind == "off"}
        merges = {r.to_node for r in PLAN.edges if r.kind == "on"}
        assert e.aux == (e.to_node in diverges or e.from_node in merges), e


def test_every_interior_interchange_has_an_off_ramp_before_it_and_an_on_ramp_after_it_on_both_sides() -> None:
    interior = [w.km for w in ROUTE.waypoints[1:-1] if w.interchange]
    assert [ic.km for ic in PLAN.interchanges] == interior and len(interior) == 16
    for ic in PLAN.interchanges:
        assert PLAN.ramp("NB", "off", ic.waypoint).from_km == pytest.approx(ic.km - DIVERGE_KM)
        assert PLAN.ramp("NB", "on", ic.waypoint).to_km == pytest.approx(ic.km + MERGE_KM)
        assert PLAN.ramp("SB", "off", ic.waypoint).from_km == pytest.approx(ic.km + DIVERGE_KM)
        assert PLAN.ramp("SB", "on", ic.waypoint).to_km == pytest.approx(ic.km - MERGE_KM)


def test_the_built_network_keeps_the_planned_lengths_lanes_and_limits(net: sumolib.net.Net) -> None:
    for e in PLAN.edges:
        got = net.getEdge(e.id)
        assert got.getLength() == pytest.approx(e.length_m, abs=0.01), e.id
        assert got.getLaneNumber() == e.lanes and got.getSpeed() == pytest.approx(e.speed_mps, abs=0.01), e.id


def test_the_built_network_is_where_the_route_is_on_the_map(net: sumolib.net.Net, tmp_path: Path) -> None:
    """Geo-referenced: every mainline node, projected back by SUMO itself, lies on the route's polyline."""
    sumo = libsumo_running(build_network(ROUTE, tmp_path).path)
    try:
        for e in PLAN.mainline("NB"):
            x, y = net.getNode(e.from_node).getCoord()
            lon, lat = sumo.simulation.convertGeo(x, y)
            want_lat, want_lon = (float(v[0]) for v in ROUTE.lat_lon(np.array([e.from_km])))
            assert abs(lat - want_lat) * 110_574 < 5 and abs(lon - want_lon) * 86_000 < 5, e.from_node
    finally:
        sumo.close()


def libsumo_running(net: Path) -> Any:
    import libsumo

    libsumo.start(["sumo", "-n", str(net), "--no-step-log", "true"])
    return libsumo


@pytest.mark.parametrize("side", ["NB", "SB"])
def test_a_vehicle_can_drive_each_carriageway_end_to_end_and_leave_or_join_at_every_interchange(
    net: sumolib.net.Net, side: str
) -> None:
    main = PLAN.mainline(side)
    whole, _ = net.getShortestPath(net.getEdge(main[0].id), net.getEdge(main[-1].id))
    assert [e.getID() for e in whole] == [e.id for e in main]
    for ic in PLAN.interchanges:
        for kind in ("off", "on"):
            ramp = PLAN.ramp(side, kind, ic.waypoint)
            a, b = (main[0].id, ramp.id) if kind == "off" else (ramp.id, main[-1].id)
            path, _ = net.getShortestPath(net.getEdge(a), net.getEdge(b))
            assert path is not None, f"{side} {kind}-ramp at {ic.name}"


def test_the_build_is_cached_by_what_went_into_it(tmp_path: Path) -> None:
    first = build_network(ROUTE, tmp_path)
    again = build_network(ROUTE, tmp_path)
    assert not first.cached and again.cached and again.path == first.path


def test_corridor_sumo_net_builds_it_copies_it_and_refuses_a_folder_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "CORRIDOR_CACHE_DIR": str(tmp_path / "cache")}
    done = corridor(env, "sumo", "net", "--output", str(tmp_path / "out" / "i69.net.xml"))
    assert done.returncode == 0, done.stderr
    assert "northbound" in done.stdout and "│ 16 " in done.stdout, "sixteen off-ramps a side"
    net = sumolib.net.readNet(str(tmp_path / "out" / "i69.net.xml"))
    assert {e.id for e in PLAN.edges} == {e.getID() for e in net.getEdges()}
    assert_one_line_error(corridor(env, "sumo", "net", "--output", str(tmp_path)), "is a folder")
