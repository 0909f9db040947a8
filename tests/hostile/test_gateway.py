"""The gateway's loops against anything a radio can send: every callback and every produce guarded,
each failure counted with its reason, and the gateway still serving the next vehicle."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline.shared.config import Settings
from pipeline.shared.messages import CODEC, HAZARD, TELEMETRY
from tests.towers.test_engine import T0, hazard, upd
from towers.gateway import bridge
from towers.gateway.bridge import Gateway
from towers.gateway.radio_session import _user_properties


class FakeProducer:
    """Kafka as the gateway's producer sees it, failing the way librdkafka fails."""

    def __init__(self, fail: str = "") -> None:
        self.fail, self.sent = fail, []

    def produce(self, topic: str, value: bytes, key: Any = None, partition: int = -1, **kw: Any) -> None:
        if self.fail == "too-large":
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        if self.fail == "full":
            raise BufferError("Local: Queue full")
        self.sent.append((topic, value, dict(kw.get("headers") or [])))

    def poll(self, _timeout: float = 0) -> int:
        return 0

    def flush(self, _timeout: float = 0) -> int:
        return 0


def gateway(fail: str = "") -> tuple[Gateway, FakeProducer]:
    """A gateway whose Kafka producer is the fake (no broker is reached; nothing is connected)."""
    kafka = FakeProducer(fail)
    with mock.patch.object(bridge, "Producer", lambda _conf: kafka):
        gw = Gateway(Settings.from_env({}), list(range(9)), 9, downlink=False)
    return gw, kafka


def deliver(gw: Gateway, topic: bytes, payload: bytes, user_property: list[tuple[str, str]] | None = None) -> None:
    """A message as the MQTT session hands it on: its topic decoded when it is UTF-8 (bytes when
    not, as gmqtt leaves it), its user properties read as the session reads them."""
    try:
        name: str | bytes = topic.decode("utf-8")
    except UnicodeDecodeError:
        name = topic
    gw._on_message(name, payload, 0, _user_properties({"user_property": user_property or []}))


def test_a_two_megabyte_hazard_report_is_refused_and_the_next_one_goes_through() -> None:
    gw, kafka = gateway()
    deliver(gw, b"corridor/v2/region/4/hazards/test", b"\x00" * 2_000_000)
    deliver(gw, b"corridor/v2/region/4/hazards/test", hazard(40.0))
    assert gw.stats.dead_letters == {"too-large": 1} and gw.stats.hazards == 1
    (dead, forwarded) = kafka.sent
    assert len(dead[1]) <= bridge.DEAD_LETTER_BYTES and dead[2]["truncated-from"] == b"2000000"
    assert CODEC.decode(forwarded[1], HAZARD)["hazard_id"] == "hz-1"


@pytest.mark.parametrize("fail", ["too-large", "full"])
def test_kafka_refusing_a_record_is_counted_and_stops_neither_the_radio_thread_nor_the_loop(fail: str) -> None:
    gw, _ = gateway(fail)
    deliver(gw, b"corridor/v2/region/4/hazards/test", hazard(40.0))  # raised before
    deliver(gw, b"corridor/v2/region/4/telemetry/v1", CODEC.encode(TELEMETRY, upd("v1", 38.0)))
    gw._uplink()
    gw._frames(True)
    assert sum(gw.stats.errors.values()) >= 2, gw.stats.errors


def test_a_topic_that_is_not_utf8_and_an_hlc_below_zero_are_dead_letters_not_fatal() -> None:
    gw, kafka = gateway()
    deliver(gw, b"corridor/v2/region/4/\xff\xfe", b"x")
    assert gw.stats.dead_letters == {"bad-topic": 1} and not gw.stats.errors
    bad = CODEC.encode(TELEMETRY, upd("v1", 38.0, hlc=-1))
    deliver(gw, b"corridor/v2/region/4/telemetry/v1", bad)
    gw._uplink()  # MalformedStateError left `run` before
    assert gw.stats.dead_letters == {"bad-topic": 1, "bad-hlc": 1}
    assert kafka.sent[0][2]["source-topic"] == "mqtt:corridor/v2/region/4/\ufffd\ufffd".encode()
    assert kafka.sent[1][2]["reason"].startswith(b"bad-hlc")


def test_a_full_inbox_drops_and_counts_rather_than_growing_without_bound(monkeypatch) -> None:
    monkeypatch.setattr(bridge, "MAX_INBOX", 10)
    gw, _ = gateway()
    raw = CODEC.encode(TELEMETRY, upd("v1", 38.0, event_time=T0))
    for _ in range(25):
        deliver(gw, b"corridor/v2/region/4/telemetry/v1", raw)
    assert len(gw._inbox) == 10 and gw.stats.inbox_dropped == 15


def test_a_hazard_reports_trace_context_goes_on_in_one_bounded_header_and_nothing_else_does() -> None:
    gw, kafka = gateway()
    deliver(gw, b"corridor/v2/region/4/hazards/test", hazard(40.0),
            [("x-anything", "y" * 1000), ("traceparent", "00-" + "a" * 500)])  # fmt: skip
    deliver(gw, b"corridor/v2/region/4/hazards/test", hazard(40.0, t=6),
            [("k", "v")] * 10_000 + [("traceparent", "00-late")])  # fmt: skip
    (first, second) = kafka.sent
    assert first[2] == {"traceparent": "00-" + "a" * 125}, "only the trace context, cut to W3C's size"
    assert second[2] == {}, "past the first properties, nothing is read: the report goes on untraced"
    assert gw.stats.hazards == 2 and not gw.stats.errors


def test_a_traced_advisory_goes_to_the_radio_with_its_context_and_others_with_none() -> None:
    context = b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"
    assert bridge._downlink_properties([("traceparent", context)]) == [("traceparent", context.decode())]
    assert bridge._downlink_properties({"traceparent": b"\xff" * 500}) == [("traceparent", "\ufffd" * 128)]
    assert bridge._downlink_properties(None) is None and bridge._downlink_properties([("other", b"x")]) is None


def test_a_hazard_report_or_cancel_in_another_vehicles_name_is_refused_and_not_forwarded() -> None:
    gw, kafka = gateway()
    deliver(gw, b"corridor/v2/region/4/hazards/veh-0000003", hazard(40.0))  # reporter "test"
    deliver(gw, b"corridor/v2/region/4/hazards/test", hazard(40.0))
    assert gw.stats.dead_letters == {"impersonation": 1} and gw.stats.hazards == 1
    (dead, forwarded) = kafka.sent
    assert dead[2]["reason"].startswith(b"impersonation") and dead[2]["source-topic"].endswith(b"/veh-0000003")
    assert CODEC.decode(forwarded[1], HAZARD)["reporter"] == "test"


def test_an_advisorys_signature_goes_on_as_a_user_property_the_radio_verifies() -> None:
    from pipeline.shared.advisory_signing import SIGNATURE, Signer, Verifier, new_signing_key, public_pem

    key = new_signing_key()
    value = b"an advisory"
    signature = Signer(key).sign(value)
    props = bridge._downlink_properties([("traceparent", b"00-abc"), (SIGNATURE, signature), ("other", b"x")])
    carried = dict(props or [])
    assert set(carried) == {"traceparent", SIGNATURE}
    assert Verifier([public_pem(key)]).problem(value, carried[SIGNATURE]) is None
