"""The secure radio link's refusals, tried from inside a cluster as an attacker on the pod network would.

Run as the vehicles' driver (`python -m pipeline.deploy.cluster.radio_check`, in a pod with the
producers' identity: MQTT_URL, MQTT_CA_FILE, MQTT_SECRETS_DIR): it enrols two vehicles of its own,
then tries what a stranger or one vehicle must not do, and what a vehicle may, and prints the
broker's answers as one JSON object for `corridor k8s e2e` to judge (`radio_problems`). It also
writes an advisory into Kafka as the driver's fleet, which only a vehicle's principal is refused, and
(`cancel_check`, where towers and gateways run) has one vehicle cancel the other's hazard over the
radio: the broker lets it send on its own topic, so the towers must refuse it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from confluent_kafka import KafkaError, Producer

from pipeline.drill.reading import records
from pipeline.shared.access import Role, client_conf
from pipeline.shared.access_policy import towers_prefix
from pipeline.shared.config import Settings
from pipeline.shared.hazards import hazard_record
from pipeline.shared.messages import CODEC, HAZARD
from pipeline.shared.mqtt_client import MqttLoop, mqtt_client, refusal
from pipeline.shared.radio_access import MQTT_ADMIN, MqttAccess
from pipeline.shared.radio_topics import RadioTopics
from pipeline.stack.mqtt import mqtt_answers
from producers.enrolment import Enrolment
from towers.control_plane import close_client, namespace, open_client

__all__ = ["MUST_BE_GRANTED", "MUST_BE_REFUSED", "TOWERS_MUST_REFUSE", "cancel_check", "check", "radio_problems"]

#: what the broker must refuse: a stranger's CONNECT, one vehicle's SUBSCRIBE or PUBLISH beyond its own
MUST_BE_REFUSED = (
    "clear text", "anonymous", "wrong password", "not enrolled", "another's advisories", "the gateways' share",
    "everyone's telemetry", "publishing as another", "a forged advisory", "the fleet writing Kafka's advisories",
)  # fmt: skip
#: what the towers must refuse of a vehicle the broker let speak (on its own topic, under its own name)
TOWERS_MUST_REFUSE = ("cancelling another's hazard",)
#: what it must grant a vehicle, so that a refusal above is the broker's judgement, not a dead link
MUST_BE_GRANTED = ("its own connection", "its own advisories", "its own telemetry")

_WAIT_S = 15.0


class _Radio:
    """One client and the broker's answers to it."""

    def __init__(self, access: MqttAccess, name: str) -> None:
        self.acks: dict[str, str | None] = {}
        self._done = threading.Condition()
        self.client = mqtt_client(access, f"{name}-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self._ack("connect", refusal(reason))
        self.client.on_subscribe = lambda _c, _u, mid, reasons, _p: self._ack(f"s{mid}", refusal(reasons[0]))
        self.client.on_publish = lambda _c, _u, mid, reason, _p: self._ack(f"p{mid}", refusal(reason))
        self.loop = MqttLoop(self.client)
        self.client.connect(access.host, access.port)
        self.loop.start()

    def _ack(self, key: str, refused: str | None) -> None:
        with self._done:
            self.acks[key] = refused
            self._done.notify_all()

    def answer(self, key: str) -> str | None:
        """The broker's refusal of `key` (None: granted); "no answer" after a while."""
        with self._done:
            if not self._done.wait_for(lambda: key in self.acks, _WAIT_S):
                return "no answer"
            return self.acks[key]

    def subscribe(self, topic: str) -> str | None:
        _rc, mid = self.client.subscribe(topic, qos=1)
        return self.answer(f"s{mid}")

    def publish(self, topic: str, payload: bytes) -> str | None:
        return self.answer(f"p{self.client.publish(topic, payload, qos=1).mid}")

    def close(self) -> None:
        self.client.disconnect()
        self.loop.stop()


def _fleet_writes_an_advisory(settings: Settings) -> str | None:
    """Kafka's answer to the fleet's principal producing to the advisories topic (None: written)."""
    topic = settings.topics(len(settings.corridor().regions)).advisories
    errors: list[KafkaError | None] = []
    producer = Producer(client_conf(settings.kafka(Role.VEHICLE), {"log_level": 3, "message.timeout.ms": 15_000}))
    producer.produce(topic, value=b"slow down", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(20)
    if not errors:
        return "no answer"
    return None if errors[0] is None else str(errors[0].name())


def _two_enrolled(settings: Settings, topics: RadioTopics, tag: str) -> tuple[str, str]:
    """Two vehicles of the check's own, new to the broker, enrolled by the driver's admin identity."""
    one, two = (f"{tag}{uuid.uuid4().hex[:6]}{n}" for n in (1, 2))
    enrolment = Enrolment(settings.mqtt(MQTT_ADMIN), topics, settings.mqtt_vehicle_key())
    try:
        enrolment.enrol([one, two])
    finally:
        enrolment.close()
    return one, two


def check(settings: Settings) -> dict[str, Any]:
    """Each attempt's answer: the broker's refusal as text, or None where it granted."""
    topics, key = RadioTopics(len(settings.corridor().regions)), settings.mqtt_vehicle_key()
    one, two = _two_enrolled(settings, topics, "veh-check")
    vehicle = settings.mqtt()
    host, port = settings.mqtt_address
    out: dict[str, str | None] = {"clear text": None if mqtt_answers(host, port) else "no answer in clear text"}
    strangers = {"anonymous": vehicle, "wrong password": replace(vehicle.as_vehicle(one, key), password="guess"),
                 "not enrolled": vehicle.as_vehicle("veh-check-stranger", key)}  # fmt: skip
    radios: list[_Radio] = []
    try:
        for name, access in strangers.items():
            radios.append(_Radio(access, "stranger"))
            out[name] = radios[-1].answer("connect")
        mine, theirs = _Radio(vehicle.as_vehicle(one, key), "one"), _Radio(vehicle.as_vehicle(two, key), "two")
        radios += [mine, theirs]
        out["its own connection"] = mine.answer("connect") or theirs.answer("connect")
        out["another's advisories"] = theirs.subscribe(topics.vehicle_advisories(one))
        out["the gateways' share"] = theirs.subscribe(topics.every("telemetry", "gateways"))
        out["everyone's telemetry"] = theirs.subscribe(topics.every("telemetry"))
        out["its own advisories"] = mine.subscribe(topics.vehicle_advisories(one))
        out["publishing as another"] = theirs.publish(topics.telemetry(0, one), b"as another")
        out["a forged advisory"] = theirs.publish(topics.vehicle_advisories(one), b"slow down")
        out["its own telemetry"] = mine.publish(topics.telemetry(0, one), b"mine")
    finally:
        for radio in radios:
            radio.close()
    out["the fleet writing Kafka's advisories"] = _fleet_writes_an_advisory(settings)
    return out


def _until(found: Callable[[], str | None], timeout_s: float) -> str | None:
    deadline = time.monotonic() + timeout_s
    while (got := found()) is None and time.monotonic() < deadline:
        time.sleep(1.0)
    return got


def cancel_check(settings: Settings) -> dict[str, str | None]:
    """Vehicle one reports a hazard; once the towers hold it (etcd's global view has it), vehicle two
    cancels it under its own name. The towers' answer: their dead letter's reason (None: none came)."""
    topics, key = settings.topics(len(settings.corridor().regions)), settings.mqtt_vehicle_key()
    radio = RadioTopics(topics.regions)
    one, two = _two_enrolled(settings, radio, "veh-cancel")
    hid, started = f"hz-check-{uuid.uuid4().hex[:8]}", int(time.time() * 1000)
    report = hazard_record(12.0, "OBSTACLE", "NORTHBOUND", 1, started, 120, hid, one)
    glob = f"{namespace(towers_prefix(topics))}/global"

    def held() -> str | None:
        client = open_client(settings.etcd(Role.READER), 5)
        try:
            value, _ = client.get(glob)
        finally:
            close_client(client)
        return "held" if value is not None and f"hazard/{hid}".encode() in value else None

    def refused() -> str | None:
        for _p, _k, _v, headers in records(settings.kafka(Role.ADMIN), topics.dead_letter, topics.regions):
            reason = dict(headers).get("reason", b"").decode(errors="replace")
            if hid in reason:
                return reason
        return None

    vehicle = settings.mqtt()
    reporter, canceller = _Radio(vehicle.as_vehicle(one, key), "one"), _Radio(vehicle.as_vehicle(two, key), "two")
    try:
        if reporter.publish(radio.hazards(report["region_id"], one), CODEC.encode(HAZARD, report)) is not None:
            return {"cancelling another's hazard": None, "reported": "the broker refused the report"}
        if _until(held, 60) is None:
            return {"cancelling another's hazard": None, "reported": "not in the towers' global view within 60 s"}
        cancel = hazard_record(12.0, "OBSTACLE", "NORTHBOUND", 1, int(time.time() * 1000), 120, hid, two,
                               cancelled=True)  # fmt: skip
        sent = canceller.publish(radio.hazards(cancel["region_id"], two), CODEC.encode(HAZARD, cancel))
        if sent is not None:
            return {"cancelling another's hazard": None, "reported": f"the broker refused the cancel: {sent}"}
        return {"cancelling another's hazard": _until(refused, 60), "reported": "held"}
    finally:
        reporter.close()
        canceller.close()


def radio_problems(answers: dict[str, Any], towers: bool = True) -> list[str]:
    """What the broker (and, with `towers`, the towers) let through that it must refuse, or refused
    that it must grant."""
    # silence is not a refusal: a dead link would pass every test of this kind
    problems = [f"the radio link's broker did not refuse {what}" for what in MUST_BE_REFUSED
                if answers.get(what) in (None, "no answer")]  # fmt: skip
    if towers:
        problems += [f"the towers did not refuse {what} ({answers.get('reported', 'not tried')})"
                     for what in TOWERS_MUST_REFUSE
                     if not str(answers.get(what) or "").startswith("not-its-reporter")]  # fmt: skip
    problems += [f"the radio link's broker refused a vehicle {what}: {answers.get(what, 'not tried')}"
                 for what in MUST_BE_GRANTED if answers.get(what, "not tried") is not None]  # fmt: skip
    return problems


def main() -> None:
    started = time.monotonic()
    settings = Settings.from_env()
    answers = check(settings) | cancel_check(settings)
    print(json.dumps({"answers": answers, "took_s": round(time.monotonic() - started, 1)}), flush=True)


if __name__ == "__main__":
    main()
