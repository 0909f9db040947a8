"""Start, stop and inspect Kafka and etcd together, or check an external cluster instead.

`up` is idempotent and all-or-nothing: when one server fails to start, whatever this call
started is stopped again before the error propagates, so a failed start leaves nothing running.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from types import TracebackType

from pipeline.config import Settings
from pipeline.errors import StackError
from pipeline.stack.etcd import EtcdServer, etcd_version
from pipeline.stack.kafka import KafkaBroker, broker_metadata

__all__ = ["ServiceStatus", "Stack", "StackStatus"]


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    name: str
    state: str  # running | stopped | external | unreachable
    address: str
    version: str = ""
    pid: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StackStatus:
    kafka: ServiceStatus
    etcd: ServiceStatus

    @property
    def healthy(self) -> bool:
        return all(s.state in ("running", "external") for s in (self.kafka, self.etcd))


class Stack:
    """The two servers as one unit; `attached=True` ties their lives to this process (tests, simulate)."""

    def __init__(self, settings: Settings, *, attached: bool = False) -> None:
        self.settings = settings
        self.attached = attached
        self.kafka = KafkaBroker(settings)
        self.etcd = EtcdServer(settings)
        self._started: list[KafkaBroker | EtcdServer] = []

    def up(self) -> StackStatus:
        s = self.settings
        try:
            if s.etcd_external:
                host, port = s.etcd_hosts[0]
                etcd_version(host, port)
            elif self.etcd.start(attached=self.attached):
                self._started.append(self.etcd)
            if s.kafka_external:
                broker_metadata(s.bootstrap_servers, timeout=10.0)
            elif self.kafka.start(attached=self.attached):
                self._started.append(self.kafka)
        except BaseException:
            self.stop_started()
            raise
        return self.status()

    def stop_started(self) -> None:
        """Stop only what this object started (a fixture must not stop a stack it found running)."""
        while self._started:
            self._started.pop().stop()

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop both embedded servers (Kafka first: it may still write to etcd-less clients)."""
        stopped = [name for name, server in (("kafka", self.kafka), ("etcd", self.etcd)) if server.stop()]
        self._started.clear()
        if purge:
            for server in (self.kafka, self.etcd):
                shutil.rmtree(server.home, ignore_errors=True)
        return stopped

    def status(self) -> StackStatus:
        return StackStatus(kafka=self._kafka_status(), etcd=self._etcd_status())

    def _kafka_status(self) -> ServiceStatus:
        s = self.settings
        if s.kafka_external:
            try:
                md = broker_metadata(s.bootstrap_servers, timeout=5.0)
            except StackError as exc:
                return ServiceStatus("kafka", "unreachable", s.bootstrap_servers, detail=str(exc))
            return ServiceStatus("kafka", "external", s.bootstrap_servers, detail=f"cluster {md['cluster_id']}")
        pid = self.kafka.process.running_pid()
        if pid is None:
            return ServiceStatus("kafka", "stopped", s.bootstrap_servers)
        try:
            md = broker_metadata(s.bootstrap_servers, timeout=5.0)
        except StackError as exc:
            return ServiceStatus("kafka", "unreachable", s.bootstrap_servers, pid=pid, detail=str(exc))
        return ServiceStatus(
            "kafka",
            "running",
            s.bootstrap_servers,
            version=self.kafka.running_version(),
            pid=pid,
            detail=f"KRaft cluster {md['cluster_id']}, brokers {', '.join(md['brokers'])}",  # type: ignore[arg-type]
        )

    def _etcd_status(self) -> ServiceStatus:
        s = self.settings
        host, port = s.etcd_hosts[0]
        address = f"{host}:{port}"
        pid = None if s.etcd_external else self.etcd.process.running_pid()
        if not s.etcd_external and pid is None:
            return ServiceStatus("etcd", "stopped", address)
        try:
            version = etcd_version(host, port)
        except StackError as exc:
            return ServiceStatus("etcd", "unreachable", address, pid=pid, detail=str(exc))
        state = "external" if s.etcd_external else "running"
        return ServiceStatus(
            "etcd",
            state,
            address,
            version=version.get("etcdserver", "?"),
            pid=pid,
            detail=f"cluster version {version.get('etcdcluster', '?')}",
        )

    def __enter__(self) -> Stack:
        self.up()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop_started()
