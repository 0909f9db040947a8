"""The fleet's advisory receiver: what it does when its consumer fails."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.shared.corridor import load_corridor
from pipeline.shared.tracing import Tracing
from producers.fleet import Fleet, FleetConfig
from producers.listener import AdvisoryListener, ListenerStats

T0 = 1_764_000_000_000


class _Message:
    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return b"not an advisory"

    def headers(self) -> None:
        return None


class _FailingConsumer:
    """Hands over one message, then fails as a consumer whose broker refused it for good."""

    def __init__(self) -> None:
        self.polls = 0

    def poll(self, timeout: float) -> Any:
        self.polls += 1
        if self.polls == 1:
            return _Message()
        raise RuntimeError("KafkaError{code=_FATAL}")

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        return []

    def close(self) -> None:
        pass


def test_a_receiver_that_fails_hands_over_what_came_then_the_fleet_hears_why() -> None:
    listener = AdvisoryListener.__new__(AdvisoryListener)  # no broker: the consumer is a stand-in
    listener.stats, listener.keep_history, listener.verifier = ListenerStats(), False, None
    listener.hazard_triggers, listener.tracing = set(), Tracing("test")
    listener._consumer = _FailingConsumer()  # type: ignore[assignment]  # the consumer's three calls, no broker
    listener._start_receiving()
    listener._receiver.join(timeout=5)
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=10, seed=1), start_ms=T0)
    assert listener.poll(fleet, T0) == 1, "what arrived before the failure is still applied"
    assert listener.stats.undecodable == 1
    with pytest.raises(RuntimeError, match="advisory receiver stopped: KafkaError"):
        listener.poll(fleet, T0)
    listener.close()
