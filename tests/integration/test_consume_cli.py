"""`corridor consume`: a dead letter's reason shown with its record; a broker that stops answering
mid-read is one line, not a wait without end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.ports import free_ports
from pipeline.shared.config import Ports, Settings
from pipeline.shared.messages import ADVISORY, CODEC
from pipeline.stack import Stack

pytestmark = pytest.mark.integration

RECORDS = 400_000  # more than the consumer fetches ahead (100,000 a partition), so the read outlasts it


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A broker of its own: the test pauses it."""
    base = Settings.from_env()
    settings = Settings(state_dir=tmp_path_factory.mktemp("own"), cache_dir=base.cache_dir,
                        topic_prefix=f"c{uuid.uuid4().hex[:6]}", ports=Ports(*free_ports(5)))  # fmt: skip
    with Stack(settings, attached=True) as stack:
        yield stack


def _fill(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000})
    for _ in range(RECORDS):
        try:
            producer.produce(topic, b"not avro, printed as undecodable")
        except BufferError:
            producer.flush(30)
            producer.produce(topic, b"not avro, printed as undecodable")
    assert producer.flush(30) == 0


def _env(s: Settings) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "ETCD_ENDPOINTS")},
            "CORRIDOR_TOPIC_PREFIX": s.topic_prefix,
            "CORRIDOR_STATE_DIR": str(s.state_dir), "CORRIDOR_KAFKA_PORT": str(s.ports.kafka),
            "CORRIDOR_KAFKA_CONTROLLER_PORT": str(s.ports.kafka_controller), "CORRIDOR_ETCD_PORT": str(s.ports.etcd),
            "CORRIDOR_ETCD_PEER_PORT": str(s.ports.etcd_peer)}  # fmt: skip


def test_a_dead_letters_reason_is_printed_with_it_decodable_or_not(own: Stack) -> None:
    s = own.settings
    topic = f"{s.topic_prefix}.dead-letter"
    admin = AdminClient({"bootstrap.servers": s.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    advisory = {"advisory_id": "a1", "region_id": 0, "tower": "tower-00", "target_vehicle": None, "direction": None,
                "action": "SLOW_DOWN", "target_speed_mps": 12.0, "reason": "test", "hazard_id": None,
                "issued_at": 1, "valid_until": 2, "trigger_event_time": 1, "trigger_hlc": 1 << 16}  # fmt: skip
    producer = Producer({"bootstrap.servers": s.bootstrap_servers})
    producer.produce(topic, CODEC.encode(ADVISORY, advisory), headers=[("reason", b"wrong-type: an advisory")])
    producer.produce(topic, b"\x00junk", headers=[("reason", b"undecodable: junk"), ("source-offset", b"7")])
    assert producer.flush(30) == 0
    read = subprocess.run([sys.executable, "-m", "pipeline", "consume", "dead-letter", "--from-beginning"],
                          env=_env(s), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert read.returncode == 0, read.stderr
    first, second = (json.loads(line) for line in read.stdout.splitlines())
    assert first["advisory_id"] == "a1" and first["_headers"] == {"reason": "wrong-type: an advisory"}
    assert "_undecodable" in second and second["_headers"] == {"reason": "undecodable: junk", "source-offset": "7"}


def test_reading_to_the_end_from_a_broker_that_stops_answering_is_one_line(own: Stack, tmp_path: Path) -> None:
    s = own.settings
    topic = f"{s.topic_prefix}.paused"
    _fill(s.bootstrap_servers, topic)
    env = _env(s)
    out = tmp_path / "out.jsonl"
    with open(out, "wb") as sink:
        reader = subprocess.Popen([sys.executable, "-m", "pipeline", "consume", topic, "--from-beginning"], env=env,
                                  stdout=sink, stderr=subprocess.PIPE, text=True)  # fmt: skip
    broker = own.kafka.process.running_pid()
    assert broker is not None
    try:
        deadline = time.monotonic() + 60
        while out.stat().st_size == 0 and reader.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(broker, signal.SIGSTOP)  # the broker paused mid-read: its connections stay open, silent
        _, err = reader.communicate(timeout=60)
    finally:
        os.kill(broker, signal.SIGCONT)
        if reader.poll() is None:
            reader.kill()
    printed = out.read_bytes().count(b"\n")
    assert 0 < printed < RECORDS, printed
    assert reader.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("corridor: error: Kafka at ") and f"sent nothing of {topic} for 15 s" in lines[0], err
    assert f"({printed} lines printed)" in lines[0], err
