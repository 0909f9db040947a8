"""SUMO drives the fleet: vehicles placed on the corridor, advice obeyed through TraCI, hazards in SUMO."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.shared.corridor import load_corridor
from pipeline.shared.errors import ConfigError
from producers.fcd import read_fcd
from producers.fleet import Action, FleetConfig, Obstacle
from producers.sumo.build import build_network
from producers.sumo.traffic import SumoFleet, SumoOptions

CORRIDOR = load_corridor()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[SumoFleet]:
    net = build_network(CORRIDOR.route, tmp_path / "cache")
    f = SumoFleet(CORRIDOR, FleetConfig(vehicles=600, seed=3), net, SumoOptions(1.0, tmp_path / "fcd.xml"),
                  workdir=tmp_path / "sumo")  # fmt: skip
    yield f
    f.close()


def run(f: SumoFleet, seconds: float) -> None:
    for _ in range(round(seconds / 0.5)):
        f.step(0.5)  # as `drive` does at 1 Hz: two sub-steps a tick, SUMO stepping once


def test_the_fleet_starts_on_the_corridor_and_stays_at_its_size(fleet: SumoFleet) -> None:
    run(fleet, 60)
    assert 0.95 * 600 <= fleet.vehicle_count() <= 600
    batch = fleet.telemetry()
    assert len(batch) == fleet.vehicle_count()
    assert (batch.km >= 0).all() and (batch.km <= CORRIDOR.route.length_km).all()
    assert np.array_equal(batch.region, CORRIDOR.regions.lookup_many(batch.km)) or (
        np.abs(batch.region - CORRIDOR.regions.lookup_many(batch.km)) <= 1).all()  # fmt: skip
    moving = batch.speed[batch.speed > 1]
    assert 20 < float(np.median(moving)) < 35, "motorway speeds, in m/s"
    assert fleet.left > 0 and fleet.entered > 600, "vehicles leave at interchanges and others come up the ramps"
    assert 0 < batch.northbound.mean() < 1 and set(np.unique(batch.lane)) <= {0, 1, 2}


def test_a_region_told_to_slow_down_slows_in_sumo_and_speeds_up_once_the_advice_lapses(fleet: SumoFleet) -> None:
    run(fleet, 20)
    region = 4
    took = fleet.obey(None, region, True, Action.SLOW_DOWN, 12.0, until_s=fleet.t + 40)
    assert took > 10
    nums = set(fleet.num[fleet.active & (fleet.region == region) & fleet.nb].tolist())
    run(fleet, 30)
    still = fleet.active & np.isin(fleet.num, list(nums)) & (fleet.region == region)
    assert still.sum() > 5 and (fleet.v[still] <= 12.5).all(), "SUMO held each to the advised speed"
    run(fleet, 40)  # the advice lapsed at +40 s
    free = fleet.active & np.isin(fleet.num, list(nums))
    assert float(np.median(fleet.v[free])) > 20, "and let them go again"


def test_a_vehicle_told_to_stop_stops(fleet: SumoFleet) -> None:
    run(fleet, 10)
    slot = int(np.flatnonzero(fleet.active & (fleet.v > 20))[0])
    num, region = int(fleet.num[slot]), int(fleet.region[slot])
    assert fleet.obey(num, region, None, Action.STOP, 0.0, until_s=fleet.t + 60) == 1
    run(fleet, 25)
    assert fleet.active[slot] and fleet.num[slot] == num and fleet.v[slot] < 0.1


def test_a_crash_across_the_carriageway_queues_traffic_in_sumo_until_it_is_cleared(
    fleet: SumoFleet, tmp_path: Path
) -> None:
    crash = Obstacle(20.0, False, 5.0, 95.0)  # every southbound lane at km 20, from 5 s to 95 s
    fleet.obstacles.append(crash)
    run(fleet, 90)
    upstream = fleet.active & ~fleet.nb & (fleet.km > 20.0) & (fleet.km < 21.0)
    assert upstream.sum() >= 5 and float(np.median(fleet.v[upstream])) < 1.0, "a queue stands behind it"
    passed = fleet.active & ~fleet.nb & (fleet.km < 19.9) & (fleet.km > 17.0) & (fleet.v > 0)
    run(fleet, 60)  # cleared at 95 s
    fleet.close()
    trace = read_fcd(tmp_path / "fcd.xml", CORRIDOR)  # SUMO's own output, as it drove them
    assert trace.off_route == 0
    walls = [n for sumo_id, n in trace.ids.items() if sumo_id.startswith("hazard-")]
    assert len(walls) == 2, "a stopped vehicle in each of the two lanes at km 20"
    for s in trace.steps:
        here = np.isin(s.num, walls)
        if 6 <= s.t <= 93:
            assert here.sum() == 2 and (np.abs(s.km[here] - 20.0) < 0.01).all() and (s.speed[here] == 0).all(), s.t
        elif s.t >= 96:
            assert not here.any(), "taken away once cleared"
    late = trace.steps[-1]
    behind = ~late.northbound & (late.km > 19.0) & (late.km < 21.0)
    assert float(np.median(late.speed[behind])) > 10.0, "the queue left once the crash was cleared"
    assert passed.sum() < 60, "only those already past it at the time drove on south of it"


def test_one_sumo_at_a_time_in_a_process(fleet: SumoFleet, tmp_path: Path) -> None:
    net = build_network(CORRIDOR.route, tmp_path / "cache")
    with pytest.raises(ConfigError, match="already running"):
        SumoFleet(CORRIDOR, FleetConfig(vehicles=10), net, SumoOptions(1.0))


def test_without_the_extra_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = builtins.__import__

    def no_sumo(name: str, *args: Any, **kwargs: Any) -> Any:
        if name in ("libsumo", "sumo"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sumo)
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[sumo\]'"):
        build_network(CORRIDOR.route, tmp_path)
