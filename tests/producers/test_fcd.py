"""SUMO FCD out and in: a run's trajectories exported, read back onto the corridor, replayed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.shared.corridor import load_corridor
from pipeline.shared.errors import ConfigError
from pipeline.simulation.fcd_export import write_fcd
from producers.fcd import ReplayFleet, read_fcd
from tests.simulation.test_recorder import _drive


def test_a_run_exported_as_fcd_reads_back_onto_the_same_places(tmp_path: Path) -> None:
    rec, _ = _drive(vehicles=60, ticks=30, max_points=100_000)
    traj = rec.trajectories()
    path = tmp_path / "run.fcd.xml"
    assert write_fcd(traj, load_corridor(), path) == len(traj["t"])
    trace = read_fcd(path, load_corridor())
    assert len(trace.steps) == 30 and trace.off_route == 0 and trace.step_s == 1.0
    last = trace.steps[-1]
    sel = traj["t"] == traj["t"].max()
    assert len(last.num) == int(sel.sum())
    assert np.allclose(np.sort(last.km), np.sort(traj["km"][sel]), atol=0.05), "within 50 m of where they were"
    assert int(last.northbound.sum()) == int(traj["nb"][sel].sum()), "each on its carriageway"


def test_a_replay_sends_each_time_step_once_at_its_time(tmp_path: Path) -> None:
    rec, _ = _drive(vehicles=20, ticks=5, max_points=100_000)
    path = tmp_path / "run.fcd.xml"
    write_fcd(rec.trajectories(), load_corridor(), path)
    fleet = ReplayFleet(read_fcd(path, load_corridor()), load_corridor(), start_ms=1_000_000)
    sizes, times = [], []
    for _ in range(7):
        fleet.step(1.0)
        batch = fleet.telemetry()
        sizes.append(len(batch))
        times.append(batch.event_time_ms)
    assert all(sizes[:5]) and sizes[5:] == [0, 0]
    assert times[:5] == [1_000_000 + 1000 * k for k in range(5)]
    assert fleet.duration_s == 5.0


def test_points_off_the_corridor_are_counted_and_planar_coordinates_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.xml"
    w = load_corridor().route.waypoints[5]  # on the road
    path.write_text(f'<fcd-export><timestep time="0.00">'
                    f'<vehicle id="a" x="{w.lon}" y="{w.lat}" angle="0" speed="30" lane="e_1"/>'
                    f'<vehicle id="far" x="-87.5" y="40.5" angle="0" speed="30" lane="e_0"/>'
                    f'</timestep></fcd-export>')  # fmt: skip
    trace = read_fcd(path, load_corridor())
    assert trace.off_route == 1 and list(trace.ids) == ["a", "far"]
    (step,) = trace.steps
    assert abs(step.km[0] - w.km) < 0.01 and step.lane.tolist() == [1] and step.northbound.tolist() == [True]
    path.write_text('<fcd-export><timestep time="0"><vehicle id="a" x="1200.5" y="300.2"/></timestep></fcd-export>')
    with pytest.raises(ConfigError, match=r"fcd-output\.geo"):
        read_fcd(path, load_corridor())
    path.write_text("<html>not fcd")
    with pytest.raises(ConfigError, match="not SUMO FCD"):
        read_fcd(path, load_corridor())
