"""Vehicles enrolled on the radio link's secure broker as they come on the road.

A manufacturer provisions each unit before it drives; here the fleet's process does it for its
vehicles, as the one holder of the provisioning key and the enrolment admin's password: it sends the
Dynamic Security plugin the commands that create each vehicle's role and client, and waits for the
plugin's answers. One message carries a batch (the plugin saves its file once a message).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from pipeline.shared.errors import StackError
from pipeline.shared.mqtt_client import MqttLoop, mqtt_client, refusal
from pipeline.shared.radio_access import MqttAccess, enrol_commands, revoke_commands
from pipeline.shared.radio_topics import RadioTopics

__all__ = ["Enrolment"]

REQUEST = "$CONTROL/dynamic-security/v1"
RESPONSE = f"{REQUEST}/response"
#: the bytes of commands a message carries at most: the broker refuses a message over 64 KiB
#: (`message_size_limit`), ≈ 600 bytes a vehicle
MAX_MESSAGE = 60_000


class Enrolment:
    def __init__(self, admin: MqttAccess, topics: RadioTopics, key: bytes, timeout_s: float = 10.0,
                 enrolled: Iterable[str] = ()) -> None:  # fmt: skip
        self.topics, self.key, self.timeout_s = topics, key, timeout_s
        self.enrolled: set[str] = set(enrolled)  # those the broker knew from its start
        self._answer = threading.Event()
        self._responses: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._failure: str | None = None
        self.client = mqtt_client(admin, f"corridor-enrolment-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda _c, _u, _m, reasons, _p: self._subscribed(reasons)
        self.client.on_message = self._on_message
        try:
            self.client.connect(admin.host, admin.port, keepalive=30, clean_start=True)
        except OSError as exc:
            raise StackError(f"no MQTT broker at {admin.host}:{admin.port} to enrol vehicles on ({exc})") from None
        self.loop = MqttLoop(self.client)
        self.loop.start()
        if not self._ready.wait(timeout_s) or self._failure:
            self.close()
            raise StackError(f"the MQTT broker did not let corridor enrol vehicles: {self._failure or 'no answer'}")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._failure = refusal(reason)
        if self._failure:
            self._ready.set()
        else:
            client.subscribe(RESPONSE, qos=1)

    def _subscribed(self, reasons: list[Any]) -> None:
        self._failure = next((r for r in map(refusal, reasons) if r), None)
        self._ready.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._responses = list(json.loads(msg.payload).get("responses", []))
        except (ValueError, AttributeError):
            self._responses = [{"error": "an answer that is not the plugin's JSON"}]
        self._answer.set()

    def enrol(self, vehicle_ids: Sequence[str]) -> None:
        """Enrol those not enrolled yet; StackError with the plugin's first complaint (a client
        that exists already is not one: the vehicle was enrolled)."""
        new = [v for v in dict.fromkeys(vehicle_ids) if v not in self.enrolled]
        batch: list[str] = []
        commands: list[dict[str, Any]] = []
        size = 0
        for vid in new:
            mine = enrol_commands(self.topics, [vid], self.key)
            grows = len(json.dumps(mine))
            if batch and size + grows > MAX_MESSAGE:
                self._send(commands, f"the enrolment of {len(batch)} vehicles")
                self.enrolled.update(batch)
                batch, commands, size = [], [], 0
            batch.append(vid)
            commands += mine
            size += grows
        if batch:
            self._send(commands, f"the enrolment of {len(batch)} vehicles")
            self.enrolled.update(batch)

    def revoke(self, vehicle_ids: Sequence[str]) -> None:
        """Disable these vehicles on the running broker, which disconnects any of them connected; one
        message (an operator revokes a few units, not a fleet)."""
        self._send(
            revoke_commands(self.topics, vehicle_ids, self.key), f"the revocation of {len(vehicle_ids)} vehicles"
        )
        self.enrolled.difference_update(vehicle_ids)

    def _send(self, commands: list[dict[str, Any]], what: str) -> None:
        """One message of commands, and the plugin's answer; StackError with its first complaint (a
        client or role that exists already is none: the vehicle was enrolled)."""
        self._answer.clear()
        self.client.publish(REQUEST, json.dumps({"commands": commands}), qos=1)
        if not self._answer.wait(self.timeout_s):
            raise StackError(f"the MQTT broker did not answer {what}")
        errors = [str(r["error"]) for r in self._responses if r.get("error") and "already exists" not in r["error"]]
        if errors:
            raise StackError(f"{what} on the MQTT broker: {errors[0]}")

    def close(self) -> None:
        self.client.disconnect()
        self.loop.stop()
