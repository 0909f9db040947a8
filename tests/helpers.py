"""Small helpers for tests that talk to the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import NoReturn

import pytest
from confluent_kafka import Consumer, Message, Producer


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | str | None, bytes | str]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    errors: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
    assert producer.flush(30) == 0, "records still queued after 30 s"
    assert not errors, errors


def read_messages(bootstrap: str, topic: str, n: int, timeout: float = 30.0) -> list[Message]:
    """The first `n` messages of `topic` from the beginning (fewer if `timeout` passes first)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            out += [m for m in consumer.consume(num_messages=max(1, n - len(out)), timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    return out


def consume(bootstrap: str, topic: str, n: int, timeout: float = 30.0) -> list[tuple[bytes | None, bytes]]:
    """The first `n` records of `topic` as (key, value)."""
    return [(m.key(), m.value()) for m in read_messages(bootstrap, topic, n, timeout)]


def corridor(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the `corridor` command as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("corridor: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def eventually(check: Callable[[], object], what: str, timeout: float = 20.0, interval: float = 0.05) -> None:
    """Wait until `check()` is true; fail naming `what` after `timeout` s (the tests' one way to wait)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(interval)


def scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A /metrics page as Prometheus parses it: (sample name, sorted labels) → value."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def skip_or_fail(why: str) -> NoReturn:
    """A part the test needs is missing: skipped with `why`, but a failure where CI runs (strict)."""
    if os.environ.get("CORRIDOR_STRICT_TESTS") == "1":
        pytest.fail(why)
    pytest.skip(why)
