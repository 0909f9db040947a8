"""The radio link's speed with TLS and authentication on, beside the open figures of `bench.mqtt`.

A broker of its own, secure as a secure stack's (TLS only, no anonymous client, Dynamic Security
holding each identity to its topics), the bench's vehicles enrolled in its starting file:

- **raw_tls**: one vehicle publishing its own telemetry topic → the broker → one subscriber as the
  gateways' identity on their shared subscription: what TLS and the broker's checks cost the bare path.
- **raw_tls_radios**: the same subscriber, the updates published as the gateway rows publish them
  (each by its own vehicle over its own TLS connection): the raw path the TLS gateway rows are a share
  of, since one process driving thousands of TLS connections is slower than one connection.
- **gateway_tls_x1/x2**: the same real telemetry as the open rows, each update sent by its own
  vehicle over its own TLS connection (the fleet's radios, as in a secure run); `corridor gateway`
  processes reach the broker as a user's own secure broker is reached (MQTT_URL, MQTT_CA_FILE,
  MQTT_SECRETS_DIR), Kafka unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from paho.mqtt.client import MQTT_ERR_QUEUE_SIZE

from pipeline.ports import free_ports
from pipeline.shared.config import Settings
from pipeline.shared.mqtt_client import mqtt_client
from pipeline.shared.radio_access import MQTT_ADMIN, MQTT_GATEWAY, MqttAccess
from pipeline.shared.radio_topics import RadioTopics
from pipeline.stack.mqtt import MqttBroker
from pipeline.stack.process import die_with_parent
from pipeline.stack.security import SecurityMaterial
from producers.enrolment import Enrolment
from producers.radio import RadioLink, vehicle_id_of

__all__ = ["raw_path", "run_secure_paths", "send_by_radios"]

_SUBSCRIBER = """
import sys, threading, time
from pathlib import Path
from pipeline.shared.mqtt_client import mqtt_client
from pipeline.shared.radio_access import MqttAccess
host, port, n, topic, user, password, ca = sys.argv[1:8]
n = int(n)
done, count, first = threading.Event(), [0], [0.0]
def on_message(*_):
    count[0] += 1
    if count[0] == 1:
        first[0] = time.monotonic()
    if count[0] == n:
        done.set()
c = mqtt_client(MqttAccess(host, int(port), user, password, Path(ca) if ca else None), "bench-sub")
c.on_message = on_message
c.connect(host, int(port))
c.subscribe(topic, qos=0)
c.loop_start()
print("ready", flush=True)
done.wait(120)
print(count[0], time.monotonic() - first[0], flush=True)
"""


@contextmanager
def _subscriber(sub: MqttAccess, topic: str, n: int) -> Iterator[Callable[[], tuple[int, float]]]:
    """A subscriber process of its own, as a gateway is, counting `n` messages; yields what gives
    (received, seconds from the first to the last) once they are sent."""
    argv = [sub.host, str(sub.port), str(n), topic, sub.username, sub.password, str(sub.ca_file or "")]
    reader = subprocess.Popen([sys.executable, "-c", _SUBSCRIBER, *argv], stdout=subprocess.PIPE, text=True,
                              preexec_fn=die_with_parent())  # fmt: skip
    try:
        assert reader.stdout is not None
        out = reader.stdout
        out.readline()  # ready
        time.sleep(0.3)

        def result() -> tuple[int, float]:
            received, took = out.readline().split()
            return int(received), float(took)

        yield result
    finally:
        reader.kill()
        reader.wait()


def _row(n: int, received: int, took: float, size: int) -> dict[str, Any]:
    return {"messages": n, "received": received, "msgs_per_s": round(received / took), "size_bytes": size}


def raw_path(sub: MqttAccess, sub_topic: str, pub: MqttAccess, pub_topic: str, n: int, size: int) -> dict[str, Any]:
    """One publisher → the broker → one subscriber, each in a process of its own as the fleet and
    a gateway are, each presenting its access (anonymous, or TLS and a password)."""
    with _subscriber(sub, sub_topic, n) as result:
        client = mqtt_client(pub, f"bench-pub-{uuid.uuid4().hex[:6]}")
        client.max_queued_messages_set(0)
        client.connect(pub.host, pub.port)
        client.loop_start()
        payload = b"x" * size
        for _ in range(n):
            while client.publish(pub_topic, payload, qos=0).rc == MQTT_ERR_QUEUE_SIZE:
                time.sleep(0.001)
        received, took = result()
        client.disconnect()
        client.loop_stop()
    return _row(n, received, took, size)


def send_by_radios(link: RadioLink, records: list[tuple[int, bytes]]) -> None:
    """Each update from its own vehicle's radio, in slices of one region as a fleet's tick sends them."""
    for start in range(0, len(records), 500):
        chunk = records[start : start + 500]
        for region in {r for r, _ in chunk}:
            link.send("", region, b"", [v for r, v in chunk if r == region])
    link.flush(60)


def _radios_path(sub: MqttAccess, topics: RadioTopics, link: RadioLink, records: list[tuple[int, bytes]],
                 size: int) -> dict[str, Any]:  # fmt: skip
    """The vehicles' radios → the broker → one subscriber on the gateways' shared subscription."""
    with _subscriber(sub, topics.every("telemetry", "gateways"), len(records)) as result:
        send_by_radios(link, records)
        received, took = result()
    return _row(len(records), received, took, size) | {"connections": link.connections}


def _secrets(secure: Settings, folder: Path) -> Path:
    """A user's MQTT_SECRETS_DIR for the gateways: their password and the fleet's key, as files."""
    material = secure.security_material
    assert material is not None
    folder.mkdir(mode=0o700)
    shutil.copy(material / f"mqtt-{MQTT_GATEWAY}.password", folder / f"{MQTT_GATEWAY}.password")
    shutil.copy(material / "mqtt-vehicles.key", folder / "vehicles.key")
    return folder


def run_secure_paths(settings: Settings, records: list[tuple[int, bytes]], tmp: Path, env: dict[str, str],
                     through_gateways: Callable[..., dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """`through_gateways(records, gateways, tmp, env, link=…)`: the open rows' measure, with these
    vehicles' radios as its publisher."""
    folder = tmp / "security"
    SecurityMaterial(folder).make()
    secure = replace(settings, security_dir=folder, state_dir=tmp / "state", mqtt_url="",
                     ports=replace(settings.ports, mqtt=free_ports(1)[0]))  # fmt: skip
    senders = sorted({vehicle_id_of(v) for _, v in records})
    broker = MqttBroker(secure, vehicles=tuple(senders))
    broker.start(attached=True)
    out: dict[str, Any] = {}
    try:
        topics = RadioTopics(len(settings.corridor().regions))
        size = round(sum(len(v) for _, v in records) / len(records))
        vehicle = secure.mqtt().as_vehicle(senders[0], secure.mqtt_vehicle_key())
        shared = f"$share/gateways/{topics.telemetry(0)}"  # the gateways' shared subscription
        out["raw_tls"] = raw_path(
            secure.mqtt(MQTT_GATEWAY), shared, vehicle, topics.telemetry(0, senders[0]), len(records), size
        )
        host, port = secure.mqtt_address
        access = secure.mqtt()
        assert access.ca_file is not None
        gw_env = {**env, "MQTT_URL": f"mqtt://{host}:{port}", "MQTT_CA_FILE": str(access.ca_file),
                  "MQTT_SECRETS_DIR": str(_secrets(secure, tmp / "mqtt-secrets"))}  # fmt: skip
        key = secure.mqtt_vehicle_key()
        for row in ("raw_tls_radios", "gateway_tls_x1", "gateway_tls_x2"):
            link = RadioLink(access, topics, identities=(Enrolment(secure.mqtt(MQTT_ADMIN), topics, key,
                                                                   enrolled=tuple(senders)), key))  # fmt: skip
            try:
                link.open(senders)  # every radio connected before the clock starts
                if row == "raw_tls_radios":
                    out[row] = _radios_path(secure.mqtt(MQTT_GATEWAY), topics, link, records, size)
                else:
                    out[row] = through_gateways(records, int(row[-1]), tmp, gw_env, link=link)
                    out[row]["connections"] = link.connections
            finally:
                link.close()
    finally:
        broker.stop()
    return out
