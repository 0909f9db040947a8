"""The embedded MQTT 5 broker of the radio link: Eclipse Mosquitto, Debian's `mosquitto` package.

Chosen over HiveMQ Community Edition (the design's broker, which also runs embedded here from
Maven Central) by measurement on the 2-core machine: Mosquitto starts in well under a second at
a few MiB resident and relays a message for ≈ 25 µs of CPU; embedded HiveMQ took ≈ 10 s to start
and ≈ 270 MB resident, on the same cores as Kafka, etcd and the towers. Both speak MQTT 5 and shared
subscriptions, which is all corridor needs. A user's own broker (`MQTT_URL`) replaces it.

On a secure stack it listens with TLS only (the stack's CA, strict chains), refuses anonymous
clients, and leaves authentication and ACLs to its Dynamic Security plugin (`pipeline.shared.
radio_access`): the gateways' and the enrolment admin's identities are in its starting file, written
afresh at each start, and vehicles are enrolled while it runs, so no run inherits another's vehicles.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline.shared.access import strict_context
from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from pipeline.shared.radio_access import MQTT_ADMIN, MQTT_GATEWAY, dynsec_config
from pipeline.shared.radio_topics import RadioTopics
from pipeline.stack.process import ManagedProcess, ensure_port_free
from pipeline.stack.security import SecurityMaterial

__all__ = ["MqttBroker", "mosquitto_binary", "mqtt_answers"]

READY_TIMEOUT_S = 15.0
#: the largest PUBLISH payload the broker takes (the gateway refuses anything past 4 kB as well)
MESSAGE_SIZE_LIMIT = 65_536
#: QoS 1 messages in flight per client, both ways (announced as its Receive Maximum; k8s/images/mosquitto too)
MAX_INFLIGHT = 1_000
# MQTT 5 CONNECT with a clean start, keep-alive 10 s, no properties, client id "corridor-probe"
_PROBE = bytes([0x10, 27, 0, 4]) + b"MQTT" + bytes([5, 0x02, 0, 10, 0, 0, 14]) + b"corridor-probe"


def mosquitto_binary() -> Path:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise StackError("the radio link needs an MQTT broker: apt-get install mosquitto, or set MQTT_URL")


def dynsec_plugin() -> Path:
    """Mosquitto's Dynamic Security plugin, which Debian's package ships beside the broker."""
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/local/lib"):
        candidate = Path(folder) / "mosquitto_dynamic_security.so"
        if candidate.is_file():
            return candidate
    raise StackError("the secure radio link needs Mosquitto's Dynamic Security plugin (Debian's mosquitto 2.x)")


def mqtt_answers(host: str, port: int, timeout: float = 2.0, tls: ssl.SSLContext | None = None) -> bool:
    """Whether an MQTT 5 broker answers a connection there: a CONNACK of success, or, over TLS, any
    CONNACK (an anonymous probe is refused there, by a broker that is up)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = raw if tls is None else tls.wrap_socket(raw, server_hostname=host)
            sock.sendall(_PROBE)
            ack = sock.recv(16)
            sock.sendall(bytes([0xE0, 0]))  # DISCONNECT
    except OSError:
        return False
    return len(ack) >= 4 and ack[0] == 0x20 and (ack[3] == 0 or tls is not None)


def external_mqtt_answers(settings: Settings) -> bool:
    """Whether a user's own broker (MQTT_URL) answers, over TLS when MQTT_CA_FILE says it speaks it:
    a secure broker closes a clear-text probe, which would read as no broker at all."""
    ca = settings.mqtt_ca_file
    return mqtt_answers(*settings.mqtt_address, tls=None if ca is None else strict_context(ca))


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
    #: on a secure stack, vehicles present certificates (their common name: who they are) instead of
    #: passwords, and the admin and gateways use their passwords on this second port; corridor runs
    #: with passwords, the `mqtt` bench measures both
    password_port: int | None = None
    #: vehicles enrolled in its starting file (a run's fleet, known before it drives), so that they
    #: need not be enrolled one by one while it runs
    vehicles: tuple[str, ...] = ()

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
        self.home.chmod(0o700)
        conf = self.home / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\n"
            "protocol mqtt\n"
            f"{self._security()}"
            "persistence false\n"
            # as root it would drop to the `mosquitto` user; it needs no privilege and writes nothing
            "user root\n"
            "log_dest stdout\n"
            "log_type error\n"
            "log_type warning\n"
            "max_queued_messages 100000\n"
            # QoS 1 messages in flight per client, both ways (its Receive Maximum): at the default 20 a
            # gateway could not pass on a hazard's ~170 advisories without waiting on acknowledgements
            f"max_inflight_messages {MAX_INFLIGHT}\n"
            # Nagle's algorithm off: a small CONNACK or advisory otherwise waited for the peer's delayed
            # ACK, 40 ms on Linux (measured: 44 ms a connection; see the mqtt bench's identities)
            "set_tcp_nodelay true\n"
            # a vehicle's message is under 100 bytes: a larger one is refused by the broker itself
            f"message_size_limit {MESSAGE_SIZE_LIMIT}\n"
        )
        self.process.launch([str(binary), "-c", str(conf)], cwd=self.home, attached=attached, ready=self.ready,
                            timeout=READY_TIMEOUT_S, what="mosquitto")  # fmt: skip
        return True

    def _security(self) -> str:
        """The listener's security lines: anonymous on loopback in plain mode; TLS, no anonymous
        client, and the Dynamic Security plugin's identities and ACLs on a secure stack."""
        folder = self.settings.security_material
        if folder is None:
            return "allow_anonymous true\n"
        material = SecurityMaterial(folder)
        material.ensure_mqtt()
        passwords = {who: material.mqtt_password(who).read_text().strip() for who in (MQTT_ADMIN, MQTT_GATEWAY)}
        regions = RadioTopics(len(self.settings.corridor().regions))
        dynsec = self.home / "dynamic-security.json"
        fd = os.open(dynsec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            fleet_key = material.mqtt_vehicle_key.read_bytes()
            json.dump(dynsec_config(regions, passwords[MQTT_ADMIN], passwords[MQTT_GATEWAY], vehicles=self.vehicles,
                                    key=fleet_key, revoked=material.revoked_vehicles()), f)  # fmt: skip
        cert, key = material.mqtt_server
        tls = f"cafile {material.ca}\ncertfile {cert}\nkeyfile {key}\ntls_version tlsv1.2\n"
        lines = tls
        if self.password_port is not None:
            lines += "require_certificate true\nuse_identity_as_username true\n"
            lines += f"listener {self.password_port} 127.0.0.1\nprotocol mqtt\n{tls}"
        return f"{lines}allow_anonymous false\nplugin {dynsec_plugin()}\nplugin_opt_config_file {dynsec}\n"

    def stop(self) -> bool:
        return self.process.stop(timeout=5.0)

    def ready(self) -> bool:
        folder = self.settings.security_material
        tls = None if folder is None else strict_context(folder / "ca.pem")
        return mqtt_answers("127.0.0.1", self.password_port or self.settings.ports.mqtt, timeout=1.0, tls=tls)
