"""The fleet's radios: a vehicle keeps its MQTT connection of the pool, whatever its id."""

from __future__ import annotations

from pipeline.shared.messages import CODEC, TELEMETRY
from producers.radio import vehicle_num_of
from tests.towers.test_engine import upd


def test_a_vehicle_keeps_its_radio_connection_whatever_its_id() -> None:
    assert vehicle_num_of(CODEC.encode(TELEMETRY, upd("veh-0001234", 38.0))) == 1234
    other = CODEC.encode(TELEMETRY, upd("car-x", 38.0))
    assert vehicle_num_of(other) == vehicle_num_of(CODEC.encode(TELEMETRY, upd("car-x", 39.0)))


def test_an_advisorys_trace_context_is_read_from_its_first_user_properties_only() -> None:
    from paho.mqtt.client import MQTTMessage
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from pipeline.shared.tracing import TRACEPARENT
    from producers.radio import _property

    msg = MQTTMessage(topic=b"corridor/v1/region/4/advisories")
    assert _property(msg, TRACEPARENT) is None, "no properties: untraced"
    msg.properties = Properties(PacketTypes.PUBLISH)
    msg.properties.UserProperty = [("traceparent", "00-" + "c" * 200)]
    assert _property(msg, TRACEPARENT) == "00-" + "c" * 125
    msg.properties = Properties(PacketTypes.PUBLISH)  # paho adds to UserProperty on each assignment
    msg.properties.UserProperty = [("k", "v")] * 8 + [("traceparent", "00-late")]
    assert _property(msg, TRACEPARENT) is None
