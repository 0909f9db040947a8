"""The bulk telemetry encoder writes exactly what the reference Avro codec reads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pipeline.shared.messages import CODEC, FRAME, TELEMETRY
from producers.encoding import TelemetryEncoder, vehicle_id
from producers.fleet import TelemetryBatch


@st.composite
def batches(draw: st.DrawFn) -> tuple[TelemetryBatch, np.ndarray]:
    n = draw(st.integers(1, 40))
    ints = lambda lo, hi: hnp.arrays(np.int64, n, elements=st.integers(lo, hi))  # noqa: E731
    floats = lambda lo, hi: hnp.arrays(np.float64, n, elements=st.floats(lo, hi))  # noqa: E731
    bools = hnp.arrays(np.bool_, n)
    batch = TelemetryBatch(
        slot=np.arange(n),
        vehicle_num=draw(ints(0, 9_999_999)),
        seq=draw(ints(0, 2**40)),
        event_time_ms=draw(st.integers(0, 2**45)),
        lat=draw(floats(-90, 90)),
        lon=draw(floats(-180, 180)),
        km=draw(floats(0, 80)),
        northbound=draw(bools),
        lane=draw(ints(0, 3)),
        heading=draw(floats(0, 359)),
        speed=draw(floats(0, 60)),
        accel=draw(floats(-9, 3)),
        brake=draw(bools),
        energy=draw(floats(0, 100)),
        region=draw(ints(0, 63)),
    )
    hlc = draw(ints(0, 2**62))
    return batch, hlc


def _expect(batch: TelemetryBatch, hlc: np.ndarray, i: int, got: dict) -> None:
    assert got["vehicle_id"] == vehicle_id(int(batch.vehicle_num[i]))
    assert (got["seq"], got["event_time"], got["hlc"]) == (batch.seq[i], batch.event_time_ms, hlc[i])
    assert (got["lat"], got["lon"], got["route_km"]) == (batch.lat[i], batch.lon[i], batch.km[i])
    assert got["direction"] == ("NORTHBOUND" if batch.northbound[i] else "SOUTHBOUND")
    assert (got["lane"], got["brake"], got["region_id"]) == (batch.lane[i], batch.brake[i], batch.region[i])
    for key, arr in (
        ("heading_deg", batch.heading),
        ("speed_mps", batch.speed),
        ("accel_mps2", batch.accel),
        ("energy_pct", batch.energy),
    ):
        assert got[key] == pytest.approx(float(np.float32(arr[i])), rel=0, abs=0)


@settings(max_examples=60)
@given(batches())
def test_records_decode_to_the_batch(data: tuple[TelemetryBatch, np.ndarray]) -> None:
    batch, hlc = data
    records = TelemetryEncoder().encode(batch, hlc).records()
    for i, rec in enumerate(records):
        _expect(batch, hlc, i, CODEC.decode(rec, TELEMETRY))


@settings(max_examples=40)
@given(batches(), st.integers(0, 2**40), st.integers(0, 2**45))
def test_frames_group_by_region_and_decode_to_the_batch(data, frame_seq: int, sent_at: int) -> None:
    batch, hlc = data
    frames = TelemetryEncoder().encode(batch, hlc).frames(frame_seq, batch.event_time_ms, sent_at)
    assert set(frames) == set(batch.region.tolist())
    seen = 0
    for region, raw in frames.items():
        frame = CODEC.decode(raw, FRAME)
        assert (frame["region_id"], frame["frame_seq"], frame["sent_at"]) == (region, frame_seq, sent_at)
        assert frame["event_time"] == batch.event_time_ms
        rows = np.flatnonzero(batch.region == region)
        assert len(frame["updates"]) == len(rows)
        for i, upd in zip(rows, frame["updates"], strict=True):
            _expect(batch, hlc, int(i), upd)
        seen += len(rows)
    assert seen == len(batch)


def test_an_empty_frame_is_a_valid_frame_with_no_updates() -> None:
    from producers.encoding import empty_frame

    assert CODEC.decode(empty_frame(3, 7, 1_000, 2_000), FRAME) == {
        "region_id": 3,
        "frame_seq": 7,
        "event_time": 1_000,
        "sent_at": 2_000,
        "updates": [],
    }


def test_a_tick_in_which_nobody_sent_encodes_to_no_frames_and_no_records() -> None:
    from producers.fcd import _empty

    encoded = TelemetryEncoder().encode(_empty(1_000), np.zeros(0, np.int64))
    assert encoded.frames(1, 1_000, 2_000) == {} and encoded.records() == []
