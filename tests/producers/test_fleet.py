"""Fleet physics and obedience: IDM car following, hazards, advisories, handoff, entering/leaving."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.shared.corridor import load_corridor
from producers.fleet import Action, Fleet, FleetConfig, Obstacle


@pytest.fixture(scope="module")
def corridor():
    return load_corridor()


def run(fleet: Fleet, seconds: float, dt: float = 0.5) -> None:
    for _ in range(int(seconds / dt)):
        fleet.step(dt)


def test_vehicles_never_pass_through_one_another(corridor) -> None:
    fleet = Fleet(corridor, FleetConfig(vehicles=400, seed=1))
    order_before = {}
    for _ in range(120):
        fleet.step(0.5)
        idx = np.flatnonzero(fleet.active)
        for group in {(bool(n), int(lane)) for n, lane in zip(fleet.nb[idx], fleet.lane[idx], strict=True)}:
            sel = idx[(fleet.nb[idx] == group[0]) & (fleet.lane[idx] == group[1])]
            prog = np.where(group[0], fleet.km[sel], -fleet.km[sel])
            ranked = list(fleet.num[sel][np.argsort(prog)])
            prev = [n for n in order_before.get(group, []) if n in set(ranked)]
            now = [n for n in ranked if n in set(prev)]
            assert now == prev, "a vehicle drove through the one ahead of it in its lane"
            order_before[group] = ranked


def test_an_obstacle_stops_traffic_before_it_and_nobody_drives_through(corridor) -> None:
    fleet = Fleet(corridor, FleetConfig(vehicles=300, seed=2))
    hazard_km = 40.0
    fleet.obstacles.append(Obstacle(hazard_km, northbound=True, start_s=0.0, end_s=1e9))
    upstream = fleet.active & fleet.nb & (fleet.km < hazard_km - 0.2)
    who = fleet.num.copy()
    run(fleet, 300)
    assert not (upstream & fleet.active & (fleet.num == who) & (fleet.km > hazard_km + 0.001)).any()
    queued = np.flatnonzero(fleet.active & fleet.nb & (fleet.km > hazard_km - 2.0) & (fleet.km < hazard_km))
    head = queued[np.argsort(-fleet.km[queued])][:4]  # the four nearest the obstacle
    assert len(head) == 4 and fleet.v[head].max() < 1.0, "a queue of stopped vehicles forms behind it"
    assert hazard_km - fleet.km[head].max() < 0.05, "the first stops within metres of it"
    southbound_near = fleet.active & ~fleet.nb & (abs(fleet.km - hazard_km) < 2)
    assert fleet.v[southbound_near].min() > 15, "the other carriageway flows"


def test_a_slow_down_advisory_caps_speed_in_its_region_only(corridor) -> None:
    fleet = Fleet(corridor, FleetConfig(vehicles=600, seed=3))
    run(fleet, 30)
    region = 4
    took = fleet.obey(None, region, northbound=True, action=Action.SLOW_DOWN, speed=15.0, until_s=fleet.t + 600)
    assert took > 0
    advised = np.flatnonzero(fleet.active & (fleet.adv_until > fleet.t))
    run(fleet, 20)
    still = advised[fleet.active[advised] & (fleet.region[advised] == region)]
    assert len(still) and fleet.v[still].max() < 16.0
    others = fleet.active & (fleet.region == 2)
    assert fleet.v[others].mean() > 22.0


def test_drivers_who_do_not_obey_hear_the_advice_and_keep_their_speed(corridor) -> None:
    fleet = Fleet(corridor, FleetConfig(vehicles=600, seed=3, obeys=False))
    run(fleet, 30)
    assert fleet.obey(None, 4, northbound=True, action=Action.SLOW_DOWN, speed=15.0, until_s=fleet.t + 600) == 0
    run(fleet, 20)
    told = fleet.active & (fleet.region == 4) & fleet.nb
    assert told.sum() > 5 and fleet.v[told].mean() > 22.0 and not (fleet.adv_until > fleet.t).any()


def test_handoff_drops_the_old_towers_advice(corridor) -> None:
    fleet = Fleet(corridor, FleetConfig(vehicles=300, seed=4))
    fleet.obey(None, 1, northbound=True, action=Action.SLOW_DOWN, speed=20.0, until_s=1e9)
    advised = np.flatnonzero(fleet.active & (fleet.adv_until > 0))
    run(fleet, 120)
    moved_on = advised[fleet.active[advised] & (fleet.region[advised] == 2)]
    assert len(moved_on) and (fleet.adv_until[moved_on] == 0).all()


def test_the_fleet_keeps_its_size_as_vehicles_leave_and_enter(corridor) -> None:
    fleet = Fleet(corridor, FleetConfig(vehicles=500, seed=5))
    run(fleet, 900)
    assert fleet.left > 50 and fleet.entered > 550
    assert 450 <= fleet.vehicle_count() <= 500


def test_telemetry_counts_sequence_numbers_per_vehicle(corridor) -> None:
    fleet = Fleet(corridor, FleetConfig(vehicles=50, seed=6), start_ms=1_000)
    first, second = fleet.telemetry(), fleet.telemetry()
    assert (second.seq == first.seq + 1).all()
    fleet.step(0.5)
    assert fleet.telemetry().event_time_ms == 1_500


def test_same_seed_same_run(corridor) -> None:
    a, b = (Fleet(corridor, FleetConfig(vehicles=200, seed=9)) for _ in range(2))
    run(a, 60)
    run(b, 60)
    assert np.array_equal(a.km, b.km) and np.array_equal(a.v, b.v)


def test_drivers_change_lanes_to_pass_an_obstacle_in_one_lane_and_none_drives_through_it(corridor) -> None:
    fleet = Fleet(corridor, FleetConfig(vehicles=600, seed=4))
    hazard_km = 40.0
    fleet.obstacles.append(Obstacle(hazard_km, northbound=True, start_s=0.0, end_s=1e9, lanes=(0,)))
    upstream = np.flatnonzero(fleet.active & fleet.nb & (fleet.km < hazard_km - 1.0) & (fleet.km > hazard_km - 8.0))
    passed_in = {0: 0, 1: 0}
    for _ in range(600):
        before, who = fleet.km.copy(), fleet.num.copy()
        fleet.step(0.5)
        same = fleet.active & (fleet.num == who)  # not a vehicle that entered in a freed slot
        crossed = np.flatnonzero(same & fleet.nb & (before < hazard_km) & (fleet.km >= hazard_km))
        for ln in fleet.lane[crossed].tolist():
            passed_in[ln] += 1
    assert passed_in[0] == 0, "nobody drove through the blocked lane"
    assert passed_in[1] >= len(upstream) * 0.8, "traffic passed it in the other lane"
    assert fleet.lane_changes > 0


def test_a_lane_change_never_cuts_in_closer_than_the_safe_gap(corridor) -> None:
    fleet = Fleet(corridor, FleetConfig(vehicles=3000, seed=5))  # dense: ≈ 19 vehicles/km per carriageway
    fleet.obstacles.append(Obstacle(30.0, northbound=True, start_s=0.0, end_s=1e9, lanes=(1,)))
    length = fleet.config.idm.vehicle_length_m
    for _ in range(240):
        fleet.step(0.5)
        idx = np.flatnonzero(fleet.active)
        key = fleet.lane[idx] * 2 + fleet.nb[idx]
        prog = np.where(fleet.nb[idx], fleet.km[idx], -fleet.km[idx]) * 1000
        order = np.lexsort((prog, key))
        same = key[order][1:] == key[order][:-1]
        gaps = np.diff(prog[order])[same] - length
        assert gaps.min() > -0.5, "two vehicles overlap in one lane"
    assert fleet.lane_changes > 100


def test_without_mobil_everyone_keeps_their_lane(corridor) -> None:
    fleet = Fleet(corridor, FleetConfig(vehicles=300, seed=2, mobil=None))
    lanes, who = fleet.lane.copy(), fleet.num.copy()
    fleet.obstacles.append(Obstacle(40.0, northbound=True, start_s=0.0, end_s=1e9, lanes=(0,)))
    run(fleet, 120)
    stayed = fleet.active & (fleet.num == who)
    assert stayed.sum() > 200 and (fleet.lane[stayed] == lanes[stayed]).all() and fleet.lane_changes == 0


def test_advice_triggered_before_the_advice_in_force_is_out_of_date_and_ignored() -> None:
    """A tower that took over a region replays its backlog: advice computed from a vehicle's old
    position (slow down to 22 m/s, 2 km out) must not override a STOP given since."""
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=5, seed=1), start_ms=0)
    fleet.step(1.0)
    num, region = int(fleet.num[fleet.active][0]), int(fleet.region[fleet.active][0])
    assert fleet.obey(num, region, None, Action.STOP, 0.0, until_s=20.0, trigger_s=10.0) == 1
    assert fleet.obey(num, region, None, Action.SLOW_DOWN, 22.0, until_s=15.0, trigger_s=5.0) == 0
    slot = int(np.flatnonzero(fleet.num == num)[0])
    assert fleet.adv_action[slot] == Action.STOP and fleet.outdated_ignored == 1
    assert fleet.obey(num, region, None, Action.KEEP, 31.3, until_s=22.0, trigger_s=12.0) == 1


@pytest.mark.parametrize("metres", [190.0, 260.0])
def test_a_driver_told_to_stop_in_time_stops_before_the_hazard(corridor, metres: float) -> None:
    """Told STOP at 129 km/h with room to stop braking firmly (160 m), a driver does; braking only at
    the comfortable rate they slow down to a new limit at, they would pass debris at 80 km/h."""
    fleet = Fleet(corridor, FleetConfig(vehicles=1, seed=5), start_ms=0)
    slot = int(np.flatnonzero(fleet.active)[0])
    hazard_km = 22.0
    fleet.nb[slot], fleet.lane[slot], fleet.v[slot] = True, 1, 35.76
    fleet.km[slot] = hazard_km - metres / 1000
    fleet.exit_km[slot] = corridor.route.length_km
    fleet.region[slot] = corridor.regions.handoff(fleet.km[[slot]], fleet.region[[slot]])[0]
    fleet.obstacles.append(Obstacle(hazard_km, None, 0.0, 1e9, pass_speed_mps=5.0))
    took = fleet.obey(int(fleet.num[slot]), int(fleet.region[slot]), None, Action.STOP, 0.0, until_s=1e9)
    assert took == 1
    run(fleet, 20, dt=1.0)
    assert fleet.km[slot] < hazard_km and fleet.v[slot] <= 1.0, "stopped short of it (creeping at most)"
