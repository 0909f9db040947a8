"""Fixtures shared by the suite: one real stack per session, unique topic names per test.

The stack is the embedded one (a real Kafka broker and a real etcd on free loopback ports, in a
temporary state directory), unless KAFKA_BOOTSTRAP_SERVERS and ETCD_ENDPOINTS point elsewhere.
"""

from __future__ import annotations

import gc
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from pipeline.admin import ensure_topics
from pipeline.ports import free_ports
from pipeline.shared.config import Ports, Settings
from pipeline.shared.topics import TopicSpec
from pipeline.stack import Stack

REPO = Path(__file__).resolve().parent.parent

# Property tests assert behaviour, not speed: with a broker and workers sharing two cores, an
# example can take longer than Hypothesis's 200 ms deadline without anything being wrong.
settings.register_profile("corridor", deadline=None)
settings.load_profile("corridor")


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = Settings.from_env()
    kafka, ctrl, etcd, peer, mqtt, registry = free_ports(6)
    return Settings(
        kafka_bootstrap=base.kafka_bootstrap,
        etcd_endpoints=base.etcd_endpoints,
        state_dir=tmp_path_factory.mktemp("stack"),
        cache_dir=base.cache_dir,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}",
        ports=Ports(kafka=kafka, kafka_controller=ctrl, etcd=etcd, etcd_peer=peer, mqtt=mqtt, registry=registry),
    )


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    """Started once for the session and stopped at its end (and with it, if pytest dies)."""
    with Stack(settings, attached=True) as running:
        yield running
        gc.collect()  # the clients the tests left go before their broker, or they log its absence


@pytest.fixture
def bootstrap(stack: Stack) -> str:
    return stack.settings.bootstrap_servers


@pytest.fixture
def new_topic(bootstrap: str) -> Callable[..., str]:
    """Create a topic whose name no other test uses."""

    def make(partitions: int = 1, name: str | None = None) -> str:
        topic = name or f"test.{uuid.uuid4().hex[:12]}"
        ensure_topics(bootstrap, [TopicSpec(topic, partitions)])
        return topic

    return make


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    """Environment for running `corridor` as a subprocess against the session's stack."""
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "ETCD_ENDPOINTS")}
    env.update(
        CORRIDOR_STATE_DIR=str(settings.state_dir),
        CORRIDOR_CACHE_DIR=str(settings.cache_dir),
        CORRIDOR_KAFKA_PORT=str(settings.ports.kafka),
        CORRIDOR_KAFKA_CONTROLLER_PORT=str(settings.ports.kafka_controller),
        CORRIDOR_ETCD_PORT=str(settings.ports.etcd),
        CORRIDOR_ETCD_PEER_PORT=str(settings.ports.etcd_peer),
        CORRIDOR_MQTT_PORT=str(settings.ports.mqtt),
        CORRIDOR_REGISTRY_PORT=str(settings.ports.registry),
    )
    if settings.kafka_external:
        env["KAFKA_BOOTSTRAP_SERVERS"] = settings.bootstrap_servers
    if settings.etcd_external:
        env["ETCD_ENDPOINTS"] = ",".join(settings.etcd_endpoints)
    return env


@pytest.fixture(scope="session")
def prometheus_installed() -> None:
    """Debian's Prometheus, which CI installs: skipped without it, but a failure in CI (strict)."""
    if shutil.which("prometheus") is None:
        why = "Prometheus's server is not installed: apt-get install prometheus"
        if os.environ.get("CORRIDOR_STRICT_TESTS") == "1":
            pytest.fail(why)
        pytest.skip(why)


#: well under 1,024, past which `select()` (paho's own loop, py4j's gateway) refuses a descriptor
MAX_OPEN_DESCRIPTORS = 600


@pytest.fixture(autouse=True)
def descriptors_returned() -> Iterator[None]:
    """A test that leaves descriptors open fails here, by name, before the suite's later MQTT and
    Spark tests fail far from the cause."""
    yield
    held = len(os.listdir("/proc/self/fd"))
    assert held <= MAX_OPEN_DESCRIPTORS, f"{held} descriptors open after this test: something it made was never closed"
