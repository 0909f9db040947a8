"""CAM generation rules (ETSI EN 302 637-2): who sends, and how often."""

from __future__ import annotations

import numpy as np

from pipeline.shared.corridor import load_corridor
from producers.cam import CamTrigger
from producers.fleet import Fleet, FleetConfig, Obstacle


def _due(cam: CamTrigger, t: float, km: list[float], heading: list[float], speed: list[float]) -> list[bool]:
    n = len(km)
    slots = np.arange(n, dtype=np.int64)
    return cam.due(slots, slots + 100, t, np.array(km), np.array(heading), np.array(speed)).tolist()


def test_each_rule_triggers_a_message_and_nothing_else_does() -> None:
    cam = CamTrigger()
    assert _due(cam, 0.0, [10.0] * 5, [0.0] * 5, [30.0] * 5) == [True] * 5, "a new vehicle sends at once"
    moved, still = 10.0045, 10.0  # 4.5 m, 0 m
    # moved > 4 m, turned > 4°, speed changed > 0.5 m/s; then 1° and 0.4 m/s; then nothing
    assert _due(cam, 0.1, [moved, still, still, still, still], [0.0, 5.0, 0.0, 359.0, 0.0],
                [30.0, 30.0, 30.6, 30.4, 30.0]) == [True, True, True, False, False]  # fmt: skip
    assert _due(cam, 0.15, [10.02] * 3, [90.0] * 3, [0.0] * 3) == [False] * 3, "at most every 100 ms"
    assert _due(cam, 1.0, [still] * 5, [5.0, 5.0, 0.6, 359.0, 0.0], [30.0, 30.0, 30.6, 30.4, 30.0])[3:] == [
        True, True], "at least once a second"  # fmt: skip


def test_a_heading_across_north_is_a_small_turn() -> None:
    cam = CamTrigger()
    _due(cam, 0.0, [1.0], [358.0], [0.0])
    assert _due(cam, 0.2, [1.0], [1.0], [0.0]) == [False], "358° → 1° is 3°, not 357°"


def test_on_the_road_cruising_cars_send_several_times_a_second_and_a_queue_once() -> None:
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=200, seed=2), start_ms=0)
    fleet.obstacles.append(Obstacle(30.0, True, 0.0, float("inf"), 0.0))
    cam = CamTrigger()
    for _ in range(1_200):  # 2 simulated minutes in 100 ms steps: a queue forms behind the obstacle
        fleet.step(0.1)
        fleet.telemetry(cam)
    sent: dict[int, int] = {}
    for _ in range(100):  # then 10 s counted
        fleet.step(0.1)
        for num in fleet.telemetry(cam).vehicle_num.tolist():
            sent[num] = sent.get(num, 0) + 1
    active = np.flatnonzero(fleet.active)
    stopped = [sent.get(n, 0) / 10 for n in fleet.num[active[fleet.v[active] < 0.1]].tolist()]
    cruising = [sent.get(n, 0) / 10 for n in fleet.num[active[fleet.v[active] > 25]].tolist()]
    assert len(stopped) >= 3 and len(cruising) >= 50
    assert np.median(cruising) >= 3, "at motorway speed: every 100-300 ms"
    assert np.median(stopped) <= 1.2, "stopped in the queue: about once a second"
