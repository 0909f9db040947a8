"""A user's own SUMO scenario on the corridor: their network and demand, placed by position."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.shared.corridor import load_corridor
from pipeline.shared.errors import ConfigError
from producers.fleet import Action, FleetConfig, Obstacle
from producers.sumo.build import build_network, sumo_binary
from producers.sumo.network import plan_network
from producers.sumo.traffic import SumoOptions
from producers.sumo.user_scenario import SumoCfgFleet

CORRIDOR = load_corridor()


def write_cfg(folder: Path, net: Path, flows: str) -> Path:
    (folder / "demand.rou.xml").write_text(f'<routes>\n  <vType id="mine" accel="2.6" decel="4.5" maxSpeed="40"/>\n'
                                           f"{flows}</routes>\n")  # fmt: skip
    cfg = folder / "mine.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{net}"/><route-files value="demand.rou.xml"/>'
                   "</input></configuration>\n")  # fmt: skip
    return cfg


def corridor_demand(vehicles_per_hour: int) -> str:
    plan = plan_network(CORRIDOR.route)
    rows = []
    for side in ("NB", "SB"):
        edges = " ".join(e.id for e in plan.mainline(side))
        rows.append(f'  <route id="{side}" edges="{edges}"/>\n')
        rows.append(f'  <flow id="{side.lower()}" type="mine" route="{side}" begin="0" end="3600" '
                    f'vehsPerHour="{vehicles_per_hour}" departLane="best" departSpeed="max"/>\n')  # fmt: skip
    return "".join(rows)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[SumoCfgFleet]:
    net = build_network(CORRIDOR.route, tmp_path / "cache").path
    cfg = write_cfg(tmp_path, net, corridor_demand(3000))
    f = SumoCfgFleet(CORRIDOR, FleetConfig(vehicles=400), cfg, SumoOptions(1.0))
    yield f
    f.close()


def run(f: SumoCfgFleet, seconds: float) -> None:
    for _ in range(round(seconds / 0.5)):
        f.step(0.5)


def test_the_user_s_vehicles_are_placed_on_the_corridor_by_position_and_obey_the_towers(fleet: SumoCfgFleet) -> None:
    run(fleet, 120)
    on = fleet.active
    assert on.sum() > 100, "their flows, not a count kept by corridor"
    assert fleet.nb[on].any() and (~fleet.nb[on]).any(), "each carriageway told apart by heading"
    nb_km = fleet.km[on & fleet.nb]
    assert nb_km.max() < 7.0, "two minutes from km 0 at up to 40 m/s: positions along I-69, not SUMO's x"
    assert (fleet.region[on] == CORRIDOR.regions.lookup_many(fleet.km[on])).mean() > 0.95
    assert fleet.obey(None, 0, True, Action.SLOW_DOWN, 10.0, until_s=fleet.t + 60) > 5
    told = fleet.active & fleet.nb & (fleet.region == 0)
    run(fleet, 30)
    still = told & fleet.active & (fleet.region == 0)
    assert still.sum() > 5 and (fleet.v[still] <= 10.5).all(), "held to the advised speed by TraCI"


def test_a_crash_closes_the_lanes_of_the_user_s_road_heading_its_way(fleet: SumoCfgFleet) -> None:
    fleet.obstacles.append(Obstacle(3.0, True, 1.0, 500.0))  # every northbound lane at km 3
    run(fleet, 150)
    assert fleet.hazards_not_placed == 0
    walls = [v for v in fleet._sumo.vehicle.getIDList() if v.startswith("hazard-")]
    assert len(walls) == 3 and all(fleet._sumo.vehicle.getRoadID(v).startswith("NB_") for v in walls)
    behind = fleet.active & fleet.nb & (fleet.km > 2.8) & (fleet.km < 3.0)
    assert behind.sum() >= 5 and float(np.median(fleet.v[behind])) < 1.0, "a queue in front of the closure"
    assert not (fleet.active & fleet.nb & (fleet.km > 3.05)).any(), "nobody drove through it"


def test_vehicles_off_the_corridor_send_nothing_and_are_counted(tmp_path: Path) -> None:
    net = build_network(CORRIDOR.route, tmp_path / "cache").path
    plan = plan_network(CORRIDOR.route)
    main = plan.mainline("NB")
    k = next(i for i, e in enumerate(main) if e.to_node == plan.ramp("NB", "off", 1).from_node)
    exits = " ".join(e.id for e in main[: k + 1]) + " " + plan.ramp("NB", "off", 1).id
    flows = (f'  <route id="x" edges="{exits}"/>\n  <flow id="x" type="mine" route="x" begin="0" end="300" '
             'vehsPerHour="1800" departSpeed="max"/>\n')  # fmt: skip
    f = SumoCfgFleet(CORRIDOR, FleetConfig(vehicles=200), write_cfg(tmp_path, net, flows), SumoOptions(1.0),
                     max_off_route_km=0.03)  # fmt: skip
    try:
        run(f, 240)
        assert f.active.any() and f.off_corridor > 0, "on the carriageway they count; down the ramp they leave"
        assert f.left > 0 and not (f.active & (f.km > 3.1)).any(), "none beyond the ramp's first 30 m"
    finally:
        f.close()


def test_a_network_that_is_not_geo_referenced_or_lies_elsewhere_is_refused_in_one_line(tmp_path: Path) -> None:
    grid = tmp_path / "grid.net.xml"
    subprocess.run([str(sumo_binary("netgenerate")), "--grid", "--grid.number", "3", "-o", str(grid)], check=True,
                   capture_output=True)  # fmt: skip
    with pytest.raises(ConfigError, match="not geo-referenced"):
        SumoCfgFleet(CORRIDOR, FleetConfig(vehicles=10), write_cfg(tmp_path, grid, ""), SumoOptions(1.0))
    far = tmp_path / "far"
    far.mkdir()
    (far / "n.nod.xml").write_text('<nodes><node id="a" x="-87.60" y="41.80"/><node id="b" x="-87.60" y="41.85"/>'
                                   "</nodes>")  # fmt: skip
    (far / "n.edg.xml").write_text('<edges><edge id="e" from="a" to="b" numLanes="2" speed="30"/></edges>')
    subprocess.run([str(sumo_binary("netconvert")), "-n", str(far / "n.nod.xml"), "-e", str(far / "n.edg.xml"),
                    "--proj.utm", "-o", str(far / "far.net.xml")], check=True, capture_output=True)  # fmt: skip
    with pytest.raises(ConfigError, match=r"lies .* km or more from I-69"):
        SumoCfgFleet(CORRIDOR, FleetConfig(vehicles=10), write_cfg(far, far / "far.net.xml", ""), SumoOptions(1.0))
    with pytest.raises(ConfigError, match="no such file"):
        SumoCfgFleet(CORRIDOR, FleetConfig(vehicles=10), tmp_path / "missing.sumocfg", SumoOptions(1.0))
    (tmp_path / "broken.sumocfg").write_text('<configuration><input><net-file value="nope.net.xml"/></input>'
                                             "</configuration>")  # fmt: skip
    with pytest.raises(ConfigError, match=r"SUMO refused its input: File .*nope.net.xml' is not accessible"):
        SumoCfgFleet(CORRIDOR, FleetConfig(vehicles=10), tmp_path / "broken.sumocfg", SumoOptions(1.0))
