"""Decode topics with nothing but confluent-kafka and a schema registry's URL, as any Kafka user's
consumer would: no corridor import. Prints, as JSON, per topic: records read, records decoded,
the record types seen, and the first failure.

    python registry_reader.py BOOTSTRAP REGISTRY_URL TOPIC [TOPIC ...]
"""

from __future__ import annotations

import json
import sys
import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def read(bootstrap: str, registry: str, topic: str, timeout: float = 60.0) -> dict[str, object]:
    """Every record the topic holds now (each partition read from its first to its last offset)."""
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry}))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"plain-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})  # fmt: skip
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    ends, start = {}, []
    for p in meta.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            ends[p] = high
            start.append(TopicPartition(topic, p, low))
    consumer.assign(start)  # no group to join: the partitions are read as they are
    read_n, decoded, kinds, failure = 0, 0, set(), None
    deadline = time.monotonic() + timeout
    while ends and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error() is not None:
            continue
        if msg.offset() + 1 >= ends.get(msg.partition(), 0):
            ends.pop(msg.partition(), None)
        read_n += 1
        try:
            record = deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE))
        except Exception as exc:  # reported, not raised: the test judges
            failure = failure or f"{type(exc).__name__}: {exc}"
            continue
        decoded += 1
        kinds.add("frame" if "updates" in record else sorted(record)[0])
    consumer.close()
    return {"read": read_n, "decoded": decoded, "kinds": sorted(kinds), "failure": failure,
            "unread_partitions": sorted(ends)}  # fmt: skip


if __name__ == "__main__":
    bootstrap, registry, *topics = sys.argv[1:]
    print(json.dumps({t: read(bootstrap, registry, t) for t in topics}))
