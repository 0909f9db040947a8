"""A tower's clock judged against its senders': the weighted median of frame delays read with no
backlog, corrected only for what lasts."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.shared.crdt.hlc import HybridClock, pack, unpack
from pipeline.shared.messages import CODEC, FRAME
from tests.towers.test_engine import CORRIDOR, T0, advisories, hazard, upd
from towers.clock_skew import ClockSkew
from towers.config import TowerConfig
from towers.engine import TowerEngine


def fed(skew: ClockSkew, delays: list[tuple[int, int]], caught_up: bool = True) -> ClockSkew:
    """`delays` observed one frame a second of the host's time."""
    for i, (delay, vehicles) in enumerate(delays):
        skew.observe(delay, vehicles, caught_up, T0 + i * 1_000)
    return skew


def test_a_clock_off_from_every_sender_is_found_and_corrected_once_it_lasted() -> None:
    ahead = fed(ClockSkew(), [(10_040 + i % 7, 100) for i in range(200)])
    assert 10_040 <= ahead.estimate_ms <= 10_046 and ahead.correction_ms() == ahead.estimate_ms
    behind = fed(ClockSkew(), [(-8_000, 100)] * 200)
    assert behind.correction_ms() == -8_000
    assert fed(ClockSkew(), [(10_040, 100)] * 59).estimate_ms == 0, "59 s of it: not yet a skew"


def test_a_correction_no_longer_seen_is_withdrawn_at_once() -> None:
    skew = fed(ClockSkew(), [(10_000, 100)] * 200)
    assert skew.correction_ms() == 10_000
    for i in range(513):  # the host's clock set right: the median comes back once half the window is new
        skew.observe(40, 100, True, T0 + 200_000 + i * 10)
    assert skew.estimate_ms == 40 and skew.correction_ms() == 0


def test_transit_alone_is_no_skew_and_frames_read_from_a_backlog_do_not_count() -> None:
    assert fed(ClockSkew(), [(350, 100)] * 200).correction_ms() == 0, "a third of a second is transit"
    assert fed(ClockSkew(), [(40_000, 100)] * 200, caught_up=False).estimate_ms == 0, "that is lag, not skew"
    assert fed(ClockSkew(), [(9_000, 1)] * 15).estimate_ms == 0, "too few vehicles to judge by"


@given(st.integers(1, 40), st.integers(-60_000, 60_000))
def test_a_minority_of_vehicles_with_wrong_clocks_cannot_move_it(minority: int, wrong: int) -> None:
    """The clock-skew drill's side fleet: 50 vehicles 10 s ahead beside 1,000 honest ones, a frame each
    per region and tick: as many frames, far fewer vehicles."""
    skew = ClockSkew()
    for i in range(100):
        skew.observe(60, 1000 // 9, True, T0 + i * 1_000)
        skew.observe(wrong, minority, True, T0 + i * 1_000 + 500)
    assert skew.estimate_ms == 60 and skew.correction_ms() == 0


@pytest.mark.parametrize("before", [0, 200], ids=["a worker started in the stall", "a worker running before it"])
def test_frames_held_up_by_a_partitions_move_are_no_skew_and_fresh_frames_after_it_are_taken(before: int) -> None:
    """A node lost: its partitions' leaders moved, and the senders' frames reached a caught-up tower
    8 s late for 30 s. Taken for skew, that set the tower's clock back 8 s, and the fresh frames after
    it were refused as sent from the future (167 dead letters in a three-node run)."""
    host = [T0]
    e = TowerEngine(CORRIDOR, TowerConfig(max_trigger_age_s=3600), clock=HybridClock(physical=lambda: host[0]),
                    wall_ms=lambda: host[0])  # fmt: skip
    st = e.region(4)
    for i, delay in enumerate([50] * before + [8_000] * 300 + [50] * 300):
        host[0] += 100
        sent = host[0] - delay
        ups = [upd(f"v{j}", 42.0, t=i, event_time=sent - 50, hlc=pack(sent - 50, j)) for j in range(20)]
        raw = CODEC.encode(FRAME, {"region_id": 4, "frame_seq": i, "event_time": sent - 50, "sent_at": sent,
                                   "updates": ups})  # fmt: skip
        assert not e.on_telemetry(4, raw, st, backlog=0).dead, f"frame {i} refused"
        assert e.skew.correction_ms() == 0


def test_a_tower_whose_host_clock_is_ahead_still_advises() -> None:
    """Its host 10 s ahead: every trigger looked older than its 10 s bound, and it advised nothing."""
    now = T0 + 60_000
    e = TowerEngine(CORRIDOR, TowerConfig(max_trigger_age_s=10), clock=HybridClock(physical=lambda: now),
                    wall_ms=lambda: now + 10_000)  # fmt: skip
    e.skew = ClockSkew(hold_ms=0)  # corrected as soon as seen: how long it must last is tested above
    st = e.region(4)
    for i in range(20):  # oncoming traffic, sent 50 ms ago by the senders' clocks, read with no backlog
        ups = [upd(f"s{i}-{j}", 42.0, nb=False, t=59) for j in range(5)]
        raw = CODEC.encode(FRAME, {"region_id": 4, "frame_seq": i, "event_time": now - 1000, "sent_at": now - 50,
                                   "updates": ups})  # fmt: skip
        assert not e.on_telemetry(4, raw, st, backlog=0).dead
    assert abs(e.wall_ms() - now) <= 100
    stale = e.counts["stale_triggers"]  # judged by the host's clock until enough frames had been read
    e.on_hazard(4, hazard(40.0, t=58), st)
    raw = CODEC.encode(FRAME, {"region_id": 4, "frame_seq": 99, "event_time": now - 1000, "sent_at": now - 50,
                               "updates": [upd("approaching", 38.5, t=59)]})  # fmt: skip
    (adv,) = advisories(e.on_telemetry(4, raw, st, backlog=0))
    assert adv["target_vehicle"] == "approaching" and adv["action"] == "SLOW_DOWN"
    assert e.counts["stale_triggers"] == stale


def test_a_tower_whose_host_clock_is_behind_stamps_and_judges_by_one_clock() -> None:
    """Its host 10 s behind every sender: once corrected, rows passed the bounds, and then the HLC,
    still reading the host's own clock, refused them with a ClockDriftError out of `on_telemetry`."""
    e = TowerEngine(CORRIDOR, TowerConfig(max_trigger_age_s=3600))  # its clocks: this host's, as deployed
    e.skew = ClockSkew(hold_ms=0)
    st = e.region(4)
    for i in range(40):
        sent = int(time.time() * 1000) + 10_000
        ups = [upd(f"v{i}-{j}", 42.0, t=0, event_time=sent - 50, hlc=pack(sent - 50, j)) for j in range(20)]
        raw = CODEC.encode(FRAME, {"region_id": 4, "frame_seq": i, "event_time": sent - 50, "sent_at": sent,
                                   "updates": ups})  # fmt: skip
        e.on_telemetry(4, raw, st, backlog=0)
    assert e.skew.correction_ms() <= -9_000
    sent = int(time.time() * 1000) + 10_000
    raw = CODEC.encode(
        FRAME,
        {
            "region_id": 4,
            "frame_seq": 99,
            "event_time": sent - 50,
            "sent_at": sent,
            "updates": [upd("late", 42.0, event_time=sent - 50, hlc=pack(sent - 50, 0))],
        },
    )
    assert not e.on_telemetry(4, raw, st, backlog=0).dead
    assert unpack(e.clock.now())[0] >= sent - 1_000, "its stamps follow the corrected clock"
