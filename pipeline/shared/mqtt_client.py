"""An MQTT 5 client that presents an `MqttAccess`: the one place that decides between an anonymous
clear-text connection and TLS (checked as strictly as Kafka's and etcd's) with a password."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pipeline.shared.access import strict_context
from pipeline.shared.radio_access import MqttAccess

__all__ = ["RECONNECT_FIRST_S", "RECONNECT_MAX_S", "MqttLoop", "mqtt_client", "read_all", "refusal"]

RECONNECT_FIRST_S, RECONNECT_MAX_S = 0.2, 5.0


def mqtt_client(access: MqttAccess, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if access.username:
        client.username_pw_set(access.username, access.password)
    if access.ca_file is not None:
        client.tls_set_context(strict_context(access.ca_file))
    return client


def refusal(reason: object) -> str | None:
    """A CONNACK's, SUBACK's or PUBACK's reason as text when it is a failure; None for a success."""
    return str(reason) if getattr(reason, "is_failure", False) else None


def read_all(client: mqtt.Client) -> None:
    """What a readable socket has: TLS may hold whole records already read off the socket, which
    neither a selector nor poll() can see, so they are read too."""
    client.loop_read()
    while (pending := getattr(client.socket(), "pending", None)) is not None and pending() > 0:
        client.loop_read()


class MqttLoop:
    """A paho client's network loop on a thread of its own, in place of paho's `loop_start`.

    paho's loop waits with `select()`, which refuses any descriptor numbered 1,024 or more: in a
    process holding many sockets (a fleet whose vehicles each have a connection, a test suite)
    its thread dies and the client goes deaf. This one waits with `poll()`, which has no such
    limit, and dials again, backing off, when the broker drops the connection.
    """

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        client.on_socket_register_write = lambda _c, _u, _s: self._wake()
        client.on_socket_unregister_write = lambda _c, _u, _s: None
        self._thread = threading.Thread(target=self._run, name="mqtt-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """After `client.disconnect()`: what is queued (the DISCONNECT) is written, then it ends."""
        self._stop.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(5)
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full already (it wakes anyway), or closed at the end
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        delay = RECONNECT_FIRST_S
        while not self._stop.is_set():
            sock = self.client.socket()
            if sock is None:  # dropped by the broker: dial again, backing off
                if self._stop.wait(delay):
                    break
                try:
                    self.client.reconnect()
                    delay = RECONNECT_FIRST_S
                except OSError:
                    delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            self._once(sock)
        if self.client.socket() is not None and self.client.want_write():
            with contextlib.suppress(OSError):
                self.client.loop_write()

    def _once(self, sock: Any) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        poller.register(sock, select.POLLIN | (select.POLLOUT if self.client.want_write() else 0))
        for fd, events in poller.poll(1000):
            if fd == self._wake_r.fileno():
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            elif events & (select.POLLIN | select.POLLERR | select.POLLHUP):
                read_all(self.client)
        if self.client.socket() is not None:
            if self.client.want_write():
                self.client.loop_write()
            self.client.loop_misc()  # a PINGREQ when due; a silent broker found out
