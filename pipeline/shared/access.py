"""How a client reaches Kafka and etcd: addresses plus, in secure mode, who it is.

A component asks `Settings.kafka(role)` / `Settings.etcd(role)` for its access and hands it to every
client it builds; nothing else decides between plaintext and TLS. Passwords stay out of `repr`, so
they cannot reach a log line, a report or `corridor status` by accident.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pipeline.shared.errors import ConfigError

__all__ = [
    "CUT_OFF_BROKER",
    "EtcdAccess", "Kafka", "KafkaAccess", "Role", "client_conf", "jaas_config", "load_role_credentials",
    "strict_context",
]  # fmt: skip


class Role(StrEnum):
    """The principals corridor runs as; what each may do is `pipeline.shared.access_policy`."""

    ADMIN = "admin"  # declares topics and ACLs; runs the simulation's bookkeeping
    TOWER = "tower"  # the Faust workers
    VEHICLE = "vehicle"  # producers and MQTT gateways
    READER = "reader"  # dashboard, `corridor consume`
    ANALYTICS = "analytics"  # the Spark job: reads every topic, writes its stats


@dataclass(frozen=True, slots=True)
class KafkaAccess:
    """Bootstrap servers, and the SASL/TLS identity to present there (none in plain mode)."""

    bootstrap: str
    protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: Path | None = None

    def __str__(self) -> str:
        return self.bootstrap

    @property
    def secure(self) -> bool:
        return self.protocol != "PLAINTEXT"

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def who(self) -> str:
        """The principal, for messages: never the password."""
        return f"User:{self.username}" if self.sasl else "anonymous"

    def librdkafka(self) -> dict[str, Any]:
        """confluent-kafka's (librdkafka's) properties for this identity."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        if not self.secure:
            return conf
        conf["security.protocol"] = self.protocol
        if self.sasl:
            conf.update({"sasl.mechanisms": self.mechanism, "sasl.username": self.username,
                         "sasl.password": self.password})  # fmt: skip
        if self.ca_file is not None:
            conf["ssl.ca.location"] = str(self.ca_file)
        return conf

    def java_properties(self) -> dict[str, str]:
        """The same identity for a Java client (Kafka's CLI tools, Spark's Kafka source), without
        `bootstrap.servers`."""
        props: dict[str, str] = {"security.protocol": self.protocol}
        if self.sasl:
            props["sasl.mechanism"] = self.mechanism
            props["sasl.jaas.config"] = jaas_config(self.mechanism, self.username, self.password)
        if self.ca_file is not None:
            props.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": str(self.ca_file)})
        return props

    def ssl_context(self) -> ssl.SSLContext | None:
        """For aiokafka (Faust): None in plain mode."""
        if self.protocol not in ("SSL", "SASL_SSL"):
            return None
        return strict_context(self.ca_file)


def strict_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context that checks chains as strictly as Python 3.13 does by default, on every
    Python: a certificate OpenSSL's strict rules refuse is found here, not after an upgrade."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    return ctx


def jaas_config(mechanism: str, username: str, password: str) -> str:
    """A Java client's (or broker listener's) SASL login line."""
    module = "plain.PlainLoginModule" if mechanism == "PLAIN" else "scram.ScramLoginModule"
    return f'org.apache.kafka.common.security.{module} required username="{username}" password="{password}";'


#: For corridor's producers: a request to a broker that answers nothing (cut off, paused, its
#: sockets still open) is given up after 5 s and sent again to the partition's new leader, which
#: the cluster elects 3 s after the broker went silent. librdkafka's default, 60 s, outlasts most
#: outages: the producer waited for the silent broker to come back (measured on three brokers, one
#: paused for 12 s: stuck 12 s by default, 6 s with this). Idempotence keeps a re-sent record single.
CUT_OFF_BROKER = {"socket.timeout.ms": 5_000}

#: What functions that open a Kafka client accept: a bare bootstrap string means a plaintext cluster.
Kafka = KafkaAccess | str


def client_conf(kafka: Kafka, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A confluent-kafka client's configuration: the access's properties, then `extra`."""
    access = KafkaAccess(kafka) if isinstance(kafka, str) else kafka
    return {**access.librdkafka(), **(extra or {})}


@dataclass(frozen=True, slots=True)
class EtcdAccess:
    """One etcd endpoint, and the client certificate to present there (none in plain mode).

    With `--client-cert-auth`, etcd takes the certificate's common name as the user whose roles
    apply: the certificate is the credential, so no password travels."""

    host: str
    port: int
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    others: tuple[tuple[str, int], ...] = ()  # the cluster's other members, (host, port)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def secure(self) -> bool:
        return self.ca_file is not None

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}:{self.port}"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `etcd3.client` for this access."""
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port}
        members = [(self.host, self.port), *self.others]
        if self.others and all(_is_ipv4(h) for h, _ in members):
            # gRPC's own list of addresses: its channel moves to the next member when one stops
            # answering, and etcd3 builds its target as "<host>:<port>" from these two
            *first, (last_host, last_port) = members
            kwargs = {"host": "ipv4:" + "".join(f"{h}:{p}," for h, p in first) + last_host, "port": last_port}
            if self.secure:  # the name the members' certificate is checked against: their address
                kwargs["grpc_options"] = [("grpc.ssl_target_name_override", self.host)]
        if self.secure:
            kwargs.update(ca_cert=str(self.ca_file), cert_cert=str(self.cert_file), cert_key=str(self.key_file))
        return kwargs

    def ssl_context(self) -> ssl.SSLContext | None:
        """For etcd's HTTP endpoints (/health, /version)."""
        if not self.secure:
            return None
        ctx = strict_context(self.ca_file)
        if self.cert_file is not None and self.key_file is not None:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx


def _is_ipv4(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address)
    except ValueError:
        return False


def load_role_credentials(security_dir: Path, role: Role) -> tuple[str, str]:
    """(username, password) of `role` in a secure stack's material (`credentials.json`)."""
    path = security_dir / "credentials.json"
    try:
        users = json.loads(path.read_text())
        entry = users[role.value]
        return str(entry["username"]), str(entry["password"])
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: start the secure stack (`corridor stack up --secure`)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} holds no credentials for role {role.value} ({exc.__class__.__name__})") from None
