"""The run's recorder keeps the whole run for its pictures, at any fleet size."""

from __future__ import annotations

import numpy as np

from pipeline.shared.corridor import load_corridor
from pipeline.simulation.recorder import MIN_COLUMNS, Recorder
from pipeline.simulation.report import discharge_flow
from producers.fleet import Action, Fleet, FleetConfig, Obstacle


def _drive(vehicles: int, ticks: int, max_points: int) -> tuple[Recorder, Fleet]:
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=vehicles, seed=4), start_ms=0)
    rec = Recorder(9, max_points=max_points)
    for _ in range(ticks):
        fleet.step(1.0)
        rec.tick(fleet)
    return rec, fleet


def test_a_long_run_is_thinned_in_time_and_kept_to_its_end() -> None:
    rec, fleet = _drive(vehicles=50, ticks=400, max_points=3_000)
    t = rec.trajectories()["t"]
    assert len(t) <= 3_000 and rec.tick_stride > 1
    assert t.min() == 1.0 and t.max() >= fleet.t - rec.tick_stride, "from the first tick to (nearly) the last"
    kept = np.unique(t)
    assert len(kept) >= 3_000 // 50 // 2 and np.all(np.diff(kept) == rec.tick_stride), "evenly spaced moments"


def test_a_large_fleet_keeps_a_share_of_its_vehicles_over_enough_moments() -> None:
    rec, _ = _drive(vehicles=2_000, ticks=40, max_points=30_000)
    tr = rec.trajectories()
    assert rec.vehicle_stride > 1 and rec.tick_stride == 1, "all 40 moments, fewer vehicles"
    per_tick = len(tr["t"]) / 40
    assert per_tick <= 1.1 * 30_000 / MIN_COLUMNS, "a share chosen by vehicle number: about the cap"
    assert len(np.unique(tr["t"])) == 40


def test_a_warned_vehicle_whose_advice_lapsed_before_the_hazard_is_counted_apart() -> None:
    """Warned in time, then nothing from its tower for longer than the advice's validity: it reached the
    hazard unwarned. Counted with the warned ones it would have hidden a protection failure; without them
    it would have vanished."""
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=40, seed=4), start_ms=0)
    rec = Recorder(9)
    for _ in range(5):
        fleet.step(1.0)
        rec.tick(fleet)
    kept, lapsed = (int(i) for i in np.flatnonzero(fleet.active & fleet.nb)[:2])
    hazard_km = float(max(fleet.km[kept], fleet.km[lapsed])) + 2.0
    rec.hazard_on("debris", Obstacle(hazard_km, None, fleet.t, float("inf"), 5.0), fleet)
    fleet.adv_action[[kept, lapsed]] = Action.SLOW_DOWN
    fleet.adv_speed[[kept, lapsed]] = 30.0
    fleet.adv_until[[kept, lapsed]] = fleet.t + 1000.0
    rec.tick(fleet)
    assert {int(fleet.num[kept]), int(fleet.num[lapsed])} <= rec.hazards["debris"].advised
    fleet.adv_until[lapsed] = fleet.t  # its tower went silent
    fleet.t += 1.0  # a second later, both have driven past it
    fleet.km[[kept, lapsed]] = hazard_km + 0.01
    rec.tick(fleet)
    h = rec.hazards["debris"]
    assert len(h.passing_mps) == 1 and len(h.lapsed_passing_mps) == 1 and not h.unadvised_passing_mps


def test_free_flow_speeds_are_sampled_before_any_hazard_and_away_from_the_interchanges() -> None:
    corridor = load_corridor()
    fleet = Fleet(corridor, FleetConfig(vehicles=600, seed=4), start_ms=0)
    rec = Recorder(9, interchanges_km=corridor.route.interchanges_km)
    for _ in range(90):
        fleet.step(1.0)
        rec.tick(fleet)
    ff = rec.traffic()["free_flow_kmh"]
    assert ff["samples"] > 20 * 400, "thirty ticks of most of the fleet"
    assert 95 <= ff["p50"] <= 120 and ff["p10"] < ff["p50"] < ff["p90"], "near the limits (97-113 km/h)"
    before = ff["samples"]
    rec.hazard_on("debris", Obstacle(30.0, None, fleet.t, float("inf"), 5.0), fleet)
    fleet.step(1.0)
    rec.tick(fleet)
    assert rec.traffic()["free_flow_kmh"]["samples"] == before, "not once a hazard is on the road"
    assert rec.traffic()["vehicle_km"] > 600 * 90 * 0.02, "about 2.5 km a vehicle a minute and a half"


def test_a_cleared_closure_s_queue_discharges_at_a_flow_a_lane_can_carry() -> None:
    corridor = load_corridor()
    fleet = Fleet(corridor, FleetConfig(vehicles=3_600, seed=4), start_ms=0)
    rec = Recorder(9, interchanges_km=corridor.route.interchanges_km)
    crash = Obstacle(50.0, False, 5.0, 185.0)  # every southbound lane at km 50 (two lanes) for three minutes
    fleet.obstacles.append(crash)
    for _ in range(5):
        fleet.step(1.0)
        rec.tick(fleet)
    rec.hazard_on("crash", crash, fleet)
    for _ in range(500):
        fleet.step(1.0)
        rec.tick(fleet)
        if fleet.t >= crash.end_s and rec.hazards["crash"].end_s == float("inf"):
            rec.hazard_off("crash", fleet.t)
    h = rec.hazards["crash"]
    assert h.lanes == 2 and h.cleared_crossings_s[0] >= crash.end_s
    flow = discharge_flow(h.cleared_crossings_s, h.lanes)
    assert flow is not None and 1_000 <= flow <= 2_600, f"a queue discharging, not a trickle nor free flow: {flow}"
    took = np.array(h.section_s)  # through the 6 km from 5 km before it to 1 km past it
    assert len(took) > 50 and took.min() >= 6_000 / 40, "none faster than 144 km/h"
    assert took.max() > 6_000 / 25 + 60, "those who queued took over a minute longer than free flow"


def test_discharge_flow_counts_the_first_minute_per_lane_and_needs_the_whole_minute() -> None:
    assert discharge_flow([100.0 + i for i in range(90)], lanes=2) == 60 * 3600 // 60 // 2
    assert discharge_flow([100.0, 110.0, 120.0], lanes=2) is None, "the run ended within the minute"
    assert discharge_flow([], lanes=3) is None


def test_a_vehicle_that_passed_the_place_in_the_step_before_the_hazard_appeared_did_not_pass_the_hazard() -> None:
    """Events fire between a tick's physics and its telemetry: a crossing in the step that ended as the
    hazard appeared happened before it stood there."""
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=40, seed=4), start_ms=0)
    rec = Recorder(9)
    for _ in range(5):
        fleet.step(1.0)
        rec.tick(fleet)
    one = int(np.flatnonzero(fleet.active & fleet.nb)[0])
    place = float(fleet.km[one]) + 0.01
    fleet.step(1.0)  # it drives past `place`
    assert fleet.km[one] > place
    rec.hazard_on("deer", Obstacle(place, True, fleet.t, float("inf"), 0.0, lanes=(0, 1)), fleet)
    rec.tick(fleet)
    h = rec.hazards["deer"]
    assert not h.passed_in_lane and not h.unadvised_passing_mps and not h.surprised_passing_mps
