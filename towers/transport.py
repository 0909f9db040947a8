"""Faust's aiokafka transport with a short fetch wait, registered as the `corridor://` broker scheme.

faust-streaming builds its worker consumer with `fetch_max_wait_ms=1500` and no setting to change
it, so a hazard report arriving on a quiet partition could wait 1.5 s in the broker before the
tower sees it: fifteen times the 100 ms safety-message budget (3GPP TS 22.185). This transport
lowers the wait to `FETCH_MAX_WAIT_MS`; everything else is Faust's own. Registered through the
`faust.transports` entry point in pyproject.toml.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["FETCH_MAX_WAIT_MS", "Transport"]

FETCH_MAX_WAIT_MS = 20


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by aiokafka when the consumer starts
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
