"""Vehicles raising hazards themselves: the queue's end reports it, once per cell, and lapses."""

from __future__ import annotations

import numpy as np

from pipeline.shared.corridor import load_corridor
from pipeline.shared.crdt.hlc import HybridClock
from pipeline.shared.messages import CODEC, HAZARD
from producers.denm import HazardSpotter
from producers.fleet import Fleet, FleetConfig, Obstacle


def test_the_end_of_a_queue_is_reported_by_its_last_vehicle_once_per_cell_and_repeat() -> None:
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=2400, seed=3), start_ms=1_764_000_000_000)
    fleet.obstacles.append(Obstacle(40.0, northbound=True, start_s=0.0, end_s=1e9))
    spotter = HazardSpotter(repeat_s=20.0)
    clock = HybridClock()
    seen: list[dict] = []
    for _ in range(240):
        fleet.step(0.5)
        seen += spotter.spot(fleet, clock)
    queue = [r for r in seen if r["direction"] == "NORTHBOUND" and 38.0 < r["route_km"] <= 40.0]
    assert queue, "the stopped traffic before the closure was reported"
    r = queue[-1]
    assert (r["hazard_type"], r["cause_code"], r["sub_cause_code"]) == ("END_OF_QUEUE", 27, 1)
    assert r["reporter"].startswith("veh-") and r["expiry_time"] - r["detection_time"] == 25_000
    assert r["traces_km"][0] < r["route_km"], "its approach lies upstream"
    assert CODEC.decode(CODEC.encode(HAZARD, r), HAZARD) == r
    per_cell = {}
    for rec in seen:
        assert rec["hazard_id"].endswith(rec["reporter"]), "each sender's event of its own, as a DENM actionID"
        cell = "-".join(rec["hazard_id"].split("-")[:3])  # queue-<nb|sb>-<cell>
        per_cell.setdefault(cell, []).append(rec["detection_time"])
    gaps = [np.diff(t).min() for t in per_cell.values() if len(t) > 1]
    assert not gaps or min(gaps) >= 20_000, "one cell is reported at most every 20 s"
    assert spotter.reports == len(seen)


def test_free_flowing_traffic_raises_nothing() -> None:
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=300, seed=3))
    spotter = HazardSpotter()
    reports = []
    for _ in range(120):
        fleet.step(0.5)
        reports += spotter.spot(fleet, HybridClock())
    assert reports == []
