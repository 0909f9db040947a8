"""The towers' own Avro paths agree with fastavro: frames decoded column-wise (either path), advisories
written directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.shared.codec import CodecError
from pipeline.shared.corridor import load_corridor
from pipeline.shared.messages import ADVISORY, CODEC, FRAME, TELEMETRY
from producers.encoding import TelemetryEncoder
from producers.fleet import Fleet, FleetConfig
from towers.advisories import encode_advisories
from towers.frames import Updates, decode_frame, updates_from_records
from towers.rules import Advice
from towers.swarm import ACTIONS

COLUMNS = [f for f in Updates.__slots__ if f not in ("ids", "spans")]


def same(a: Updates, b: Updates) -> None:
    assert a.ids == b.ids
    for name in COLUMNS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


def reference(raw: bytes) -> Updates:
    return updates_from_records(CODEC.decode(raw, FRAME)["updates"])


def producer_frames(vehicles: int, ticks: int) -> list[bytes]:
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=vehicles, seed=3), start_ms=1_764_000_000_000)
    encoder, out = TelemetryEncoder(), []
    for t in range(ticks):
        fleet.step(1.0)
        batch = fleet.telemetry()
        hlc = (np.int64(fleet.start_ms + t * 1000) << 16) + np.arange(len(batch))
        out += encoder.encode(batch, hlc).frames(t, fleet.start_ms + t * 1000, fleet.start_ms).values()
    return out


def test_the_producers_frames_take_the_fast_path_and_match_fastavro() -> None:
    frames = producer_frames(600, 3)
    for raw in frames:
        head, got = decode_frame(raw)
        assert got.spans is not None, "a producer's frame is read column-wise"
        same(got, reference(raw))
        assert head.region_id == CODEC.decode(raw, FRAME)["region_id"]
        for i in (0, len(got) - 1):
            assert CODEC.decode(got.record_bytes(i), TELEMETRY) == CODEC.decode(raw, FRAME)["updates"][i]


ids = st.one_of(
    st.integers(0, 9_999_999).map(lambda n: f"veh-{n:07d}"),
    st.text(max_size=12),  # any string the schema allows: the general path
)
doubles = st.floats(allow_nan=True, allow_infinity=True)
floats32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
longs = st.one_of(st.integers(0, 200), st.integers(-(2**63), 2**63 - 1))
update = st.fixed_dictionaries(
    {
        "vehicle_id": ids,
        "seq": longs,
        "event_time": longs,
        "hlc": longs,
        "lat": doubles,
        "lon": doubles,
        "route_km": doubles,
        "direction": st.sampled_from(["NORTHBOUND", "SOUTHBOUND"]),
        "lane": st.integers(-(2**31), 2**31 - 1),
        "heading_deg": floats32,
        "speed_mps": floats32,
        "accel_mps2": floats32,
        "brake": st.booleans(),
        "energy_pct": floats32,
        "region_id": st.integers(-(2**31), 2**31 - 1),
    }
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(update, max_size=8), st.integers(0, 8), longs, st.booleans())
def test_any_frame_decodes_as_fastavro_decodes_it(updates: list, region: int, seq: int, producer_ids: bool) -> None:
    if producer_ids:  # every id of the producers' shape: the fast path reads the rest, whatever it holds
        updates = [{**u, "vehicle_id": f"veh-{i:07d}"} for i, u in enumerate(updates)]
    frame = {"region_id": region, "frame_seq": seq, "event_time": 5, "sent_at": 6, "updates": updates}
    raw = CODEC.encode(FRAME, frame)
    head, got = decode_frame(raw)
    same(got, reference(raw))
    assert (head.region_id, head.frame_seq) == (region, seq)
    for i in range(len(got)):
        back = CODEC.decode(got.record_bytes(i), TELEMETRY)
        want = updates[i]
        assert back["vehicle_id"] == want["vehicle_id"] and back["seq"] == want["seq"]
        assert math.isnan(back["lat"]) if math.isnan(want["lat"]) else back["lat"] == want["lat"]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_garbage_after_a_frame_header_is_a_codec_error_not_a_crash(tail: bytes) -> None:
    raw = b"\xc3\x01" + FRAME.fingerprint + tail
    try:
        _, got = decode_frame(raw)
    except CodecError:
        return
    same(got, reference(raw))


@pytest.mark.parametrize("cut", [1, 7, 40])
def test_a_truncated_producer_frame_is_refused(cut: int) -> None:
    raw = producer_frames(50, 1)[0]
    with pytest.raises(CodecError):
        decode_frame(raw[:-cut])


text = st.text(max_size=30)
advice = st.builds(
    Advice,
    vehicle_id=text,
    northbound=st.booleans(),
    action=st.sampled_from(ACTIONS),
    target_speed_mps=st.floats(width=32, allow_nan=False),
    reason=text,
    hazard_id=st.none() | text,
    trigger_event_time=st.integers(-(2**63), 2**63 - 1),
    trigger_hlc=st.integers(-(2**63), 2**63 - 1),
)


@given(
    st.lists(advice, max_size=4),
    st.integers(0, 10**9),
    st.integers(-(2**31), 2**31 - 1),
    text,
    st.integers(-(2**63), 2**63 - 1),
)
def test_advisories_are_written_byte_for_byte_as_fastavro_writes_them(
    batch: list[Advice], first: int, region: int, tower: str, issued: int
) -> None:
    got = encode_advisories(batch, f"{tower}-0a1b", first, region, tower, issued, issued // 2)
    for i, (a, raw) in enumerate(zip(batch, got, strict=True)):
        record = {
            "advisory_id": f"{tower}-0a1b-{first + i}", "region_id": region, "tower": tower,
            "target_vehicle": a.vehicle_id,
            "direction": "NORTHBOUND" if a.northbound else "SOUTHBOUND", "action": a.action,
            "target_speed_mps": a.target_speed_mps, "reason": a.reason, "hazard_id": a.hazard_id,
            "issued_at": issued, "valid_until": issued // 2, "trigger_event_time": a.trigger_event_time,
            "trigger_hlc": a.trigger_hlc,
        }  # fmt: skip
        assert raw == CODEC.encode(ADVISORY, record)
