"""The hazard → advisory scenario on containers: Kafka, etcd and a tower worker from the project's
images, joined on a testcontainers network; vehicles and the hazard report come from the host."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from testcontainers.core.container import DockerContainer

from pipeline.admin import ensure_topics
from pipeline.containers.images import image_ref
from pipeline.topics import Topics, TopicSpec
from pipeline.workers import fetch_page
from tests.containers.conftest import LABEL, Cluster, _loopback, _report, _wait
from tests.helpers import produce, read_messages
from tests.scenarios import CORRIDOR, assert_advice_for_hazard, drive_past_a_hazard

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
