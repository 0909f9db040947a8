"""The radio link on a real MQTT broker (Mosquitto): vehicles → gateway → towers → gateway → vehicles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import Producer
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pipeline.admin import ensure_topics
from pipeline.ports import free_ports
from pipeline.shared.advisory_signing import SIGNATURE, Signer, Verifier, new_signing_key, public_pem, signature_text
from pipeline.shared.config import Settings
from pipeline.shared.corridor import load_corridor
from pipeline.shared.errors import StackError
from pipeline.shared.messages import ADVISORY, CODEC, TELEMETRY
from pipeline.shared.mqtt_client import MqttLoop, mqtt_client
from pipeline.shared.radio_access import MqttAccess
from pipeline.shared.radio_topics import RadioTopics
from pipeline.simulation.runner import run_scenario
from pipeline.simulation.scenario import parse_scenario
from pipeline.stack.kafka import KafkaBroker
from pipeline.stack.mqtt import MAX_INFLIGHT, MqttBroker, mosquitto_binary
from producers.encoding import vehicle_id
from producers.fleet import Fleet, FleetConfig
from producers.radio import RadioLink, RadioListener
from tests.helpers import assert_one_line_error, corridor, eventually, read_messages, skip_or_fail
from tests.integration.test_simulation import SHORT
from tests.towers.test_engine import upd
from towers.gateway.bridge import Gateway

pytestmark = pytest.mark.integration
REGIONS = 9


def _fresh(update: dict) -> dict:
    """An update stamped now: the gateway refuses event times and stamps far from its clock."""
    now = int(time.time() * 1000)
    return update | {"event_time": now, "hlc": now << 16}


def _need_mosquitto() -> None:
    try:
        mosquitto_binary()
    except StackError as exc:
        skip_or_fail(str(exc))


@pytest.fixture
def radio(stack, tmp_path: Path) -> Iterator[tuple[Settings, MqttBroker]]:
    """A broker of this test's own (on the session's MQTT port) and topics of its own."""
    _need_mosquitto()
    settings = replace(stack.settings, topic_prefix=f"r{uuid.uuid4().hex[:8]}", state_dir=tmp_path / "state")
    ensure_topics(settings.bootstrap_servers, settings.topics(REGIONS).specs())
    broker = MqttBroker(settings)
    broker.start(attached=True)
    yield settings, broker
    broker.stop()


@pytest.fixture
def gateway(radio) -> Iterator[Gateway]:
    settings, _ = radio
    gw = Gateway(settings, list(range(REGIONS)), REGIONS, group=f"g{uuid.uuid4().hex[:6]}", batch_s=0.005)
    thread = threading.Thread(target=gw.run, daemon=True)
    thread.start()
    eventually(lambda: gw.stats.mqtt_subscribed, "the gateway's subscriptions to be granted")
    yield gw
    gw.stop()
    thread.join(20)


def _publisher(settings: Settings) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect(*settings.mqtt_address)
    c.loop_start()
    return c


def test_the_route_over_mqtt_advises_before_the_hazard_and_reports_the_radio_hop(
    stack, prometheus_installed, tmp_path: Path
) -> None:
    _need_mosquitto()
    short = {**SHORT, "vehicles": 150, "radio": "mqtt"}
    seen: list[dict[str, float | None]] = []

    def ask(snap: dict) -> None:  # the gateway as Prometheus scrapes it, mid-run
        if snap["fleet"].t >= 60 and not seen:
            prom = snap["prometheus"]
            seen.append({"up": prom.value('up{job="corridor-gateways"}'),
                         "subscribed": prom.value("corridor_gateway_mqtt_subscribed"),
                         "received": prom.value("sum(corridor_gateway_received_total)"),
                         "published": prom.value("sum(corridor_fleet_radio_published_total)")})  # fmt: skip

    s = run_scenario(parse_scenario(short, "e2e-radio"), stack.settings, tmp_path / "report", on_tick=ask,
                     prometheus=True, traces=True).summary  # fmt: skip
    (mid,) = seen
    assert mid["up"] == 1 and mid["subscribed"] == 1, mid
    assert mid["published"] and mid["received"] and mid["received"] > 0.9 * mid["published"], mid
    # the hazard reports traced over the radio both ways: MQTT 5 user properties, Kafka headers between
    hops = s["traces"]["hops_ms"]
    assert s["traces"]["reports"] == 2, s["traces"]
    assert hops["report → vehicle"]["n"] == s["latency_ms"]["hazard"]["n"] > 0, s["traces"]
    deer = s["hazards"]["deer"]
    assert deer["advisories"] > 0 and deer["actions"]["SLOW_DOWN"] > 0, s
    r = s["radio"]
    assert r["updates_published"] == 150 * 150 and r["updates_heard_by_gateway"] > 0.99 * r["updates_published"], r
    assert r["hazards_published_qos1"] == 2 and r["gateway_hazards"] == 2, "the deer and its clearing, QoS 1"
    assert r["gateway_dead_letters"] == {} and s["run"]["dead_letters"] == 0
    assert r["advisory_copies_heard"] >= s["run"]["advisories_received"] > 0 and r["handovers"] > 0, r
    assert 0 < r["uplink_ms"]["p50"] <= r["uplink_ms"]["p99"] < 1000, r
    mean = r["advisory_mean_ms"]  # the uplink and the gateway (received → in a frame) inside the whole
    assert mean["uplink"] > 0 and 0 <= mean["gateway"] < 50 and mean["uplink"] + mean["gateway"] < mean["end_to_end"], r
    assert s["latency_ms"]["hazard"]["n"] > 0 and s["run"]["stale_advisories"] == 0


def test_bad_payloads_and_wrong_region_topics_are_dead_letters_with_reasons(radio, gateway) -> None:
    settings, _ = radio
    topics = RadioTopics(REGIONS)
    good = CODEC.encode(TELEMETRY, _fresh(upd("veh-0000001", 38.0)))  # region 4
    pub = _publisher(settings)
    try:
        me = "veh-0000001"
        for topic, payload in ((topics.telemetry(5, me), good), (topics.telemetry(4, me), b"\xc3\x01garbage"),
                               (topics.hazards(4, me), b"not a hazard"), (topics.telemetry(4, "veh-0000002"), good),
                               (topics.telemetry(4, me), good)):  # fmt: skip
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        pub.disconnect()
        pub.loop_stop()
    dead = read_messages(settings.bootstrap_servers, settings.topics(REGIONS).dead_letter, 4)
    reasons = sorted(dict(m.headers())["reason"].decode().split(":", 1)[0] for m in dead)
    assert reasons == ["impersonation", "undecodable", "undecodable", "wrong-region"], reasons
    assert all(dict(m.headers())["source-topic"].startswith(b"mqtt:corridor/v2/region/") for m in dead)
    eventually(lambda: gateway.stats.updates_forwarded >= 1, "the good update to be forwarded")
    (frame,) = [m for m in read_messages(settings.bootstrap_servers, settings.topics(REGIONS).telemetry, 20, 5)
                if m.partition() == 4 and len(m.value()) > 40]  # fmt: skip
    assert CODEC.decode(frame.value())["updates"][0]["vehicle_id"] == "veh-0000001"


def test_the_gateway_survives_a_broker_restart_and_counts_it(radio, gateway) -> None:
    settings, broker = radio
    broker.stop()
    eventually(lambda: gateway.stats.mqtt_disconnects >= 1, "the gateway to notice")
    broker.start(attached=True)
    eventually(lambda: gateway.stats.mqtt_subscribed, "the gateway to reconnect and subscribe again")
    _heard_by(gateway, settings, "the updates sent after the restart")


def _heard_by(gateway: Gateway, settings: Settings, what: str) -> None:
    """Five updates sent by a fresh radio link must reach the gateway."""
    link = RadioLink(settings.mqtt(), RadioTopics(REGIONS), connections=2)
    try:
        link.send("", 4, b"4", [CODEC.encode(TELEMETRY, _fresh(upd(f"veh-000000{i}", 38.0))) for i in range(5)])
        link.flush()
        eventually(lambda: gateway.stats.received >= 5, what)
    finally:
        link.close()


def test_a_gateway_whose_broker_died_with_advisories_in_flight_subscribes_to_the_next(radio, gateway) -> None:
    """The broker frozen (so it acknowledges nothing) while the gateway sends more advisories than
    its window holds, then killed, and a new one started: the gateway must subscribe to the new
    broker and hear the fleet again, the advisories lost in flight counted. gmqtt kept the lost
    messages' packet ids, and a gateway on a Kubernetes node whose broker's node was lost stayed
    connected and deaf for good (OverflowError on its new subscription)."""
    settings, broker = radio
    pid = broker.process.running_pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(MAX_INFLIGHT + 200):
            gateway.session.publish(f"corridor/test/{i}", b"an advisory", 1, None)
        eventually(lambda: gateway.session.waiting > 0, "the broker's window to fill")
    finally:
        os.kill(pid, signal.SIGKILL)  # a stopped process dies of it too
    eventually(lambda: gateway.stats.mqtt_disconnects >= 1, "the gateway to notice")
    broker.stop()  # its pid file
    broker.start(attached=True)
    eventually(lambda: gateway.stats.mqtt_subscribed, "the gateway to subscribe to the new broker")
    _heard_by(gateway, settings, "the updates sent to the new broker")
    assert gateway.session.dropped >= MAX_INFLIGHT - 1, "what the old broker took with it is counted"


def _advisory(aid: str, region: int, target: str | None) -> bytes:
    return CODEC.encode(ADVISORY, {
        "advisory_id": aid, "region_id": region, "tower": f"tower-{region}", "target_vehicle": target,
        "direction": None, "action": "SLOW_DOWN", "target_speed_mps": 20.0, "reason": "test", "hazard_id": None,
        "issued_at": 0, "valid_until": 0, "trigger_event_time": 0, "trigger_hlc": 0})  # fmt: skip


def test_an_addressed_advisory_reaches_its_vehicle_alone_and_a_broadcast_its_region(radio, gateway) -> None:
    settings, _ = radio
    link = RadioLink(settings.mqtt(), RadioTopics(REGIONS), connections=2)
    fleet = SimpleNamespace(active=np.array([True, True]), num=np.array([7, 8]), region=np.array([2, 5]))
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    topic = settings.topics(REGIONS).advisories
    heard: list[str] = []

    def send_until_heard(value: bytes, region: int) -> None:
        deadline = time.monotonic() + 20  # the gateway reads Kafka from the end: it may not be there yet
        while not heard and time.monotonic() < deadline:
            producer.produce(topic, value, b"", region)
            producer.flush(5)
            time.sleep(0.5)
            heard.extend(CODEC.decode(v, ADVISORY)["advisory_id"] for v in link.heard())

    try:
        link.follow(fleet)  # type: ignore[arg-type]  # a stand-in with the three arrays follow() reads
        eventually(lambda: link.listening, "the radios' subscriptions to be granted")
        send_until_heard(_advisory("for-7", 2, "veh-0000007"), 2)
        assert set(heard) == {"for-7"}
        before = gateway.stats.advisories_forwarded
        for value in (_advisory("for-9", 2, "veh-0000009"), _advisory("all-2", 2, None),
                      _advisory("all-4", 4, None)):  # fmt: skip
            producer.produce(topic, value, b"", CODEC.decode(value, ADVISORY)["region_id"])
        producer.flush(5)
        eventually(lambda: gateway.stats.advisories_forwarded >= before + 3, "the gateway to forward them")
        eventually(lambda: link.unread, "the broadcast")
        time.sleep(0.5)
        assert [CODEC.decode(v, ADVISORY)["advisory_id"] for v in link.heard()] == ["all-2"], (
            "vehicle 9's advisory and region 4's broadcast are not for this fleet"
        )
    finally:
        link.close()


def test_the_gateway_rides_out_kafka_going_away_and_forwards_what_came_meanwhile(radio, tmp_path: Path) -> None:
    """A Kafka of this test's own, SIGKILLed under the gateway and started again: the gateway does
    not exit, counts the outage, and what vehicles sent meanwhile reaches the topic once it is back."""
    settings, _ = radio
    kport, cport, eport, pport, _ = free_ports(5)
    own = replace(
        settings,
        kafka_bootstrap=(),
        state_dir=tmp_path / "own-kafka",
        ports=replace(settings.ports, kafka=kport, kafka_controller=cport, etcd=eport, etcd_peer=pport),
    )
    kafka = KafkaBroker(own)
    kafka.start(attached=True)
    try:
        ensure_topics(own.bootstrap_servers, own.topics(REGIONS).specs())
        gw = Gateway(own, list(range(REGIONS)), REGIONS, group=f"g{uuid.uuid4().hex[:6]}", batch_s=0.005)
        thread = threading.Thread(target=gw.run, daemon=True)
        thread.start()
        link = RadioLink(settings.mqtt(), RadioTopics(REGIONS), connections=2)
        try:
            eventually(lambda: gw.stats.mqtt_subscribed, "the gateway's subscriptions to be granted")

            def send(first: int) -> None:
                updates = [CODEC.encode(TELEMETRY, _fresh(upd(f"veh-{i:07d}", 38.0))) for i in range(first, first + 5)]
                link.send("", 4, b"4", updates)
                link.flush()

            send(0)
            eventually(lambda: gw.stats.updates_forwarded >= 5, "the first updates")
            os.kill(kafka.process.running_pid() or 0, signal.SIGKILL)
            send(10)  # while Kafka is away
            eventually(lambda: gw.stats.kafka_errors >= 1, "the gateway to notice Kafka gone")
            kafka.start(attached=True)
            send(20)
            ids: set[str] = set()
            deadline = time.monotonic() + 60
            while len(ids) < 15 and time.monotonic() < deadline:
                frames = read_messages(own.bootstrap_servers, own.topics(REGIONS).telemetry, 1_000, 3)
                ids = {u["vehicle_id"] for m in frames for u in CODEC.decode(m.value())["updates"]}
            assert ids == {f"veh-{i:07d}" for k in (0, 10, 20) for i in range(k, k + 5)}
            assert thread.is_alive() and gw.stats.undelivered == 0, gw.stats
        finally:
            link.close()
            gw.stop()
            thread.join(20)
    finally:
        kafka.stop()


def test_a_vehicle_crossing_into_the_next_region_moves_its_advisory_subscription(radio) -> None:
    settings, _ = radio
    topics = RadioTopics(REGIONS)
    link = RadioLink(settings.mqtt(), topics, connections=1)
    pub = _publisher(settings)
    fleet = SimpleNamespace(active=np.array([True]), num=np.array([7]), region=np.array([3]))
    try:
        link.follow(fleet)  # type: ignore[arg-type]  # a stand-in with the three arrays follow() reads
        eventually(lambda: link.listening, "the radio's subscription to be granted")
        pub.publish(topics.advisories(3), b"three", qos=1).wait_for_publish(5)
        eventually(lambda: link.unread, "the advisory of its region")
        assert link.heard() == [b"three"]
        fleet.region = np.array([4])
        link.follow(fleet)  # type: ignore[arg-type]  # a stand-in with the three arrays follow() reads
        eventually(lambda: link.listening, "the handover's subscribe and unsubscribe to be acknowledged")
        pub.publish(topics.advisories(3), b"three again", qos=1).wait_for_publish(5)
        pub.publish(topics.advisories(4), b"four", qos=1).wait_for_publish(5)
        eventually(lambda: link.unread, "the advisory of its new region")
        time.sleep(0.3)
        assert link.heard() == [b"four"], "no longer listening to the region it left"
        assert link.stats.handovers == 1
    finally:
        pub.disconnect()
        pub.loop_stop()
        link.close()


@pytest.mark.parametrize("kind", ["telemetry", "advisories"])
def test_corridor_consume_reads_a_radio_topic_decoded(radio, cli_env, kind: str) -> None:
    settings, _ = radio
    topics = RadioTopics(REGIONS)
    if kind == "telemetry":
        topic, record = topics.telemetry(4, "veh-0000042"), CODEC.encode(TELEMETRY, _fresh(upd("veh-0000042", 38.0)))
        args, field = [], "vehicle_id"
    else:  # one addressed to a vehicle is on that vehicle's topic
        topic, record = topics.vehicle_advisories("veh-0000042"), _advisory("a-42", 4, "veh-0000042")
        args, field = ["--vehicle", "veh-0000042"], "target_vehicle"
    result: list[subprocess.CompletedProcess[str]] = []
    reader = threading.Thread(target=lambda: result.append(
        corridor(cli_env, "consume", "--mqtt", kind, *args, "--max-records", "1", timeout=60)))  # fmt: skip
    reader.start()
    pub = _publisher(settings)
    try:
        while reader.is_alive():  # until it has subscribed and read one
            pub.publish(topic, record, qos=0)
            reader.join(0.3)
    finally:
        pub.disconnect()
        pub.loop_stop()
    (done,) = result
    line = json.loads(done.stdout.strip().splitlines()[0])
    assert done.returncode == 0 and line["_topic"] == topic, done.stderr
    assert line[field] == "veh-0000042" and line["region_id"] == 4


def test_a_gateway_without_a_broker_is_a_one_line_error(cli_env) -> None:
    (port,) = free_ports(1)
    assert_one_line_error(corridor({**cli_env, "MQTT_URL": f"mqtt://127.0.0.1:{port}"}, "gateway"), "no MQTT broker")
    assert_one_line_error(corridor(cli_env, "gateway", "--regions", "3-12"), "regions")


def test_over_the_radio_a_vehicle_obeys_what_a_tower_signed_and_counts_the_rest(radio, gateway) -> None:
    """A signed advisory through Kafka and the gateway is believed; the same advisory unsigned, or
    signed with another key, published straight to the vehicle's topic by a stranger, is not."""

    settings, _ = radio
    key, other = new_signing_key(), new_signing_key()
    now = int(time.time() * 1000)
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=3, seed=1), start_ms=now)
    link = RadioLink(settings.mqtt(), RadioTopics(REGIONS), connections=1)
    listener = RadioListener(link, verifier=Verifier([public_pem(key)]))
    i = int(np.flatnonzero(fleet.active)[0])
    target, region = vehicle_id(int(fleet.num[i])), int(fleet.region[i])

    def advice(aid: str) -> bytes:
        return CODEC.encode(ADVISORY, {
            "advisory_id": aid, "region_id": region, "tower": f"tower-{region}", "target_vehicle": target,
            "direction": None, "action": "SLOW_DOWN", "target_speed_mps": 20.0, "reason": "test", "hazard_id": None,
            "issued_at": now, "valid_until": now + 10_000, "trigger_event_time": now,
            "trigger_hlc": now << 16})  # fmt: skip

    pub = _publisher(settings)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    try:
        listener.poll(fleet, now)  # follows the fleet's vehicles
        eventually(lambda: link.listening, "the radios' subscriptions to be granted")
        for aid, signature in (("unsigned", None), ("another key", Signer(other).sign(advice("another key")))):
            props = None
            if signature is not None:
                props = Properties(PacketTypes.PUBLISH)
                props.UserProperty = [(SIGNATURE, signature_text(signature))]
            pub.publish(RadioTopics(REGIONS).vehicle_advisories(target), advice(aid), qos=1,
                        properties=props).wait_for_publish(5)  # fmt: skip
        deadline = time.monotonic() + 20  # the gateway reads Kafka from the end: it may not be there yet
        while listener.stats.received == 0 and time.monotonic() < deadline:
            signed = advice(f"signed-{time.monotonic()}")
            producer.produce(settings.topics(REGIONS).advisories, signed, b"", region,
                             headers=[(SIGNATURE, Signer(key).sign(signed))])  # fmt: skip
            producer.flush(5)
            time.sleep(0.5)
            listener.poll(fleet, now)
        assert listener.stats.received >= 1 and listener.stats.forged == 2, listener.stats
    finally:
        pub.disconnect()
        pub.loop_stop()
        link.close()


def test_an_mqtt_loop_serves_a_client_numbered_past_1024_and_dials_again_after_the_broker_restarts(radio) -> None:
    """paho's own loop waits with select(), which refuses such a descriptor: its thread dies, the
    client goes deaf. A fleet's process, or a suite's, holds that many."""
    settings, broker = radio
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    topic = f"corridor-test/{uuid.uuid4().hex[:8]}"
    heard: list[bytes] = []
    client = mqtt_client(MqttAccess(*settings.mqtt_address), f"loop-{uuid.uuid4().hex[:6]}")
    client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(topic, qos=1)
    client.on_message = lambda _c, _u, m: heard.append(m.payload)
    loop = MqttLoop(client)
    try:
        client.connect(*settings.mqtt_address)
        assert client.socket().fileno() > 1024
        loop.start()

        def hears(payload: bytes) -> bool:
            client.publish(topic, payload, qos=1)
            return payload in heard

        eventually(lambda: hears(b"first"), "its own message back through the broker", interval=0.2)
        broker.stop()
        broker.start(attached=True)
        eventually(lambda: hears(b"again"), "its message after the broker came back", interval=0.2)
    finally:
        client.disconnect()
        loop.stop()
        for fd in held:
            os.close(fd)
    assert not loop._thread.is_alive()
