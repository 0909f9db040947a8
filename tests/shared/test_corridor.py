"""The I-69 corridor model: real route, tower regions, handoff hysteresis, bad files refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.shared.corridor import RouteError, default_paths, load_corridor
from pipeline.shared.corridor.regions import parse_regions
from pipeline.shared.corridor.route import parse_route


@pytest.fixture(scope="module")
def corridor():
    return load_corridor()


def test_route_runs_bloomington_to_i465_over_about_78_km(corridor) -> None:
    route = corridor.route
    assert 77 <= route.length_km <= 79
    assert "Bloomington" in route.waypoints[0].name and "I-465" in route.waypoints[-1].name
    assert "Martinsville" in route.nearest_waypoint(40).name
    lat, lon = route.lat_lon(np.array([0.0, route.length_km]))
    assert lat[1] > lat[0] and lon[1] > lon[0], "Indianapolis is north-east of Bloomington"
    limits_mph = route.speed_limit_mps(np.array([5.0, 25.0, 70.0])) / 0.44704
    assert list(np.round(limits_mph)) == [65, 70, 60]


def test_regions_tile_the_route_and_map_to_partitions(corridor) -> None:
    regions = corridor.regions
    assert len(regions) == 9
    assert [regions.lookup(km) for km in (0.0, 8.69, 8.7, 40.0, 78.1)] == [0, 0, 1, 4, 8]
    assert [regions.partition(r.id) for r in regions.regions] == list(range(9))
    assert regions.neighbours(0) == (1,) and regions.neighbours(4) == (3, 5)
    with pytest.raises(RouteError):
        regions.partition(9)


def test_handoff_waits_for_the_hysteresis_past_a_border(corridor) -> None:
    regions = corridor.regions  # border 0|1 at 8.7 km, hysteresis 200 m
    km = np.array([8.75, 8.85, 8.95, 8.55, 8.45, 3.0])
    current = np.array([0, 0, 0, 1, 1, -1])
    assert list(regions.handoff(km, current)) == [0, 0, 1, 1, 0, 0]


def _route_data() -> dict:
    return json.loads(default_paths()[0].read_text())


def _regions_data() -> dict:
    return json.loads(default_paths()[1].read_text())


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["waypoints"][3].update(km=2.0), "km must increase"),
        (lambda d: d["waypoints"][0].update(km=1.0), "km 0"),
        (lambda d: d["waypoints"][2].update(lat=120.0), "out of range"),
        (lambda d: d["segments"][1].update(from_km=13.5), "gap"),
        (lambda d: d["segments"][1].update(from_km=12.0), "overlap"),
        (lambda d: d["segments"][-1].update(to_km=70.0), "end at km"),
        (lambda d: d.update(waypoints=[]), "at least 2 waypoints"),
    ],
)
def test_bad_route_files_are_refused_with_the_fault_named(mutate, needle: str) -> None:
    data = copy.deepcopy(_route_data())
    mutate(data)
    with pytest.raises(RouteError, match=needle):
        parse_route(data, "route.json")


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["regions"][2].update(from_km=18.0), "gap"),
        (lambda d: d["regions"][2].update(from_km=17.0), "overlap"),
        (lambda d: d["regions"][3].update(id=7), "ids must be"),
        (lambda d: d["regions"][3].update(tower="tower-00"), "own tower"),
        (lambda d: d["regions"][-1].update(to_km=90.0), "end at km"),
    ],
)
def test_bad_region_files_are_refused_with_the_fault_named(mutate, needle: str) -> None:
    route = parse_route(_route_data())
    data = copy.deepcopy(_regions_data())
    mutate(data)
    with pytest.raises(RouteError, match=needle):
        parse_regions(data, route, "towers.json")


def test_missing_or_broken_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(RouteError, match="no such file"):
        load_corridor(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    with pytest.raises(RouteError, match="not readable JSON"):
        load_corridor(broken)
