"""The route simulation end to end, on the real stack, judged by its own report."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.simulation.runner import run_scenario
from pipeline.simulation.scenario import parse_scenario

pytestmark = pytest.mark.integration

SHORT = {
    "name": "e2e", "description": "a deer on the northbound carriageway near Martinsville",
    "vehicles": 250, "hz": 1, "speedup": 6, "duration_s": 150, "workers": 2, "seed": 3,
    "events": [
        {"at_s": 30, "hazard": {"km": 36.0, "type": "ANIMAL", "direction": "NORTHBOUND", "id": "deer"}},
        {"at_s": 120, "clear": "deer"},
    ],
}  # fmt: skip


def test_a_short_scenario_slows_traffic_before_the_hazard(stack, tmp_path: Path) -> None:
    result = run_scenario(parse_scenario(SHORT, "e2e"), stack.settings, tmp_path / "report")
    s = result.summary
    deer = s["hazards"]["deer"]
    assert not s["partial"]
    assert deer["advisories"] > 0 and deer["actions"]["SLOW_DOWN"] > 0
    assert {3, 4} <= set(deer["advised_regions"]), "its region and the one upstream (through tower-sync)"
    assert deer["approach_speed_p90_mps"] < 15.0, "vehicles 200–400 m before it had slowed well below 100 km/h"
    assert deer["max_passing_speed_mps"] < 8.0, "no warned vehicle drove through it at speed"
    assert s["run"]["towers_converged"], s["towers"]
    assert s["run"]["dead_letters"] == 0
    assert s["run"]["updates_sent"] == 250 * 150
    for name in ("spacetime", "latency", "load"):
        assert result.paths[name].stat().st_size > 10_000, f"{name}.png looks empty"
    assert "deer" in result.paths["report"].read_text()
