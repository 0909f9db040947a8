"""Every client corridor uses works against the real broker and the real etcd."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import etcd3
import pytest

from pipeline import admin
from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from tests.conftest import REPO
from tests.helpers import consume, corridor, produce
from towers.control_plane import close_client

pytestmark = pytest.mark.integration


def test_confluent_produce_then_consume(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    sent = [(f"region-{i % 3}".encode(), f"payload-{i}".encode()) for i in range(30)]
    produce(bootstrap, topic, sent)
    got = consume(bootstrap, topic, 30)
    assert sorted(got) == sorted(sent)


def test_a_group_started_at_the_end_has_those_offsets_committed(bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    produce(bootstrap, topic, [(f"k{i}".encode(), b"v") for i in range(20)])
    group = f"g-{uuid.uuid4().hex[:8]}"
    admin.start_group_at_end(bootstrap, group, [topic], 3)
    assert admin.committed_offsets(bootstrap, group, topic, 3) == admin.end_offsets(bootstrap, topic, 3)
    assert sum(admin.committed_offsets(bootstrap, group, topic, 3)) == 20


def test_a_refused_start_offset_is_an_error_not_a_group_without_offsets(
    bootstrap: str, new_topic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker refuses a commit per partition, in the result rather than by raising."""
    topic = new_topic(partitions=2)
    monkeypatch.setattr(admin, "end_offsets", lambda *_: [0, 0, 0])  # a partition the topic lacks
    with pytest.raises(StackError, match=rf"{topic}\[2\]: .*[Uu]nknown"):
        admin.start_group_at_end(bootstrap, f"g-{uuid.uuid4().hex[:8]}", [topic], 3, timeout=2)


def test_kafka_console_consumer_prints_a_confluent_message(bootstrap: str, new_topic, cli_env) -> None:
    topic = new_topic()
    produce(bootstrap, topic, [(b"k1", b"hello from confluent-kafka")])
    result = corridor(cli_env, "kafka", "console-consumer", "--topic", topic, "--from-beginning", "--max-messages",
                      "1", "--property", "print.key=true", timeout=90)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "k1\thello from confluent-kafka" in result.stdout


def _etcd(settings: Settings) -> etcd3.Etcd3Client:
    host, port = settings.etcd_hosts[0]
    return etcd3.client(host=host, port=port, timeout=5)


def test_etcd_put_get_and_watch(stack) -> None:
    client = _etcd(stack.settings)
    prefix = f"/test/{uuid.uuid4().hex[:8]}/"
    events: queue.Queue[tuple[str, bytes]] = queue.Queue()
    watch_id = client.add_watch_prefix_callback(
        prefix, lambda resp: [events.put((e.key.decode(), e.value)) for e in resp.events]
    )
    try:
        client.put(prefix + "tower-3", b"alive")
        value, _meta = client.get(prefix + "tower-3")
        assert value == b"alive"
        key, seen = events.get(timeout=10)
        assert (key, seen) == (prefix + "tower-3", b"alive")
    finally:
        client.cancel_watch(watch_id)
        close_client(client)


def test_etcd_lease_expiry_removes_the_key(stack) -> None:
    client = _etcd(stack.settings)
    key = f"/test/{uuid.uuid4().hex[:8]}/leased"
    lease = client.lease(ttl=2)
    client.put(key, b"x", lease=lease)
    assert client.get(key)[0] == b"x"
    deadline = time.monotonic() + 15
    while client.get(key)[0] is not None and time.monotonic() < deadline:
        time.sleep(0.25)
    assert client.get(key)[0] is None, "a key bound to an expired lease must disappear"
    close_client(client)


def _faust_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    faust = Path(sys.executable).with_name("faust")
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [str(faust), "-A", "tests.apps.counter", "worker", "-l", "warn", "--without-web"],
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_faust_table_recovers_from_its_changelog(bootstrap: str, new_topic, tmp_path: Path) -> None:
    """Counts kept in a changelog-backed table survive a worker restart (memory store: full replay),
    and every record waiting at the restart is counted: Faust's own flow control drops those its
    recovery fetched before it finished (1 to 22 of the 600 waiting, in 11 of 12 restarts; see
    `towers.flow_control`), and a partition whose record was dropped stops committing."""
    src, out = new_topic(partitions=2), new_topic(partitions=2)
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        COUNTER_BROKER=bootstrap,
        COUNTER_IN=src,
        COUNTER_OUT=out,
        COUNTER_APP_ID=f"counter-{uuid.uuid4().hex[:8]}",
        COUNTER_DATADIR=str(tmp_path / "data"),
    )
    log = tmp_path / "worker.log"
    worker = _faust_worker(env, log)
    try:
        produce(bootstrap, src, [(b"alpha", b"x")] * 3 + [(b"beta", b"x")] * 2)
        first = consume(bootstrap, out, 5, timeout=90)
        assert len(first) == 5, log.read_text()[-3000:]
        assert max(int(v) for k, v in first if k == b"alpha") == 3
    finally:
        _stop(worker)
    for restart in (1, 2):  # each restart drops some with Faust's flow control: three in four, measured
        produce(bootstrap, src, [(b"alpha", b"x")] * 300 + [(b"beta", b"x")] * 300)  # waiting for the restart
        worker = _faust_worker(env, log)
        try:
            after = consume(bootstrap, out, 5 + 600 * restart, timeout=120)
            assert len(after) == 5 + 600 * restart, log.read_text()[-3000:]
            latest = {k: int(v) for k, v in after}
            assert latest == {b"alpha": 3 + 300 * restart, b"beta": 2 + 300 * restart}, "counts continue"
        finally:
            _stop(worker)
