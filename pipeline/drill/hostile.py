"""The hostile-input drill's sender: crafted and random input beside a drill's traffic, on every topic
a stranger with a vehicle's (or a tower's) rights can write, and on the radio link; and genuine
hazards among it, whose advice is timed.

Every hostile input is one a door must refuse whole, so the drill can account for each exactly:
its bytes must turn up in the dead-letter topic (a tower's or the gateway's), or it was lost
silently. The crafted ones replay what once switched corridor's warnings off (an event time far
ahead, an HLC below zero, a hazard that never expires, a sync value that is not a hazard, ...);
the random ones are bytes no decoder accepts. `inputs` is pure; `HostileSender` does the I/O.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion

from pipeline.shared.access import CUT_OFF_BROKER, Kafka, client_conf
from pipeline.shared.corridor import Corridor
from pipeline.shared.crdt import LWWMap, encode_state
from pipeline.shared.hazards import hazard_record
from pipeline.shared.messages import ADVISORY, CODEC, FRAME, HAZARD, SYNC, TELEMETRY
from pipeline.shared.mqtt_client import MqttLoop
from pipeline.shared.radio_topics import RadioTopics
from pipeline.shared.topics import Topics
from pipeline.shared.waiting import poll

__all__ = ["Hostile", "HostileSender", "inputs"]

FAR = 2**62
HOUR_MS = 3_600_000
GENUINE_VALIDITY_S = 8
HAZARD_SPACING_KM = 4.0  # beyond the towers' look-ahead (3 km) from any other hazard


@dataclass(frozen=True, slots=True)
class Hostile:
    channel: str  # "kafka" or "mqtt"
    topic: str  # a Kafka topic or an MQTT topic
    region: int  # the partition (Kafka) or the region of the MQTT topic
    payload: bytes
    kind: str  # what it is, for the report


def _update(corridor: Corridor, region: int, now_ms: int, rng: random.Random) -> dict[str, Any]:
    reg = corridor.regions.regions[region]
    km = rng.uniform(reg.from_km, reg.to_km)
    return {"vehicle_id": f"veh-{rng.randrange(9_000_000, 9_999_999)}", "seq": rng.randrange(100), "event_time": now_ms,
            "hlc": now_ms << 16, "lat": 39.4, "lon": -86.4, "route_km": km, "direction": "NORTHBOUND", "lane": 0,
            "heading_deg": 10.0, "speed_mps": 30.0, "accel_mps2": 0.0, "brake": False, "energy_pct": 50.0,
            "region_id": region}  # fmt: skip


_BAD_UPDATES: dict[str, Any] = {
    "event-time-far-ahead": {"event_time": FAR},
    "hlc-below-zero": {"hlc": -5},
    "hlc-an-hour-ahead": "hlc+1h",
    "id-with-path": {"vehicle_id": "veh/../../x"},
    "id-empty": {"vehicle_id": ""},
    "id-10kB": {"vehicle_id": "v" * 10_000},
    "lon-1e300": {"lon": 1e300},
    "speed-nan": {"speed_mps": float("nan")},
    "lane-99": {"lane": 99},
    "negative-event-time": {"event_time": -5},
}


def _bad_update(name: str, base: dict[str, Any], now_ms: int) -> dict[str, Any]:
    change = _BAD_UPDATES[name]
    return base | ({"hlc": (now_ms + HOUR_MS) << 16} if change == "hlc+1h" else change)


def _hazard(corridor: Corridor, region: int, now_ms: int, rng: random.Random, **change: Any) -> bytes:
    reg = corridor.regions.regions[region]
    km = round(rng.uniform(reg.from_km + 0.1, reg.to_km - 0.1), 2)
    rec = hazard_record(km, "OBSTACLE", "BOTH", 5, now_ms, 60, f"hostile-{uuid.uuid4().hex[:8]}", "stranger",
                        corridor=corridor)  # fmt: skip
    return CODEC.encode(HAZARD, rec | change)


def inputs(rng: random.Random, corridor: Corridor, topics: Topics, radio: RadioTopics | None, now_ms: int) -> Hostile:
    """One hostile input, crafted or random, on Kafka or (when there is a radio link) MQTT."""
    regions = len(corridor.regions)
    r = rng.randrange(regions)
    base = _update(corridor, r, now_ms, rng)
    if radio is not None and rng.random() < 0.5:
        choice = rng.randrange(6)
        me = str(base["vehicle_id"])  # the radio's sender: a topic level, as the broker lets it publish
        if choice == 0:
            name = rng.choice(["event-time-far-ahead", "hlc-below-zero", "hlc-an-hour-ahead", "id-with-path"])
            return Hostile("mqtt", radio.telemetry(r, me), r, CODEC.encode(TELEMETRY, _bad_update(name, base, now_ms)),
                           f"mqtt {name}")  # fmt: skip
        if choice == 1:  # an update of another region on this region's topic
            other = _update(corridor, (r + 1) % regions, now_ms, rng)
            return Hostile("mqtt", radio.telemetry(r, str(other["vehicle_id"])), r, CODEC.encode(TELEMETRY, other),
                           "mqtt wrong-region")  # fmt: skip
        if choice == 2:
            garbage = b"\x00" + rng.randbytes(rng.randrange(1, 300))
            return Hostile("mqtt", radio.hazards(r, me), r, garbage, "mqtt garbage hazard")
        if choice == 3:  # a hazard report on the telemetry topic
            return Hostile("mqtt", radio.telemetry(r, me), r, _hazard(corridor, r, now_ms, rng), "mqtt wrong-type")
        if choice == 4:  # a vehicle's update sent under another vehicle's id
            return Hostile("mqtt", radio.telemetry(r, f"{me}-not"), r, CODEC.encode(TELEMETRY, base),
                           "mqtt impersonation")  # fmt: skip
        return Hostile("mqtt", radio.telemetry(r, me), r, b"\x01" + rng.randbytes(rng.randrange(0, 300)),
                       "mqtt garbage")  # fmt: skip
    choice = rng.randrange(6)
    if choice == 0:
        name = rng.choice(sorted(_BAD_UPDATES))
        return Hostile("kafka", topics.telemetry, r, CODEC.encode(TELEMETRY, _bad_update(name, base, now_ms)),
                       f"telemetry {name}")  # fmt: skip
    if choice == 1:  # a frame sent an hour ahead, which would carry the region's clock off
        frame = {"region_id": r, "frame_seq": 0, "event_time": now_ms + HOUR_MS, "sent_at": now_ms + HOUR_MS,
                 "updates": [base]}  # fmt: skip
        return Hostile("kafka", topics.telemetry, r, CODEC.encode(FRAME, frame), "frame sent an hour ahead")
    if choice == 2:
        # no magic at all; or a frame's header, then a varint that never ends
        junk = [b"\x01" + rng.randbytes(rng.randrange(0, 200)), FRAME_HEAD + b"\xff" * rng.randrange(11, 200)]
        return Hostile("kafka", topics.telemetry, r, rng.choice(junk), "telemetry garbage")
    if choice == 3:
        crafted: list[tuple[str, dict[str, Any]]] = [
            ("never-expires", {"expiry_time": FAR}), ("expires-before-detected", {"expiry_time": now_ms - 1_000}),
            ("lane-99", {"lanes_blocked": [99]}), ("id-100kB", {"hazard_id": "h" * 100_000}),
            ("id-with-path", {"hazard_id": "../x"}), ("severity-9", {"severity": 9}),
            ("wrong-region", {"region_id": (r + 1) % regions}),
        ]  # fmt: skip
        name, change = rng.choice(crafted)
        return Hostile("kafka", topics.hazards, r, _hazard(corridor, r, now_ms, rng, **change), f"hazard {name}")
    if choice == 4:
        value = rng.choice([{}, {"expires": "soon"}, {"km": 1.0, "expires": FAR}])
        delta = LWWMap({f"bad-{uuid.uuid4().hex[:6]}": ((now_ms << 16) + 1, corridor.regions.towers[r], value)})
        msg = {"tower": corridor.regions.towers[r], "region_id": r, "seq": 1, "sync_class": "IMPORTANT", "full": False,
               "sent_at": now_ms, "hlc": now_ms << 16, "members": None, "hazards": encode_state(delta), "arrivals": [],
               "member_count": 0, "aggregates": None, "changes_since": 0, "state_digest": ""}  # fmt: skip
        return Hostile("kafka", topics.tower_sync, r, CODEC.encode(SYNC, msg), "sync value not a hazard")
    return Hostile("kafka", topics.tower_sync, r, b"\x01" + rng.randbytes(rng.randrange(0, 200)), "sync garbage")


FRAME_HEAD = b"\xc3\x01" + FRAME.fingerprint


@dataclass
class HostileSender:
    """Sends `rate` hostile inputs a second, and one genuine hazard every `hazard_every_s`, until
    stopped; times each genuine hazard's advice as the vehicles would hear it (from the topic)."""

    kafka: Kafka
    corridor: Corridor
    topics: Topics
    radio: RadioTopics | None
    mqtt_address: tuple[str, int] | None
    rate: float  # hostile inputs a second; 0: genuine hazards only
    hazard_every_s: float = 2.0
    seed: int = 31
    sent: list[Hostile] = field(default_factory=list)
    hazards_sent: dict[str, int] = field(default_factory=dict)  # hazard id -> wall ms sent
    latencies_ms: list[float] = field(default_factory=list)  # hazard sent -> each advisory it triggered, read
    produced_ms: list[float] = field(default_factory=list)  # hazard sent -> each advisory's produce time (its tower's)
    # hazard id -> the latency of the first advisory naming it, whatever triggered it: the report
    # itself, a neighbour's tower-sync message, or a vehicle's update once it came close enough
    first_ms: dict[str, float] = field(default_factory=dict)
    hazard_where: dict[str, tuple[float, int]] = field(default_factory=dict)  # hazard id -> (km, region)
    # hazard id -> the latency of the first advisory the report itself triggered (the towers' reaction)
    reaction_ms: dict[str, float] = field(default_factory=dict)
    # hazard id -> ms from its report to the broker's acknowledgement: one taken only after its
    # validity (a failover holding it) could not be advised, and the report says so apart
    acked_ms: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    avoid_km: tuple[float, ...] = ()  # where the drill's own hazards stand
    where: Callable[[], float] = lambda: 39.0  # a spot 1.5 km ahead of some vehicle on the road
    _on_road: list[tuple[float, int]] = field(default_factory=list)  # (km, expiry wall ms) of genuine ones

    def __post_init__(self) -> None:
        self._stop = threading.Event()  # the sender's
        self._deaf = threading.Event()  # the listener's
        self._threads = [threading.Thread(target=self._send, name="hostile", daemon=True),
                         threading.Thread(target=self._listen, name="hostile-listener", daemon=True)]  # fmt: skip

    def start(self) -> HostileSender:
        self._consumer = Consumer(client_conf(self.kafka, {"group.id": f"hostile-{uuid.uuid4().hex[:8]}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 5, "log_level": 2}))  # fmt: skip
        self._consumer.assign([TopicPartition(self.topics.advisories, p, OFFSET_END)
                               for p in range(self.topics.regions)])  # fmt: skip
        for t in self._threads:
            t.start()
        return self

    def stop(self, advice_wait_s: float = 5.0) -> None:
        """Stop sending, then listen until every genuine hazard was named in an advisory or
        `advice_wait_s` passed: the last one may be reported a moment before, and its vehicle may
        first have to come within the distance at which a tower advises it."""
        self._stop.set()
        self._threads[0].join(30)
        poll(lambda: self.hazards_sent.keys() <= self.first_ms.keys(), advice_wait_s, interval=0.05)
        self._deaf.set()
        self._threads[1].join(30)

    def unadvised(self) -> list[dict[str, Any]]:
        """The genuine hazards no advisory ever named, with where they were."""
        return [{"id": hid, "km": self.hazard_where[hid][0], "region": self.hazard_where[hid][1],
                 "acked_after_ms": round(self.acked_ms[hid]) if hid in self.acked_ms else None}
                for hid in self.hazards_sent if hid not in self.first_ms]  # fmt: skip

    def unadvised_report(self, tallies: Iterable[Mapping[str, int]]) -> dict[str, Any]:
        """The unadvised, and how many of them the towers account for: read only after their validity
        (a failover held them longer), advising no one, counted. Any beyond those went silently."""
        unadvised = self.unadvised()
        expired = sum(int(t.get("hazards_expired_on_arrival", 0)) for t in tallies)
        return {"hazards_unadvised": unadvised, "hazards_expired_on_arrival": expired,
                "hazards_unaccounted": max(0, len(unadvised) - expired)}  # fmt: skip

    def by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(h.kind for h in self.sent).items()))

    def _send(self) -> None:
        rng = random.Random(self.seed)
        # its connection errors while a broker is down are the drill's fault, not news: critical only
        producer = Producer(
            client_conf(self.kafka, {"linger.ms": 1, "enable.idempotence": True, "log_level": 2, **CUT_OFF_BROKER})
        )
        radio: mqtt.Client | None = None
        if self.mqtt_address is not None:
            radio = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"stranger-{uuid.uuid4().hex[:6]}",
                                protocol=mqtt.MQTTv5)  # fmt: skip
            radio.connect(*self.mqtt_address)
        radio_loop = MqttLoop(radio) if radio is not None else None
        if radio_loop is not None:
            radio_loop.start()
        try:
            t0 = time.monotonic()
            next_hazard = t0 + 1.0
            n = 0
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_hazard:
                    next_hazard += self.hazard_every_s
                    self._genuine_hazard(rng, producer)
                if not self.rate:
                    producer.poll(min(next_hazard - now, 0.05))  # serves the acknowledgements meanwhile
                    continue
                due = t0 + n / self.rate
                if now < due:
                    producer.poll(min(due - now, 0.05))
                    continue
                h = inputs(rng, self.corridor, self.topics, self.radio if radio else None, int(time.time() * 1000))
                if h.channel == "kafka":
                    producer.produce(h.topic, h.payload, str(h.region).encode(), h.region)
                    producer.poll(0)
                elif radio is not None:
                    radio.publish(h.topic, h.payload, qos=1)  # QoS 1: the broker takes each, so each is counted
                self.sent.append(h)
                n += 1
        except Exception as exc:  # said in the drill's report: a sender that died is not a green drill
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if producer.flush(30):
                self.errors.append("hostile records not acknowledged by the broker")
            if radio_loop is not None:
                radio_loop.client.disconnect()
                radio_loop.stop()

    def _genuine_hazard(self, rng: random.Random, producer: Producer) -> None:
        """A genuine obstacle 1.5 km ahead of a vehicle of the fleet, reported now, away from every
        other hazard still on the road: someone is there to be told, and told of this one, not of
        one they heard of already."""
        now = int(time.time() * 1000)
        length = self.corridor.route.length_km
        taken = [km for km, until in self._on_road if until > now] + list(self.avoid_km)
        ahead = (self.where() for _ in range(50))
        km = next((x for x in ahead if 1 < x < length - 1 and all(abs(x - t) > HAZARD_SPACING_KM for t in taken)),
                  None)  # fmt: skip
        if km is None:
            return
        hid = f"genuine-{uuid.uuid4().hex[:8]}"
        rec = hazard_record(km, "OBSTACLE", "BOTH", 6, now, GENUINE_VALIDITY_S, hid, "drill", corridor=self.corridor)
        r = rec["region_id"]

        def acked(err: Any, _msg: Any, hid: str = hid, sent: int = now) -> None:
            if err is None:
                self.acked_ms[hid] = time.time() * 1000 - sent

        producer.produce(self.topics.hazards, CODEC.encode(HAZARD, rec), str(r).encode(), r, on_delivery=acked)
        self._on_road.append((km, now + GENUINE_VALIDITY_S * 1000))
        self.hazards_sent[hid] = rec["hlc"] >> 16
        self.hazard_where[hid] = (km, r)
        if not self.rate:
            producer.poll(0)
            return
        # and the stranger, right behind it, cancels it and then downgrades it to a minor one: each
        # must be refused (only its reporter, a tower or the operator may change it)
        for kind, change in (("cancel of a genuine hazard", {"cancelled": True}),
                             ("downgrade of a genuine hazard", {"severity": 1})):  # fmt: skip
            forged = CODEC.encode(HAZARD, rec | change | {"reporter": "stranger", "hlc": rec["hlc"] + 1})
            producer.produce(self.topics.hazards, forged, str(r).encode(), r)
            self.sent.append(Hostile("kafka", self.topics.hazards, r, forged, kind))
        producer.poll(0)

    def _listen(self) -> None:
        try:
            while not self._deaf.is_set():
                first = self._consumer.poll(0.05)  # returns with the first (consume(n, t) waits for n or t)
                for m in [] if first is None else [first, *self._consumer.consume(1_000, timeout=0)]:
                    received = time.time() * 1000
                    if m.error() is not None or m.value() is None:
                        continue
                    adv = CODEC.decode(m.value() or b"", ADVISORY)
                    sent = self.hazards_sent.get(adv["hazard_id"] or "")
                    if sent is None:
                        continue
                    self.first_ms.setdefault(adv["hazard_id"], received - sent)
                    if adv["trigger_hlc"] >> 16 == sent:  # the towers' reaction to the report itself
                        self.latencies_ms.append(received - sent)
                        self.reaction_ms.setdefault(adv["hazard_id"], received - sent)
                        self.produced_ms.append(m.timestamp()[1] - sent)
        except Exception as exc:
            self.errors.append(f"listener {type(exc).__name__}: {exc}")
        finally:
            self._consumer.close()
