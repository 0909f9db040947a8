"""Start, stop and inspect Kafka and etcd together (and the radio link's MQTT broker and the schema
registry when asked), or check external ones instead.

`up` is idempotent and all-or-nothing: when one server fails to start, whatever this call
started is stopped again before the error propagates, so a failed start leaves nothing running.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from types import TracebackType

from pipeline.admin import ensure_acls
from pipeline.schema_registry import registry_up
from pipeline.shared.access import Role
from pipeline.shared.access_policy import kafka_grants
from pipeline.shared.config import Settings, write_layout
from pipeline.shared.errors import ConfigError, StackError
from pipeline.stack.etcd import EtcdServer, etcd_version
from pipeline.stack.kafka import KafkaBroker, broker_metadata
from pipeline.stack.mqtt import MqttBroker, external_mqtt_answers, mosquitto_version
from pipeline.stack.registry import APICURIO_VERSION, RegistryServer
from pipeline.stack.security import SecurityMaterial

__all__ = ["ServiceStatus", "Stack", "StackStatus"]

Server = KafkaBroker | EtcdServer | MqttBroker | RegistryServer


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    name: str
    state: str  # running | degraded (a cluster's node down) | stopped | external | unreachable
    address: str
    version: str = ""
    pid: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StackStatus:
    kafka: ServiceStatus
    etcd: ServiceStatus
    mqtt: ServiceStatus | None = None  # shown when the radio link's broker runs or is configured
    registry: ServiceStatus | None = None  # shown when the schema registry runs or is configured

    @property
    def services(self) -> list[ServiceStatus]:
        return [self.kafka, self.etcd, *(s for s in (self.mqtt, self.registry) if s is not None)]

    @property
    def healthy(self) -> bool:
        return all(s.state in ("running", "external") for s in self.services)


class Stack:
    """The servers as one unit; `attached=True` ties their lives to this process (tests, simulate).
    With `mqtt=True` the radio link's broker is part of it too, with `registry=True` the schema registry."""

    def __init__(self, settings: Settings, *, attached: bool = False, mqtt: bool = False,
                 vehicles: tuple[str, ...] = (), registry: bool = False) -> None:  # fmt: skip
        self.settings = settings
        self.attached = attached
        self.with_mqtt = mqtt
        self.with_registry = registry
        #: every Kafka node and etcd member; `kafka` and `etcd` are the first (the only one by default)
        self.brokers = [KafkaBroker(settings, i) for i in range(len(settings.ports.kafka_nodes))]
        self.etcds = [EtcdServer(settings, i) for i in range(len(settings.ports.etcd_nodes))]
        self.kafka, self.etcd = self.brokers[0], self.etcds[0]
        self.mqtt = MqttBroker(settings, vehicles=vehicles)  # enrolled from the start, on a secure broker
        self.registry = RegistryServer(settings)
        self._started: list[Server] = []

    @property
    def started(self) -> tuple[Server, ...]:
        """The servers this instance started (not those it found running)."""
        return tuple(self._started)

    def up(self) -> StackStatus:
        s = self.settings
        try:
            if s.etcd_external:
                etcd_version(s.etcd(Role.ADMIN))
            else:
                self._start_all(self.etcds)
                self.etcd.enable_auth_once()
            if s.kafka_external:
                broker_metadata(s.kafka(Role.ADMIN), timeout=10.0)
            else:
                self._start_all(self.brokers)
            if not (s.kafka_external or s.etcd_external):
                write_layout(s.state_dir, len(self.brokers), len(self.etcds))
            if s.security_material is not None:
                ensure_acls(s.kafka(Role.ADMIN), kafka_grants(s.topics(len(s.corridor().regions))))
            if self.with_mqtt:
                if s.mqtt_external:
                    if not external_mqtt_answers(s):
                        raise StackError(f"no MQTT 5 broker answers at {s.mqtt_url}: start it or fix MQTT_URL")
                elif self.mqtt.start(attached=self.attached):
                    self._started.append(self.mqtt)
            if self.with_registry:
                if s.registry_external:
                    if not registry_up(s):
                        raise StackError(f"no schema registry answers at {s.schema_registry_url}: start it or fix "
                                         "SCHEMA_REGISTRY_URL")  # fmt: skip
                elif self.registry.start(attached=self.attached):
                    self._started.append(self.registry)
        except BaseException:
            self.stop_started()
            raise
        from pipeline.leftovers import sweep  # it uses the stack: imported when one is up

        for prefix in sweep(s):
            print(f"corridor: deleted what {prefix} left behind (its process had died)", file=sys.stderr)
        return self.status()

    def _start_all(self, nodes: list[KafkaBroker] | list[EtcdServer]) -> None:
        """Every node started before any is waited for: each answers only once a quorum runs."""
        spawned = []
        for node in nodes:
            if node.spawn(attached=self.attached):
                self._started.append(node)
                spawned.append(node)
        for node in nodes:
            node.wait_ready(started=node in spawned)

    def stop_started(self) -> None:
        """Stop only what this object started (a fixture must not stop a stack it found running)."""
        while self._started:
            self._started.pop().stop()

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop every embedded server (Kafka before etcd: it may still write to etcd-less clients)."""
        nodes: list[KafkaBroker | EtcdServer] = [*self.brokers, *self.etcds]
        servers: list[tuple[str, Server]] = [("registry", self.registry), ("mqtt", self.mqtt)]
        servers += [(node.name, node) for node in nodes]
        stopped = [name for name, server in servers if server.stop()]
        self._started.clear()
        if purge:
            for _, server in servers:
                shutil.rmtree(server.home, ignore_errors=True)
            shutil.rmtree(self.settings.state_dir.resolve() / "security", ignore_errors=True)
            write_layout(self.settings.state_dir.resolve(), 1, 1)
        return stopped

    def rotate_certs(self, new_ca: bool = False) -> list[str]:
        """Issue the secure stack's certificates again (`SecurityMaterial.renew`) and restart the
        servers that run on them, keeping their data; returns the servers restarted. Kafka and etcd
        read their certificates at start, so each is stopped and started again; clients that trust
        the kept CA reconnect on their own."""
        s = self.settings
        material = s.security_material
        if s.kafka_external or s.etcd_external or material is None or not SecurityMaterial(material).exists():
            raise ConfigError("rotate-certs renews the material of corridor's own secure stack, and there is "
                              "none here: start one with `corridor stack up --secure`")  # fmt: skip
        nodes: list[KafkaBroker | EtcdServer] = [*self.brokers, *self.etcds]
        servers = [(server.name, server) for server in nodes if server.process.running_pid() is not None]
        for _, server in servers:
            server.stop()
        SecurityMaterial(material).renew(new_ca=new_ca)
        groups: tuple[list[KafkaBroker | EtcdServer], ...] = ([*self.etcds], [*self.brokers])
        for group in groups:  # etcd first, as `up` does
            stopped = [server for _, server in servers if server in group]
            for server in stopped:
                server.spawn(attached=self.attached)
            for server in stopped:
                server.wait_ready()
        return [name for name, _ in servers]

    def status(self) -> StackStatus:
        return StackStatus(kafka=self._kafka_status(), etcd=self._etcd_status(), mqtt=self._mqtt_status(),
                           registry=self._registry_status())  # fmt: skip

    def _registry_status(self) -> ServiceStatus | None:
        s = self.settings
        address = s.schema_registry_url
        pid = None if s.registry_external else self.registry.process.running_pid()
        if not s.registry_external and pid is None:
            return ServiceStatus("registry", "stopped", address) if self.with_registry else None
        if not registry_up(s):
            return ServiceStatus("registry", "unreachable", address, pid=pid, detail="no answer to GET /subjects")
        if s.registry_external:
            return ServiceStatus("registry", "external", address, detail="Confluent registry API")
        return ServiceStatus("registry", "running", address, version=APICURIO_VERSION, pid=pid,
                             detail="Apicurio Registry, Confluent API, H2 file storage, loopback")  # fmt: skip

    def _mqtt_status(self) -> ServiceStatus | None:
        s = self.settings
        host, port = s.mqtt_address
        address = f"{host}:{port}"
        pid = None if s.mqtt_external else self.mqtt.process.running_pid()
        if not s.mqtt_external and pid is None:
            return ServiceStatus("mqtt", "stopped", address) if self.with_mqtt else None
        if not (external_mqtt_answers(s) if s.mqtt_external else self.mqtt.ready()):
            return ServiceStatus("mqtt", "unreachable", address, pid=pid, detail="no MQTT 5 CONNACK")
        if s.mqtt_external:
            return ServiceStatus("mqtt", "external", address, detail="MQTT 5")
        secure = "TLS, vehicles enrolled, ACLs" if s.mqtt().secure else "anonymous, loopback"
        return ServiceStatus("mqtt", "running", address, version=mosquitto_version(), pid=pid,
                             detail=f"Mosquitto, MQTT 5, no persistence, {secure}")  # fmt: skip

    def _kafka_status(self) -> ServiceStatus:
        s = self.settings
        if s.kafka_external:
            try:
                md = broker_metadata(s.kafka(Role.ADMIN), timeout=5.0)
            except StackError as exc:
                return ServiceStatus("kafka", "unreachable", s.bootstrap_servers, detail=str(exc))
            return ServiceStatus("kafka", "external", s.bootstrap_servers, detail=f"cluster {md['cluster_id']}")
        pids = [b.process.running_pid() for b in self.brokers]
        pid = next((p for p in pids if p is not None), None)
        if pid is None:
            return ServiceStatus("kafka", "stopped", s.bootstrap_servers)
        try:
            md = broker_metadata(s.kafka(Role.ADMIN), timeout=5.0)
        except StackError as exc:
            return ServiceStatus("kafka", "unreachable", s.bootstrap_servers, pid=pid, detail=str(exc))
        down = [b.name for b, p in zip(self.brokers, pids, strict=True) if p is None]
        return ServiceStatus(
            "kafka",
            "degraded" if down else "running",
            s.bootstrap_servers,
            version=self.kafka.running_version(),
            pid=pid,
            detail=f"KRaft cluster {md['cluster_id']}, brokers {', '.join(md['brokers'])}"
            + (f", replication {s.topic_replication}" if len(self.brokers) > 1 else "")
            + (f", not running: {', '.join(down)}" if down else "")
            + (", SASL_SSL (SCRAM-SHA-512), ACLs" if s.security_material is not None else ""),
        )

    def _etcd_status(self) -> ServiceStatus:
        s = self.settings
        host, port = s.etcd_hosts[0]
        address = f"{host}:{port}"
        pids = {} if s.etcd_external else {e.name: e.process.running_pid() for e in self.etcds}
        pid = next((p for p in pids.values() if p is not None), None)
        if not s.etcd_external and pid is None:
            return ServiceStatus("etcd", "stopped", address)
        down = [name for name, p in pids.items() if p is None]
        if len(self.etcds) > 1 and not s.etcd_external:
            address = s.etcd_servers
        access = s.etcd(Role.ADMIN)
        try:
            version = etcd_version(access)
        except StackError as exc:
            return ServiceStatus("etcd", "unreachable", address, pid=pid, detail=str(exc))
        state = "external" if s.etcd_external else "degraded" if down else "running"
        return ServiceStatus(
            "etcd",
            state,
            address,
            version=version.get("etcdserver", "?"),
            pid=pid,
            detail=f"cluster version {version.get('etcdcluster', '?')}"
            + (f", {len(self.etcds)} members" if len(self.etcds) > 1 else "")
            + (f", not running: {', '.join(down)}" if down else "")
            + (", client-certificate TLS, auth on" if access.secure else ""),
        )

    def __enter__(self) -> Stack:
        self.up()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop_started()
