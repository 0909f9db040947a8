"""The fleet's radios: a vehicle keeps its MQTT connection of the pool, whatever its id."""

from __future__ import annotations

from pipeline.shared.messages import CODEC, TELEMETRY
from producers.radio import vehicle_num_of
from tests.towers.test_engine import upd


def test_a_vehicle_keeps_its_radio_connection_whatever_its_id() -> None:
    assert vehicle_num_of(CODEC.encode(TELEMETRY, upd("veh-0001234", 38.0))) == 1234
    other = CODEC.encode(TELEMETRY, upd("car-x", 38.0))
    assert vehicle_num_of(other) == vehicle_num_of(CODEC.encode(TELEMETRY, upd("car-x", 39.0)))
