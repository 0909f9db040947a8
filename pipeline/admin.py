"""Kafka administration for the tooling: topics (made as the towers make theirs, `towers.topic_setup`),
groups, offsets and ACLs, with Kafka's AdminClient."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from pipeline.shared.access import Kafka, Role, client_conf
from pipeline.shared.access_policy import KafkaGrant, kafka_grants
from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from pipeline.shared.topics import Topics
from towers.topic_setup import TopicMismatchError, end_offsets, ensure_topics

__all__ = [
    "TopicMismatchError",
    "declare",
    "delete_groups",
    "delete_prefixed",
    "delete_topics",
    "end_offsets",
    "ensure_acls",
    "ensure_topics",
    "start_group_at_end",
]  # fmt: skip


def _admin(kafka: Kafka) -> AdminClient:
    """An admin client whose every failure comes back as an exception from its calls: librdkafka's
    own log lines would only repeat them (and a client outliving a stopped broker would print each
    refused reconnect)."""
    return AdminClient(client_conf(kafka, {"log_level": 0}))


def delete_topics(bootstrap: Kafka, names: Iterable[str], timeout: float = 30.0) -> None:
    admin = _admin(bootstrap)
    futures = admin.delete_topics(list(names), operation_timeout=timeout)
    for fut in futures.values():
        try:
            fut.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


def delete_prefixed(bootstrap: Kafka, prefix: str, timeout: float = 30.0) -> list[str]:
    """Delete every topic named `<prefix>.…` or `<prefix>-…` (a bench's or a run's topics and its
    towers' changelogs); returns their names."""
    admin = _admin(bootstrap)
    names = [t for t in admin.list_topics(timeout=timeout).topics if t.startswith((f"{prefix}.", f"{prefix}-"))]
    if names:
        delete_topics(bootstrap, names, timeout)
    return names


def list_topic_names(bootstrap: Kafka, timeout: float = 30.0) -> list[str]:
    return list(_admin(bootstrap).list_topics(timeout=timeout).topics)


def list_groups(bootstrap: Kafka, timeout: float = 30.0) -> list[str]:
    """Every consumer group's id."""
    admin = _admin(bootstrap)  # held until the answer is in: a client collected meanwhile never gives it
    return [g.group_id for g in admin.list_consumer_groups(request_timeout=timeout).result(timeout).valid]


def delete_groups(bootstrap: Kafka, groups: Iterable[str], timeout: float = 30.0) -> None:
    """Delete consumer groups (and their committed offsets); a group that does not exist is fine. A
    group still holding a member (one that died without leaving stays until its session times out,
    or a rebalance is finishing) is tried again until `timeout`; then the error is raised."""
    admin = _admin(bootstrap)
    pending, deadline = list(groups), time.monotonic() + timeout
    while pending:
        busy = []
        for group, fut in admin.delete_consumer_groups(pending, request_timeout=timeout).items():
            try:
                fut.result(timeout)
            except KafkaException as exc:
                code = exc.args[0].code()
                if code == KafkaError.NON_EMPTY_GROUP and time.monotonic() < deadline:
                    busy.append(group)
                elif code != KafkaError.GROUP_ID_NOT_FOUND:  # gone already is what was wanted
                    raise
        pending = busy
        if pending:
            time.sleep(1.0)


def committed_offsets(bootstrap: Kafka, group: str, topic: str, partitions: int) -> list[int]:
    """What consumer group `group` has committed on each partition of `topic` (0 where nothing yet):
    with `end_offsets`, how far behind the group is."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    admin = _admin(bootstrap)
    query = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    out = [0] * partitions
    for fut in admin.list_consumer_group_offsets([query]).values():
        for tp in fut.result(30).topic_partitions:
            out[tp.partition] = max(tp.offset, 0)
    return out


def start_group_at_end(
    bootstrap: Kafka, group: str, topics: Iterable[str], partitions: int, timeout: float = 60.0
) -> None:
    """Commit the current end of `topics` for a new consumer group, so it starts 'now' without the
    `latest` reset policy: a partition that changes hands before its first commit is then resumed
    from this point instead of jumping past whatever arrived meanwhile.

    The commit is retried until it reads back. The admin call reports a refused partition in that
    partition's own error field, not by raising, and a group left without offsets has its workers
    read the whole topic from its start under the `earliest` policy: one run after an unclean broker
    restart did just that, hours of telemetry."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    topics = list(topics)
    wanted = {(t, p): end for t in topics for p, end in enumerate(end_offsets(bootstrap, t, partitions))}
    admin = _admin(bootstrap)
    deadline = time.monotonic() + timeout
    problem = "no answer"
    while time.monotonic() < deadline:
        problem = ""
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o) for (t, p), o in wanted.items()])
        try:
            for fut in admin.alter_consumer_group_offsets([request]).values():
                refused = [tp for tp in fut.result(30).topic_partitions if tp.error is not None]
                if refused:
                    problem = f"{refused[0].topic}[{refused[0].partition}]: {refused[0].error.str()}"
            if not problem:
                got = {
                    (t, p): o for t in topics for p, o in enumerate(committed_offsets(bootstrap, group, t, partitions))
                }
                if got == wanted:
                    return
                problem = "the committed offsets read back differ from those written"
        except KafkaException as exc:
            problem = exc.args[0].str()
        time.sleep(0.5)
    raise StackError(f"could not start consumer group {group} at the end of {', '.join(topics)}: {problem}")


def ensure_acls(kafka: Kafka, grants: Iterable[KafkaGrant], timeout: float = 30.0) -> int:
    """Create the ACLs of `grants` (Kafka ignores one that exists); returns how many bindings."""
    bindings = []
    for g in grants:
        resource = ResourceType.TOPIC if g.resource == "topic" else ResourceType.GROUP
        pattern = ResourcePatternType.PREFIXED if g.pattern == "prefixed" else ResourcePatternType.LITERAL
        for op in g.operations:
            bindings.append(AclBinding(resource, g.name, pattern, f"User:{g.role.value}", "*", AclOperation[op],
                                       AclPermissionType.ALLOW))  # fmt: skip
    admin = _admin(kafka)
    for binding, fut in admin.create_acls(bindings, request_timeout=timeout).items():
        try:
            fut.result(timeout)
        except KafkaException as exc:
            raise StackError(f"could not create the ACL {binding}: {exc.args[0].str()}") from None
    return len(bindings)


def declare(settings: Settings, topics: Topics, acls: bool | None = None) -> list[str]:
    """A deployment's topics and, with `acls` (default: when the secure stack is corridor's own), the
    ACLs of its prefix, as the admin principal."""
    admin = settings.kafka(Role.ADMIN)
    created = ensure_topics(admin, topics.specs())
    if settings.security_material is not None if acls is None else acls:
        ensure_acls(admin, kafka_grants(topics))
    return created
