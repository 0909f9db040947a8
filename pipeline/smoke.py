"""A end-to-end check of the stack: one record through Kafka and one key through etcd.

It exercises the same paths the towers use (AdminClient topic creation, an idempotent producer,
a consumer group, an etcd lease) so a newcomer learns in seconds whether the machine is fit.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import etcd3
import grpc
from confluent_kafka import Consumer, Producer

from pipeline.admin import ensure_topics
from pipeline.shared.access import Role, client_conf
from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError

__all__ = ["SmokeResult", "smoke"]


@dataclass(frozen=True, slots=True)
class SmokeResult:
    topics_created: list[str]
    kafka_round_trip_ms: float
    etcd_round_trip_ms: float


def smoke(settings: Settings, regions: int) -> SmokeResult:
    topics = settings.topics(regions)
    created = ensure_topics(settings.kafka(Role.ADMIN), topics.specs())
    marker = uuid.uuid4().hex.encode()
    t0 = time.perf_counter()
    producer = Producer(client_conf(settings.kafka(Role.ADMIN), {"enable.idempotence": True}))
    producer.produce(topics.dead_letter, key=b"smoke", value=marker, headers={"reason": b"smoke test"})
    if producer.flush(15) != 0:
        raise StackError("a smoke record was not acknowledged within 15 s")
    consumer = Consumer(
        {
            **client_conf(settings.kafka(Role.ADMIN)),
            "group.id": f"smoke-{marker.decode()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topics.dead_letter])
    deadline = time.monotonic() + 30
    found = False
    while not found and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        found = msg is not None and msg.error() is None and msg.value() == marker
    consumer.close()
    if not found:
        raise StackError("the smoke record did not come back from Kafka within 30 s")
    kafka_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    access = settings.etcd(Role.TOWER)
    client = etcd3.client(**access.client_kwargs(), timeout=5)
    try:
        lease = client.lease(ttl=10)
        client.put("/corridor/smoke", marker, lease=lease)
        if client.get("/corridor/smoke")[0] != marker:
            raise StackError("etcd did not return the value just written")
        lease.revoke()
    except (etcd3.exceptions.Etcd3Exception, grpc.RpcError) as exc:
        raise StackError(f"etcd at {access} did not answer ({type(exc).__name__}): is it up? (`corridor stack "
                         "status`)") from None  # fmt: skip
    finally:
        client.close()
    return SmokeResult(created, kafka_ms, (time.perf_counter() - t0) * 1000)
