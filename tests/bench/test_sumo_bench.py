"""The bench's SUMO section: both fleets moved for the same time, SUMO's cost split into its parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.bench.sumo import run_sumo


def test_sumo_s_cost_is_its_own_step_plus_the_coupling_and_is_set_against_the_builtin_fleet(tmp_path: Path) -> None:
    r = run_sumo(tmp_path, vehicles=300, seconds=20)
    assert r["vehicles"] == 300 and r["simulated_s"] == 20
    parts = r["sumo_own_step_us_per_vehicle_s"] + r["coupling_us_per_vehicle_s"]
    assert parts == pytest.approx(r["sumo_us_per_vehicle_s"], abs=0.05)
    assert r["sumo_own_step_us_per_vehicle_s"] > 0 and r["coupling_us_per_vehicle_s"] > 0
    assert r["builtin_us_per_vehicle_s"] > 0
    assert r["sumo_core_share_at_4x_pct"] == pytest.approx(r["sumo_cpu_ms_per_sim_s"] * 0.4, abs=0.1)
