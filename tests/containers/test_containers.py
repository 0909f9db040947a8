"""The hazard → advisory scenario on containers: Kafka, etcd and a tower worker from the project's
images, joined on a testcontainers network; vehicles and the hazard report come from the host."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from testcontainers.core.container import DockerContainer

from pipeline.admin import ensure_topics
from pipeline.containers.images import image_ref
from pipeline.shared.crdt.hlc import pack
from pipeline.shared.hazards import hazard_record
from pipeline.shared.messages import ADVISORY, CODEC, HAZARD, TELEMETRY
from pipeline.shared.radio_topics import RadioTopics
from pipeline.shared.topics import Topics, TopicSpec
from pipeline.stack.mqtt import mqtt_answers
from pipeline.workers import fetch_page
from tests.containers.conftest import LABEL, Cluster, _loopback, _report, _wait
from tests.helpers import produce, read_messages
from tests.scenarios import CORRIDOR, assert_advice_for_hazard, drive_past_a_hazard
from tests.towers.test_engine import upd

# Building the images (when the suite runs before `make images`) counts against a test's time.
pytestmark = [pytest.mark.containers, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def tower(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[tuple[DockerContainer, int, Topics]]:
    """One tower worker container (the corridor image's default command) serving all nine regions."""
    topics = Topics(regions=len(CORRIDOR.regions), prefix=f"ct{uuid.uuid4().hex[:6]}")
    ensure_topics(cluster.bootstrap, topics.specs())
    worker = DockerContainer(image_ref("corridor")).with_network(cluster.network).with_network_aliases("tower-0")
    web = _loopback(worker, 6066)
    worker.with_kwargs(labels={LABEL: cluster.run})
    for key, value in {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "ETCD_ENDPOINTS": "etcd:2379",
        "CORRIDOR_TOPIC_PREFIX": topics.prefix,
        "CORRIDOR_TOWER_OFFSET_RESET": "earliest",
    }.items():
        worker.with_env(key, value)
    worker.start()
    _report(request, worker, f"tower worker, web on 127.0.0.1:{web}")
    try:
        # /corridor/ready/ (the Kubernetes readiness probe) answers 503 until the tables are restored.
        _wait(lambda: (p := fetch_page(web, "ready")) is not None and len(p["regions"]) == 9, "tower", worker)
        yield worker, web, topics
    finally:
        worker.stop()


def test_kafka_container_serves_clients_on_its_loopback_listener(cluster: Cluster) -> None:
    topic = f"smoke.{uuid.uuid4().hex[:8]}"
    ensure_topics(cluster.bootstrap, [TopicSpec(topic, 3)])
    produce(cluster.bootstrap, topic, [(b"k", b"hello from the host")])
    assert [m.value() for m in read_messages(cluster.bootstrap, topic, 1)] == [b"hello from the host"]


def test_a_hazard_slows_vehicles_through_the_tower_container(cluster: Cluster, tower) -> None:
    worker, web, topics = tower
    hid = f"hz-{uuid.uuid4().hex[:6]}"
    about, sent_ms = drive_past_a_hazard(cluster.bootstrap, topics, hid)
    log = b"".join(worker.get_logs()).decode(errors="replace")[-2000:]
    assert_advice_for_hazard(about, sent_ms, fetch_page(web), hid, log)


def test_the_tower_container_registers_in_the_etcd_container(tower) -> None:
    _, web, _ = tower
    page = fetch_page(web)
    assert page is not None and page["etcd"] is not None
    assert page["etcd"]["healthy"], page["etcd"]
    assert page["etcd"]["towers_alive"], "the worker's lease-backed registration is visible"


def test_a_hazard_reported_over_mqtt_is_answered_over_mqtt_through_the_gateway_container(
    cluster: Cluster, tower, request: pytest.FixtureRequest
) -> None:
    """The radio link on containers: the mosquitto image, a gateway from the corridor image, the tower
    container; the vehicle (this test) only talks MQTT."""
    _, _, topics = tower
    broker = DockerContainer(image_ref("mosquitto")).with_network(cluster.network).with_network_aliases("mqtt")
    port = _loopback(broker, 1883)
    broker.with_kwargs(labels={LABEL: cluster.run})
    gateway = DockerContainer(image_ref("corridor")).with_network(cluster.network)
    gateway.with_kwargs(labels={LABEL: cluster.run})
    gateway.with_command("corridor gateway --regions all")
    for key, value in {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "MQTT_URL": "mqtt://mqtt:1883",
                       "CORRIDOR_TOPIC_PREFIX": topics.prefix}.items():  # fmt: skip
        gateway.with_env(key, value)
    broker.start()
    _report(request, broker, f"MQTT broker on 127.0.0.1:{port}")
    radio = RadioTopics(len(CORRIDOR.regions))
    heard: list[bytes] = []
    vehicle = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    vehicle.on_message = lambda _c, _u, m: heard.append(m.payload)
    try:
        _wait(lambda: mqtt_answers("127.0.0.1", port), "mosquitto", broker)
        gateway.start()
        _report(request, gateway, "tower gateway")
        vehicle.connect("127.0.0.1", port)
        vehicle.subscribe(radio.vehicle_advisories("veh-0000002"), qos=1)  # the advisory is addressed to it
        vehicle.loop_start()
        hid = f"hz-{uuid.uuid4().hex[:6]}"

        def advised() -> bool:
            now = int(time.time() * 1000)
            report = hazard_record(40.0, "ANIMAL", "NORTHBOUND", 6, now, 600, hid, "veh-0000001")
            # again until the gateway is up
            vehicle.publish(radio.hazards(4, "veh-0000001"), CODEC.encode(HAZARD, report), qos=1)
            update = upd("veh-0000002", 38.5, event_time=now, hlc=pack(now, 0))
            vehicle.publish(radio.telemetry(4, "veh-0000002"), CODEC.encode(TELEMETRY, update), qos=0)
            return any(CODEC.decode(v, ADVISORY)["target_vehicle"] == "veh-0000002" for v in heard)

        _wait(advised, "an advisory over MQTT", gateway, timeout=120)
        (advice, *_) = [a for v in heard if (a := CODEC.decode(v, ADVISORY))["target_vehicle"] == "veh-0000002"]
        assert advice["action"] in ("SLOW_DOWN", "STOP") and advice["hazard_id"] == hid
    finally:
        vehicle.disconnect()
        vehicle.loop_stop()
        gateway.stop()
        broker.stop()
