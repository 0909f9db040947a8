"""The wire format of every message schema, pinned: a change to a schema (a field, its order, a
type, a symbol) changes these bytes and its fingerprint, and must be made on purpose — a new
schema version, with the old one still readable by the towers and the vehicles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.shared.messages import (
    ADVISORY,
    ADVISORY_V1,
    CODEC,
    FRAME,
    HAZARD,
    HAZARD_V1,
    STATS,
    SYNC,
    SYNC_V1,
    TELEMETRY,
)

GOLDEN = Path(__file__).with_name("golden")
T0 = 1_764_000_000_000

UPDATE = {
    "vehicle_id": "veh-0000042", "seq": 7, "event_time": T0, "hlc": (T0 << 16) | 3, "lat": 39.1653,
    "lon": -86.5264, "route_km": 12.5, "direction": "NORTHBOUND", "lane": 1, "heading_deg": 12.0,
    "speed_mps": 29.5, "accel_mps2": -0.25, "brake": False, "energy_pct": 81.0, "region_id": 1,
}  # fmt: skip

HAZARD_1 = {
    "hazard_id": "hz-deer-1", "hazard_type": "ANIMAL", "cause_code": 11, "route_km": 37.2, "lat": 39.4,
    "lon": -86.4, "direction": "SOUTHBOUND", "severity": 6, "detection_time": T0, "expiry_time": T0 + 600_000,
    "cancelled": False, "hlc": T0 << 16, "reporter": "veh-0000042", "region_id": 4,
}  # fmt: skip

SYNC_1 = {
    "tower": "tower-04", "region_id": 4, "seq": 99, "sync_class": "IMPORTANT", "full": False, "sent_at": T0,
    "hlc": T0 << 16, "members": b"\x01\x02", "hazards": None,
    "arrivals": [{"vehicle_id": "veh-0000042", "hlc": (T0 << 16) | 1}], "member_count": 212,
    "aggregates": {"mean_speed_nb": 28.25},
}  # fmt: skip

ADVISORY_1 = {
    "advisory_id": "tower-04-17", "region_id": 4, "tower": "tower-04", "target_vehicle": "veh-0000042",
    "direction": "NORTHBOUND", "action": "SLOW_DOWN", "target_speed_mps": 17.5, "reason": "hazard ahead",
    "hazard_id": "hz-deer-1", "issued_at": T0 + 12, "valid_until": T0 + 30_012, "trigger_event_time": T0,
    "trigger_hlc": (T0 << 16) | 3,
}  # fmt: skip

SAMPLES: dict[str, tuple[Any, dict[str, Any]]] = {
    "vehicle_telemetry": (TELEMETRY, UPDATE),
    "telemetry_frame": (FRAME, {"region_id": 1, "frame_seq": 3, "event_time": T0, "sent_at": T0 + 4,
                                "updates": [UPDATE, {**UPDATE, "vehicle_id": "veh-0000043", "brake": True}]}),
    "hazard_report_v1": (HAZARD_V1, HAZARD_1),
    "hazard_report": (HAZARD, {**HAZARD_1, "sub_cause_code": 1, "lanes_blocked": [0], "relevance_distance_m": 2000,
                               "traces_km": [36.7, 36.2]}),
    "control_advisory_v1": (ADVISORY_V1, ADVISORY_1),
    "control_advisory": (ADVISORY, {**ADVISORY_1, "route_km": 35.2}),
    "corridor_stats": (STATS, {
        "kind": "EPISODE", "window_start": T0, "window_end": T0 + 10_000, "direction": "SOUTHBOUND",
        "episode_id": "S3", "episode_start": T0 - 60_000, "from_km": 19.0, "to_km": 21.0, "shockwave_kmh": -14.5,
        "late_dropped": 2, "emitted_at": T0 + 12_400}),
    "tower_sync_v1": (SYNC_V1, SYNC_1),
    "tower_sync": (SYNC, {**SYNC_1, "changes_since": T0 - 850, "state_digest": "5d41402abc4b2a76"}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_message_schema_is_pinned_by_a_golden_encoding(name: str) -> None:
    schema, record = SAMPLES[name]
    golden = bytes.fromhex((GOLDEN / f"{name}.hex").read_text().strip())
    assert CODEC.encode(schema, record) == golden, "the wire format changed: a new schema version, the old readable"
    assert CODEC.writer_of(golden) is schema
    assert CODEC.encode(schema, CODEC.decode(golden, schema)) == golden


def test_a_tower_sync_message_of_the_previous_version_is_read_as_carrying_no_change_time() -> None:
    old = bytes.fromhex((GOLDEN / "tower_sync_v1.hex").read_text().strip())
    assert CODEC.decode(old, SYNC) == {**SYNC_1, "changes_since": 0, "state_digest": ""}


def test_a_hazard_report_of_the_previous_version_blocks_every_lane_with_the_default_relevance() -> None:
    old = bytes.fromhex((GOLDEN / "hazard_report_v1.hex").read_text().strip())
    new = CODEC.decode(old, HAZARD)
    assert new == {**HAZARD_1, "sub_cause_code": 0, "lanes_blocked": [], "relevance_distance_m": 0, "traces_km": []}


def test_an_advisory_of_the_previous_version_is_read_as_placed_nowhere() -> None:
    old = bytes.fromhex((GOLDEN / "control_advisory_v1.hex").read_text().strip())
    assert CODEC.decode(old, ADVISORY) == {**ADVISORY_1, "route_km": None}
