"""Radio messages batched into TelemetryFrames: byte for byte what the towers read, bad ones refused."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.shared.crdt.hlc import pack
from pipeline.shared.messages import CODEC, FRAME, TELEMETRY
from pipeline.shared.radio_topics import RadioTopics
from tests.towers.test_engine import T0, hazard, upd
from towers.frames import decode_frame
from towers.gateway.batch import FrameBatcher, assemble_frame

TOPICS = RadioTopics(regions=9)


def test_a_region_s_updates_become_one_frame_the_towers_decode() -> None:
    b = FrameBatcher(TOPICS)
    ups = [upd(f"veh-{i:07d}", 38.0 + i * 0.1, t=i) for i in range(5)]
    for u in ups:
        assert b.add(TOPICS.telemetry(4, u["vehicle_id"]), CODEC.encode(TELEMETRY, u), T0 + 9_000) is None
    frames, radio = b.frames([3, 4], T0 + 9_050)
    got = CODEC.decode(frames[4], FRAME)
    assert got["region_id"] == 4 and got["sent_at"] == T0 + 9_050 and got["event_time"] == T0 + 4_000
    assert got["updates"] == [CODEC.decode(CODEC.encode(TELEMETRY, u), TELEMETRY) for u in ups]
    _, cols = decode_frame(frames[4])
    assert cols.ids == [u["vehicle_id"] for u in ups]
    assert CODEC.decode(frames[3], FRAME)["updates"] == [], "a quiet region still gets its frame"
    assert sorted(radio) == [9_000 - i * 1000 for i in reversed(range(5))]
    assert b.pending == 0 and CODEC.decode(b.frames([4], T0)[0][4], FRAME)["frame_seq"] == 1


def test_wrong_region_wrong_type_garbage_foreign_topics_and_impersonation_are_refused_with_reasons() -> None:
    b = FrameBatcher(TOPICS)
    me = "veh-0000001"
    good = CODEC.encode(TELEMETRY, upd(me, 38.0))
    cases = {
        (TOPICS.telemetry(5, me), good): "wrong-region",
        (TOPICS.telemetry(4, me), hazard(40.0)): "wrong-type",
        (TOPICS.telemetry(4, me), good[:20]): "undecodable",
        (TOPICS.telemetry(4, me), b"hello"): "undecodable",
        (TOPICS.telemetry(4, "veh-0000002"), good): "impersonation",
        (TOPICS.hazards(4, me), good): "bad-topic",
        ("corridor/v2/region/4/telemetry", good): "bad-topic",
        ("corridor/v1/region/4/telemetry", good): "bad-topic",
        ("corridor/v2/region/12/telemetry/veh-0000001", good): "bad-topic",
        ("elsewhere/4/telemetry", good): "bad-topic",
    }
    for (topic, payload), reason in cases.items():
        refused = b.add(topic, payload, T0)
        assert refused is not None and refused.reason.startswith(reason), (topic, refused)
        assert refused.payload == payload
    assert b.pending == 0


def test_the_topics_it_remembers_are_bounded_and_a_remembered_one_is_judged_as_before(monkeypatch) -> None:
    from towers.gateway import batch

    monkeypatch.setattr(batch, "MAX_TOPICS", 10)
    b = FrameBatcher(TOPICS)
    for i in range(25):  # a sender inventing a topic per message
        vid = f"veh-{i:07d}"
        assert b.add(TOPICS.telemetry(4, vid), CODEC.encode(TELEMETRY, upd(vid, 38.0)), T0) is None
        assert len(b._parsed) <= 10
    me = "veh-0000024"  # its topic remembered: another's update on it is still refused
    refused = b.add(TOPICS.telemetry(4, me), CODEC.encode(TELEMETRY, upd("veh-0000001", 38.0)), T0)
    assert refused is not None and refused.reason.startswith("impersonation")


@given(st.lists(st.tuples(st.integers(0, 2**40), st.floats(-1e6, 1e6)), max_size=30), st.integers(0, 2**62))
def test_assembled_frames_decode_as_fastavro_reads_them(rows: list[tuple[int, float]], sent_at: int) -> None:
    records = [upd(f"v{i}", 30.0, seq=seq, speed_mps=v, hlc=pack(T0, i)) for i, (seq, v) in enumerate(rows)]
    bodies = [CODEC.encode(TELEMETRY, r)[10:] for r in records]
    got = CODEC.decode(assemble_frame(2, 7, T0, sent_at, bodies), FRAME)
    assert (got["region_id"], got["frame_seq"], got["event_time"], got["sent_at"]) == (2, 7, T0, sent_at)
    assert got["updates"] == [CODEC.decode(CODEC.encode(TELEMETRY, r), TELEMETRY) for r in records]
