"""Settings, built once at the edge (CLI, test fixtures) and passed down frozen.

Nothing below this module reads the environment: a function that needs the bootstrap servers
takes a `Settings`, so tests and embedded runs can hold several side by side.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.shared.corridor import Corridor, load_corridor
from pipeline.shared.errors import ConfigError
from pipeline.shared.topics import Topics

__all__ = ["ENV_VARS", "Ports", "Settings"]

#: Environment variables read by `Settings.from_env`, with what each sets (shown in `--help`).
ENV_VARS: dict[str, str] = {
    "KAFKA_BOOTSTRAP_SERVERS": "external Kafka cluster (host:port,...); when set no broker is started",
    "ETCD_ENDPOINTS": "external etcd cluster (host:port,...); when set no etcd is started",
    "MQTT_URL": "external MQTT 5 broker for the radio link (mqtt://host:port); when set none is started",
    "CORRIDOR_STATE_DIR": "where the embedded stack keeps data, logs and pid files (default .corridor)",
    "CORRIDOR_CACHE_DIR": "where Kafka's jars are cached (default ~/.cache/corridor)",
    "CORRIDOR_TOPIC_PREFIX": "prefix of every topic name (default corridor)",
    "CORRIDOR_TOPIC_REPLICATION": "replicas of every topic corridor creates, changelogs included (default 1)",
    "CORRIDOR_ROUTE_FILE": "route JSON file (default: the I-69 Bloomington–Indianapolis route shipped with corridor)",
    "CORRIDOR_TOWERS_FILE": "tower regions JSON file (default: the 9 regions shipped with corridor)",
    "CORRIDOR_KAFKA_PORT": "embedded broker's client port (default 9092)",
    "CORRIDOR_KAFKA_CONTROLLER_PORT": "embedded KRaft controller port (default 9093)",
    "CORRIDOR_ETCD_PORT": "embedded etcd client port (default 2379)",
    "CORRIDOR_ETCD_PEER_PORT": "embedded etcd peer port (default 2380)",
    "CORRIDOR_MQTT_PORT": "embedded MQTT broker's port, for the radio link (default 1883)",
}


@dataclass(frozen=True, slots=True)
class Ports:
    """Loopback ports of the embedded stack."""

    kafka: int = 9092
    kafka_controller: int = 9093
    etcd: int = 2379
    etcd_peer: int = 2380
    mqtt: int = 1883

    def __post_init__(self) -> None:
        values = [self.kafka, self.kafka_controller, self.etcd, self.etcd_peer, self.mqtt]
        for port in values:
            if not 1 <= port <= 65535:
                raise ConfigError(f"port {port} is out of range 1-65535")
        if len(set(values)) != len(values):
            raise ConfigError(f"the stack's ports must differ, got {values}")


def _split_endpoints(raw: str | None) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return ()
    endpoints = tuple(part.strip() for part in raw.split(",") if part.strip())
    for ep in endpoints:
        host, sep, port = ep.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"endpoint {ep!r} is not host:port")
    return endpoints


def _mqtt_url(raw: str | None) -> str:
    if raw is None or not raw.strip():
        return ""
    rest = raw.strip().removeprefix("mqtt://")
    host, sep, port = rest.rpartition(":")
    if rest == raw.strip() or not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"MQTT_URL={raw!r} is not mqtt://host:port")
    return f"mqtt://{host}:{port}"


def _replication(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"CORRIDOR_TOPIC_REPLICATION={raw!r}: give the number of replicas (1 or more)")
    return int(raw)


def _path(raw: str | None) -> Path | None:
    return Path(raw) if raw else None


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a port number") from None


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
    route_file: Path | None = None  # None: the route shipped with corridor
    towers_file: Path | None = None  # None: the tower regions shipped with corridor

    def corridor(self) -> Corridor:
        """The route and tower regions these settings name (producers and towers must share them)."""
        return load_corridor(self.route_file, self.towers_file)

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
        return f"127.0.0.1:{self.ports.kafka}"

    @property
    def etcd_hosts(self) -> tuple[tuple[str, int], ...]:
        eps = self.etcd_endpoints or (f"127.0.0.1:{self.ports.etcd}",)
        out = []
        for ep in eps:
            host, _, port = ep.removeprefix("http://").rpartition(":")
            out.append((host, int(port)))
        return tuple(out)

    @property
    def etcd_servers(self) -> str:
        """Comma-separated host:port list for etcd clients, embedded or external."""
        return ",".join(f"{h}:{p}" for h, p in self.etcd_hosts)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the variables in `ENV_VARS`; anything unset keeps its default."""
        env = os.environ if env is None else env
        prefix = env.get("CORRIDOR_TOPIC_PREFIX", "corridor")
        if not prefix or not all(c.isalnum() or c in "._-" for c in prefix):
            raise ConfigError(f"CORRIDOR_TOPIC_PREFIX={prefix!r}: use letters, digits, '.', '_' or '-'")
        defaults = Ports()
        return cls(
            kafka_bootstrap=_split_endpoints(env.get("KAFKA_BOOTSTRAP_SERVERS")),
            etcd_endpoints=_split_endpoints(env.get("ETCD_ENDPOINTS")),
            state_dir=Path(env.get("CORRIDOR_STATE_DIR") or ".corridor"),
            cache_dir=Path(env.get("CORRIDOR_CACHE_DIR") or Path.home() / ".cache" / "corridor"),
            topic_prefix=prefix,
            topic_replication=_replication(env.get("CORRIDOR_TOPIC_REPLICATION")),
            ports=Ports(
                kafka=_port(env, "CORRIDOR_KAFKA_PORT", defaults.kafka),
                kafka_controller=_port(env, "CORRIDOR_KAFKA_CONTROLLER_PORT", defaults.kafka_controller),
                etcd=_port(env, "CORRIDOR_ETCD_PORT", defaults.etcd),
                etcd_peer=_port(env, "CORRIDOR_ETCD_PEER_PORT", defaults.etcd_peer),
                mqtt=_port(env, "CORRIDOR_MQTT_PORT", defaults.mqtt),
            ),
            mqtt_url=_mqtt_url(env.get("MQTT_URL")),
            route_file=_path(env.get("CORRIDOR_ROUTE_FILE")),
            towers_file=_path(env.get("CORRIDOR_TOWERS_FILE")),
        )
