"""The message schemas corridor speaks and the codec that knows them all.

`CODEC` recognises every writer schema still on the wire by fingerprint; the constants name the
current (reader) version of each message.
"""

from __future__ import annotations

import schemas
from pipeline.shared.codec import AvroCodec, Schema

__all__ = [
    "ADVISORY", "ADVISORY_V1", "CODEC", "FRAME", "HAZARD", "HAZARD_V1", "STATS", "SYNC", "SYNC_V1", "TELEMETRY",
]  # fmt: skip

TELEMETRY = Schema.of(schemas.load("vehicle_telemetry"))
FRAME = Schema.of(schemas.load("telemetry_frame"))
HAZARD = Schema.of(schemas.load("hazard_report"))
#: the previous version, without lanes, sub-cause, relevance and traces: still on the wire from older senders
HAZARD_V1 = Schema.of(schemas.load("hazard_report_v1"))
ADVISORY = Schema.of(schemas.load("control_advisory"))
#: the previous version, without `route_km`: a tower of the last release still sends it
ADVISORY_V1 = Schema.of(schemas.load("control_advisory_v1"))
SYNC = Schema.of(schemas.load("tower_sync"))
#: the previous version, without `changes_since`: a tower of the last release still sends it
SYNC_V1 = Schema.of(schemas.load("tower_sync_v1"))
#: the cloud tier's corridor-wide figures (`corridor analytics`)
STATS = Schema.of(schemas.load("corridor_stats"))

CODEC = AvroCodec([TELEMETRY, FRAME, HAZARD, HAZARD_V1, ADVISORY, ADVISORY_V1, SYNC, SYNC_V1, STATS])
