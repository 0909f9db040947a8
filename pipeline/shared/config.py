"""Settings, built once at the edge (CLI, test fixtures) and passed down frozen.

Nothing below this module reads the environment: a function that needs the bootstrap servers
takes a `Settings`, so tests and embedded runs can hold several side by side.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from pipeline.shared.access import EtcdAccess, KafkaAccess, Role, load_role_credentials
from pipeline.shared.advisory_signing import Signer, Verifier
from pipeline.shared.corridor import Corridor, load_corridor
from pipeline.shared.env_model import env_var, read_env
from pipeline.shared.errors import ConfigError
from pipeline.shared.radio_access import MqttAccess
from pipeline.shared.topics import Topics

__all__ = ["ENV_VARS", "LAYOUT_FILE", "Ports", "Settings", "SettingsEnv", "read_layout", "write_layout"]


#: node i of an embedded cluster listens on each of node 0's ports plus i times this
NODE_STRIDE = 100
#: quorum sizes an embedded cluster may have: odd, so that a majority survives (n - 1) / 2 losses
QUORUM_SIZES = (1, 3, 5)


@dataclass(frozen=True, slots=True)
class Ports:
    """Loopback ports of the embedded stack. A cluster of several Kafka nodes or etcd members puts
    node i on node 0's ports plus `NODE_STRIDE` × i."""

    kafka: int = 9092
    kafka_controller: int = 9093
    etcd: int = 2379
    etcd_peer: int = 2380
    mqtt: int = 1883
    registry: int = 8081
    brokers: int = 1  # Kafka nodes, each a broker and a KRaft controller
    etcd_members: int = 1

    def __post_init__(self) -> None:
        for n, what in ((self.brokers, "Kafka brokers"), (self.etcd_members, "etcd members")):
            if n not in QUORUM_SIZES:
                raise ConfigError(f"{what}: {n} is not one of {', '.join(map(str, QUORUM_SIZES))} (a quorum is odd)")
        values = [port for pair in self.kafka_nodes + self.etcd_nodes for port in pair] + [self.mqtt, self.registry]
        for port in values:
            if not 1 <= port <= 65535:
                raise ConfigError(f"port {port} is out of range 1-65535")
        if len(set(values)) != len(values):
            raise ConfigError(f"the stack's ports must differ, got {values}")

    @property
    def kafka_nodes(self) -> list[tuple[int, int]]:
        """(client, controller) port of each Kafka node."""
        return [(self.kafka + NODE_STRIDE * i, self.kafka_controller + NODE_STRIDE * i) for i in range(self.brokers)]

    @property
    def etcd_nodes(self) -> list[tuple[int, int]]:
        """(client, peer) port of each etcd member."""
        return [(self.etcd + NODE_STRIDE * i, self.etcd_peer + NODE_STRIDE * i) for i in range(self.etcd_members)]


def _endpoints(raw: str) -> tuple[str, ...]:
    endpoints = tuple(part.strip() for part in raw.split(",") if part.strip())
    for ep in endpoints:
        host, sep, port = ep.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"endpoint {ep!r} is not host:port")
    return endpoints


def _registry_url(raw: str) -> str:
    url = raw.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or any(c.isspace() for c in url):
        raise ValueError(f"SCHEMA_REGISTRY_URL={raw!r} is not an http(s):// URL")
    return url


def _mqtt_url(raw: str) -> str:
    rest = raw.strip().removeprefix("mqtt://")
    host, sep, port = rest.rpartition(":")
    if rest == raw.strip() or not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"MQTT_URL={raw!r} is not mqtt://host:port")
    return f"mqtt://{host}:{port}"


def _quorum(n: int | None) -> int | None:
    if n is not None and n not in QUORUM_SIZES:
        raise ValueError(f"{n} is not one of {', '.join(map(str, QUORUM_SIZES))} (a quorum is odd)")
    return n


Quorum = Annotated[int | None, AfterValidator(_quorum)]
Endpoints = Annotated[tuple[str, ...], BeforeValidator(lambda raw: _endpoints(raw) if isinstance(raw, str) else raw)]
Port = Annotated[int, Field(ge=1, le=65535)]
Upper = BeforeValidator(lambda raw: raw.strip().upper() if isinstance(raw, str) else raw)


class SettingsEnv(BaseModel):
    """The variables `Settings.from_env` reads, each a field whose alias is its name, validated by
    pydantic (the descriptions are shown in `--help` and the manual)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kafka_bootstrap: Endpoints = env_var(
        (), "KAFKA_BOOTSTRAP_SERVERS", "external Kafka cluster (host:port,...); when set no broker is started"
    )
    etcd_endpoints: Endpoints = env_var(
        (), "ETCD_ENDPOINTS", "external etcd cluster (host:port,...); when set no etcd is started"
    )
    mqtt_url: Annotated[str, AfterValidator(_mqtt_url)] = env_var(
        "", "MQTT_URL", "external MQTT 5 broker for the radio link (mqtt://host:port); when set none is started"
    )
    mqtt_ca_file: Path | None = env_var(
        None, "MQTT_CA_FILE", "PEM file of the CA that signed your MQTT broker's certificate (turns on TLS to it)"
    )
    mqtt_secrets: Path | None = env_var(
        None, "MQTT_SECRETS_DIR", "your MQTT broker's corridor identities: <identity>.password files, vehicles.key"
    )
    registry_url: Annotated[str, AfterValidator(_registry_url)] = env_var(
        "",
        "SCHEMA_REGISTRY_URL",
        "your schema registry's Confluent API (Confluent's; Apicurio's /apis/ccompat/v7); when set none is started",
    )
    registry_user: str = env_var("", "SCHEMA_REGISTRY_USER", "user for your schema registry (HTTP basic auth)")
    registry_password_file: Path | None = env_var(
        None, "SCHEMA_REGISTRY_PASSWORD_FILE", "a file holding that user's password"
    )
    wire: Literal["single-object", "confluent"] = env_var(
        "single-object",
        "CORRIDOR_WIRE",
        "the Avro header corridor writes: single-object (default) or confluent "
        "(a schema registry's ids; every reader takes both)",
    )
    state_dir: Path = env_var(
        Path(".corridor"),
        "CORRIDOR_STATE_DIR",
        "where the embedded stack keeps data, logs and pid files (default .corridor)",
    )
    cache_dir: Path | None = env_var(
        None, "CORRIDOR_CACHE_DIR", "where Kafka's jars and the etcd build are cached (default ~/.cache/corridor)"
    )
    topic_prefix: str = env_var(
        "corridor",
        "CORRIDOR_TOPIC_PREFIX",
        "prefix of every topic name (default corridor)",
        pattern=r"^[A-Za-z0-9._-]+$",
    )
    topic_replication: int | None = env_var(
        None,
        "CORRIDOR_TOPIC_REPLICATION",
        "replicas of every topic corridor creates, changelogs included (default: 3 on a cluster, else 1)",
        ge=1,
    )
    kafka_brokers: Quorum = env_var(
        None,
        "CORRIDOR_KAFKA_BROKERS",
        "Kafka nodes of the embedded stack: 1 (default), 3 or 5; `stack up --brokers` keeps its choice",
    )
    etcd_members: Quorum = env_var(
        None,
        "CORRIDOR_ETCD_MEMBERS",
        "etcd members of the embedded stack: 1 (default), 3 or 5; `stack up --etcd-members` keeps its choice",
    )
    route_file: Path | None = env_var(
        None,
        "CORRIDOR_ROUTE_FILE",
        "route JSON file (default: the I-69 Bloomington–Indianapolis route shipped with corridor)",
    )
    towers_file: Path | None = env_var(
        None, "CORRIDOR_TOWERS_FILE", "tower regions JSON file (default: the 9 regions shipped with corridor)"
    )
    kafka_port: Port = env_var(9092, "CORRIDOR_KAFKA_PORT", "embedded broker's client port (default 9092)")
    kafka_controller_port: Port = env_var(
        9093, "CORRIDOR_KAFKA_CONTROLLER_PORT", "embedded KRaft controller port (default 9093)"
    )
    etcd_port: Port = env_var(2379, "CORRIDOR_ETCD_PORT", "embedded etcd client port (default 2379)")
    etcd_peer_port: Port = env_var(2380, "CORRIDOR_ETCD_PEER_PORT", "embedded etcd peer port (default 2380)")
    mqtt_port: Port = env_var(
        1883, "CORRIDOR_MQTT_PORT", "embedded MQTT broker's port, for the radio link (default 1883)"
    )
    registry_port: Port = env_var(8081, "CORRIDOR_REGISTRY_PORT", "embedded schema registry's port (default 8081)")
    secure: bool = env_var(
        False,
        "CORRIDOR_SECURE",
        "1: the embedded stack runs secure (TLS, SASL/SCRAM, ACLs; etcd client certificates and roles)",
    )
    security_dir: Path | None = env_var(
        None, "CORRIDOR_SECURITY_DIR", "a secure corridor stack's certificates and credentials (one identity per role)"
    )
    signing_key: Path | None = env_var(
        None, "CORRIDOR_SIGNING_KEY", "a tower worker's Ed25519 key (PEM) to sign every advisory with"
    )
    advisory_keys: Path | None = env_var(
        None, "CORRIDOR_ADVISORY_KEYS", "the towers' public keys (PEM) vehicles trust: other advice is refused"
    )
    kafka_protocol: Annotated[Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], Upper] = env_var(
        "PLAINTEXT",
        "KAFKA_SECURITY_PROTOCOL",
        "your cluster's listener: PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL",
    )
    kafka_mechanism: Annotated[Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"], Upper] = env_var(
        "SCRAM-SHA-512", "KAFKA_SASL_MECHANISM", "SASL mechanism for your cluster (default SCRAM-SHA-512)"
    )
    kafka_username: str = env_var("", "KAFKA_SASL_USERNAME", "SASL user for your cluster")
    kafka_password: str = env_var(
        "", "KAFKA_SASL_PASSWORD", "SASL password for your cluster (or KAFKA_SASL_PASSWORD_FILE)", repr=False
    )
    kafka_password_file: Path | None = env_var(
        None, "KAFKA_SASL_PASSWORD_FILE", "a file holding the SASL password (a mounted Secret, say)"
    )
    kafka_ca_file: Path | None = env_var(
        None, "KAFKA_SSL_CA_FILE", "PEM file of the CA that signed your brokers' certificates"
    )
    kafka_vehicle_username: str = env_var(
        "", "KAFKA_VEHICLE_SASL_USERNAME", "the SASL user the vehicles' clients present (default: KAFKA_SASL_USERNAME)"
    )
    kafka_vehicle_password_file: Path | None = env_var(
        None, "KAFKA_VEHICLE_SASL_PASSWORD_FILE", "a file holding that user's password"
    )
    etcd_ca_file: Path | None = env_var(
        None, "ETCD_CA_FILE", "PEM file of the CA that signed your etcd's certificate (turns on TLS to etcd)"
    )
    etcd_cert_file: Path | None = env_var(
        None, "ETCD_CERT_FILE", "client certificate for your etcd (its common name is the etcd user)"
    )
    etcd_key_file: Path | None = env_var(None, "ETCD_KEY_FILE", "the client certificate's key")

    def kafka_identity(self) -> KafkaAccess | None:
        """The one identity a user gives for their own cluster; None for plaintext."""
        if self.kafka_protocol == "PLAINTEXT":
            return None
        password = self.kafka_password
        if self.kafka_password_file is not None:
            try:
                password = self.kafka_password_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"KAFKA_SASL_PASSWORD_FILE: cannot read it ({exc.strerror})") from None
        if self.kafka_protocol.startswith("SASL_") and not (self.kafka_username and password):
            raise ConfigError(f"KAFKA_SECURITY_PROTOCOL={self.kafka_protocol} needs KAFKA_SASL_USERNAME and a password")
        if self.kafka_ca_file is not None and not self.kafka_ca_file.is_file():
            raise ConfigError(f"KAFKA_SSL_CA_FILE={self.kafka_ca_file}: no such file")
        return KafkaAccess("", self.kafka_protocol, self.kafka_mechanism, self.kafka_username, password,
                           self.kafka_ca_file)  # fmt: skip

    def kafka_vehicle_identity(self) -> KafkaAccess | None:
        """On a user's own cluster, the vehicles' own identity, so that a scenario driver holding an
        operator's identity still sends its fleet's telemetry as a vehicle may; None: the one identity."""
        if not self.kafka_vehicle_username and self.kafka_vehicle_password_file is None:
            return None
        if not (self.kafka_vehicle_username and self.kafka_vehicle_password_file):
            raise ConfigError("KAFKA_VEHICLE_SASL_USERNAME and KAFKA_VEHICLE_SASL_PASSWORD_FILE go together")
        base = self.kafka_identity()
        if base is None or not base.sasl:
            raise ConfigError("KAFKA_VEHICLE_SASL_USERNAME needs KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT")
        try:
            password = self.kafka_vehicle_password_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"KAFKA_VEHICLE_SASL_PASSWORD_FILE: cannot read it ({exc.strerror})") from None
        if not password:
            raise ConfigError("KAFKA_VEHICLE_SASL_PASSWORD_FILE: the file is empty")
        return replace(base, username=self.kafka_vehicle_username, password=password)

    def registry_auth(self) -> tuple[str, str] | None:
        if not self.registry_user:
            if self.registry_password_file is not None:
                raise ConfigError("SCHEMA_REGISTRY_PASSWORD_FILE needs SCHEMA_REGISTRY_USER")
            return None
        if self.registry_password_file is None:
            raise ConfigError("SCHEMA_REGISTRY_USER needs SCHEMA_REGISTRY_PASSWORD_FILE")
        try:
            return self.registry_user, self.registry_password_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"SCHEMA_REGISTRY_PASSWORD_FILE: cannot read it ({exc.strerror})") from None

    def etcd_tls(self) -> tuple[Path, Path | None, Path | None] | None:
        paths = (self.etcd_ca_file, self.etcd_cert_file, self.etcd_key_file)
        if paths[0] is None:
            if any(paths):
                raise ConfigError("ETCD_CERT_FILE and ETCD_KEY_FILE need ETCD_CA_FILE (TLS to etcd)")
            return None
        if (paths[1] is None) != (paths[2] is None):
            raise ConfigError("give both ETCD_CERT_FILE and ETCD_KEY_FILE, or neither")
        for name, path in zip(("ETCD_CA_FILE", "ETCD_CERT_FILE", "ETCD_KEY_FILE"), paths, strict=True):
            if path is not None and not path.is_file():
                raise ConfigError(f"{name}={path}: no such file")
        return paths[0], paths[1], paths[2]


#: in the state directory: how many Kafka nodes and etcd members its embedded stack was made with
LAYOUT_FILE = "cluster.json"


def read_layout(state_dir: Path) -> tuple[int, int]:
    """(Kafka nodes, etcd members) a stack in `state_dir` was made with; (1, 1) when none was made
    as a cluster. A file not of corridor's making is an error, not a default."""
    path = state_dir / LAYOUT_FILE
    if not path.is_file():
        return 1, 1
    try:
        raw = json.loads(path.read_text())
        brokers, members = int(raw["brokers"]), int(raw["etcd_members"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a cluster layout ({exc.__class__.__name__}): remove it, "
                          "or run `corridor stack down --purge`") from None  # fmt: skip
    return brokers, members


def write_layout(state_dir: Path, brokers: int, members: int) -> None:
    path = state_dir / LAYOUT_FILE
    if (brokers, members) == (1, 1):
        path.unlink(missing_ok=True)
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"brokers": brokers, "etcd_members": members}) + "\n")


#: Environment variables read by `Settings.from_env`, with what each sets (shown in `--help`).
ENV_VARS: dict[str, str] = {str(f.alias): str(f.description) for f in SettingsEnv.model_fields.values()}


@dataclass(frozen=True, slots=True)
class Settings:
    """Where Kafka and etcd are, and where the embedded stack lives when they are ours."""

    kafka_bootstrap: tuple[str, ...] = ()
    etcd_endpoints: tuple[str, ...] = ()
    state_dir: Path = field(default_factory=lambda: Path(".corridor"))
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "corridor")
    topic_prefix: str = "corridor"
    ports: Ports = field(default_factory=Ports)
    topic_replication: int = 1
    mqtt_url: str = ""  # a user's own MQTT broker; empty: the embedded one
    mqtt_ca_file: Path | None = None  # its CA: TLS to it
    mqtt_secrets: Path | None = None  # its identities' passwords and the fleet's provisioning key
    route_file: Path | None = None  # None: the route shipped with corridor
    towers_file: Path | None = None  # None: the tower regions shipped with corridor
    #: the embedded stack runs secure; its material lives in `<state_dir>/security`
    secure: bool = False
    #: a secure corridor stack's material, given explicitly (workers started by a secure run)
    security_dir: Path | None = None
    kafka_identity: KafkaAccess | None = None  # a user's own cluster: the identity they configured
    kafka_vehicle_identity: KafkaAccess | None = None  # there, the vehicles' own, if they gave one
    signing_key: Path | None = None  # a tower's advisory signing key; None: the secure stack's, if any
    advisory_keys: Path | None = None  # the towers' public keys vehicles trust; None: the secure stack's, if any
    etcd_tls: tuple[Path, Path | None, Path | None] | None = None  # (CA, client cert, key) for their etcd
    registry_url: str = ""  # a user's own schema registry (its Confluent API); empty: the embedded one
    registry_auth: tuple[str, str] | None = field(default=None, repr=False)  # their registry's user, password
    wire: Literal["single-object", "confluent"] = "single-object"  # the Avro header this process writes

    def corridor(self) -> Corridor:
        """The route and tower regions these settings name (producers and towers must share them)."""
        return load_corridor(self.route_file, self.towers_file)

    def corridor_env(self) -> dict[str, str]:
        """The route and regions a process started by this one must share with it."""
        named = {"CORRIDOR_ROUTE_FILE": self.route_file, "CORRIDOR_TOWERS_FILE": self.towers_file}
        return {k: str(v.resolve()) for k, v in named.items() if v is not None}

    def topics(self, regions: int) -> Topics:
        """corridor's topics on this cluster, for a corridor of `regions` tower regions."""
        return Topics(regions=regions, prefix=self.topic_prefix, replication=self.topic_replication)

    @property
    def kafka_external(self) -> bool:
        return bool(self.kafka_bootstrap)

    @property
    def etcd_external(self) -> bool:
        return bool(self.etcd_endpoints)

    @property
    def mqtt_external(self) -> bool:
        return bool(self.mqtt_url)

    @property
    def registry_external(self) -> bool:
        return bool(self.registry_url)

    @property
    def schema_registry_url(self) -> str:
        """The registry's Confluent API, embedded or external."""
        return self.registry_url or f"http://127.0.0.1:{self.ports.registry}/apis/ccompat/v7"

    def registry_env(self) -> dict[str, str]:
        """What a process started by this one needs to write the same wire and find the same registry."""
        env = {"CORRIDOR_WIRE": self.wire, "CORRIDOR_REGISTRY_PORT": str(self.ports.registry)}
        return env | ({"SCHEMA_REGISTRY_URL": self.registry_url} if self.registry_url else {})

    @property
    def mqtt_address(self) -> tuple[str, int]:
        """(host, port) of the MQTT broker, embedded or external."""
        if not self.mqtt_url:
            return "127.0.0.1", self.ports.mqtt
        host, _, port = self.mqtt_url.removeprefix("mqtt://").rpartition(":")
        return host, int(port)

    @property
    def bootstrap_servers(self) -> str:
        """Comma-separated bootstrap list for Kafka clients, embedded or external."""
        if self.kafka_external:
            return ",".join(self.kafka_bootstrap)
        return ",".join(f"127.0.0.1:{client}" for client, _ in self.ports.kafka_nodes)

    @property
    def security_material(self) -> Path | None:
        """The folder whose per-role certificates and passwords clients present; None otherwise."""
        if self.security_dir is not None:
            return self.security_dir
        if self.secure and not self.kafka_external:
            return self.state_dir.resolve() / "security"
        return None

    def kafka(self, role: Role) -> KafkaAccess:
        """How a client acting as `role` reaches Kafka: plaintext, corridor's secure stack, or the
        identity configured for the user's own cluster (the same for every role)."""
        material = self.security_material
        if material is not None:
            user, password = load_role_credentials(material, role)
            return KafkaAccess(self.bootstrap_servers, "SASL_SSL", "SCRAM-SHA-512", user, password,
                               material / "ca.pem")  # fmt: skip
        if role is Role.VEHICLE and self.kafka_vehicle_identity is not None:
            return replace(self.kafka_vehicle_identity, bootstrap=self.bootstrap_servers)
        if self.kafka_identity is not None:
            return replace(self.kafka_identity, bootstrap=self.bootstrap_servers)
        return KafkaAccess(self.bootstrap_servers)

    def etcd(self, role: Role) -> EtcdAccess:
        """How a client acting as `role` reaches etcd: its first endpoint, and the others to turn to
        when that one stops answering."""
        (host, port), *others = self.etcd_hosts
        material = self.security_material
        if material is not None:
            return EtcdAccess(host, port, material / "ca.pem", material / f"etcd-{role.value}.pem",
                              material / f"etcd-{role.value}-key.pem", tuple(others))  # fmt: skip
        if self.etcd_tls is not None:
            return EtcdAccess(host, port, *self.etcd_tls, others=tuple(others))
        return EtcdAccess(host, port, others=tuple(others))

    def mqtt(self, who: str = "") -> MqttAccess:
        """How `who` (the gateways', the enrolment admin's identity; "" for a vehicle, whose own is
        made by `MqttAccess.as_vehicle`) reaches the radio link's broker: anonymously and in clear;
        on corridor's secure stack over TLS with its password; on a user's own broker as configured
        (MQTT_CA_FILE, MQTT_SECRETS_DIR)."""
        host, port = self.mqtt_address
        material = self.security_material
        if self.mqtt_external:
            folder, ca = self.mqtt_secrets, self.mqtt_ca_file
            path = folder / f"{who}.password" if folder is not None and who else None
        elif material is not None:
            folder, ca, path = material, material / "ca.pem", material / f"mqtt-{who}.password" if who else None
        else:
            return MqttAccess(host, port)
        password = ""
        if path is not None:
            try:
                password = path.read_text().strip()
            except OSError:
                raise ConfigError(f"{path} cannot be read: the MQTT password of {who}") from None
        return MqttAccess(host, port, who if password else "", password, ca)

    def mqtt_vehicle_key(self) -> bytes:
        """The fleet's provisioning key, from which each vehicle's MQTT password derives."""
        if self.mqtt_external:
            path = (self.mqtt_secrets or Path("MQTT_SECRETS_DIR is not set")) / "vehicles.key"
        else:
            path = (self.security_material or Path(".")) / "mqtt-vehicles.key"
        try:
            return path.read_bytes()
        except OSError:
            raise ConfigError(f"{path} cannot be read: the fleet's MQTT provisioning key") from None

    def _signing_file(self, given: Path | None, name: str) -> Path | None:
        material = self.security_material
        if given is not None:
            return given
        return material / name if material is not None and (material / name).is_file() else None

    def signer(self) -> Signer | None:
        """How a tower worker signs its advisories; None: it sends them unsigned."""
        path = self._signing_file(self.signing_key, "tower-signing-key.pem")
        if path is None:
            return None
        try:
            return Signer(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"advisory signing key {path}: {exc}") from None

    def verifier(self) -> Verifier | None:
        """The towers' keys a vehicle checks advice against; None: it obeys unsigned advice."""
        path = self._signing_file(self.advisory_keys, "advisory-keys.pem")
        if path is None:
            return None
        try:
            return Verifier.from_pem_file(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"towers' public keys {path}: {exc}") from None

    def signing_env(self) -> dict[str, str]:
        """The signing key of workers this process starts, when one was given (else the stack's)."""
        return {} if self.signing_key is None else {"CORRIDOR_SIGNING_KEY": str(self.signing_key)}

    def security_env(self) -> dict[str, str]:
        """What a worker started by this process needs in its environment to act in the same mode."""
        material = self.security_material
        return {} if material is None else {"CORRIDOR_SECURITY_DIR": str(material)}

    @property
    def etcd_hosts(self) -> tuple[tuple[str, int], ...]:
        eps = self.etcd_endpoints or tuple(f"127.0.0.1:{client}" for client, _ in self.ports.etcd_nodes)
        out = []
        for ep in eps:
            host, _, port = ep.removeprefix("http://").removeprefix("https://").rpartition(":")
            out.append((host, int(port)))
        return tuple(out)

    @property
    def etcd_servers(self) -> str:
        """Comma-separated host:port list for etcd clients, embedded or external."""
        return ",".join(f"{h}:{p}" for h, p in self.etcd_hosts)

    def as_cluster(self, brokers: int | None, etcd_members: int | None) -> Settings:
        """The embedded stack with this many Kafka nodes and etcd members (None: as it was); topics
        then get three replicas unless more than one was asked for already."""
        if brokers is None and etcd_members is None:
            return self
        ports = replace(self.ports, brokers=brokers or self.ports.brokers,
                        etcd_members=etcd_members or self.ports.etcd_members)  # fmt: skip
        replication = self.topic_replication if 1 < self.topic_replication <= ports.brokers else min(3, ports.brokers)
        return replace(self, ports=ports, topic_replication=replication)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the variables in `ENV_VARS`; anything unset keeps its default."""
        v = read_env(SettingsEnv, os.environ if env is None else env)
        # A stack started secure stays secure until purged: later commands find its material.
        made_secure = not v.kafka_bootstrap and (v.state_dir / "security" / "credentials.json").is_file()
        # ... and a stack started as a cluster stays one, with as many nodes, until purged
        kept_brokers, kept_members = read_layout(v.state_dir)
        brokers = v.kafka_brokers or kept_brokers
        replication = v.topic_replication or (1 if v.kafka_bootstrap else min(3, brokers))
        return cls(
            kafka_bootstrap=v.kafka_bootstrap,
            etcd_endpoints=v.etcd_endpoints,
            state_dir=v.state_dir,
            cache_dir=v.cache_dir or Path.home() / ".cache" / "corridor",
            topic_prefix=v.topic_prefix,
            topic_replication=replication,
            ports=Ports(
                v.kafka_port,
                v.kafka_controller_port,
                v.etcd_port,
                v.etcd_peer_port,
                v.mqtt_port,
                v.registry_port,
                brokers,
                v.etcd_members or kept_members,
            ),
            mqtt_url=v.mqtt_url,
            mqtt_ca_file=v.mqtt_ca_file,
            mqtt_secrets=v.mqtt_secrets,
            route_file=v.route_file,
            towers_file=v.towers_file,
            secure=v.secure or made_secure,
            security_dir=v.security_dir,
            kafka_identity=v.kafka_identity(),
            kafka_vehicle_identity=v.kafka_vehicle_identity(),
            signing_key=v.signing_key,
            advisory_keys=v.advisory_keys,
            etcd_tls=v.etcd_tls(),
            registry_url=v.registry_url,
            registry_auth=v.registry_auth(),
            wire=v.wire,
        )
