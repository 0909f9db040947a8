"""The corridor-wide figures' reference definitions: segment rows, travel time, congestion episodes."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.analytics.segments import (
    NORTH,
    SOUTH,
    EpisodeTracker,
    SegmentGrid,
    SegmentRow,
    nearest_rank,
    segment_rows,
)
from pipeline.shared.corridor import load_corridor


def test_rows_group_by_window_kilometre_and_direction() -> None:
    et = np.array([1_000, 2_000, 9_999, 10_000, 1_500], np.int64)
    km = np.array([3.2, 3.9, 3.5, 3.5, 3.1])
    nb = np.array([True, True, True, True, False])
    v = np.array([10.0, 20.0, 30.0, 40.0, 5.0])
    rows = {
        (r.window_start_ms, r.segment, r.direction): r
        for r in segment_rows(et, km, nb, v, ["a", "a", "b", "a", "c"], 1.0)
    }
    first = rows[(0, 3, NORTH)]
    assert (first.vehicles, first.updates, first.mean_speed_mps) == (2, 3, 20.0)
    assert first.p15_speed_mps == 10.0, "nearest rank: the slowest of three is the 15th percentile"
    assert first.density_per_km == pytest.approx(0.3) and first.flow_per_h == pytest.approx(0.3 * 20 * 3.6)
    assert rows[(10_000, 3, NORTH)].updates == 1 and rows[(0, 3, SOUTH)].vehicles == 1


def test_nearest_rank_is_the_smallest_value_with_enough_below() -> None:
    values = np.arange(1.0, 21.0)  # 1..20
    assert nearest_rank(values, 0.15) == 3.0  # 3 of 20 = 15 % at or below 3
    assert nearest_rank(np.array([7.0]), 0.15) == 7.0


def test_travel_time_uses_segment_speeds_and_the_limit_where_nobody_drove() -> None:
    grid = SegmentGrid((1.0, 1.0, 0.5), (30.0, 30.0, 20.0))
    assert grid.travel_time_s({}) == pytest.approx(1000 / 30 * 2 + 500 / 20)
    assert grid.travel_time_s({1: 10.0}) == pytest.approx(1000 / 30 + 1000 / 10 + 500 / 20)
    assert grid.travel_time_s({0: 0.0}) > 1000, "a stopped segment is crossed slowly, not never"


def test_the_shipped_corridor_at_its_limits_takes_its_free_flow_time() -> None:
    c = load_corridor()
    grid = SegmentGrid.of(c.route.length_km, c.route.speed_limit_mps)
    assert sum(grid.lengths_km) == pytest.approx(c.route.length_km)
    free = grid.travel_time_s({})
    assert 40 * 60 < free < 60 * 60, "≈ 78 km at 55–70 mph"


def _rows(window: int, direction: str, slow: range, limit: float = 30.0) -> list[SegmentRow]:
    return [SegmentRow(window, s, direction, 5, 5, 5.0 if s in slow else limit, 0, 0, 0) for s in range(20)]


def test_a_queue_growing_upstream_is_one_episode_with_a_negative_shockwave() -> None:
    tracker = EpisodeTracker([30.0] * 20)
    # northbound: the queue's head stays at km 12, its tail grows back 1 km per window (10 s)
    for i, tail in enumerate((11, 10, 9, 8)):
        seen = tracker.add_window(i * 10_000, _rows(i * 10_000, NORTH, range(tail, 13)))
    (ep,) = seen
    assert ep.start_ms == 0 and (ep.first_km, ep.last_km) == (8, 12)
    assert ep.shockwave_kmh() == pytest.approx(-360.0), "1 km per 10 s against the traffic"
    tracker.add_window(40_000, _rows(40_000, NORTH, range(0)))
    assert tracker.closed == [ep] and ep.ended_ms == 40_000


def test_southbound_upstream_is_the_higher_kilometre() -> None:
    tracker = EpisodeTracker([30.0] * 20)
    for i, tail in enumerate((6, 7)):
        (ep,) = tracker.add_window(i * 10_000, _rows(i * 10_000, SOUTH, range(5, tail + 1)))
    assert ep.upstream_km == 8.0 and ep.shockwave_kmh() == pytest.approx(-360.0)


def test_separate_runs_are_separate_episodes_and_fast_segments_none() -> None:
    tracker = EpisodeTracker([30.0] * 20)
    rows = [*_rows(0, NORTH, range(2, 4)), SegmentRow(0, 10, NORTH, 1, 1, 14.0, 0, 0, 0)]
    seen = tracker.add_window(0, rows)
    assert sorted((e.first_km, e.last_km) for e in seen) == [(2, 3), (10, 10)]
    assert not tracker.add_window(10_000, [SegmentRow(10_000, 2, NORTH, 1, 1, 16.0, 0, 0, 0)]), "above half: free"
