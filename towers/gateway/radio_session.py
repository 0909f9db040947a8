"""The gateway's one MQTT connection, on an event loop of its own thread (gmqtt on uvloop).

Chosen by measurement (`docs/radio-link.md`): receiving the fleet's updates costs 5 µs of CPU a
message with gmqtt and 37 µs with paho's threaded client (zmqtt 31 µs), and the gateway receives
every update of the corridor. The rest of the gateway is threads (Kafka's clients block), so this
class is the boundary: callbacks run on the loop's thread, and `publish` may be called from any.

It reconnects by itself after a loss (gmqtt's own retry, every `RECONNECT_S`), and the owner's
`on_connected` subscribes again: a clean start forgets subscriptions. A broker that holds no session
of ours (restarted, or a new one behind the same name) holds none of the QoS 1 messages we had in
flight either: they are counted as dropped and their packet ids released (`_forget_in_flight`).

A broker bounds the QoS 1 messages a client has in flight (its Receive Maximum: Mosquitto's default
is 20, a hazard makes ~170 advisories at once); what does not fit waits here, in order, and goes as
acknowledgements come back. The wait is bounded too: past `MAX_BACKLOG` an advisory is counted as
dropped, never held without limit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import gmqtt
import uvloop

from pipeline.shared.access import strict_context
from pipeline.shared.errors import StackError
from pipeline.shared.radio_access import MqttAccess

__all__ = ["RadioSession", "UserProperties"]

log = logging.getLogger("gateway")

UserProperties = list[tuple[str, str]]
RECONNECT_S = 0.5
CONNECT_TIMEOUT_S = 15.0
MAX_BACKLOG = 100_000  # advisories waiting for the broker's window: minutes of the corridor's
RETRY_S = 0.002  # how soon a full window is tried again


class RadioSession:
    def __init__(
        self,
        access: MqttAccess,
        client_id: str,
        on_message: Callable[[str | bytes, bytes, int, UserProperties], None],
        on_connected: Callable[[], None],
        on_subscribed: Callable[[list[int]], None],
        on_disconnected: Callable[[], None],
    ) -> None:  # fmt: skip
        self.access = access
        # made in `start` and closed in `stop`: an event loop holds descriptors (its poller, its
        # wake-up pipe), and a gateway built but never run must not keep them
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.client = gmqtt.Client(client_id, clean_session=True)
        self.client.set_config({"reconnect_retries": -1, "reconnect_delay": RECONNECT_S})
        if access.username:
            self.client.set_auth_credentials(access.username, access.password)
        self.client.on_message = lambda _c, topic, payload, qos, props: _quiet(
            on_message, topic, payload, qos, _user_properties(props)
        )
        self.client.on_connect = lambda _c, present, rc, _p: self._connected(present, rc, on_connected)
        self.client.on_subscribe = lambda _c, _mid, granted, _p: on_subscribed(list(granted))
        self.client.on_disconnect = lambda _c, _packet, _exc=None: on_disconnected()
        self._backlog: deque[tuple[str, bytes, int, dict[str, Any]]] = deque()  # on the loop's thread only
        self._retrying = False
        self.dropped = 0  # publishes given up: the backlog was full, or the client refused them

    def start(self) -> None:
        """Connected, or a one-line StackError saying why not (no broker, refused, no TLS)."""
        self._loop = loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="mqtt", daemon=True)
        self._thread.start()
        ssl = strict_context(self.access.ca_file) if self.access.ca_file is not None else False
        connecting = asyncio.run_coroutine_threadsafe(
            self.client.connect(self.access.host, self.access.port, ssl=ssl, keepalive=30), loop
        )
        where = f"{self.access.host}:{self.access.port}"
        try:
            connecting.result(CONNECT_TIMEOUT_S)
        except OSError as exc:
            self.stop()
            raise StackError(f"no MQTT broker at {where} ({exc}): start it or fix MQTT_URL") from None
        except TimeoutError:
            self.stop()
            raise StackError(f"the MQTT broker at {where} did not answer in {CONNECT_TIMEOUT_S:g} s") from None
        except Exception as exc:  # a refused CONNACK: gmqtt's own error type
            self.stop()
            raise StackError(f"the MQTT broker at {where} refused the gateway: {exc}") from None

    def subscribe(self, topics: list[tuple[str, int]]) -> None:
        """On the loop's thread (from `on_connected`)."""
        self.client.subscribe([gmqtt.Subscription(t, qos=q) for t, q in topics])

    def publish(self, topic: str, payload: bytes, qos: int, properties: UserProperties | None) -> None:
        """From any thread; sent in order by the loop. Outside `start` … `stop`, counted as dropped."""
        kwargs: dict[str, Any] = {"user_property": properties} if properties else {}
        loop = self._loop
        try:
            if loop is None:
                raise RuntimeError("not started")
            loop.call_soon_threadsafe(self._publish, topic, payload, qos, kwargs)
        except RuntimeError:  # not started, or stopped (its loop closed) meanwhile
            self.dropped += 1

    def _publish(self, topic: str, payload: bytes, qos: int, kwargs: dict[str, Any]) -> None:
        if len(self._backlog) >= MAX_BACKLOG:
            self.dropped += 1
            return
        self._backlog.append((topic, payload, qos, kwargs))
        self._drain()

    def _drain(self) -> None:
        self._retrying = False
        while self._backlog:
            topic, payload, qos, kwargs = self._backlog[0]
            try:
                self.client.publish(topic, payload, qos=qos, **kwargs)
            except OverflowError:  # the broker's window is full: the rest waits for acknowledgements
                if not self._retrying and self._loop is not None:
                    self._retrying = True
                    self._loop.call_later(RETRY_S, self._drain)
                return
            except Exception as exc:  # refused by the client itself: counted, and the next one goes
                self.dropped += 1
                log.warning("an advisory could not be published: %s", exc)
            self._backlog.popleft()

    def _connected(self, session_present: int, rc: int, on_connected: Callable[[], None]) -> None:
        if rc != 0:  # gmqtt calls this on a successful CONNACK only; the check costs nothing
            return
        if not session_present:
            self._forget_in_flight()
        on_connected()

    def _forget_in_flight(self) -> None:
        """gmqtt drops its resend queue when the broker has no session of ours, but keeps the packet
        ids of those messages in use until acknowledgements that will never come. Once the broker's
        Receive Maximum of them is held, every publish and even the new subscription fail with
        OverflowError: a gateway whose broker's node was lost mid-hazard was connected and deaf for
        good. The messages are gone with the old broker: counted as dropped, their ids released."""
        used: set[int] = self.client._package_handler.id_generator._used_ids  # gmqtt has no public reset
        if used:
            log.warning("the MQTT broker kept no session: %d messages in flight are lost", len(used))
            self.dropped += len(used)
            used.clear()

    @property
    def waiting(self) -> int:
        """Publishes waiting for the broker's window."""
        return len(self._backlog)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            if self.client.is_connected:
                done = asyncio.run_coroutine_threadsafe(self.client.disconnect(), loop)
                try:
                    done.result(5)
                except Exception as exc:  # a broker already gone
                    log.debug("disconnect: %s", exc)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
        if not thread.is_alive():  # a loop still running cannot be closed; the process's end takes it
            loop.close()
            self._loop = self._thread = None


def _quiet(handler: Callable[..., None], *args: Any) -> int:
    """gmqtt acknowledges a QoS 1 message with what the callback returns: 0, success, always (a
    message the gateway refuses is dead-lettered, not redelivered)."""
    handler(*args)
    return 0


def _user_properties(props: dict[str, Any] | None) -> UserProperties:
    """MQTT 5 user properties as gmqtt hands them (a list of pairs under 'user_property'), the first
    eight, strings only."""
    pairs = (props or {}).get("user_property") or []
    return [(k, v) for k, v in pairs[:8] if isinstance(k, str) and isinstance(v, str)]
