"""The embedded MQTT 5 broker of the radio link: Eclipse Mosquitto, Debian's `mosquitto` package.

Chosen over HiveMQ Community Edition (the design's broker, which also runs embedded here from
Maven Central) by measurement on the 2-core machine: Mosquitto starts in well under a second at
a few MiB resident and relays a message for ≈ 25 µs of CPU; embedded HiveMQ took ≈ 10 s to start
and ≈ 270 MB resident, on the same cores as Kafka, etcd and the towers. Both speak MQTT 5 and shared
subscriptions, which is all corridor needs. A user's own broker (`MQTT_URL`) replaces it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from pipeline.stack.process import ManagedProcess, ensure_port_free

__all__ = ["MqttBroker", "mosquitto_binary", "mqtt_answers"]

READY_TIMEOUT_S = 15.0
#: the largest PUBLISH payload the broker takes (the gateway refuses anything past 4 kB as well)
MESSAGE_SIZE_LIMIT = 65_536
# MQTT 5 CONNECT with a clean start, keep-alive 10 s, no properties, client id "corridor-probe"
_PROBE = bytes([0x10, 27, 0, 4]) + b"MQTT" + bytes([5, 0x02, 0, 10, 0, 0, 14]) + b"corridor-probe"


def mosquitto_binary() -> Path:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise StackError("the radio link needs an MQTT broker: apt-get install mosquitto, or set MQTT_URL")


def mqtt_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether an MQTT 5 broker accepts a connection there (CONNACK with reason 0)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_PROBE)
            ack = sock.recv(16)
            sock.sendall(bytes([0xE0, 0]))  # DISCONNECT
    except OSError:
        return False
    return len(ack) >= 4 and ack[0] == 0x20 and ack[3] == 0


def mosquitto_version() -> str:
    try:
        out = subprocess.run([str(mosquitto_binary()), "-h"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError, StackError):
        return "?"
    first = out.splitlines()[0] if out else ""
    return first.rsplit(" ", 1)[-1] if "version" in first else "?"


@dataclass(frozen=True, slots=True)
class MqttBroker:
    """Files and process of the embedded broker, all under `<state_dir>/mqtt`. It keeps nothing on
    disk (persistence off): a run never inherits another's retained messages or sessions."""

    settings: Settings

    @property
    def home(self) -> Path:
        return self.settings.state_dir.resolve() / "mqtt"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("mqtt", self.home / "mosquitto.pid", self.home / "mosquitto.log",
                              str(self.home / "mosquitto.conf"))  # fmt: skip

    def start(self, *, attached: bool) -> bool:
        port = self.settings.ports.mqtt
        if self.process.running_pid() is not None:
            return False
        binary = mosquitto_binary()
        ensure_port_free(port, "MQTT", "CORRIDOR_MQTT_PORT")
        self.home.mkdir(parents=True, exist_ok=True)
        conf = self.home / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\n"
            "protocol mqtt\n"
            "allow_anonymous true\n"
            "persistence false\n"
            # as root it would drop to the `mosquitto` user; it needs no privilege and writes nothing
            "user root\n"
            "log_dest stdout\n"
            "log_type error\n"
            "log_type warning\n"
            "max_queued_messages 100000\n"
            # a vehicle's message is under 100 bytes: a larger one is refused by the broker itself
            f"message_size_limit {MESSAGE_SIZE_LIMIT}\n"
        )
        self.process.launch([str(binary), "-c", str(conf)], cwd=self.home, attached=attached, ready=self.ready,
                            timeout=READY_TIMEOUT_S, what="mosquitto")  # fmt: skip
        return True

    def stop(self) -> bool:
        return self.process.stop(timeout=5.0)

    def ready(self) -> bool:
        return mqtt_answers("127.0.0.1", self.settings.ports.mqtt, timeout=1.0)
