"""The raw broker on this machine, as the ceiling our producer and towers are compared with: Kafka's
own perf tools (from the broker's jars) and a bare confluent-kafka loop, at telemetry's record size
and with the producer settings of `producers.sink.TelemetrySink` (`DELIVERY`)."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from typing import Any

import numpy as np
from confluent_kafka import Consumer, Producer

from pipeline.admin import delete_topics, ensure_topics
from pipeline.leftovers import scratch_prefix
from pipeline.shared.access import Kafka, client_conf
from pipeline.shared.config import Settings
from pipeline.shared.corridor import load_corridor
from pipeline.shared.crdt.hlc import HybridClock
from pipeline.shared.errors import StackError
from pipeline.shared.topics import TopicSpec
from pipeline.stack.kafka import tools_argv
from pipeline.stack.process import die_with_parent
from producers.encoding import TelemetryEncoder
from producers.fleet import Fleet, FleetConfig
from producers.sink import DELIVERY

__all__ = ["parse_consumer_perf", "parse_producer_perf", "run_broker", "telemetry_sample"]

PARTITIONS = 9  # one per tower region, as the telemetry topic


def telemetry_sample(vehicles: int = 5_000) -> list[bytes]:
    """Real single-object encoded VehicleTelemetry records, one per vehicle."""
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=vehicles, seed=3), start_ms=int(time.time() * 1000))
    fleet.step(0.5)
    batch = fleet.telemetry()
    first = HybridClock().reserve(len(batch))
    return TelemetryEncoder().encode(batch, first + np.arange(len(batch), dtype=np.int64)).records()


_PRODUCER_SUMMARY = re.compile(r"^(\d+) records sent, ([\d.]+) records/sec .*?([\d.]+) ms avg latency, ([\d.]+) ms max")


def parse_producer_perf(stdout: str) -> dict[str, float]:
    """ProducerPerformance's last line: "N records sent, R records/sec (M MB/sec), A ms avg latency, …"."""
    for line in reversed(stdout.splitlines()):
        m = _PRODUCER_SUMMARY.match(line.strip())
        if m:
            return {"records": int(m[1]), "records_per_s": float(m[2]), "avg_latency_ms": float(m[3])}
    raise StackError(f"ProducerPerformance printed no summary line; its output ended with: {stdout[-300:]!r}")


def parse_consumer_perf(stdout: str) -> dict[str, float]:
    """ConsumerPerformance's CSV: a header line then one data line (the group join time is its own column)."""
    lines = [ln for ln in stdout.splitlines() if ln.count(",") >= 5]
    if len(lines) < 2:
        raise StackError(f"ConsumerPerformance printed no result line; its output ended with: {stdout[-300:]!r}")
    row = dict(zip([h.strip() for h in lines[0].split(",")], [v.strip() for v in lines[-1].split(",")], strict=False))
    return {
        "records": int(row["data.consumed.in.nMsg"]),
        "records_per_s": float(row["nMsg.sec"]),
        "fetch_records_per_s": float(row["fetch.nMsg.sec"]),
        "rebalance_ms": float(row["rebalance.time.ms"]),
    }


def _tool(settings: Settings, main_class: str, args: list[str], timeout: float) -> str:
    argv = tools_argv(settings, main_class, args, startup_only=False)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, preexec_fn=die_with_parent())
    if done.returncode != 0:
        raise StackError(f"{main_class.rsplit('.', 1)[-1]} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return done.stdout


def _kafka_tools(settings: Settings, topic: str, records: int, size: int) -> dict[str, Any]:
    props = [f"bootstrap.servers={settings.bootstrap_servers}", *(f"{k}={str(v).lower()}" for k, v in DELIVERY.items())]
    produced = parse_producer_perf(
        _tool(
            settings,
            "org.apache.kafka.tools.ProducerPerformance",
            ["--topic", topic, "--num-records", str(records), "--record-size", str(size), "--throughput", "-1",
             "--producer-props", *props],
            timeout=300,
        )
    )  # fmt: skip
    consumed = parse_consumer_perf(
        _tool(
            settings,
            "org.apache.kafka.tools.ConsumerPerformance",
            ["--bootstrap-server", settings.bootstrap_servers, "--topic", topic, "--messages", str(records),
             "--timeout", "30000", "--group", f"perf-{uuid.uuid4().hex[:6]}"],
            timeout=300,
        )
    )  # fmt: skip
    return {"producer": produced, "consumer": consumed}


def _confluent_produce(bootstrap: Kafka, topic: str, values: list[bytes], records: int) -> float:
    """Acknowledged records/s of a bare produce loop: pre-encoded values, no fleet, no encoding."""
    acked = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal acked
        acked += err is None

    producer = Producer(
        {
            **client_conf(bootstrap),
            **DELIVERY,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 512 * 1024,
            "on_delivery": on_delivery,
            "log_level": 3,
        }
    )
    produce, n = producer.produce, len(values)
    t0 = time.perf_counter()
    for i in range(records):
        while True:
            try:
                produce(topic, values[i % n], None, i % PARTITIONS)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    wall = time.perf_counter() - t0
    if acked != records:
        raise StackError(f"bare producer: {records - acked} of {records} records were not acknowledged")
    return records / wall


def _confluent_consume(bootstrap: Kafka, topic: str, records: int) -> float:
    """Records/s of a bare `consume()` loop, timed from the first record (the group join excluded)."""
    consumer = Consumer(
        {
            **client_conf(bootstrap),
            "group.id": f"bare-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    consumer.subscribe([topic])
    seen, t0 = 0, None
    deadline = time.monotonic() + 120
    try:
        while seen < records and time.monotonic() < deadline:
            msgs = consumer.consume(10_000, timeout=1.0)
            if msgs and t0 is None:
                t0 = time.perf_counter()
            seen += sum(1 for m in msgs if m.error() is None)
    finally:
        consumer.close()
    if seen < records:
        raise StackError(f"bare consumer read {seen} of {records} records in 120 s")
    return seen / (time.perf_counter() - (t0 or time.perf_counter()))


def run_broker(settings: Settings, quick: bool = False) -> dict[str, Any]:
    records = 300_000 if quick else 2_000_000
    values = telemetry_sample()
    size = round(sum(map(len, values)) / len(values))
    prefix = scratch_prefix("raw")
    tool_topic, bare_topic = f"{prefix}.kafka-tools", f"{prefix}.confluent"
    bootstrap = settings.bootstrap_servers
    ensure_topics(bootstrap, [TopicSpec(t, PARTITIONS) for t in (tool_topic, bare_topic)])
    try:
        tools = _kafka_tools(settings, tool_topic, records, size)
        out: dict[str, Any] = {"record_bytes": size, "records": records}
        out["kafka_tools_produce_per_s"] = tools["producer"]["records_per_s"]
        out["kafka_tools_consume_per_s"] = tools["consumer"]["records_per_s"]
        out["kafka_tools_fetch_per_s"] = tools["consumer"]["fetch_records_per_s"]
        out["confluent_produce_per_s"] = _confluent_produce(bootstrap, bare_topic, values, records)
        out["confluent_consume_per_s"] = _confluent_consume(bootstrap, bare_topic, records)
    finally:
        delete_topics(bootstrap, [tool_topic, bare_topic])
    return out
