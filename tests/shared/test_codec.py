"""Single-object Avro encoding: round trips, schema evolution both ways, and typed errors."""

from __future__ import annotations

import copy

import pytest

import schemas
from pipeline.shared.codec import MAGIC, AvroCodec, CorruptRecordError, Schema, UnknownSchemaError
from pipeline.shared.messages import ADVISORY, CODEC, FRAME, HAZARD, TELEMETRY

TELEMETRY_RECORD = {
    "vehicle_id": "veh-0000042",
    "seq": 7,
    "event_time": 1_764_000_000_000,
    "hlc": 115_605_504_000_000_005,
    "lat": 39.2,
    "lon": -86.5,
    "route_km": 14.5,
    "direction": "NORTHBOUND",
    "lane": 1,
    "heading_deg": 12.5,
    "speed_mps": 29.0,
    "accel_mps2": -0.5,
    "brake": False,
    "energy_pct": 61.5,
    "region_id": 1,
}
HAZARD_RECORD = {
    "hazard_id": "hz-1",
    "hazard_type": "ANIMAL",
    "cause_code": 11,
    "route_km": 40.1,
    "lat": 39.42,
    "lon": -86.42,
    "direction": "BOTH",
    "severity": 6,
    "detection_time": 1_764_000_180_000,
    "expiry_time": 1_764_000_360_000,
    "cancelled": False,
    "hlc": 115_605_504_000_000_099,
    "reporter": "veh-0000003",
    "region_id": 4,
}
ADVISORY_RECORD = {
    "advisory_id": "adv-1",
    "region_id": 4,
    "tower": "tower-04",
    "target_vehicle": "veh-0000042",
    "direction": "NORTHBOUND",
    "action": "SLOW_DOWN",
    "target_speed_mps": 13.4,
    "reason": "animal 1.2 km ahead",
    "hazard_id": "hz-1",
    "issued_at": 1,
    "valid_until": 2,
    "trigger_event_time": 0,
    "trigger_hlc": 5,
}


@pytest.mark.parametrize(
    ("schema", "record"),
    [
        (TELEMETRY, TELEMETRY_RECORD),
        (HAZARD, HAZARD_RECORD),
        (ADVISORY, ADVISORY_RECORD),
        (FRAME, {"region_id": 1, "frame_seq": 3, "event_time": 8, "sent_at": 9, "updates": [TELEMETRY_RECORD] * 3}),
    ],
    ids=["telemetry", "hazard", "advisory", "frame"],
)
def test_round_trip(schema: Schema, record: dict) -> None:
    data = CODEC.encode(schema, record)
    assert data[:2] == MAGIC and data[2:10] == schema.fingerprint
    got = CODEC.decode(data, schema)
    for key, value in record.items():
        expected = value if not isinstance(value, float) else pytest.approx(value, rel=1e-6)
        assert got[key] == expected, key


def test_every_field_of_every_message_is_documented() -> None:
    for name in ("vehicle_telemetry", "telemetry_frame", "hazard_report", "control_advisory"):
        for field in schemas.load(name)["fields"]:
            assert field.get("doc", "").strip(), f"{name}.{field['name']} has no doc"


def _v2() -> Schema:
    v2 = copy.deepcopy(schemas.load("vehicle_telemetry"))
    v2["fields"].append({"name": "yaw_rate_dps", "type": "float", "default": 0.0, "doc": "yaw rate, degrees/s"})
    return Schema.of(v2)


def test_v1_reader_reads_a_v2_writer() -> None:
    v2 = _v2()
    codec = AvroCodec([TELEMETRY, v2])
    data = codec.encode(v2, {**TELEMETRY_RECORD, "yaw_rate_dps": 1.5})
    got = codec.decode(data, TELEMETRY)
    assert "yaw_rate_dps" not in got and got["vehicle_id"] == "veh-0000042"


def test_v2_reader_reads_a_v1_writer_with_the_default() -> None:
    v2 = _v2()
    codec = AvroCodec([TELEMETRY, v2])
    got = codec.decode(codec.encode(TELEMETRY, TELEMETRY_RECORD), v2)
    assert got["yaw_rate_dps"] == 0.0 and got["seq"] == 7


def test_unknown_fingerprint_is_a_typed_error() -> None:
    data = AvroCodec([_v2()]).encode(_v2(), {**TELEMETRY_RECORD, "yaw_rate_dps": 0.0})
    with pytest.raises(UnknownSchemaError, match="fingerprint"):
        CODEC.decode(data)


@pytest.mark.parametrize("cut", [1, 5, 9, 11, 30, 60])
def test_truncated_input_is_a_typed_error(cut: int) -> None:
    data = CODEC.encode(TELEMETRY, TELEMETRY_RECORD)
    with pytest.raises((CorruptRecordError, UnknownSchemaError)):
        CODEC.decode(data[:-cut] if cut < len(data) else data[:1])


def test_garbage_and_trailing_bytes_are_typed_errors() -> None:
    with pytest.raises(CorruptRecordError, match="header"):
        CODEC.decode(b'{"vehicle_id": "json is not avro"}')
    with pytest.raises(CorruptRecordError, match="trailing"):
        CODEC.decode(CODEC.encode(TELEMETRY, TELEMETRY_RECORD) + b"\x01\x02")
    header = MAGIC + TELEMETRY.fingerprint
    with pytest.raises(CorruptRecordError):
        CODEC.decode(header + b"\xff" * 12)


def test_a_record_that_does_not_fit_the_schema_is_refused_on_encode() -> None:
    from pipeline.shared.codec import CodecError

    with pytest.raises(CodecError, match="VehicleTelemetry"):
        CODEC.encode(TELEMETRY, {**TELEMETRY_RECORD, "direction": "UPWARDS"})
