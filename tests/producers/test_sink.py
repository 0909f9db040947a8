"""What the telemetry sink counts as sent: every record it hands Kafka, hazards included, so that a
run's acknowledgements can be held against it."""

from __future__ import annotations

from producers.sink import TelemetrySink


def test_a_hazard_report_counts_as_a_record_sent() -> None:
    sink = TelemetrySink("127.0.0.1:9", delivery_timeout_s=1.0)  # nothing answers: only queued
    try:
        sink.send("corridor.telemetry", 3, b"3", [b"frame-1", b"frame-2"])
        sink.send_hazard("corridor.hazards", 3, b"a hazard")
        assert (sink.stats.sent, sink.stats.bytes, sink.stats.acked) == (3, 22, 0)
    finally:
        sink.close()
