"""The radio link's speed: the bare MQTT broker, then the gateway's ingress as a share of it.

- **raw**: one paho publisher → the broker → one paho subscriber, QoS 0, messages the size of a
  VehicleTelemetry (≈ 90 bytes): what a Python client and Mosquitto carry on this machine at all.
- **gateway**: the same publisher sends real telemetry to the region topics; `corridor gateway`
  processes (1, then 2 sharing the load through an MQTT 5 shared subscription) batch it into frames
  and produce them to Kafka. Rate = updates the gateways forwarded and Kafka acknowledged / time.
- **connections**: 1,000 clients connected at once (a vehicle each, as on the road), each
  publishing one update: how long connecting takes, and the broker's memory with them.
- **downlink**: advisories over one topic per region against one topic per vehicle
  (`radio_downlink`), 1,000 vehicles with a connection each.
"""

from __future__ import annotations

import selectors
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from confluent_kafka import Consumer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion

from pipeline.admin import delete_prefixed, ensure_topics
from pipeline.bench.mqtt_identities import cpu_seconds, run_identities
from pipeline.bench.mqtt_secure import raw_path, run_secure_paths, send_by_radios
from pipeline.bench.radio_downlink import MODES, measure_downlink
from pipeline.leftovers import scratch_prefix
from pipeline.shared.config import Settings
from pipeline.shared.corridor import load_corridor
from pipeline.shared.crdt.hlc import HybridClock
from pipeline.shared.radio_access import MqttAccess
from pipeline.shared.radio_topics import RadioTopics
from pipeline.stack.mqtt import MqttBroker
from pipeline.workers import GatewayProcess, peak_rss_mib, worker_env
from producers.encoding import TelemetryEncoder
from producers.fleet import Fleet, FleetConfig
from producers.radio import RadioLink, vehicle_id_of
from towers.frames import decode_frame

__all__ = ["run_mqtt"]


def _client(settings: Settings, name: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
    c.max_queued_messages_set(0)
    c.connect(*settings.mqtt_address)
    c.loop_start()
    return c


def _records(n: int) -> list[tuple[int, bytes]]:
    """(region, a single-object encoded VehicleTelemetry) for `n` updates of a real fleet, their event
    times in the recent past: a gateway refuses one ahead of its clock (the first versions of this
    bench drove the fleet forward from now, and the one-gateway row counted those refusals as slowness)."""
    ticks = -(-n // 2_000)
    start = int(time.time() * 1000) - int(ticks * 500) - 60_000
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=2_000, seed=5), start_ms=start)
    enc, clock = TelemetryEncoder(), HybridClock()
    out: list[tuple[int, bytes]] = []
    while len(out) < n:
        fleet.step(0.5)
        batch = fleet.telemetry()
        encoded = enc.encode(batch, clock.reserve(len(batch)) + np.arange(len(batch), dtype=np.int64))
        out += list(zip(encoded.region.tolist(), encoded.records(), strict=True))
    return out[:n]


def _raw(settings: Settings, n: int, size: int) -> dict[str, Any]:
    """The open broker's bare path, anonymous and in clear."""
    host, port = settings.mqtt_address
    return raw_path(MqttAccess(host, port), "bench/raw", MqttAccess(host, port), "bench/raw", n, size)


def _through_gateways(settings: Settings, records: list[tuple[int, bytes]], gateways: int, tmp: Path,
                      env: dict[str, str], topic: str, link: RadioLink | None = None) -> dict[str, Any]:  # fmt: skip
    """Published by one client (`link`: by each vehicle's own radio instead), forwarded by `gateways`
    as frames to `topic`."""
    radio = RadioTopics(len(load_corridor().regions))
    host, port = settings.mqtt_address
    env = {"MQTT_URL": f"mqtt://{host}:{port}", **env}
    procs = [GatewayProcess(env, tmp / f"gw{gateways}-{i}.json", tmp / f"gw{gateways}-{i}.log")
             for i in range(gateways)]  # fmt: skip
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.wait_ready()
        time.sleep(0.5)
        pids = [p.proc.pid for p in procs if p.proc is not None]
        cpu0 = sum(cpu_seconds(pid) for pid in pids)
        pub = _client(settings, "bench-fleet") if link is None else None
        t0, start_ms = time.monotonic(), int(time.time() * 1000)
        if link is not None:
            send_by_radios(link, records)
        else:
            for region, value in records:
                mqtt_topic = radio.telemetry(region, vehicle_id_of(value))
                while pub is not None and pub.publish(mqtt_topic, value, qos=0).rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                    time.sleep(0.001)
        publish_s = time.monotonic() - t0
        deadline = time.monotonic() + 120
        forwarded = 0
        while time.monotonic() < deadline:
            forwarded = sum(int(p.stats().get("updates_forwarded", 0)) for p in procs)
            if forwarded >= len(records):
                break
            time.sleep(0.05)
            if link is not None:
                link.poll()
        took = time.monotonic() - t0
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
        last = _last_frame_ms(settings.bootstrap_servers, topic, start_ms) if forwarded >= len(records) else None
        if last is not None:
            took = min(took, (last - start_ms) / 1000)
        if pub is not None:
            pub.disconnect()
            pub.loop_stop()
        rss = max(peak_rss_mib(p.proc.pid) for p in procs if p.proc is not None)
    finally:
        for p in procs:
            p.stop()
    received = sum(int(p.stats().get("received", 0)) for p in procs)
    dead = sum(sum(p.stats().get("dead_letters", {}).values()) for p in procs)
    return {"gateways": gateways, "updates": len(records), "received": received, "forwarded": forwarded,
            "dead_letters": dead,
            "qos0_lost": len(records) - received, "publisher_msgs_per_s": round(len(records) / publish_s),
            "updates_per_s": round(forwarded / took), "gateway_peak_rss_mib": round(rss, 1),
            "gateway_cpu_us_per_update": round(1e6 * cpu / max(1, forwarded), 1)}  # fmt: skip


def _last_frame_ms(bootstrap: str, topic: str, since_ms: int) -> int | None:
    """When the gateways produced the last frame with updates written to `topic` since `since_ms` (Kafka's
    timestamps, to the millisecond: their counters come once a second, too coarse for a 3 s run)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "log_level": 3})  # fmt: skip
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        wanted = [TopicPartition(topic, p, since_ms) for p in parts]
        starts = consumer.offsets_for_times(wanted, timeout=10)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        todo = [tp for tp in starts if tp.offset >= 0 and tp.offset < ends[tp.partition]]
        if not todo:
            return None
        consumer.assign(todo)
        last, left = 0, {tp.partition for tp in todo}
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=1):
                part, offset = msg.partition(), msg.offset()
                if msg.error() is None and part is not None and offset is not None:
                    if decode_frame(msg.value() or b"")[1].ids:  # not a quiet region's heartbeat
                        last = max(last, msg.timestamp()[1])
                    if offset >= ends[part] - 1:
                        left.discard(part)
        return last or None
    finally:
        consumer.close()


def _connections(settings: Settings, n: int, broker_pid: int | None) -> dict[str, Any]:
    """`n` clients connected at once (a vehicle each), each publishing one update: the time to
    connect them all, and the broker's memory with them. One thread drives every client's socket
    through epoll (paho's external loop), as a thread per client would only measure the GIL."""
    before = peak_rss_mib(broker_pid) if broker_pid else float("nan")
    clients: list[mqtt.Client] = []
    sel = selectors.DefaultSelector()

    def pump(until: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            for c in clients:
                if c.want_write():
                    c.loop_write()
            for key, _ in sel.select(0.05):
                key.data.loop_read()

    t0 = time.monotonic()
    try:
        for i in range(n):
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"veh-{i}-{uuid.uuid4().hex[:4]}",
                            protocol=mqtt.MQTTv5)  # fmt: skip
            c.connect(*settings.mqtt_address, keepalive=60)
            sel.register(c.socket() or -1, selectors.EVENT_READ, c)  # connected: it has its socket
            clients.append(c)
        pump(lambda: all(c.is_connected() for c in clients), 60)
        connect_s = time.monotonic() - t0
        connected = sum(1 for c in clients if c.is_connected())
        for c in clients:
            c.publish("bench/conn", b"x" * 90, qos=0)
        pump(lambda: not any(c.want_write() for c in clients), 10)
        rss = peak_rss_mib(broker_pid) if broker_pid else float("nan")
    finally:
        for c in clients:
            c.disconnect()
        sel.close()
    return {"clients": n, "connected": connected, "connect_s": round(connect_s, 2),
            "broker_rss_mib_before": round(before, 1), "broker_peak_rss_mib": round(rss, 1)}  # fmt: skip


def run_mqtt(settings: Settings, quick: bool = False) -> dict[str, Any]:
    """A broker of the bench's own on the MQTT port (or the user's, with MQTT_URL)."""
    n = 20_000 if quick else 100_000
    prefix = scratch_prefix("bm")
    bench = replace(settings, topic_prefix=prefix)
    topics = bench.topics(len(load_corridor().regions))
    ensure_topics(settings.bootstrap_servers, topics.specs())
    env = worker_env(settings, prefix)
    broker = MqttBroker(settings)
    started = False if settings.mqtt_external else broker.start(attached=True)
    try:
        records = _records(n)
        size = int(np.mean([len(v) for _, v in records]))
        out: dict[str, Any] = {"raw": _raw(settings, n, size)}
        with tempfile.TemporaryDirectory() as tmp:
            for g in (1, 2):
                out[f"gateway_x{g}"] = _through_gateways(settings, records, g, Path(tmp), env, topics.telemetry)
            if not settings.mqtt_external:  # TLS and authentication on, on a broker of its own
                measure = partial(_through_gateways, settings, topic=topics.telemetry)
                out |= run_secure_paths(settings, records, Path(tmp), env, measure)
        for tls, base in (("", "raw"), ("_tls", "raw_tls_radios")):  # each a share of the path with its publisher
            raw = out.get(base, {}).get("msgs_per_s")
            for g in (1, 2):
                row = out.get(f"gateway{tls}_x{g}")
                if raw and row is not None:
                    row["share_of_raw"] = round(row["updates_per_s"] / raw, 2)
        pid = None if settings.mqtt_external else broker.process.running_pid()
        vehicles = 200 if quick else 1_000
        out["connections"] = _connections(settings, vehicles, pid)
        regions = len(load_corridor().regions)
        out["downlink"] = {m: measure_downlink(*settings.mqtt_address, m, vehicles, vehicles, 200.0, regions, pid)
                           for m in MODES}  # fmt: skip
        if not settings.mqtt_external:  # on brokers of its own, secure
            out["identities"] = run_identities(settings, 600 if quick else 3_600)
        return out
    finally:
        if started:
            broker.stop()
        delete_prefixed(settings.bootstrap_servers, prefix)
