"""A gateway's counters in Prometheus's text format, for its `/metrics` page (`corridor gateway
--metrics-port`). Read from a snapshot of its counters, taken under its lock. Pure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import Metric

from pipeline.shared.metric_catalog import Catalog
from pipeline.shared.stats import LatencyHistogram

__all__ = ["GATEWAY", "gateway_families"]

GATEWAY = Catalog(
    {
        "corridor_gateway_received_total": ("counter", "telemetry messages received off the radio"),
        "corridor_gateway_hazard_reports_total": ("counter", "hazard reports forwarded to Kafka"),
        "corridor_gateway_frames_total": ("counter", "frames sent to the towers"),
        "corridor_gateway_updates_forwarded_total": ("counter", "vehicle updates forwarded in frames"),
        "corridor_gateway_advisories_forwarded_total": ("counter", "advisories carried to MQTT"),
        "corridor_gateway_advisories_dropped_total": ("counter", "advisories given up on: its MQTT backlog was full"),
        "corridor_gateway_dead_letters_total": ("counter", "radio messages refused with a reason, by reason"),
        "corridor_gateway_inbox_dropped_total": ("counter", "updates dropped while its inbox was full"),
        "corridor_gateway_undelivered_total": ("counter", "records Kafka gave up on"),
        "corridor_gateway_kafka_errors_total": ("counter", "errors librdkafka reported"),
        "corridor_gateway_errors_total": ("counter", "failures inside the gateway an input caused, by where"),
        "corridor_gateway_mqtt_disconnects_total": ("counter", "connections to the MQTT broker lost"),
        "corridor_gateway_mqtt_connected": ("gauge", "1 while connected to the MQTT broker"),
        "corridor_gateway_mqtt_subscribed": ("gauge", "1 once the broker granted every subscription: else deaf"),
        "corridor_gateway_subscriptions_refused_total": ("counter", "subscriptions the broker refused"),
        "corridor_gateway_uplink_delay_seconds": ("histogram", "vehicle sent → gateway received, every update"),
    },
    {"corridor_gateway_dead_letters_total": "reason", "corridor_gateway_errors_total": "where"},
)

_COUNTERS = {
    "corridor_gateway_received_total": "received", "corridor_gateway_hazard_reports_total": "hazards",
    "corridor_gateway_frames_total": "frames", "corridor_gateway_updates_forwarded_total": "updates_forwarded",
    "corridor_gateway_advisories_forwarded_total": "advisories_forwarded",
    "corridor_gateway_advisories_dropped_total": "advisories_dropped",
    "corridor_gateway_inbox_dropped_total": "inbox_dropped", "corridor_gateway_undelivered_total": "undelivered",
    "corridor_gateway_kafka_errors_total": "kafka_errors",
    "corridor_gateway_mqtt_disconnects_total": "mqtt_disconnects",
    "corridor_gateway_subscriptions_refused_total": "subscriptions_refused",
}  # fmt: skip


def gateway_families(stats: dict[str, Any], uplink: LatencyHistogram) -> Iterator[Metric]:
    for name, key in _COUNTERS.items():
        yield GATEWAY.one(name, int(stats.get(key, 0)))
    yield GATEWAY.labelled("corridor_gateway_dead_letters_total", stats.get("dead_letters", {}))
    # "where: ExceptionType": the where is the gateway's own word for the step that failed
    yield GATEWAY.labelled("corridor_gateway_errors_total", stats.get("errors", {}))
    yield GATEWAY.one("corridor_gateway_mqtt_connected", int(bool(stats.get("mqtt_connected"))))
    yield GATEWAY.one("corridor_gateway_mqtt_subscribed", int(bool(stats.get("mqtt_subscribed"))))
    yield GATEWAY.histogram("corridor_gateway_uplink_delay_seconds", uplink)
