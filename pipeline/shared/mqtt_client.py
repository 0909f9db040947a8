"""An MQTT 5 client that presents an `MqttAccess`: the one place that decides between an anonymous
clear-text connection and TLS (checked as strictly as Kafka's and etcd's) with a password."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pipeline.shared.access import strict_context
from pipeline.shared.radio_access import MqttAccess

__all__ = ["mqtt_client", "refusal"]


def mqtt_client(access: MqttAccess, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if access.username:
        client.username_pw_set(access.username, access.password)
    if access.ca_file is not None:
        client.tls_set_context(strict_context(access.ca_file))
    return client


def refusal(reason: object) -> str | None:
    """A CONNACK's, SUBACK's or PUBACK's reason as text when it is a failure; None for a success."""
    return str(reason) if getattr(reason, "is_failure", False) else None
