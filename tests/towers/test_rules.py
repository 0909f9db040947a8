"""Advice that fits the hazard: a blocking one stops traffic, ice and an open work zone slow it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from towers.config import TowerConfig
from towers.rules import SpeedLimits, Swarm, advise, hazard_advice
from towers.swarm import Cooldowns

CFG = TowerConfig()
LIMIT = 113 / 3.6


def _advice(kind: str, severity: int, km: list[float]) -> dict[float, tuple[str, float]]:
    """Vehicles northbound at `km`, a hazard at km 40: each one's (action, speed) by position."""
    n = len(km)
    zeros = np.zeros(n, np.int64)
    swarm = Swarm(slots=np.arange(n, dtype=np.int64), ids=lambda s: f"veh-{s:07d}", km=np.array(km),
                  v=np.full(n, LIMIT), nb=np.ones(n, bool), et=zeros, hlc=zeros)  # fmt: skip
    hazards: dict[str, dict[str, Any]] = {"h": {"km": 40.0, "dir": "NORTHBOUND", "type": kind, "severity": severity}}
    out = advise(swarm, hazards, (LIMIT, LIMIT), SpeedLimits([0.0], [LIMIT]), Cooldowns(5.0, n), CFG, 0)
    return {km[int(a.vehicle_id[4:])]: (a.action, round(a.target_speed_mps * 3.6)) for a in out}


def test_an_animal_on_the_road_stops_traffic_before_it_and_slows_it_further_back() -> None:
    got = _advice("ANIMAL", 6, [37.5, 39.0, 39.8, 40.5])
    assert got[39.8] == ("STOP", 0) and got[39.0][0] == "SLOW_DOWN" and got[39.0][1] < got[37.5][1] < 113
    assert 40.5 not in got, "past it: nothing"


@pytest.mark.parametrize(("severity", "kmh"), [(2, 80), (5, 60), (7, 40)])
def test_ice_slows_traffic_to_a_speed_by_severity_through_its_stretch_and_never_stops_it(severity: int,
                                                                                       kmh: int) -> None:  # fmt: skip
    got = _advice("ICE", severity, [37.5, 39.9, 40.5, 41.5])
    assert got[37.5] == got[39.9] == got[40.5] == ("SLOW_DOWN", kmh), "from 3 km before to 1 km past"
    assert 41.5 not in got


def test_an_open_work_zone_brings_its_limit_and_a_closed_one_stops_traffic() -> None:
    assert _advice("WORK_ZONE", 4, [39.9])[39.9] == ("SLOW_DOWN", 72)  # 45 mph
    assert _advice("WORK_ZONE", 7, [39.9])[39.9] == ("STOP", 0)


def test_a_minor_obstacle_slows_traffic_and_an_unknown_kind_is_taken_as_blocking() -> None:
    assert _advice("OBSTACLE", 1, [39.9])[39.9] == ("SLOW_DOWN", 60)
    assert hazard_advice("METEOR", 3, CFG)[0], "the safe side"


def test_a_queue_end_is_approached_slowly_and_never_called_a_stop() -> None:
    """Told to STOP 300 m short of a queue, vehicles would start a new queue end there, and so on
    upstream: a wave of advice racing back faster than any real one (seen in rush-hour)."""
    got = _advice("END_OF_QUEUE", 5, [37.5, 39.0, 39.8, 39.95])
    assert {a for a, _ in got.values()} == {"SLOW_DOWN"}
    assert got[39.95][1] <= 30 < got[39.0][1] < got[37.5][1], "down to the approach speed at its end"
