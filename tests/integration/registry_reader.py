"""Decode topics with nothing but confluent-kafka and a schema registry's URL, as any Kafka user's
consumer would: no corridor import. Prints, as JSON, per topic: records read, records decoded,
the record types seen, the first failure and the partitions left unread. Each topic's count and
seconds go to stderr, so a reader that stalls says where.

    python registry_reader.py BOOTSTRAP REGISTRY_URL TOPIC [TOPIC ...]
"""

from __future__ import annotations

import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

TOPIC_BUDGET_S = 30.0  # per topic; four topics stay well inside the test's own limit


def read(bootstrap: str, registry: str, topic: str, timeout: float = TOPIC_BUDGET_S) -> dict[str, object]:
    """Every record the topic holds now: each partition read from its first offset until the broker
    says it is at its end (partition EOF), so offsets that carry no record cannot hold the reader."""
    began = time.monotonic()
    client = SchemaRegistryClient({"url": registry, "timeout": 10})  # a stalled registry fails, not hangs
    deserialize = AvroDeserializer(client)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"plain-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.partition.eof": True})  # fmt: skip
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    ends, start = set(), []
    for p in meta.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            ends.add(p)
            start.append(TopicPartition(topic, p, low))
    consumer.assign(start)  # no group to join: the partitions are read as they are
    read_n, decoded, kinds, failure = 0, 0, set(), None
    deadline = began + timeout
    while ends and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                ends.discard(msg.partition())
            continue
        read_n += 1
        try:
            record = deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE))
        except Exception as exc:  # reported, not raised: the test judges
            failure = failure or f"{type(exc).__name__}: {exc}"
            continue
        decoded += 1
        kinds.add("frame" if "updates" in record else sorted(record)[0])
    consumer.close()
    took = round(time.monotonic() - began, 1)
    print(f"{topic}: {read_n} read, {decoded} decoded, unread {sorted(ends)}, {took} s", file=sys.stderr, flush=True)
    return {"read": read_n, "decoded": decoded, "kinds": sorted(kinds), "failure": failure,
            "unread_partitions": sorted(ends)}  # fmt: skip


if __name__ == "__main__":
    bootstrap, registry, *topics = sys.argv[1:]
    print(json.dumps({t: read(bootstrap, registry, t) for t in topics}))
