"""The embedded Apache Kafka broker: KRaft, each node acting as broker and controller, loopback only.

One node by default; a cluster of three (or five) on request, each node its own JVM with its own
storage, all voters of one controller quorum, topics replicated three times and written to two
in-sync replicas at least, so that losing any one node loses nothing acknowledged."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.shared.access import Kafka, KafkaAccess, Role, client_conf, jaas_config
from pipeline.shared.config import NODE_STRIDE, Settings
from pipeline.shared.errors import StackError
from pipeline.stack.jars import KAFKA_VERSION, classpath, resolve_jars
from pipeline.stack.java import java_argfile, java_executable
from pipeline.stack.process import ManagedProcess, ensure_port_free
from pipeline.stack.security import BROKER_PRINCIPAL, SecurityMaterial

__all__ = ["KafkaBroker", "broker_metadata", "new_cluster_id", "tools_argv", "write_client_properties"]

#: Capped so the broker fits a 2-core, shared machine beside the towers and the fleet; each node of
#: a cluster gets less, three of them sharing the same machine.
HEAP = "-Xmx768m"
CLUSTER_HEAP = "-Xmx512m"
READY_TIMEOUT_S = 60.0

_BROKER_LOG4J = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""

#: Kafka's CLI tools print their own output on stdout; their logging stays on stderr, warnings only.
_TOOLS_LOG4J = """\
status = warn
appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.console.ref = STDERR
"""


def _server_properties(settings: Settings, log_dirs: Path, index: int = 0) -> str:
    nodes = settings.ports.kafka_nodes
    client, controller = nodes[index]
    # replicas of Kafka's own topics, and the fewest in-sync ones a write needs (acks=all)
    replicas, in_sync = str(min(3, len(nodes))), str(min(2, len(nodes)))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(index + 1),
        "controller.quorum.voters": ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(nodes)),
        "listeners": f"PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{client}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dirs),
        # One node: every internal topic has one replica; a cluster: three, two of them in sync
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": in_sync,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": in_sync,
        "default.replication.factor": replicas,
        "min.insync.replicas": in_sync,
        # a replica that was not in sync never becomes leader: it would drop what the others acknowledged
        "unclean.leader.election.enable": "false",
        # a node that stops heartbeating is fenced, and its partitions led by another, after 3 s
        # (Kafka's default is 9 s: the towers' consumers and the fleet wait that long for the leader)
        "broker.session.timeout.ms": "3000",
        "broker.heartbeat.interval.ms": "500",
        "group.initial.rebalance.delay.ms": "0",
        # tower workers may ask for sessions as short as a second (Kafka's floor is 6 s): a dead
        # worker's regions can then move to a survivor within seconds
        "group.min.session.timeout.ms": "1000",
        # Topics are declared by corridor (pipeline.shared.topics) and by Faust for its own; nothing appears by typo.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        "log.retention.hours": "24",
        "log.segment.bytes": str(128 * 1024 * 1024),
    }
    material = settings.security_material
    if material is not None:
        props.update(_secure_properties(settings, SecurityMaterial(material), index))
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _secure_properties(settings: Settings, material: SecurityMaterial, index: int = 0) -> dict[str, str]:
    """Clients on SASL_SSL with SCRAM-SHA-512; controller and broker on mutual TLS; every request
    authorised by KRaft's StandardAuthorizer against the ACLs (`pipeline.shared.access_policy`)."""
    client, controller = settings.ports.kafka_nodes[index]
    admin_user, admin_password = material.credentials()[Role.ADMIN]
    jaas = jaas_config("SCRAM-SHA-512", admin_user, admin_password)
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{client}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(material.broker_keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(material.ca),
        "ssl.endpoint.identification.algorithm": "https",
        "listener.name.controller.ssl.client.auth": "required",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{admin_user};User:{BROKER_PRINCIPAL}",
        # The controller's TLS peer is the broker itself: its certificate's CN is its principal.
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]*).*$/$1/,DEFAULT",
    }


def _remove_deleted_topics(data: Path) -> None:
    """A topic deleted shortly before the broker stops (a run's changelogs) keeps its files, renamed
    `*-delete`, for a minute (log.segment.delete.delay.ms), and a broker stopped sooner leaves them
    on disk until it next starts. Nothing reads them: they go with the broker. (Shortening that delay
    instead also shortens it for the segments compaction and retention replace, which readers may
    still hold.)"""
    for folder in data.glob("*-delete"):
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class KafkaBroker:
    """Files and process of one node of the embedded Kafka, all under `<state_dir>/kafka` (node 0,
    the only one by default) or `<state_dir>/kafka-<n>` (node n - 1 of a cluster)."""

    settings: Settings
    index: int = 0

    @property
    def home(self) -> Path:
        return self.settings.state_dir.resolve() / ("kafka" if self.index == 0 else f"kafka-{self.index + 1}")

    @property
    def node_id(self) -> int:
        return self.index + 1

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings.ports.kafka_nodes[self.index][0]}"

    @property
    def name(self) -> str:
        return "kafka" if len(self.settings.ports.kafka_nodes) == 1 else f"kafka node {self.node_id}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("kafka", self.home / "kafka.pid", self.home / "server.log", "kafka.Kafka")

    def _configure(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        material = self.settings.security_material
        if material is not None and not SecurityMaterial(material).exists():
            SecurityMaterial(material).make()
        if material is not None:
            SecurityMaterial(material).ensure_signing()  # material made before advisories were signed
        (self.home / "log4j2.properties").write_text(_BROKER_LOG4J)
        (self.home / "tools-log4j2.properties").write_text(_TOOLS_LOG4J)
        data = self.home / "data"
        props = self.home / "server.properties"
        props.touch(mode=0o600)
        props.chmod(0o600)  # in secure mode it holds the broker's own SCRAM password
        props.write_text(_server_properties(self.settings, data, self.index))
        return props

    def _cluster_id(self) -> str:
        """The cluster id is kept (by node 0, for every node) so a restart reuses the formatted log
        directory."""
        path = KafkaBroker(self.settings).home / "cluster.id"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            return path.read_text().strip()
        cid = new_cluster_id()
        path.write_text(cid + "\n")
        return cid

    def _format(self, java: str, jars: Path, props: Path) -> None:
        data = self.home / "data"
        meta = data / "meta.properties"
        cid = self._cluster_id()
        mode_file, nodes_file = self.home / "mode", self.home / "nodes"
        mode = "plain" if self.settings.security_material is None else "secure"
        nodes = len(self.settings.ports.kafka_nodes)
        if meta.exists():
            made_nodes = int(nodes_file.read_text()) if nodes_file.exists() else 1
            if made_nodes != nodes:
                raise StackError(
                    f"the Kafka storage in {data} was formatted for {made_nodes} node(s), and this start asks "
                    f"for {nodes}: run `corridor stack down --purge` first"
                )
            found = re.search(r"cluster\.id=(\S+)", meta.read_text())
            made = mode_file.read_text().strip() if mode_file.exists() else "plain"
            if found and found.group(1) == cid and made != mode:
                raise StackError(
                    f"the Kafka storage in {data} was formatted {made}, and this start is {mode}: "
                    "run `corridor stack down --purge` first"
                )
            if found and found.group(1) == cid:
                return
            raise StackError(
                f"{data} belongs to another Kafka cluster ({found.group(1) if found else '?'}): "
                f"it was left by an earlier run; remove {self.home} (or run `corridor stack down --purge`)"
            )
        argv = [
            "-cp",
            classpath(jars),
            f"-Dlog4j2.configurationFile={self.home / 'tools-log4j2.properties'}",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cid,
            "-c",
            str(props),
            *self._scram_users(),
        ]
        # the SCRAM passwords go through an argument file: on a command line, `ps` would show them
        with java_argfile(argv, self.home) as argfile:
            result = subprocess.run([java, argfile], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
            raise StackError(f"formatting Kafka's storage in {data} failed:\n{tail}")
        mode_file.write_text(mode + "\n")
        nodes_file.write_text(f"{nodes}\n")

    def _scram_users(self) -> list[str]:
        """SCRAM credentials go into the metadata log when storage is formatted (KRaft has no
        ZooKeeper to hold them), so the broker can authenticate its first client."""
        material = self.settings.security_material
        if material is None:
            return []
        args = []
        for user, password in SecurityMaterial(material).credentials().values():
            args += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        return args

    def start(self, *, attached: bool) -> bool:
        """Start and wait until the node answers; False when it was already running."""
        started = self.spawn(attached=attached)
        self.wait_ready(started)
        return started

    def spawn(self, *, attached: bool) -> bool:
        """Start without waiting (the nodes of a cluster answer only once a quorum of them runs);
        False when it was already running."""
        if self.process.running_pid() is not None:
            return False
        client, controller = self.settings.ports.kafka_nodes[self.index]
        stride = f" (node {self.node_id}: the port plus {NODE_STRIDE * self.index})" if self.index else ""
        ensure_port_free(client, "Kafka client listener", "CORRIDOR_KAFKA_PORT" + stride)
        ensure_port_free(controller, "Kafka controller", "CORRIDOR_KAFKA_CONTROLLER_PORT" + stride)
        java = java_executable()
        jars = resolve_jars(self.settings.cache_dir)
        props = self._configure()
        self._format(java, jars, props)
        argv = [
            java,
            HEAP if len(self.settings.ports.kafka_nodes) == 1 else CLUSTER_HEAP,
            "-Xms256m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            classpath(jars),
            "kafka.Kafka",
            str(props),
        ]
        self.process.start(argv, cwd=self.home, attached=attached)
        return True

    def wait_ready(self, started: bool = True) -> None:
        """Until the node answers; a node started here that never does is stopped again."""
        self.process.wait_ready(self.ready, timeout=READY_TIMEOUT_S, what=self.name, started=started)

    def stop(self) -> bool:
        stopped = self.process.stop(timeout=20.0)
        if self.process.running_pid() is None:
            _remove_deleted_topics(self.home / "data")
        return stopped

    def ready(self) -> bool:
        """The node itself answers, as a broker of the cluster."""
        access = replace(self.settings.kafka(Role.ADMIN), bootstrap=self.address)
        try:
            return self.address in broker_metadata(access, timeout=1.0)["brokers"]
        except StackError:
            return False

    def running_version(self) -> str:
        """The version the running broker logged at start-up (AppInfoParser), else the pinned one."""
        try:
            found = re.findall(r"Kafka version: (\S+)", self.process.logfile.read_text(errors="replace"))
        except OSError:
            found = []
        return found[-1] if found else KAFKA_VERSION


def broker_metadata(bootstrap: Kafka, timeout: float = 5.0) -> dict[str, Any]:
    """Cluster id and brokers as the cluster reports them; raises StackError when unreachable."""
    # A probe: librdkafka's own connection-refused lines would flood the terminal while we poll.
    admin = AdminClient(client_conf(bootstrap, {"socket.timeout.ms": int(timeout * 1000), "log_level": 0}))
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise StackError(
            f"Kafka at {bootstrap} did not answer within {timeout:.0f} s ({exc.args[0].str()}): "
            "start it (`corridor stack up`) or fix KAFKA_BOOTSTRAP_SERVERS"
        ) from None
    if not md.brokers:
        raise StackError(f"Kafka at {bootstrap} answered with no brokers")
    return {
        "cluster_id": md.cluster_id,
        "controller_id": md.controller_id,
        "brokers": sorted(f"{b.host}:{b.port}" for b in md.brokers.values()),
    }


def write_client_properties(access: KafkaAccess, path: Path) -> Path:
    """A Java client's properties for `access` (Kafka's CLI tools), owner-only: it holds a password."""
    props = access.java_properties()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def tools_argv(settings: Settings, main_class: str, args: list[str], startup_only: bool = True) -> list[str]:
    """The command line of one of Kafka's own CLI tools, from the same jars as the broker.

    Most tools run for a second: a small heap and the quick JIT tier start them fastest. The perf
    tools (`startup_only=False`) get the full JIT, as they would in anyone's measurement."""
    java = java_executable()
    jars = resolve_jars(settings.cache_dir)
    log4j = settings.state_dir.resolve() / "kafka" / "tools-log4j2.properties"
    log4j.parent.mkdir(parents=True, exist_ok=True)
    log4j.write_text(_TOOLS_LOG4J)
    return [
        java,
        *(["-Xmx256m", "-XX:TieredStopAtLevel=1"] if startup_only else ["-Xmx512m"]),
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        classpath(jars),
        main_class,
        *args,
    ]


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka makes one, without starting a JVM: base64url of a random UUID, 22
    characters, drawn again when it starts with '-' (the storage tool would read it as an option)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid
