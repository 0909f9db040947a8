"""Loopback ports for the servers corridor starts itself (broker, etcd, tower workers' web pages).

A port the kernel hands out for `bind(0)` lies in its ephemeral range, the same range it draws the
source ports of outgoing connections from. Between the moment such a port is found free and the
moment a server binds it (a worker's start-up, or its restart after a drill kills it), any client
connecting somewhere may take it as its source port, and the server then fails with 'address
already in use'. Ports below the ephemeral range are never handed out that way."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from pipeline.shared.config import Ports
from pipeline.shared.errors import ConfigError

__all__ = ["cluster_ports", "free_ports", "is_free"]

_LOWEST = 20000
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in _RANGE_FILE.read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _candidates() -> range:
    lo, hi = _ephemeral_range()
    if lo - _LOWEST >= 1000:
        return range(_LOWEST, lo)
    return range(hi + 1, 65536) if 65535 - hi >= 1000 else range(1024, 65536)


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could bind `port` now (with SO_REUSEADDR, as the servers do)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` distinct ports, free now on `host`, outside the kernel's ephemeral range."""
    pool = _candidates()
    chosen: list[int] = []
    for _ in range(50 * n):
        port = random.choice(pool)
        if port not in chosen and is_free(port, host):
            chosen.append(port)
            if len(chosen) == n:
                return chosen
    raise OSError(f"no {n} free ports on {host} in {pool.start}-{pool.stop - 1}")


def cluster_ports(brokers: int, etcd_members: int, host: str = "127.0.0.1") -> Ports:
    """Ports for an embedded cluster whose every node's ports (node 0's plus `NODE_STRIDE` × i) are
    free now on `host`, and outside the ephemeral range too: node 0's are, but a stride above one
    near its edge fell inside it, where an outgoing connection took etcd member 2's peer port."""
    pool = _candidates()
    for _ in range(100):
        kafka, controller, etcd, peer, mqtt, registry = free_ports(6, host)
        try:
            ports = Ports(kafka, controller, etcd, peer, mqtt, registry, brokers, etcd_members)
        except ConfigError:  # one node's port fell on another's
            continue
        pairs = ports.kafka_nodes + ports.etcd_nodes
        if all(port in pool and is_free(port, host) for pair in pairs for port in pair):
            return ports
    raise OSError(f"no free ports on {host} for {brokers} Kafka nodes and {etcd_members} etcd members")
