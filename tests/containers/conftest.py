"""Kafka, etcd and a tower worker as containers of the project's own images, started through
testcontainers on one container network, each published on a free loopback port only.

The engine is a running Docker or Podman's API service (started here, stopped at the end). Without
either the tests are skipped, unless CORRIDOR_STRICT_TESTS=1 (as in CI) makes that a failure.
"""

from __future__ import annotations

import os
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka.admin import AdminClient
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from pipeline.containers.engine import ContainerEngine, find_engine
from pipeline.containers.images import build_images, image_ref
from pipeline.ports import free_ports
from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from pipeline.stack.kafka import new_cluster_id

LABEL = "org.corridor.test"
TESTCONTAINERS_VARS = ("DOCKER_HOST", "TESTCONTAINERS_RYUK_DISABLED", "TESTCONTAINERS_CONNECTION_MODE")


@pytest.fixture(scope="session")
def engine(settings: Settings, request: pytest.FixtureRequest) -> Iterator[ContainerEngine]:
    try:
        found = find_engine(settings)
    except StackError as exc:
        if os.environ.get("CORRIDOR_STRICT_TESTS") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    saved = {k: os.environ.get(k) for k in TESTCONTAINERS_VARS}
    os.environ.update({k: v for k, v in found.env.items() if k in TESTCONTAINERS_VARS})
    try:
        build_images(found, settings)
        yield found
    finally:
        found.remove_labelled(LABEL)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        found.stop()


def _report(request: pytest.FixtureRequest, container: DockerContainer, what: str) -> None:
    """Name each started container in the test output, so a run shows they were real."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    line = f"container {container.get_wrapped_container().short_id} started: {container.image} ({what})"
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


def _loopback(container: DockerContainer, port: int) -> int:
    """Publish `port` on a free 127.0.0.1 port (testcontainers alone would publish on every interface)."""
    host_port = free_ports(1)[0]
    container.ports[f"{port}/tcp"] = ("127.0.0.1", host_port)
    return host_port


def _wait(ready: Callable[[], bool], what: str, container: DockerContainer, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.3)
    logs = b"".join(container.get_logs()).decode(errors="replace")[-1500:]
    raise AssertionError(f"{what} was not ready within {timeout:.0f} s; its log ends:\n{logs}")


@dataclass(frozen=True, slots=True)
class Cluster:
    network: Network
    bootstrap: str  # from the host
    etcd: str  # from the host
    run: str


@pytest.fixture(scope="session")
def cluster(engine: ContainerEngine, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Kafka (KRaft, one node) and etcd, reachable as kafka:9092 and etcd:2379 on the network."""
    run = uuid.uuid4().hex[:8]
    with Network() as network:
        kafka = DockerContainer(image_ref("kafka")).with_network(network).with_network_aliases("kafka")
        kafka_port = _loopback(kafka, 9094)
        cluster_id = new_cluster_id()
        kafka.with_kwargs(labels={LABEL: run})
        for key, value in {
            "KAFKA_CLUSTER_ID": cluster_id,
            "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093,EXTERNAL://:9094",
            "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://kafka:9092,EXTERNAL://127.0.0.1:{kafka_port}",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
            "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "8",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        }.items():
            kafka.with_env(key, value)
        etcd = DockerContainer(image_ref("etcd")).with_network(network).with_network_aliases("etcd")
        etcd_port = _loopback(etcd, 2379)
        etcd.with_kwargs(labels={LABEL: run})
        etcd.with_command(
            "--name etcd --listen-client-urls http://0.0.0.0:2379 --advertise-client-urls http://etcd:2379 "
            "--listen-peer-urls http://0.0.0.0:2380 --initial-advertise-peer-urls http://etcd:2380 "
            "--initial-cluster etcd=http://etcd:2380"
        )
        try:
            kafka.start()
            _report(request, kafka, f"Kafka, clients on 127.0.0.1:{kafka_port}")
            etcd.start()
            _report(request, etcd, f"etcd on 127.0.0.1:{etcd_port}")
            bootstrap = f"127.0.0.1:{kafka_port}"
            _wait(lambda: _kafka_answers(bootstrap), "Kafka", kafka)
            _wait(lambda: _etcd_answers(etcd_port), "etcd", etcd)
            yield Cluster(network, bootstrap, f"127.0.0.1:{etcd_port}", run)
        finally:
            for c in (etcd, kafka):
                if c.get_wrapped_container() is not None:
                    c.stop()


def _kafka_answers(bootstrap: str) -> bool:
    try:
        md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=2)
    except Exception:
        return False
    return bool(md.brokers)


def _etcd_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return b'"health":"true"' in resp.read()
    except OSError:
        return False
