"""The drill's accounting: kept, superseded and lost, per (region, vehicle)."""

from __future__ import annotations

from pipeline.drill.accounting import account, latest_sent, latest_stored
from tests.towers.test_engine import engine, frame, upd


def test_latest_sent_takes_each_vehicles_newest_update_per_region() -> None:
    frames = [(4, frame(4, [upd("a", 40.0, t=1), upd("b", 40.5, t=1)])), (4, frame(4, [upd("a", 40.1, t=3)])),
              (5, frame(5, [upd("a", 43.6, t=9)]))]  # fmt: skip
    sent = latest_sent(frames)
    assert set(sent) == {(4, "a"), (4, "b"), (5, "a")}
    assert sent[(4, "a")] > sent[(4, "b")], "the t=3 update, not the t=1 one"


def test_kept_superseded_and_lost_are_told_apart() -> None:
    sent = {(4, "kept"): 100, (4, "left"): 100, (4, "stale"): 100, (4, "missing"): 100}
    stored = {(4, "kept"): 100, (4, "left"): 150, (4, "stale"): 90, (5, "other"): 10}
    result = account(sent, stored)
    assert (result.acknowledged, result.kept, result.superseded, result.lost) == (4, 1, 1, 2)
    assert result.lost_examples == [(4, "missing"), (4, "stale")]


def test_latest_stored_reads_table_values_tombstones_included() -> None:
    e = engine(vehicle_ttl_s=10)
    e.on_telemetry(4, frame(4, [upd("quiet", 40.0, t=1), upd("chatty", 40.5, t=1)]), e.region(4))
    e.on_telemetry(4, frame(4, [upd("chatty", 40.6, t=15)]), e.states[4])
    writes = e.flush(4, 0.0)  # "quiet" expires: a tombstone stamped by the tower's clock
    stored = latest_stored([(4, value) for _, value in writes["vehicles"]])
    assert stored[(4, "chatty")] == e.states[4].entry_ts("chatty")
    assert stored[(4, "quiet")] == e.states[4].entry_ts("quiet") > upd("quiet", 40.0, t=1)["hlc"]
