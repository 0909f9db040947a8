"""Each crafted input that once switched corridor's warnings off, stopped a loop or crashed a worker,
replayed against the project's own functions: refused with a named reason, counted, and the hazard
next to it still advised."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.shared.crdt import LWWMap, encode_state
from pipeline.shared.crdt.hlc import pack
from pipeline.shared.errors import ConfigError
from pipeline.shared.hazards import hazard_record
from pipeline.shared.messages import CODEC, FRAME, HAZARD, SYNC, TELEMETRY
from pipeline.shared.radio_topics import RadioTopics
from tests.towers.test_engine import CORRIDOR, T0, advisories, engine, frame, hazard, upd
from towers.clock_skew import ClockSkew
from towers.frames import updates_from_records
from towers.gateway.batch import FrameBatcher

NOW = T0 + 60_000  # the test engine's wall clock
FAR = 2**62
TOPICS = RadioTopics(regions=9)


def _with_accident():
    """A tower serving region 4 with two vehicles and an accident ahead of them at km 40."""
    e = engine()
    st = e.region(4)
    e.on_telemetry(4, frame(4, [upd("a", 38.5, t=50), upd("b", 37.0, t=50)]), st)
    assert advisories(e.on_hazard(4, hazard(40.0, hid="crash", t=51), st)), "advised before the attack"
    return e, st


def _still_advised(e, st, t: int = 52) -> None:
    """A vehicle that comes up to the accident after the attack and a flush is told to slow down."""
    e.flush(4, 1e9)
    got = advisories(e.on_telemetry(4, frame(4, [upd("c", 38.0, t=t)]), st))
    assert [a["action"] for a in got if a["hazard_id"] == "crash"] == ["SLOW_DOWN"], got


def test_one_update_stamped_far_ahead_cannot_expire_the_swarm_or_silence_an_accident() -> None:
    e, st = _with_accident()
    raw = CODEC.encode(FRAME, {"region_id": 4, "frame_seq": 1, "event_time": T0 + 51_000, "sent_at": T0 + 51_000,
                               "updates": [upd("evil", 36.0, t=51, event_time=FAR)]})  # fmt: skip
    out = e.on_telemetry(4, raw, st)
    assert [d.reason.split(":")[0] for d in out.dead] == ["bad-event-time"]
    assert st.watermark_ms <= NOW + e.cfg.max_clock_drift_ms
    _still_advised(e, st)
    assert {"a", "b", "c"} <= st.members.value


def test_a_frame_head_stamped_far_ahead_moves_no_region_clock() -> None:
    e, st = _with_accident()
    empty = CODEC.encode(FRAME, {"region_id": 4, "frame_seq": 9, "event_time": FAR, "sent_at": NOW, "updates": []})
    assert not e.on_telemetry(4, empty, st).dead
    assert st.watermark_ms <= NOW + e.cfg.max_clock_drift_ms and e.counts["frame-heads-refused"] == 1
    _still_advised(e, st)


def test_a_restart_does_not_restore_a_watermark_carried_off_by_state_written_before_the_bounds() -> None:
    e, st = _with_accident()
    poisoned = updates_from_records([upd("evil", 36.0, t=51, event_time=FAR)])
    st.apply(poisoned, np.arange(1))  # as an older version merged it, unchecked
    writes = e.flush(4, 1e9)
    tables = {name: dict(values) for name, values in writes.items()}
    again = engine()
    restored = again.restore(
        4,
        [tables.get("members", {}).get(f"4:{b}") for b in range(16)],
        [tables["vehicles"].get(f"4:{b}") for b in range(16)],
        tables["hazards"]["4"],
    )
    again.states[4] = restored
    assert restored.watermark_ms <= NOW + again.cfg.max_clock_drift_ms
    _still_advised(again, restored)
    assert "evil" not in restored.members.value, "the vehicle stamped past the bound is expired"


def test_the_gateway_refuses_an_update_far_ahead_and_bounds_every_heartbeat_frame() -> None:
    b = FrameBatcher(TOPICS)
    raw = CODEC.encode(TELEMETRY, upd("veh-0000001", 38.0, t=59, event_time=FAR))
    refused = b.add(TOPICS.telemetry(4, "veh-0000001"), raw, NOW)
    assert refused is not None and refused.reason.startswith("bad-event-time")
    other = CODEC.encode(TELEMETRY, upd("veh-0000002", 38.0, t=59))
    assert b.add(TOPICS.telemetry(4, "veh-0000002"), other, NOW) is None
    frames, _ = b.frames(list(range(9)), NOW)
    heads = [CODEC.decode(f, FRAME)["event_time"] for f in frames.values()]
    assert max(heads) <= NOW + 5_000


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (CODEC.encode(TELEMETRY, upd("veh-0000001", 38.0, t=59, hlc=-5)), "bad-hlc"),
        (CODEC.encode(TELEMETRY, upd("veh-0000001", 38.0, t=59, hlc=pack(NOW + 3_600_000, 0))), "bad-hlc"),
        (CODEC.encode(TELEMETRY, upd("veh/../1", 38.0, t=59)), "bad-id"),
        (b"\xc3\x01" + b"\x00" * 2_000_000, "too-large"),
    ],
    ids=["hlc-negative", "hlc-an-hour-ahead", "id-with-slashes", "two-megabytes"],
)
def test_the_gateway_refuses_what_once_stopped_it_with_a_reason(payload: bytes, reason: str) -> None:
    sender = TOPICS.telemetry(4, "veh-0000001")
    refused = FrameBatcher(TOPICS).add(sender, payload, NOW)  # raised MalformedStateError before
    assert refused is not None and refused.reason.startswith(reason), refused


def test_junk_rows_stamped_an_hour_old_cannot_steer_the_clock_skew_estimate() -> None:
    e = engine()
    e.skew = ClockSkew(hold_ms=0)  # what lasts is corrected at once: only the junk's weight is judged here
    st = e.region(4)
    junk = [upd(f"j{i}", 38.0, t=59, speed_mps=1_000.0) for i in range(500)]  # each row refused
    for k in range(20):
        raw = CODEC.encode(FRAME, {"region_id": 4, "frame_seq": k, "event_time": NOW - 3_600_000,
                                   "sent_at": NOW - 3_600_000, "updates": junk})  # fmt: skip
        e.on_telemetry(4, raw, st, backlog=0)
    assert e.skew.correction_ms() == 0
    genuine = CODEC.encode(FRAME, {"region_id": 4, "frame_seq": 99, "event_time": NOW - 100, "sent_at": NOW - 50,
                                   "updates": [upd("honest", 38.0, t=59)]})  # fmt: skip
    assert not e.on_telemetry(4, genuine, st, backlog=0).dead


def test_believable_rows_from_a_skewed_majority_move_the_estimate_by_bounded_steps_to_a_cap() -> None:
    skew = ClockSkew(max_step_ms=2_000, cap_ms=300_000, hold_ms=0)
    seen = [0]
    for i in range(3_000):
        skew.observe(3_600_000, 500, True, NOW + i)
        assert abs(skew.estimate_ms - seen[-1]) <= 2_000
        seen.append(skew.estimate_ms)
    assert skew.estimate_ms == 300_000


@pytest.mark.parametrize("value", [{}, b"\x00\x01", {"expires": "soon"}, {"km": 41.0, "expires": 2**62}])
def test_a_sync_message_with_a_bad_hazard_value_is_dead_lettered_and_crashes_no_worker(value) -> None:
    e = engine()
    e.on_telemetry(4, frame(4, [upd("a", 40.0, t=1)]), e.region(4))
    ((_, genuine),) = e.on_hazard(4, hazard(40.0), e.states[4]).sync
    msg = CODEC.decode(genuine, SYNC)
    tower = CORRIDOR.regions.towers[4]
    forged = {**msg, "hazards": encode_state(LWWMap({"bad": (pack(T0 + 5_000, 9), tower, value)}))}
    listener = engine()
    listener.region(3)
    out = listener.on_sync(CODEC.encode(SYNC, forged), 4)  # raised TypeError inside Faust's timer before
    assert [d.reason.split(":")[0] for d in out.dead] == ["sync-MalformedStateError"]
    listener.hazards_near(3)
    listener.on_sync(genuine, 4)
    assert "hz-1" in listener.hazards_near(3), "the genuine message after it still merges"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"vehicle_id": ""}, "bad-id"),
        ({"vehicle_id": "v" * 10_000}, "bad-id"),
        ({"vehicle_id": "veh\x00a"}, "bad-id"),
        ({"vehicle_id": "veh/1"}, "bad-id"),
        ({"event_time": -5}, "bad-event-time"),
        ({"lon": 1e300}, "off-corridor"),
        ({"heading_deg": 720.0}, "value-out-of-range"),
        ({"energy_pct": -3.0}, "value-out-of-range"),
    ],
)
def test_updates_once_accepted_without_complaint_are_refused_with_a_reason(change: dict, reason: str) -> None:
    e = engine()
    st = e.region(4)
    good = upd("ok", 37.0, t=59)
    out = e.on_telemetry(4, frame(4, [{**upd("x", 38.0, t=59), **change}, good]), st)
    assert [d.reason.split(":")[0] for d in out.dead] == [reason]
    assert st.members.value == {"ok"}, "a refused row costs its row, never its frame"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"expiry_time": 2**62}, "bad-event-time"),
        ({"expiry_time": T0}, "bad-event-time"),  # before it was detected
        ({"lanes_blocked": [-1]}, "lane-out-of-range"),
        ({"lanes_blocked": [99]}, "lane-out-of-range"),
        ({"lanes_blocked": [2**31 - 1]}, "lane-out-of-range"),
        ({"hazard_id": "h" * 100_000}, "bad-id"),
        ({"reporter": "evil\n"}, "bad-id"),
        ({"relevance_distance_m": -1}, "value-out-of-range"),
        ({"lat": float("nan")}, "not-a-number"),
    ],
)
def test_hazards_once_accepted_without_complaint_are_refused_with_a_reason(change: dict, reason: str) -> None:
    e = engine()
    st = e.region(4)
    raw = CODEC.decode(hazard(40.0, t=59), HAZARD) | change
    out = e.on_hazard(4, CODEC.encode(HAZARD, raw), st)
    assert [d.reason.split(":")[0] for d in out.dead] == [reason]
    assert not st.hazards.entries


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"hazard_id": "a/b"}, "hazard id 'a/b' has characters"),
        ({"reporter": ""}, "reporter of 0 characters"),
        ({"validity_s": 200_000}, "valid for 1 ms to 86,400 s"),
        ({"relevance_m": 60_000}, "relevance distance is 0–50000 m"),
    ],
)
def test_a_hazard_no_tower_would_accept_is_a_one_line_error_where_it_is_made(args: dict, needle: str) -> None:
    """`corridor hazard`, scenarios and benches make their reports with `hazard_record`: refused there,
    with the reason, rather than sent and dead-lettered."""
    given = {"hazard_id": "hz-1", "reporter": "operator", "validity_s": 600.0, "relevance_m": 0} | args
    with pytest.raises(ConfigError, match=needle):
        hazard_record(40.0, "ANIMAL", "NORTHBOUND", 6, NOW, given["validity_s"], given["hazard_id"], given["reporter"],
                      relevance_m=given["relevance_m"])  # fmt: skip
