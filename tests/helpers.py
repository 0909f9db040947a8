"""Small helpers for tests that talk to the real broker."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | str | None, bytes | str]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    errors: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
    assert producer.flush(30) == 0, "records still queued after 30 s"
    assert not errors, errors


def consume(bootstrap: str, topic: str, n: int, timeout: float = 30.0) -> list[tuple[bytes | None, bytes]]:
    """Read the first `n` records of `topic` from the beginning, failing after `timeout`."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[tuple[bytes | None, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=n - len(out), timeout=0.5):
                if msg.error() is None:
                    out.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return out
