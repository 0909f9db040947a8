"""The vehicles' radio: MQTT to the broker of their tower, instead of Kafka directly.

One process simulates the whole fleet, so its vehicles share a pool of MQTT connections: vehicle n
talks over connection n mod `connections`, as a vehicle keeps one link while it drives. Each update
goes to its region's telemetry topic at QoS 0 (a lost update is superseded by the next, a tick
later); hazard reports go at QoS 1. A connection listens on the advisory topic of each of its
vehicles (advisories addressed to one vehicle) and on the broadcast topics of exactly the regions
its vehicles are in: when a vehicle crosses into the next region, its connection subscribes there
and, once no vehicle of its own is left behind, unsubscribes from the old one (handover). A
vehicle's own topic does not move with it.
"""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from pipeline.shared.advisory_signing import SIGNATURE, Verifier
from pipeline.shared.errors import StackError
from pipeline.shared.messages import CODEC, HAZARD
from pipeline.shared.mqtt_client import mqtt_client, refusal
from pipeline.shared.radio_access import MqttAccess
from pipeline.shared.radio_topics import RadioTopics
from pipeline.shared.tracing import TRACEPARENT, VEHICLE_SPAN, Tracing
from producers.encoding import vehicle_id
from producers.enrolment import Enrolment
from producers.fleet import Fleet
from producers.listener import AdvisoryListener, ListenerStats
from producers.radio_io import RadioSockets

__all__ = ["RadioLink", "RadioListener", "RadioStats", "vehicle_id_of", "vehicle_num_of"]

Conn = int | str  # a shared connection's number, or the vehicle id of a vehicle's own

PUMP_EVERY = 256  # messages published between two pumps of the radios' sockets


def _id_span(record: bytes) -> tuple[int, int]:
    """Where the vehicle id (the first field) of an encoded VehicleTelemetry lies: after a
    single-object header (C3 01, 10 bytes) or a Confluent one (00, 5 bytes), and its length byte."""
    at = 5 if record[:1] == b"\x00" else 10
    return at + 1, at + 1 + (record[at] >> 1)


def vehicle_id_of(record: bytes) -> str:
    """The vehicle id of an encoded VehicleTelemetry, undecoded else."""
    start, end = _id_span(record)
    return record[start:end].decode("utf-8", "replace")


def vehicle_num_of(record: bytes) -> int:
    """The vehicle number in an encoded VehicleTelemetry whose id is veh-NNNNNNN (any other id: a
    stable number made from it), so a vehicle keeps its connection."""
    start, end = _id_span(record)
    try:
        return int(record[start + 4 : end])  # after "veh-"
    except ValueError:
        return zlib.crc32(record[start:end])


@dataclass(slots=True)
class RadioStats:
    published: int = 0  # telemetry messages handed to the radio (QoS 0)
    hazards: int = 0
    received: int = 0  # advisory messages heard
    handovers: int = 0  # subscriptions moved to another region
    disconnects: int = 0
    forwarded: int = 0  # updates the gateway has passed on to Kafka (its counters, when known)
    subscriptions_refused: int = 0  # advisory topics the broker would not let a radio listen to
    refused_connections: int = 0  # CONNACKs refusing a vehicle's radio (its identity)

    @property
    def sent(self) -> int:
        return self.published

    @property
    def acked(self) -> int:
        """QoS 0 has no acknowledgement: the nearest thing is what the gateway forwarded."""
        return self.forwarded


class RadioLink:
    """`send`/`poll`/`flush` like `TelemetrySink`, so `drive` uses either; `listen` stands in for
    `AdvisoryListener.poll` on the advisories heard over the air.

    Anonymous (plain mode), the fleet's vehicles share `connections` connections. With `identities`
    (a secure broker) each vehicle has its own connection as itself, enrolled when it first sends or
    is first seen on the road, and closed when it leaves: the broker then holds each vehicle to its
    own topics, as it would real ones."""

    def __init__(self, access: MqttAccess, topics: RadioTopics, connections: int = 8,
                 identities: tuple[Enrolment, bytes] | None = None) -> None:  # fmt: skip
        self.topics, self.access, self.identities = topics, access, identities
        self.stats = RadioStats()
        # advisories as the radios read them: each with its trace context, its signature and when it came (ns)
        self._heard: deque[tuple[bytes, str | None, str | None, int]] = deque()
        self.received_ms: list[int] = []  # when the radio had each advisory the last `heard` returned
        self.signatures: list[str | None] = []  # of the advisories the last `heard` returned, in their order
        self.traced: list[tuple[str, int]] = []  # (traceparent, wall ns) of the advisories heard, unread
        self._seen: OrderedDict[bytes, None] = OrderedDict()  # the latest advisories handed on
        self._lock = threading.Lock()
        self._changing: set[tuple[Conn, int]] = set()  # (connection, mid) of (un)subscriptions not acknowledged
        self._early: set[tuple[Conn, int]] = set()  # acknowledged before their request was noted here
        self._clients: dict[Conn, mqtt.Client] = {}
        self._subscribed: dict[Conn, set[int]] = {}  # regions
        self._vehicles: dict[Conn, set[int]] = {}  # vehicle numbers
        self._pool = connections
        self._io = RadioSockets()  # every connection's socket, driven from this (the fleet's) thread
        self._answered: set[Conn] = set()  # connections the broker has accepted at least once
        self._reset: set[Conn] = set()  # connections back after a loss, their subscriptions to make again
        self._followed_at: float | None = None  # the fleet's time `follow` last saw
        if identities is None:
            for i in range(connections):
                self._clients[i] = self._connect(i, access, wait=True)

    @property
    def connections(self) -> int:
        return len(self._clients)

    def _conn(self, num: int) -> Conn:
        return vehicle_id(num) if self.identities is not None else num % self._pool

    def _connect(self, i: Conn, access: MqttAccess, wait: bool) -> mqtt.Client:
        client = mqtt_client(access, f"fleet-{uuid.uuid4().hex[:8]}-{i}")
        client.max_queued_messages_set(0)  # what is sent before the CONNACK waits for it
        client.max_inflight_messages_set(1000)
        client.on_connect = lambda _c, _u, _f, reason, _p: self._connected(i, reason)
        client.on_message = lambda _c, _u, msg: self._heard.append(
            (bytes(msg.payload), _property(msg, TRACEPARENT), _property(msg, SIGNATURE), time.time_ns())
        )
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = lambda _c, _u, mid, reasons, _p: self._acknowledged(i, mid, reasons)
        client.on_unsubscribe = lambda _c, _u, mid, reasons, _p: self._acknowledged(i, mid, [])
        self._io.adopt(client)
        try:
            client.connect(access.host, access.port, keepalive=30, clean_start=True)
        except OSError as exc:
            raise StackError(
                f"no MQTT broker at {access.host}:{access.port} ({exc}): start it or fix MQTT_URL"
            ) from None
        deadline = time.monotonic() + 10
        while wait and not client.is_connected() and time.monotonic() < deadline:
            self._io.pump(0.005)
        return client

    def _connected(self, i: Conn, reason: Any) -> None:
        if refusal(reason):
            with self._lock:
                self.stats.refused_connections += 1
            return
        if i in self._answered:  # a clean start: back after a loss, it has no subscriptions; `follow` makes them again
            self._reset.add(i)
        self._answered.add(i)

    def _ensure(self, vehicle_ids: Iterable[str]) -> None:
        """A connection for each of these vehicles (or reporters) that has none: enrolled first."""
        if self.identities is None:
            return
        ids = [c for c in dict.fromkeys(vehicle_ids) if c not in self._clients]
        if not ids:
            return
        enrolment, key = self.identities
        enrolment.enrol(ids)
        for vid in ids:
            self._clients[vid] = self._connect(vid, self.access.as_vehicle(vid, key), wait=False)

    def open(self, vehicle_ids: Sequence[str], timeout_s: float = 60.0) -> int:
        """These vehicles' radios connected now, rather than when each first sends (secure mode);
        how many the broker accepted within `timeout_s`."""
        self._ensure(vehicle_ids)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(self._clients[v].is_connected() for v in vehicle_ids):
            self._io.pump(0.01)
        return sum(1 for v in vehicle_ids if self._clients[v].is_connected())

    def _acknowledged(self, i: Conn, mid: int, reasons: list[Any]) -> None:
        refused = sum(1 for r in reasons if getattr(r, "is_failure", False))
        with self._lock:
            if (i, mid) in self._changing:
                self._changing.discard((i, mid))
            else:  # the broker answered before `subscribe` returned its message id
                self._early.add((i, mid))
            self.stats.subscriptions_refused += refused

    def _changed(self, i: Conn, request: tuple[int, int | None]) -> None:
        _rc, mid = request
        if mid is not None:
            with self._lock:
                if (i, mid) in self._early:
                    self._early.discard((i, mid))
                else:
                    self._changing.add((i, mid))

    @property
    def listening(self) -> bool:
        """Every subscription change `follow` asked for is acknowledged by the broker (read now)."""
        self._io.pump(0.01)
        with self._lock:
            return not self._changing

    def _on_disconnect(self, *_: object) -> None:
        with self._lock:
            self.stats.disconnects += 1

    # ---- uplink -------------------------------------------------------------------------------
    def send(self, _topic: str, region: int, _key: bytes, values: list[bytes]) -> None:
        ids = [vehicle_id_of(v) for v in values]  # each update's sender, read once: its topic, its connection
        conns: list[Conn]
        if self.identities is not None:
            self._ensure(ids)
            conns = list(ids)
        else:
            conns = [vehicle_num_of(v) % self._pool for v in values]
        for n, (conn, vid, value) in enumerate(zip(conns, ids, values, strict=True), 1):
            self._clients[conn].publish(self.topics.telemetry(region, vid), value, qos=0)
            if n % PUMP_EVERY == 0:  # out as they come, and the advisories that came meanwhile read
                self._io.pump()
        self.stats.published += len(values)
        self._io.pump()

    def send_hazard(self, _topic: str, region: int, value: bytes) -> None:
        self.report_hazard(region, value)

    def report_hazard(self, region: int, value: bytes, traced: Sequence[tuple[str, str | bytes | None]] = ()) -> None:
        """A hazard seen by a vehicle, at QoS 1, under its reporter's id: the broker acknowledges it
        (waited for here). `traced`: its trace context, sent as MQTT 5 user properties (the gateway
        puts it in Kafka headers)."""
        reporter = str(CODEC.decode(value, HAZARD)["reporter"])
        props = None
        if traced:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [(k, v.decode() if isinstance(v, bytes) else v or "") for k, v in traced]
        self._ensure([reporter])
        client = self._clients[reporter if self.identities is not None else 0]
        deadline = time.monotonic() + 10  # a reporter's radio enrolled just now: its CONNACK first
        while not client.is_connected() and time.monotonic() < deadline:
            self._io.pump(0.002)
        info = client.publish(self.topics.hazards(region, reporter), value, qos=1, properties=props)
        while not info.is_published() and time.monotonic() < deadline:
            self._io.pump(0.002)
        if not info.is_published():
            raise StackError("a hazard report was not acknowledged by the MQTT broker within 10 s")
        self.stats.hazards += 1

    def poll(self) -> None:
        """Write what is queued, read what has come: the radios have no threads of their own."""
        self._io.pump()

    @property
    def unread(self) -> int:
        """Advisories the radios have heard (read now) that `heard` has not returned yet."""
        self._io.pump(0.01)
        return len(self._heard)

    def flush(self, timeout_s: float = 10.0) -> None:
        """QoS 0 has no acknowledgement: wait until the clients' send buffers are empty."""
        deadline = time.monotonic() + timeout_s
        self._io.pump()
        while time.monotonic() < deadline and self._io.writing:
            self._io.pump(0.01)

    # ---- downlink -----------------------------------------------------------------------------
    def follow(self, fleet: Fleet) -> None:
        """Subscribe each connection to its vehicles' own advisory topics and to the broadcast
        topics of their regions, and only those; a vehicle's own connection goes when it leaves."""
        moved_at = getattr(fleet, "t", None)  # the simulated time: the road changes once a tick
        if moved_at is not None and moved_at == self._followed_at and not self._reset:
            return
        self._followed_at = moved_at
        live = fleet.active & (fleet.region >= 0)
        nums, regions = fleet.num[live].tolist(), fleet.region[live].tolist()
        if self.identities is not None:
            self._ensure(map(vehicle_id, nums))
        while self._reset:  # back after a loss: subscribed to nothing
            c = self._reset.pop()
            self._subscribed.pop(c, None)
            self._vehicles.pop(c, None)
        want_vehicles: dict[Conn, set[int]] = {c: set() for c in self._clients}
        want_regions: dict[Conn, set[int]] = {c: set() for c in self._clients}
        for num, region in zip(nums, regions, strict=True):
            c = self._conn(num)
            want_vehicles[c].add(num)
            want_regions[c].add(region)
        for c, client in list(self._clients.items()):
            if self.identities is not None and not want_vehicles[c] and self._vehicles.get(c):
                self._leave(c, client)  # a vehicle that was on the road and has left it
                continue
            self._follow_vehicles(c, client, want_vehicles[c])
            want, have = want_regions[c], self._subscribed.setdefault(c, set())
            if want == have:
                continue
            for r in sorted(want - have):
                self._changed(c, client.subscribe(self.topics.advisories(r), options=SubscribeOptions(qos=1)))
            gone = sorted(have - want)
            if gone:
                self._changed(c, client.unsubscribe([self.topics.advisories(r) for r in gone]))
            self.stats.handovers += len(gone)
            self._subscribed[c] = want
        self._io.pump()

    def _leave(self, c: Conn, client: mqtt.Client) -> None:
        self._io.drop(client)
        client.disconnect()  # written at the next pump, and then its socket is closed
        del self._clients[c]
        self._answered.discard(c)
        self._reset.discard(c)
        self._vehicles.pop(c, None)
        self._subscribed.pop(c, None)
        with self._lock:
            self._changing = {(i, mid) for i, mid in self._changing if i != c}

    def _follow_vehicles(self, i: Conn, client: mqtt.Client, want: set[int]) -> None:
        have = self._vehicles.get(i, set())
        new, gone = sorted(want - have), sorted(have - want)
        if new:
            topics = [(self.topics.vehicle_advisories(vehicle_id(n)), SubscribeOptions(qos=1)) for n in new]
            self._changed(i, client.subscribe(topics))
        if gone:
            self._changed(i, client.unsubscribe([self.topics.vehicle_advisories(vehicle_id(n)) for n in gone]))
        self._vehicles[i] = want

    def heard(self) -> list[bytes]:
        """The advisories heard since the last call, each once (their signatures: `signatures`): a
        region's broadcast reaches every connection with a vehicle there, as it reaches every vehicle
        on the road (`received` counts those copies: the downlink's real load)."""
        out: list[bytes] = []
        self.signatures, self.received_ms = [], []
        self._io.pump()
        while self._heard:
            value, traceparent, signature, at_ns = self._heard.popleft()
            self.stats.received += 1
            if value not in self._seen:
                self._seen[value] = None
                out.append(value)
                self.signatures.append(signature)
                self.received_ms.append(at_ns // 1_000_000)
                if traceparent is not None:
                    self.traced.append((traceparent, at_ns))
                if len(self._seen) > 100_000:
                    self._seen.popitem(last=False)
        return out

    def close(self) -> None:
        for c in self._clients.values():
            self._io.drop(c)
            c.disconnect()
        deadline = time.monotonic() + 2  # each DISCONNECT written, so the broker forgets them at once
        self._io.pump()
        while self._io.writing and time.monotonic() < deadline:
            self._io.pump(0.01)
        self._io.close()
        if self.identities is not None:
            self.identities[0].close()


class RadioListener(AdvisoryListener):
    """The fleet's advisories as heard over MQTT, applied as `AdvisoryListener` applies Kafka's."""

    def __init__(self, link: RadioLink, keep_history: bool = False, verifier: Verifier | None = None) -> None:
        self.stats = ListenerStats()  # no Kafka consumer
        self.verifier = verifier
        self.keep_history = keep_history
        self.hazard_triggers: set[int] = set()
        self.tracing = Tracing("corridor-fleet")  # the run's, when traced
        self.link = link

    def poll(self, fleet: Fleet, sim_start_ms: int, max_messages: int = 200_000) -> int:
        self.link.follow(fleet)
        heard = self.link.heard()
        # stamped when the radio read each (pumped between steps and sends), not when applied after the tick
        self.apply_values(heard, fleet, sim_start_ms, self.link.received_ms, signatures=self.link.signatures)
        traced, self.link.traced = self.link.traced, []
        for traceparent, at_ns in traced:  # the trace of a hazard report, ended at the vehicle
            self.tracing.received(VEHICLE_SPAN, [(TRACEPARENT, traceparent)], at_ns=at_ns)
        return len(heard)

    def close(self) -> None:
        """The link is closed by its owner."""


def _property(msg: mqtt.MQTTMessage, name: str) -> str | None:
    """An MQTT 5 user property the gateway sets on an advisory (its trace context, its signature),
    from the first eight, 128 characters at most."""
    props = getattr(msg, "properties", None)
    for key, value in (getattr(props, "UserProperty", None) or [])[:8]:
        if key == name and isinstance(value, str):
            return value[:128]
    return None
