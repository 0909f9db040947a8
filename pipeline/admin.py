"""Creating declared topics idempotently with Kafka's AdminClient."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.errors import ConfigError, StackError
from pipeline.topics import TopicSpec

__all__ = ["TopicMismatchError", "delete_topics", "ensure_topics"]


class TopicMismatchError(ConfigError):
    """A topic exists with another partition count: co-partitioning by region would break."""


def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Create the missing topics; return their names. Existing ones must match the declaration."""
    specs = list(specs)
    admin = AdminClient({"bootstrap.servers": bootstrap})
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
    return sorted(created)


def delete_topics(bootstrap: str, names: Iterable[str], timeout: float = 30.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.delete_topics(list(names), operation_timeout=timeout)
    for fut in futures.values():
        try:
            fut.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
