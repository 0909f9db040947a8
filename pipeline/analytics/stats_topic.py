"""Reading `<prefix>.corridor-stats` back: what a run's report and the tests take the job's output from."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from pipeline.shared.access import Kafka, client_conf
from pipeline.shared.codec import CodecError
from pipeline.shared.messages import CODEC, STATS

__all__ = ["read_stats"]


def read_stats(kafka: Kafka, topic: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every record on the (single-partition) stats topic, decoded; a record a replayed batch sent
    twice is kept once (same key)."""
    consumer = Consumer(client_conf(kafka, {"group.id": f"consume-{uuid.uuid4().hex[:8]}",
                                            "enable.auto.commit": False, "log_level": 0}))  # fmt: skip
    try:
        end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
        consumer.assign([TopicPartition(topic, 0, 0)])
        seen: dict[bytes, dict[str, Any]] = {}
        read, deadline = 0, time.monotonic() + timeout
        while read < end and time.monotonic() < deadline:
            for m in consumer.consume(10_000, 1.0):
                if m.error() is not None:
                    continue
                read = max(read, (m.offset() or 0) + 1)
                try:
                    seen[m.key() or b""] = CODEC.decode(m.value() or b"", STATS)
                except CodecError:
                    continue
    except KafkaException:
        return []
    finally:
        consumer.close()
    return sorted(seen.values(), key=lambda s: (s["window_start"], s["kind"]))
