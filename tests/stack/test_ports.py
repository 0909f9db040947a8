"""Ports for corridor's own servers: free, distinct, and never in the range outgoing connections use."""

from __future__ import annotations

import socket

from pipeline.ports import _ephemeral_range, free_ports, is_free


def test_ports_are_distinct_free_and_outside_the_ephemeral_range() -> None:
    lo, hi = _ephemeral_range()
    ports = free_ports(8)
    assert len(set(ports)) == 8
    assert all(not lo <= p <= hi for p in ports)
    assert all(is_free(p) for p in ports)


def test_a_port_held_by_a_listener_is_not_free() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_ports(1)[0]))
        s.listen()
        port = s.getsockname()[1]
        assert not is_free(port)
        assert port not in free_ports(20)
