"""Scenario files: the built-in ones load, bad ones are refused with the fault named."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.shared.errors import ConfigError
from pipeline.simulation.scenario import (
    MAX_UPDATES_PER_S,
    builtin_scenarios,
    load_scenario,
    parse_scenario,
    with_cam,
    with_traffic,
)

BASE = {"vehicles": 100, "hz": 1, "speedup": 2, "duration_s": 60}


def test_builtin_scenarios_load_and_the_default_fits_about_three_minutes() -> None:
    assert {"bloomington-indianapolis", "rush-hour", "faults"} <= set(builtin_scenarios())
    default = load_scenario("bloomington-indianapolis")
    assert 120 <= default.wall_s <= 180 and default.vehicles >= 200
    assert [e.kind for e in default.events] == ["hazard", "hazard", "clear", "clear"]
    crash, deer = default.events[0].args, default.events[1].args
    assert crash["lanes"] == [] and crash["type"] == "ACCIDENT", "a full closure: traffic queues"
    assert deer["lanes"] == [0], "one lane: traffic passes it"
    assert default.vehicle_hazards
    assert load_scenario("rush-hour").vehicles >= 1000
    assert {e.kind for e in load_scenario("faults").events} >= {"kill_worker", "restart_worker", "stop_etcd"}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"events": [{"at_s": 1, "hazard": {"km": 3, "id": "x", "lanes": [2]}}]}, "lanes must list lane numbers 0–1"),
        ({"events": [{"at_s": 1, "hazard": {"km": 3, "id": "x", "relevance_m": -5}}]}, "relevance_m"),
        ({"vehicle_hazards": "yes"}, "vehicle_hazards must be true or false"),
        ({"traffic": "carla"}, "traffic must be one of builtin, sumo"),
        ({"obey_advice": "no"}, "obey_advice must be true or false"),
        ({"sumo_cfg": 7}, "sumo_cfg must be the path of a .sumocfg file"),
        ({"vehicles": 0}, "vehicles must be"),
        ({"hz": 20}, "at most 10"),
        ({"hz": "often"}, "hz"),
        ({"hz": "cam", "vehicles": 10_000, "speedup": 4}, f"{MAX_UPDATES_PER_S:,}"),  # judged at CAM's 10 Hz
        ({"vehicles": 50_000, "speedup": 10}, f"{MAX_UPDATES_PER_S:,}"),
        ({"events": [{"at_s": 5, "hazard": {"km": 3, "type": "UFO", "id": "x"}}]}, "unknown hazard type"),
        ({"events": [{"at_s": 500, "clear": "x"}]}, "outside the run"),
        ({"events": [{"at_s": 5, "kill_worker": 7}]}, "worker index"),
        ({"events": [{"at_s": 5}]}, "exactly one of"),
        ({"events": [{"at_s": 1, "hazard": {"km": 3, "id": "../deer"}}]}, "hazard id '../deer' has characters"),
        ({"events": [{"at_s": 1, "hazard": {"km": 3, "id": "d" * 65}}]}, "hazard id of 65 characters"),
    ],
)
def test_bad_scenarios_name_the_fault(change: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_scenario({**BASE, **change}, "s.yaml")


def test_unknown_and_malformed_scenario_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown scenario"):
        load_scenario("atlantis")
    bad = tmp_path / "bad.yaml"
    bad.write_text("vehicles: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_scenario(str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(str(tmp_path / "missing.yaml"))


def test_external_towers_refuse_scenarios_that_kill_their_own_workers(tmp_path: Path) -> None:
    """Checked before anything starts: the runner has no workers of its own to kill or restart."""
    from pipeline.shared.config import Settings
    from pipeline.simulation.runner import run_scenario

    with pytest.raises(ConfigError, match="kill_worker"):
        run_scenario(load_scenario("faults"), Settings(state_dir=tmp_path), tmp_path, external_towers=True)


def test_cam_replaces_the_rate_and_is_judged_at_its_most() -> None:
    sc = parse_scenario({**BASE, "hz": "cam"}, "s.yaml")
    assert sc.cam and sc.hz == 10
    assert with_cam(parse_scenario(BASE, "s.yaml")).cam
    with pytest.raises(ConfigError, match="with CAM"):
        with_cam(parse_scenario({**BASE, "vehicles": 9_000, "speedup": 4}, "s.yaml"))  # 36,000/s at 1 Hz


def test_sumo_moves_the_vehicles_when_the_scenario_or_the_command_line_says_so() -> None:
    assert parse_scenario(BASE, "s.yaml").traffic == "builtin"
    assert parse_scenario({**BASE, "traffic": "sumo"}, "s.yaml").traffic == "sumo"
    assert with_traffic(parse_scenario(BASE, "s.yaml"), "sumo").traffic == "sumo"
    assert (
        parse_scenario(BASE, "s.yaml").obey_advice
        and not parse_scenario({**BASE, "obey_advice": False}, "s").obey_advice
    )
    own = with_traffic(parse_scenario(BASE, "s.yaml"), "sumo", "mine.sumocfg")
    assert own.traffic == "sumo" and own.sumo_cfg == "mine.sumocfg"
    assert parse_scenario({**BASE, "sumo_cfg": "a/b.sumocfg"}, "s").traffic == "sumo", "a SUMO scenario implies SUMO"
    with pytest.raises(ConfigError, match="give a SUMO configuration file"):
        with_traffic(parse_scenario(BASE, "s.yaml"), "sumo", "mine.net.xml")
    with pytest.raises(ConfigError, match="drop --traffic builtin"):
        with_traffic(parse_scenario(BASE, "s.yaml"), "builtin", "mine.sumocfg")
    with pytest.raises(ConfigError, match="--traffic 'vissim': choose from builtin, sumo"):
        with_traffic(parse_scenario(BASE, "s.yaml"), "vissim")
