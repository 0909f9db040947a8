"""Every radio's socket on the fleet's own thread: paho clients driven by one selector.

paho's `loop_start` gives each client a thread. A fleet whose vehicles each talk as themselves
would have 3,600 of them, fighting for the interpreter's lock, each publish waking its thread
through a socket pair and a `select`. Driven from outside instead (paho's `loop_read`,
`loop_write`, `loop_misc`), a publish only queues its packet; `pump` writes what every client
queued (a send per client, not per message), reads what the selector says has come, and once a
second keeps the connections alive and dials again the ones the broker dropped.

On the fleet's thread, not one of its own: measured on the default scenario, an I/O thread beside
the fleet's made the way back slower (a hazard's advisories reached the vehicles at p50 106 ms
after the tower sent them, against 59 ms), as the two threads took turns at the interpreter's
lock. The fleet pumps between its steps and every few hundred messages instead.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import time
from typing import Any

import paho.mqtt.client as mqtt

from pipeline.shared.mqtt_client import RECONNECT_FIRST_S, RECONNECT_MAX_S, read_all

__all__ = ["RadioSockets"]

log = logging.getLogger("radio")

#: how long one pump may keep reading: what arrived while it read is read too (a packet per
#: `loop_read`), but a broker that never stops sending cannot hold the fleet's thread
READ_BUDGET_S = 0.02


class RadioSockets:
    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._clients: set[mqtt.Client] = set()  # kept alive and dialled again when dropped
        self._dirty: set[mqtt.Client] = set()  # with packets queued, not yet (all) written
        self._lost: dict[mqtt.Client, tuple[float, float]] = {}  # dial again at, next delay
        self._next_chores = 0.0

    def adopt(self, client: mqtt.Client) -> None:
        """Before its `connect`: its socket is then this object's to register and drive."""
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed
        client.on_socket_register_write = lambda c, _u, _s: self._dirty.add(c)
        client.on_socket_unregister_write = lambda c, _u, _s: None
        self._clients.add(client)

    def drop(self, client: mqtt.Client) -> None:
        """A client this object no longer keeps alive or dials again (it is being disconnected)."""
        self._clients.discard(client)
        self._lost.pop(client, None)

    def _opened(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self._selector.register(sock, selectors.EVENT_READ, client)

    def _closed(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        if client in self._clients and client not in self._lost:
            self._lost[client] = (time.monotonic() + RECONNECT_FIRST_S, RECONNECT_FIRST_S)

    def pump(self, timeout_s: float = 0.0) -> None:
        """Write what is queued, read what has come (waiting up to `timeout_s` for it), write the
        answers that reading queued (acknowledgements), and the once-a-second chores when due."""
        self._write()
        ready = self._selector.select(timeout_s)
        until = time.monotonic() + READ_BUDGET_S
        while ready:
            for key, _events in ready:
                read_all(key.data)
            self._write()  # the acknowledgements of what was read: the broker sends more QoS 1 after them
            if time.monotonic() >= until:
                break
            ready = self._selector.select(0)
        now = time.monotonic()
        if now >= self._next_chores:
            self._next_chores = now + 1.0
            self._chores(now)
            self._write()

    @property
    def writing(self) -> bool:
        """Some client still has bytes queued for a connection that is up."""
        return any(c.want_write() for c in self._clients if c not in self._lost)

    def _write(self) -> None:
        # swapped first: a client whose socket is full queues itself again, for the next pump
        dirty, self._dirty = self._dirty, set()
        for client in dirty:
            if client.socket() is not None:
                client.loop_write()

    def _chores(self, now: float) -> None:
        for client in list(self._clients):
            if client not in self._lost:
                client.loop_misc()  # a PINGREQ when due; a silent broker found out
        for client, (at, delay) in list(self._lost.items()):
            if at > now:
                continue
            try:
                client.reconnect()
                del self._lost[client]
            except OSError as exc:  # the broker is still away: back off
                delay = min(delay * 2, RECONNECT_MAX_S)
                self._lost[client] = (now + delay, delay)
                log.debug("a radio could not reconnect: %s", exc)

    def close(self) -> None:
        for key in list(self._selector.get_map().values()):
            with contextlib.suppress(OSError):
                key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()
        self._clients.clear()
        self._lost.clear()
