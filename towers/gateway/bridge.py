"""The tower gateway process: MQTT (the vehicles' radio) in, Kafka (the towers) out, and back.

Uplink: the gateway holds a shared subscription (`$share/<group>/…`) to the telemetry and hazard
topics of its regions, so several gateways split one broker's traffic. As soon as updates arrive it
produces each region's as one TelemetryFrame to that region's partition, with the vehicle
producers' delivery settings (acks=all, idempotence); what arrives while a batch is being made
waits for the next (at most one batch per `batch_s`: the fleet's radios send in bursts, and a
frame per update would cost the towers more than the few milliseconds it saves). Quiet regions get
an empty frame once a second so their towers' clocks move on. Hazard reports are forwarded one by
one, as they came. Whatever cannot be read, or came on another region's topic, is a dead letter
with its reason.

Downlink: the towers' advisories for its regions, read from Kafka from now on, published at QoS 1
to the topic of the vehicle each is addressed to, or to the region's topic when it is for every
vehicle there (a region topic would copy each addressed advisory to every vehicle of the region:
the `mqtt` bench measures that cost).

A broker that goes away: the MQTT session dials again by itself (`radio_session`) and the gateway
counts it; librdkafka does the same for Kafka. Nothing here exits on a lost connection; SIGTERM or Ctrl-C ends it.

Anyone on the radio can publish anything, so no message can stop the gateway or make it deaf: every
callback and every produce is guarded, each failure counted with its reason (`dead_letters`,
`errors`); the inbox between the MQTT thread and the loop is bounded, and what arrives while it is
full is counted (`inbox_dropped`), never held without limit.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from prometheus_client import start_http_server
from prometheus_client.core import Metric

from pipeline.shared.access import CUT_OFF_BROKER, Role, client_conf
from pipeline.shared.advisory_signing import SIGNATURE, signature_text
from pipeline.shared.codec import CodecError
from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from pipeline.shared.messages import ADVISORY, CODEC, HAZARD
from pipeline.shared.metric_catalog import registry_of
from pipeline.shared.radio_access import MQTT_GATEWAY
from pipeline.shared.radio_topics import RadioTopics
from pipeline.shared.stats import LatencyHistogram
from pipeline.shared.tracing import TRACEPARENT
from towers.gateway.batch import MAX_PAYLOAD, FrameBatcher, Refused, impersonation
from towers.gateway.metrics import gateway_families
from towers.gateway.radio_session import RadioSession, UserProperties

__all__ = ["Gateway", "GatewayStats"]

log = logging.getLogger("gateway")

HEARTBEAT_S = 1.0  # an empty frame for a quiet region this often
#: updates waiting for the loop, at most: about 3 s of the corridor at peak (36,000 updates/s) would
#: be 100,000; past it the radio is outrunning the gateway, and waiting longer helps no vehicle
MAX_INBOX = 100_000
#: a dead letter keeps at most this much of a refused payload (Kafka's own limit is 1 MB)
DEAD_LETTER_BYTES = 8_192
#: updates drained into one round of frames, at most: a region's frame stays under Kafka's 1 MB
#: records (5,000 updates ≈ 480 kB) however far the radio got ahead of the loop
MAX_FRAME_UPDATES = 5_000


@dataclass(slots=True)
class GatewayStats:
    received: int = 0  # telemetry messages off the radio
    hazards: int = 0
    frames: int = 0
    updates_forwarded: int = 0
    advisories_forwarded: int = 0
    advisories_dropped: int = 0  # given up on: the MQTT session's backlog was full
    dead_letters: dict[str, int] = field(default_factory=dict)
    mqtt_disconnects: int = 0
    kafka_errors: int = 0
    undelivered: int = 0  # Kafka gave up on them (counted, logged)
    inbox_dropped: int = 0  # updates that arrived while the inbox was full (back-pressure)
    mqtt_connected: bool = False
    #: the broker granted every subscription of the latest connection: until then the gateway is deaf
    mqtt_subscribed: bool = False
    subscriptions_refused: int = 0  # SUBACKs with a failure code (an ACL, a broker without $share)
    errors: dict[str, int] = field(default_factory=dict)  # failures inside the gateway, by where and what
    radio_ms_p50: float = 0.0  # vehicle send → gateway receive, over the last second's updates
    radio_ms_p99: float = 0.0
    radio_ms_mean: float = 0.0  # over every update so far
    held_ms_mean: float = 0.0  # received → produced in its frame (the inbox and the batch), over every update


class Gateway:
    def __init__(
        self,
        settings: Settings,
        regions: list[int],
        n_regions: int,
        group: str = "gateways",
        batch_s: float = 0.005,
        downlink: bool = True,
    ) -> None:
        self.settings, self.regions, self.batch_s, self.group = settings, regions, batch_s, group
        self.radio = RadioTopics(n_regions)
        self.kafka = settings.topics(n_regions)
        self.batcher = FrameBatcher(self.radio)
        self.stats = GatewayStats()
        self.uplink = LatencyHistogram()  # vehicle sent → received, for /metrics
        self._inbox: deque[tuple[str, bytes, int]] = deque()  # appended by the MQTT thread
        self._arrived = threading.Event()  # the inbox has something: the loop wakes for it
        self._held_ms, self._held_n = 0.0, 0  # updates' time in the gateway, summed, and their count
        self._stop = threading.Event()
        self._lock = threading.Lock()
        kafka_access = settings.kafka(Role.VEHICLE)  # a gateway speaks for the vehicles it serves
        self.producer = Producer(client_conf(kafka_access, {
            "enable.idempotence": True, "acks": "all",
            "linger.ms": 5, "compression.type": "lz4", "log_level": 3, "error_cb": self._kafka_error, **CUT_OFF_BROKER,
        }))  # fmt: skip
        self.consumer: Consumer | None = None
        if downlink:
            self.consumer = Consumer(client_conf(kafka_access, {
                "group.id": f"gateway-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False, "fetch.wait.max.ms": 10, "log_level": 3,
                "error_cb": self._kafka_error,
            }))  # fmt: skip
            self.consumer.assign([TopicPartition(self.kafka.advisories, r, OFFSET_END) for r in regions])
        # on a secure stack: TLS, and the gateways' own identity, the only one the broker lets share the uplink
        self.session = RadioSession(settings.mqtt(MQTT_GATEWAY), f"gateway-{uuid.uuid4().hex[:8]}",
                                    on_message=self._on_message, on_connected=self._on_connect,
                                    on_subscribed=self._on_subscribe, on_disconnected=self._on_disconnect)  # fmt: skip

    # ---- connections --------------------------------------------------------------------------
    def _on_connect(self) -> None:
        self.stats.mqtt_connected = True
        self.stats.mqtt_subscribed = False
        # (re)subscribe on every connect: a clean start forgets subscriptions
        subs = []
        for r in self.regions:
            subs.append((f"$share/{self.group}/{self.radio.telemetry(r)}", 0))  # every sender
            subs.append((f"$share/{self.group}/{self.radio.hazards(r)}", 1))
        self.session.subscribe(subs)

    def _on_subscribe(self, granted: list[int]) -> None:
        """The SUBACK: every topic granted, or the gateway says which were refused and stays not ready."""
        refused = [f"0x{code:02X}" for code in granted if code >= 0x80]
        with self._lock:
            self.stats.mqtt_subscribed = not refused
            self.stats.subscriptions_refused += len(refused)
        if refused:
            log.error("the MQTT broker refused %d of the gateway's subscriptions: %s", len(refused), refused[0])

    def _on_message(self, topic: str | bytes, payload: bytes, _qos: int, props: UserProperties) -> None:
        """On the MQTT thread. A hazard report goes on at once (the producer is thread-safe):
        waiting for the next batch would add to the most urgent path; updates wait for
        their region's next frame. Nothing raises out of here: the MQTT thread serves every vehicle."""
        try:
            if isinstance(topic, bytes):  # not UTF-8 (a broker would refuse it; this one let it through)
                self._dead(Refused(None, payload, "bad-topic: not UTF-8"), topic.decode("utf-8", "replace"))
            elif "/hazards/" in topic:
                self._hazard(topic, payload, _trace_context(props))
            elif len(self._inbox) >= MAX_INBOX:
                with self._lock:
                    self.stats.inbox_dropped += 1
            else:
                self._inbox.append((topic, payload, int(time.time() * 1000)))
                if not self._arrived.is_set():
                    self._arrived.set()
        except Exception as exc:
            self._failed("radio", exc)

    def _on_disconnect(self) -> None:
        with self._lock:
            self.stats.mqtt_disconnects += 1
            self.stats.mqtt_connected = self.stats.mqtt_subscribed = False
        log.warning("MQTT broker connection lost; reconnecting with backoff")

    def _kafka_error(self, err: KafkaError) -> None:
        with self._lock:
            self.stats.kafka_errors += 1
        if self.stats.kafka_errors == 1 or self.stats.kafka_errors % 100 == 0:
            log.warning("Kafka: %s (%d so far); librdkafka retries", err.str(), self.stats.kafka_errors)

    def _stats_dict(self) -> dict[str, Any]:
        with self._lock:  # the MQTT thread adds to the counters' dicts
            return self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        """The counters, the MQTT session's own included; under `_lock`."""
        self.stats.advisories_dropped = self.session.dropped
        return asdict(self.stats)

    def metric_families(self) -> Iterator[Metric]:
        """Its `/metrics` page (towers.gateway.metrics), from one snapshot of its counters."""
        with self._lock:
            stats, uplink = self._snapshot(), copy.deepcopy(self.uplink)
        return gateway_families(stats, uplink)

    def serve_metrics(self, host: str, port: int) -> None:
        """`/metrics` on host:port, in a daemon thread, for as long as the gateway's process lives."""
        try:
            start_http_server(port, addr=host, registry=registry_of(self.metric_families))
        except OSError as exc:
            raise StackError(f"the gateway's metrics cannot listen on {host}:{port}: {exc.strerror}") from None

    def _failed(self, where: str, exc: BaseException) -> None:
        """A failure inside the gateway that one input caused: counted and logged, never fatal."""
        key = f"{where}: {type(exc).__name__}"
        with self._lock:
            self.stats.errors[key] = n = self.stats.errors.get(key, 0) + 1
        if n == 1 or n % 1000 == 0:
            log.error("%s (%d so far): %s", key, n, exc)

    def _produce(self, topic: str, value: bytes, region: int, headers: list[Any] | None = None) -> bool:
        """One record to Kafka; a full local queue is waited out briefly, a refusal (a record too
        large, an unknown partition) is counted. True when it is on its way."""
        for attempt in range(2):
            try:
                self.producer.produce(topic, value, str(region).encode(), region, headers=headers,
                                      on_delivery=self._delivered)  # fmt: skip
                return True
            except BufferError as exc:  # librdkafka's queue is full: let it drain once
                if attempt:
                    self._failed("kafka-queue-full", exc)
                self.producer.poll(0.1)
            except (KafkaException, ValueError, TypeError) as exc:
                self._failed(f"produce to {topic}", exc)
                return False
        return False

    def _delivered(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self.stats.undelivered += 1
            log.error("a record could not be delivered to Kafka: %s", err.str())

    # ---- the loop -----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self, stats_file: Path | None = None) -> GatewayStats:
        self.session.start()
        down = threading.Thread(target=self._downlink, name="downlink", daemon=True)
        down.start()
        last_beat = next_stats = time.monotonic()
        radio: list[int] = []
        radio_sum, radio_n = 0.0, 0
        last_batch = 0.0
        try:
            while not self._stop.is_set():
                self._arrived.wait(0.1)  # updates, or a heartbeat or counters due
                wait = self.batch_s - (time.monotonic() - last_batch)
                if wait > 0 and len(self._inbox) < MAX_FRAME_UPDATES:  # the last batch went out just now: let it fill
                    self._stop.wait(wait)
                t0 = last_batch = time.monotonic()
                self._arrived.clear()  # before draining: what arrives from here on wakes the next round
                self._uplink()
                beat = t0 - last_beat >= HEARTBEAT_S
                radio += self._frames(beat)
                if self._inbox:  # more than one round's worth came: the next round starts at once
                    self._arrived.set()
                if beat:
                    last_beat = t0
                self.producer.poll(0)
                if t0 >= next_stats:
                    next_stats = t0 + 1.0
                    if radio:
                        with self._lock:
                            self.uplink.observe_many([ms / 1000 for ms in radio])
                        p50, p99 = np.percentile(radio, [50, 99])
                        self.stats.radio_ms_p50, self.stats.radio_ms_p99 = round(float(p50), 1), round(float(p99), 1)
                        radio_sum += float(np.sum(radio))
                        radio_n += len(radio)
                        self.stats.radio_ms_mean = round(radio_sum / radio_n, 1)
                        radio = []
                    if stats_file is not None:
                        _write_json(stats_file, self._stats_dict())
        finally:
            self._stop.set()
            down.join(5)
            self.session.stop()
            while self._inbox:
                self._uplink()
                self._frames(False)
            self.producer.flush(10)
            if stats_file is not None:
                _write_json(stats_file, self._stats_dict())
        return self.stats

    def _uplink(self) -> None:
        came, n = 0, 0  # the drained updates' receipt times, summed
        while self._inbox and n < MAX_FRAME_UPDATES:
            topic, payload, now_ms = self._inbox.popleft()
            self.stats.received += 1
            came, n = came + now_ms, n + 1
            try:
                refused = self.batcher.add(topic, payload, now_ms)
            except Exception as exc:  # a defect, not the sender's fault alone: count it, keep serving
                refused = Refused(None, payload, f"gateway-error: {type(exc).__name__}: {exc}")
                self._failed("batch", exc)
            if refused is not None:
                self._dead(refused, topic)
        if n:  # the frames go out right after this drain
            self._held_ms += n * time.time() * 1000 - came
            self._held_n += n
            self.stats.held_ms_mean = round(self._held_ms / self._held_n, 1)

    def _hazard(self, topic: str, payload: bytes, traced: list[tuple[str, str | bytes | None]] | None = None) -> None:
        if len(payload) > MAX_PAYLOAD:
            return self._dead(Refused(None, payload, f"too-large: {len(payload)} bytes (at most {MAX_PAYLOAD})"), topic)
        try:
            kind, region, sender = self.radio.parse(topic)
            report = CODEC.decode(payload, HAZARD)
        except (ValueError, CodecError) as exc:
            return self._dead(Refused(None, payload, f"undecodable: {exc}"), topic)
        if kind != "hazards" or report["region_id"] != region:
            why = f"wrong-region: a hazard of region {report['region_id']} on {topic}"
            return self._dead(Refused(region, payload, why), topic)
        if report["reporter"] != sender:  # a report, or a cancel, in another vehicle's name
            return self._dead(Refused(region, payload, impersonation(report["reporter"], sender)), topic)
        with self._lock:
            self.stats.hazards += 1
        self._produce(self.kafka.hazards, payload, region, traced or None)
        return None

    def _frames(self, beat: bool) -> list[int]:
        busy = [r for r in self.regions if self.batcher.has(r)]
        frames, radio = self.batcher.frames(self.regions if beat else busy, int(time.time() * 1000))
        for r, frame in frames.items():
            self._produce(self.kafka.telemetry, frame, r)
        self.stats.frames += len(frames)
        self.stats.updates_forwarded += len(radio)
        return radio

    def _downlink(self) -> None:
        """A thread of its own, so an advisory goes out as soon as Kafka has it, not with the next batch."""
        if self.consumer is None:
            return
        try:
            while not self._stop.is_set():
                # poll returns with the first advisory; consume(n, timeout) would hold it until n had
                # come or the timeout passed (librdkafka's batch semantics): then drain what is there
                first = self.consumer.poll(0.05)
                batch = [] if first is None else [first, *self.consumer.consume(1000, timeout=0)]
                for msg in batch:
                    value, region = msg.value(), msg.partition()
                    if msg.error() is None and value is not None and region is not None:
                        try:
                            self.session.publish(self._downlink_topic(region, value), value, 1,
                                                 _downlink_properties(msg.headers()))  # fmt: skip
                            self.stats.advisories_forwarded += 1
                        except Exception as exc:  # one advisory that cannot go out stops no other
                            self._failed("downlink", exc)
        finally:
            self.consumer.close()

    def _downlink_topic(self, region: int, value: bytes) -> str:
        """Its vehicle's topic; the region's for one addressed to every vehicle, or one whose
        target cannot name a topic (towers write these records, so that is a defect, logged)."""
        try:
            target = CODEC.decode(value, ADVISORY)["target_vehicle"]
            return self.radio.advisories(region) if target is None else self.radio.vehicle_advisories(target)
        except (ValueError, CodecError) as exc:
            log.error("advisory on partition %d sent to the region's topic: %s", region, exc)
            return self.radio.advisories(region)

    def _dead(self, refused: Refused, topic: str) -> None:
        kind = refused.reason.split(":", 1)[0]
        with self._lock:
            self.stats.dead_letters[kind] = self.stats.dead_letters.get(kind, 0) + 1
        region = refused.region if refused.region is not None else 0
        payload = refused.payload[:DEAD_LETTER_BYTES]
        headers: list[tuple[str, str | bytes | None]] = [
            ("reason", refused.reason[:1_000].encode()), ("source-topic", f"mqtt:{topic[:200]}".encode())]  # fmt: skip
        if len(payload) < len(refused.payload):
            headers.append(("truncated-from", str(len(refused.payload)).encode()))
        self._produce(self.kafka.dead_letter, payload, region, headers)


def _downlink_properties(headers: Any) -> UserProperties | None:
    """A traced advisory's context and its tower's signature (Kafka headers) as MQTT 5 user
    properties, the signature in base64 (a property is UTF-8); None when it carries neither."""
    pairs = headers.items() if isinstance(headers, dict) else headers or ()
    carried: list[tuple[str, str]] = []
    for key, value in pairs:
        if key == TRACEPARENT and value is not None:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            carried.append((TRACEPARENT, text[:128]))
        elif key == SIGNATURE and isinstance(value, bytes):
            carried.append((SIGNATURE, signature_text(value[:96])))
    return carried[:2] or None


def _trace_context(props: UserProperties) -> list[tuple[str, str | bytes | None]]:
    """A hazard report's W3C trace context (an MQTT 5 user property) as the Kafka header it goes on in;
    anything else in its properties stays behind. Bounded: a header is a few dozen bytes."""
    found: list[tuple[str, str | bytes | None]] = [
        (TRACEPARENT, value[:128]) for key, value in props[:8] if key == TRACEPARENT
    ]
    return found[:1]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def parse_regions(spec: str, n_regions: int) -> list[int]:
    """'all', '3', '0-4' or '0,2,5-8' → region ids; ValueError with the reason otherwise."""
    if spec == "all":
        return list(range(n_regions))
    out: set[int] = set()
    for part in spec.split(","):
        lo, sep, hi = part.strip().partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"regions {spec!r}: use all, N, N-M or a comma-separated list of those")
        a, b = int(lo), int(hi) if sep else int(lo)
        if not 0 <= a <= b < n_regions:
            raise ValueError(f"regions {spec!r}: the corridor's regions are 0-{n_regions - 1}")
        out.update(range(a, b + 1))
    return sorted(out)
