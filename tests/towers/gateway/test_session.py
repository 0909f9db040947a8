"""The gateway's MQTT session holds descriptors only while it runs.

A process past 1,024 open descriptors breaks every library that still waits with `select()` (paho's
own loop, py4j): a session that kept its event loop's poller and wake-up pipe after it ended, or
before it began, would bring that about in any process that makes gateways one after another.
"""

from __future__ import annotations

import os

import pytest

from pipeline.ports import free_ports
from pipeline.shared.errors import StackError
from pipeline.shared.radio_access import MqttAccess
from tests.hostile.test_gateway import gateway
from towers.gateway.radio_session import RadioSession


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _session(port: int) -> RadioSession:
    def nothing(*_args: object) -> None:
        return None

    return RadioSession(MqttAccess("127.0.0.1", port), "test", nothing, nothing, nothing, nothing)


def test_gateways_built_and_dropped_hold_no_descriptors() -> None:
    gateway()  # the first one may load what later ones share
    before = _open_descriptors()
    for _ in range(20):
        gateway()
    assert _open_descriptors() == before


def test_a_session_that_found_no_broker_leaves_nothing_open_and_counts_a_late_advisory() -> None:
    (port,) = free_ports(1)
    before = 0
    for attempt in range(6):
        session = _session(port)
        with pytest.raises(StackError, match="no MQTT broker at 127"):
            session.start()
        session.stop()  # a second stop does nothing
        session.publish("corridor/x", b"an advisory", 1, None)
        assert session.dropped == 1, "published after its end: counted, never silently lost"
        if attempt == 0:  # the first one may open what the event loops of a process share
            before = _open_descriptors()
    assert _open_descriptors() == before
