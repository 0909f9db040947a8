"""Decode topics with nothing but confluent-kafka and a schema registry's URL, as any Kafka user's
consumer would: no corridor import. Prints, as JSON, per topic: records read, records decoded,
the record types seen, and the first failure.

    python registry_reader.py BOOTSTRAP REGISTRY_URL TOPIC [TOPIC ...]
"""

from __future__ import annotations

import json
import sys
import uuid

from confluent_kafka import Consumer, KafkaError
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def read(bootstrap: str, registry: str, topic: str) -> dict[str, object]:
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry}))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"plain-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "enable.partition.eof": True})  # fmt: skip
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    partitions, done = len(meta.partitions), set()
    consumer.subscribe([topic])
    read_n, decoded, kinds, failure = 0, 0, set(), None
    idle = 0
    while len(done) < partitions and idle < 30:
        msg = consumer.poll(1.0)
        if msg is None:
            idle += 1
            continue
        idle = 0
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                done.add(msg.partition())
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
    return {"read": read_n, "decoded": decoded, "kinds": sorted(kinds), "failure": failure}


if __name__ == "__main__":
    bootstrap, registry, *topics = sys.argv[1:]
    print(json.dumps({t: read(bootstrap, registry, t) for t in topics}))
