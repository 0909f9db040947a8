"""The towers' topics, made before anything reads them: what a worker does as it starts, and what
the tooling (`pipeline.admin`) does before a run. Kafka's AdminClient, idempotently."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.shared.access import Kafka, client_conf
from pipeline.shared.errors import ConfigError, StackError
from pipeline.shared.topics import TopicSpec

__all__ = ["TopicMismatchError", "end_offsets", "ensure_topics"]


class TopicMismatchError(ConfigError):
    """A topic exists with another partition count: co-partitioning by region would break."""


def ensure_topics(bootstrap: Kafka, specs: Iterable[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Create the missing topics; return their names. Existing ones must match the declaration."""
    specs = list(specs)
    admin = AdminClient(client_conf(bootstrap, {"log_level": 0}))  # failures come back as exceptions
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise StackError(f"Kafka at {bootstrap} did not answer: {exc.args[0].str()}") from None
    for spec in specs:
        meta = existing.get(spec.name)
        if meta is not None and meta.error is None and len(meta.partitions) != spec.partitions:
            raise TopicMismatchError(
                f"topic {spec.name} has {len(meta.partitions)} partitions, corridor declares {spec.partitions} "
                "(one per tower region): delete it or use another CORRIDOR_TOPIC_PREFIX"
            )
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication, config=s.config)
            for s in missing
        ],
        operation_timeout=timeout,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StackError(f"could not create topic {name}: {exc.args[0].str()}") from None
    _wait_for_logs(bootstrap, {s.name: s.partitions for s in missing}, timeout)
    return sorted(created)


def _wait_for_logs(bootstrap: Kafka, partitions: dict[str, int], timeout: float) -> None:
    """Until every new partition's leader answers for its log (its offsets can be read).

    It closes two windows. A client that reads metadata between a topic's creation and its
    partitions' elections caches a topic with no partitions, and may keep that for its whole
    metadata max age (aiokafka: 5 minutes); Faust then refuses to write a table whose changelog
    seems to have 0 partitions. And, seen twice against the embedded Kafka 4.1 (KRaft) in a few
    hundred new topics, the first record of a just-created partition was acknowledged (acks=all,
    idempotent) yet absent from the log, produced before its leader had created the log. That cause
    is not pinned down (it did not recur in 124 further runs, with or without this wait)."""
    for name, n in partitions.items():
        end_offsets(bootstrap, name, n, timeout)


def end_offsets(bootstrap: Kafka, topic: str, partitions: int, timeout: float = 20.0) -> list[int]:
    """High watermarks of every partition; retried while a just-created topic elects its leaders."""
    consumer = Consumer(client_conf(bootstrap, {"group.id": "corridor-offsets", "log_level": 0}))
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                        for p in range(partitions)]  # fmt: skip
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise StackError(f"could not read the offsets of {topic}: {exc.args[0].str()}") from None
                time.sleep(0.3)
    finally:
        consumer.close()
