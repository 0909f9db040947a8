"""Poison input: whatever arrives on a topic, the engine never raises, and nothing is lost silently:
each update is merged or dead-lettered with a reason, each bad record is dead-lettered or counted."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.shared.codec import CodecError
from pipeline.shared.messages import CODEC, FRAME, SYNC
from tests.towers.test_engine import engine, frame, hazard, upd
from tests.towers.test_frames import update
from towers.validation import Reason

REASONS = {v for k, v in vars(Reason).items() if not k.startswith("_")} | {"severity-out-of-range"}
VALID_FRAME = frame(4, [upd(f"veh-{i:07d}", 36 + i * 0.1, t=1) for i in range(5)])
VALID_HAZARD = hazard(37.0)


def mangled(valid: bytes) -> st.SearchStrategy[bytes]:
    """A valid record truncated, with bytes flipped, or with a foreign fingerprint."""
    cut = st.integers(0, len(valid) - 1).map(lambda n: valid[:n])
    flips = st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)), min_size=1, max_size=6).map(
        lambda fl: bytes(dict(fl).get(i, b) for i, b in enumerate(valid))
    )
    foreign = st.binary(min_size=8, max_size=8).map(lambda fp: valid[:2] + fp + valid[10:])
    return st.one_of(cut, flips, foreign, st.binary(max_size=120))


extreme_frames = st.lists(update, min_size=1, max_size=6).map(
    lambda ups: CODEC.encode(FRAME, {"region_id": 4, "frame_seq": 1, "event_time": 0, "sent_at": 0, "updates": ups})
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mangled(VALID_FRAME), extreme_frames))
def test_anything_on_the_telemetry_topic_is_merged_or_dead_lettered(raw: bytes) -> None:
    e = engine()
    out = e.on_telemetry(4, raw, e.region(4))
    assert all(d.reason.split(":")[0] in REASONS for d in out.dead), [d.reason for d in out.dead]
    try:
        updates = CODEC.decode(raw, FRAME)["updates"]
    except CodecError:
        assert len(out.dead) == 1 and out.dead[0].value == raw, "an undecodable record is dead-lettered whole"
        return
    if len(out.dead) == 1 and out.dead[0].value == raw:
        # refused whole: a frame of another region, or sent from a clock far ahead
        assert out.dead[0].reason.startswith(("wrong-region: frame", "clock-drift: frame")), out.dead[0].reason
        assert e.counts["updates"] == 0
        return
    assert e.counts["updates"] + len(out.dead) == len(updates), "every update merged or dead-lettered"


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(mangled(VALID_HAZARD))
def test_anything_on_the_hazards_topic_is_recorded_or_dead_lettered(raw: bytes) -> None:
    e = engine()
    out = e.on_hazard(4, raw, e.region(4))
    assert (e.counts["hazards"] == 1) != bool(out.dead), "recorded, or dead-lettered: one of the two"
    assert all(d.reason.split(":")[0] in REASONS for d in out.dead)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_anything_on_the_tower_sync_topic_is_merged_or_dead_lettered(data: st.DataObject) -> None:
    e = engine()
    e.on_telemetry(4, VALID_FRAME, e.region(4))
    ((_, valid),) = e.on_hazard(4, VALID_HAZARD, e.states[4]).sync
    raw = data.draw(mangled(valid))
    listener = engine()
    out = listener.on_sync(raw, 4)  # never raises
    try:
        CODEC.decode(raw, SYNC)
        decodable = True
    except CodecError:
        decodable = False
    refused = sum(listener.dead_reasons.values())
    assert refused == len(out.dead) <= 1
    assert refused == 1 or (decodable and listener.view.regions), "merged, or refused and dead-lettered"
    assert all(d.value == raw and d.region == 4 and d.reason.startswith("sync-") for d in out.dead)
