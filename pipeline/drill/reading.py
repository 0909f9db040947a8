"""Topics read whole, from the beginning to their current end: what a drill accounts from."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from pipeline.admin import end_offsets
from pipeline.shared.access import Kafka, client_conf
from pipeline.shared.topics import Topics

__all__ = ["Record", "dead_letters", "latest_per_key", "read_all", "records"]

Record = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]


def _record(m: Message) -> Record:
    """(partition, key, value, headers) of a consumed message; our headers are all bytes."""
    given = m.headers() or []
    headers = [(k, v) for k, v in (given.items() if isinstance(given, dict) else given) if isinstance(v, bytes)]
    return m.partition() or 0, m.key(), m.value(), headers


def records(bootstrap: Kafka, topic: str, partitions: int) -> list[Record]:
    """Every record of `topic` as (partition, key, value, headers), up to its current end."""
    ends = end_offsets(bootstrap, topic, partitions)
    consumer = Consumer(client_conf(bootstrap, {"group.id": f"drill-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "log_level": 3}))  # fmt: skip
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions) if ends[p]])
    out: list[Record] = []
    position = [0] * partitions
    deadline = time.monotonic() + 120
    try:
        while any(position[p] < ends[p] for p in range(partitions)) and time.monotonic() < deadline:
            for m in consumer.consume(10_000, timeout=1.0):
                p, offset = m.partition() or 0, m.offset() or 0
                if m.error() is None and offset < ends[p]:
                    out.append(_record(m))
                    position[p] = offset + 1
    finally:
        consumer.close()
    return out


def read_all(bootstrap: Kafka, topic: str, partitions: int) -> list[tuple[int, bytes]]:
    return [(p, v) for p, _, v, _ in records(bootstrap, topic, partitions) if v is not None]


def latest_per_key(bootstrap: Kafka, topic: str, partitions: int) -> list[tuple[int, bytes]]:
    """A compacted topic as a table: the last value of each (partition, key)."""
    latest = {(p, k): v for p, k, v, _ in records(bootstrap, topic, partitions)}
    return [(p, v) for (p, _), v in latest.items() if v is not None]


def dead_letters(bootstrap: Kafka, topics: Topics) -> tuple[list[tuple[int, bytes]], dict[str, int]]:
    """The dead letters of telemetry, and how many of each reason."""
    letters: list[tuple[int, bytes]] = []
    reasons: dict[str, int] = {}
    for p, _, value, headers in records(bootstrap, topics.dead_letter, topics.regions):
        head = dict(headers)
        if value is None or head.get("source-topic") != topics.telemetry.encode():
            continue
        letters.append((p, value))
        reason = head.get("reason", b"").decode(errors="replace").split(":", 1)[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    return letters, reasons
