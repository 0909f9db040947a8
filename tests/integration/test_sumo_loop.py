"""SUMO in the loop, end to end: SUMO moves the vehicles, the real towers advise them, and SUMO's own
floating-car output shows the advice was obeyed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.shared.corridor import load_corridor
from pipeline.simulation.runner import run_scenario
from pipeline.simulation.scenario import parse_scenario
from producers.fcd import read_fcd

pytestmark = pytest.mark.integration

DEER = {
    "name": "sumo-e2e", "description": "a deer in the right-hand lane near Martinsville, vehicles moved by SUMO",
    "vehicles": 300, "hz": 1, "speedup": 6, "duration_s": 150, "workers": 2, "seed": 3, "traffic": "sumo",
    "events": [
        {"at_s": 30, "hazard": {"km": 36.0, "type": "ANIMAL", "direction": "NORTHBOUND", "id": "deer",
                                "lanes": [0]}},
        {"at_s": 120, "clear": "deer"},
    ],
}  # fmt: skip


def test_sumo_s_vehicles_are_advised_before_the_hazard_and_slow_down_in_sumo(stack, tmp_path: Path) -> None:
    result = run_scenario(parse_scenario(DEER, "sumo-e2e"), stack.settings, tmp_path / "report", fcd=True)
    s = result.summary
    deer = s["hazards"]["deer"]
    assert not s["partial"] and s["run"]["traffic"] == "sumo"
    assert s["run"]["dead_letters"] == 0 and s["run"]["towers_converged"], s["run"]
    assert deer["advisories"] > 0 and deer["actions"]["SLOW_DOWN"] > 0, deer
    assert 0.97 * 300 * 150 <= s["run"]["updates_sent"] <= 300 * 150, "SUMO kept the fleet at its size"
    trace = read_fcd(result.paths["fcd"], load_corridor())  # SUMO's own output, not corridor's
    assert trace.off_route == 0
    wall = [n for sumo_id, n in trace.ids.items() if sumo_id.startswith("hazard-")]
    assert len(wall) == 1, "the deer stands in SUMO's right-hand lane"
    # beyond the 150 m a driver sees it unaided: only advice slows anyone there
    before, during = [], []
    for step in trace.steps:
        near = step.northbound & (step.km > 35.0) & (step.km < 35.8) & ~np.isin(step.num, wall)
        if step.t < 30:
            before.extend(step.speed[near].tolist())
        elif 45 <= step.t < 120:
            during.extend(step.speed[near].tolist())
    assert len(before) > 20 and len(during) > 20
    assert np.median(before) > 25.0, "at motorway speed before the report"
    assert np.median(during) < 20.0, f"slowed by the towers' advice, through TraCI: {np.median(during):.1f} m/s"
