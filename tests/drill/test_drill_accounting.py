"""The drill's accounting: kept, superseded and lost, per (region, vehicle)."""

from __future__ import annotations

from pipeline.drill.accounting import account, latest_rejected, latest_sent, latest_stored
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


def test_an_update_the_towers_refused_with_a_reason_is_rejected_not_lost() -> None:
    e = engine()
    skewed = upd("skewed", 40.2, t=1, hlc=upd("skewed", 40.2, t=1)["hlc"] + (600_000 << 16))
    out = e.on_telemetry(4, frame(4, [upd("fine", 40.0, t=1), skewed]), e.region(4))
    rejected = latest_rejected([(4, d.value) for d in out.dead] + [(4, b"\x00not telemetry")])
    assert rejected == {(4, "skewed"): skewed["hlc"]}
    sent = {(4, "fine"): upd("fine", 40.0, t=1)["hlc"], (4, "skewed"): skewed["hlc"], (4, "gone"): 7}
    stored = {(4, "fine"): sent[(4, "fine")]}
    result = account(sent, stored, rejected)
    assert (result.kept, result.rejected, result.lost) == (1, 1, 1)
    assert result.lost_examples == [(4, "gone")]


def test_a_vehicle_forgotten_past_the_tombstone_horizon_is_superseded_and_a_newer_one_lost() -> None:
    sent = {(4, "left-long-ago"): 100, (4, "recent"): 500}
    result = account(sent, {}, pruned_before=300)
    assert (result.superseded, result.lost, result.lost_examples) == (1, 1, [(4, "recent")])
