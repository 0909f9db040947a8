"""The producer's Kafka edge: idempotent, acks=all, partition = tower region, losses counted."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import KafkaError, Producer

from pipeline.shared.access import CUT_OFF_BROKER, Kafka, client_conf
from pipeline.shared.errors import CorridorError

__all__ = ["DELIVERY", "DeliveryCounts", "DeliveryError", "ProducerStats", "TelemetrySink", "Uplink"]


#: How every telemetry record is sent (the benchmarks give the raw baselines the same settings).
DELIVERY: dict[str, str | int | bool] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    **CUT_OFF_BROKER,
}


class DeliveryCounts(Protocol):
    @property
    def sent(self) -> int: ...

    @property
    def acked(self) -> int: ...


class Uplink(Protocol):
    """Where a fleet's telemetry goes: Kafka (`TelemetrySink`) or the MQTT radio (`RadioLink`)."""

    @property
    def stats(self) -> DeliveryCounts: ...

    def send(self, topic: str, partition: int, key: bytes, values: list[bytes]) -> None: ...

    def send_hazard(self, topic: str, region: int, value: bytes) -> None:
        """A hazard a vehicle raised itself (a HazardReport), to its region's tower."""

    def poll(self) -> None: ...

    def flush(self, timeout_s: float = 60.0) -> None: ...


class DeliveryError(CorridorError):
    """Messages were not acknowledged by the cluster in time: the broker went away or refused them."""


@dataclass(slots=True)
class ProducerStats:
    sent: int = 0
    acked: int = 0
    failed: int = 0
    bytes: int = 0
    buffer_full: int = 0
    last_error: str = ""


class TelemetrySink:
    """Sends encoded records; every record is acknowledged by all in-sync replicas or counted failed.

    Idempotence makes librdkafka's own retries duplicate-free, so a broker blip costs latency, not
    data. Delivery is bounded by `delivery_timeout_s`: past it a message is failed, never dropped
    silently, and `flush` turns any failure into a `DeliveryError`."""

    def __init__(self, bootstrap: Kafka, *, delivery_timeout_s: float = 30.0, linger_ms: int = 5) -> None:
        self.stats = ProducerStats()
        self._producer = Producer(
            {
                **client_conf(bootstrap),
                **DELIVERY,
                "linger.ms": linger_ms,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 512 * 1024,
                "delivery.timeout.ms": int(delivery_timeout_s * 1000),
                "on_delivery": self._on_delivery,
                "log_level": 3,
            }
        )

    def _on_delivery(self, err: KafkaError | None, _msg: object) -> None:
        if err is None:
            self.stats.acked += 1
        else:
            self.stats.failed += 1
            self.stats.last_error = err.str()

    def send(self, topic: str, partition: int, key: bytes, values: list[bytes]) -> None:
        """Queue records; when librdkafka's queue is full, serve delivery reports and retry."""
        produce = self._producer.produce
        for value in values:
            while True:
                try:
                    produce(topic, value, key, partition)
                    break
                except BufferError:
                    self.stats.buffer_full += 1
                    self._producer.poll(0.05)
        self.stats.sent += len(values)
        self.stats.bytes += sum(map(len, values))

    def send_hazard(self, topic: str, region: int, value: bytes) -> None:
        """A record like the others: counted as sent, so that what is acknowledged can be held
        against it (uncounted, a run's acknowledgements outnumbered what it had sent)."""
        self._producer.produce(topic, value, str(region).encode(), region)
        self.stats.sent += 1
        self.stats.bytes += len(value)

    def poll(self) -> None:
        self._producer.poll(0)

    def close(self) -> None:
        """Let the producer go now (it holds this sink's delivery callback: a cycle, which only the
        garbage collector would break, after the broker had gone and librdkafka had printed each refused
        reconnect). Call `flush` first for what is queued."""
        if hasattr(self, "_producer"):
            del self._producer

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait for every queued record's acknowledgement; raise if any was lost or is still pending."""
        deadline = time.monotonic() + timeout_s
        while len(self._producer) and time.monotonic() < deadline:
            self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        pending = len(self._producer)
        if pending or self.stats.failed:
            raise DeliveryError(
                f"{self.stats.failed} telemetry records failed and {pending} were still unacknowledged "
                f"({self.stats.last_error or 'broker did not answer'}); the {self.stats.acked} acknowledged are safe"
            )
