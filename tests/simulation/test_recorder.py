"""The run's recorder keeps the whole run for its pictures, at any fleet size."""

from __future__ import annotations

import numpy as np

from pipeline.shared.corridor import load_corridor
from pipeline.simulation.recorder import MIN_COLUMNS, Recorder
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
    fleet.km[[kept, lapsed]] = hazard_km + 0.01  # both drive past it
    rec.tick(fleet)
    h = rec.hazards["debris"]
    assert len(h.passing_mps) == 1 and len(h.lapsed_passing_mps) == 1 and not h.unadvised_passing_mps
