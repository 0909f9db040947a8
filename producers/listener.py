"""Vehicles' side of the advisories topic: decode, hand to the fleet, measure end-to-end latency."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from pipeline.shared.access import Kafka, client_conf
from pipeline.shared.advisory_signing import SIGNATURE, Verifier
from pipeline.shared.codec import CodecError
from pipeline.shared.crdt.hlc import unpack
from pipeline.shared.messages import ADVISORY, CODEC
from pipeline.shared.stats import LatencyHistogram
from pipeline.shared.tracing import VEHICLE_SPAN, Tracing
from producers.fleet import Action, Fleet

__all__ = ["AdvisoryListener", "ListenerStats", "signature_of"]


def signature_of(headers: Any) -> bytes | None:
    """An advisory's signature from its Kafka headers, if it carries one."""
    for key, value in headers or ():
        if key == SIGNATURE and isinstance(value, bytes):
            return value
    return None


@dataclass(slots=True)
class ListenerStats:
    received: int = 0
    applied_to: int = 0
    undecodable: int = 0
    #: decoded but not believable (a trigger stamp, target, speed or validity no tower writes): ignored
    refused: int = 0
    #: not signed by a tower the fleet trusts (unsigned, an unknown key, a bad signature): not obeyed
    forged: int = 0
    #: received when their trigger was older than their validity (valid_until − issued_at): such advice
    #: is out of date on arrival, whatever sent it
    stale: int = 0
    by_action: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    #: the same latencies in buckets, and those of the advice a hazard report itself triggered
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    hazard_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    history: list[dict[str, Any]] = field(default_factory=list)  # every advisory, when kept


#: advisories received and not yet applied beyond which the receiver stops reading (Kafka's own
#: prefetch bound then holds the rest): a fleet that stopped applying does not grow without bound
INBOX_LIMIT = 200_000


class AdvisoryListener:
    """Reads every region's advisories from now on; each vehicle obeys only its current region's.

    One consumer stands for the radios of the whole fleet (one process simulates every vehicle):
    it is assigned all partitions, and `Fleet.obey` filters by region, carriageway and vehicle.
    A thread of its own receives them and stamps each batch on arrival, as a vehicle's radio would,
    while the simulation encodes and sends the fleet's telemetry; the fleet applies them between
    its steps (`poll`). Only a step that holds the interpreter (libsumo's) delays a stamp."""

    def __init__(self, bootstrap: Kafka, topic: str, partitions: int, keep_history: bool = False,
                 verifier: Verifier | None = None) -> None:  # fmt: skip
        self.stats = ListenerStats()
        self.verifier = verifier  # the towers' keys: advice none of them signed is not obeyed
        self.keep_history = keep_history
        #: the HLC stamps of the hazard reports sent (the run adds them): advice they trigger is timed apart
        self.hazard_triggers: set[int] = set()
        self.tracing = Tracing("corridor-fleet")  # the run's, when traced: ends the hazard path's traces
        self._consumer = Consumer(
            {
                **client_conf(bootstrap),
                "group.id": f"vehicles-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                # prefetch bound: a tick's advisories fit many times over (default 64 MiB)
                "queued.max.messages.kbytes": 16 * 1024,
                "log_level": 3,
            }
        )
        self._consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in range(partitions)])
        self._start_receiving()

    def _start_receiving(self) -> None:
        self._inbox: deque[tuple[list[Any], int]] = deque()
        self._received = self._taken = 0  # messages: each counter has one writer (the receiver, `poll`)
        self._stop = threading.Event()
        self._failure: Exception | None = None
        self._receiver = threading.Thread(target=self._receive, name="advisory-radio", daemon=True)
        self._receiver.start()

    def _receive(self) -> None:
        """Read as advisories arrive (the consumer's wait releases the interpreter), stamping each batch.
        A failure is kept for `poll` to raise: a fleet whose radio went deaf must not run on silently."""
        try:
            while not self._stop.is_set():
                if self._received - self._taken >= INBOX_LIMIT:
                    time.sleep(0.01)
                    continue
                # `poll` returns at the first arrival; a batch `consume` may wait for its batch to fill
                first = self._consumer.poll(0.05)
                if first is None:
                    continue
                at_ns = time.time_ns()
                msgs = [first, *self._consumer.consume(num_messages=5000, timeout=0)]
                self._received += len(msgs)
                self._inbox.append((msgs, at_ns))
        except Exception as exc:  # handed to the fleet's thread, which raises it
            self._failure = exc

    def poll(self, fleet: Fleet, sim_start_ms: int, max_messages: int = 200_000) -> int:
        """Apply what arrived (whole batches, until `max_messages` is reached); returns how many
        messages were taken. As fast as possible (speedup 0) it is called once a tick: a burst of
        advisories larger than one batch is then applied at once, not spread over the following ticks."""
        if self._failure is not None and not self._inbox:
            raise RuntimeError(f"the fleet's advisory receiver stopped: {self._failure}") from self._failure
        read = 0
        batches: list[tuple[list[Any], int]] = []
        while read < max_messages and self._inbox:
            msgs, arrived_ns = self._inbox.popleft()
            self._taken += len(msgs)
            read += len(msgs)
            batches.append((msgs, arrived_ns))
        for msgs, arrived_ns in batches:
            good = [(v, m) for m in msgs if m.error() is None and (v := m.value()) is not None]
            self.apply_values([v for v, _ in good], fleet, sim_start_ms, arrived_ns / 1e6,
                              [signature_of(m.headers()) for _, m in good])  # fmt: skip
            if self.tracing.enabled:  # after: one process stands for every vehicle, and each would trace its own
                for m in msgs:
                    if headers := m.headers():
                        self.tracing.received(VEHICLE_SPAN, headers, at_ns=arrived_ns, region=m.partition() or 0)
        return read

    def apply_values(self, values: list[bytes], fleet: Fleet, sim_start_ms: int,
                     now_ms: float | Sequence[float] | None = None,
                     signatures: Sequence[bytes | str | None] = ()) -> None:  # fmt: skip
        """Decode advisories, however they came, and hand them to the fleet (`now_ms`: when they came,
        all of them or each; `signatures`: each one's, checked when the fleet has the towers' keys)."""
        came = time.time() * 1000 if now_ms is None else now_ms
        for i, value in enumerate(values):
            now_ms = came if isinstance(came, float | int) else came[i]
            signature = signatures[i] if i < len(signatures) else None
            if self.verifier is not None and self.verifier.problem(value, signature) is not None:
                self.stats.forged += 1
                continue
            try:
                adv = CODEC.decode(value, ADVISORY)
            except CodecError:
                self.stats.undecodable += 1
                continue
            target = adv["target_vehicle"]
            speed, until_s = adv["target_speed_mps"], (adv["valid_until"] - sim_start_ms) / 1000.0
            number = target.rsplit("-", 1)[-1] if target else "0"
            if (not 0 < adv["trigger_hlc"] < 1 << 63 or not number.isdigit() or len(number) > 15
                    or not 0 <= speed <= 150 or not math.isfinite(until_s)):  # fmt: skip
                self.stats.refused += 1  # a radio is anyone's: what no tower would send is not obeyed
                continue
            self.stats.received += 1
            action = adv["action"]
            self.stats.by_action[action] = self.stats.by_action.get(action, 0) + 1
            latency = now_ms - unpack(adv["trigger_hlc"])[0]
            self.stats.latencies_ms.append(latency)
            self.stats.latency.observe(latency / 1000)
            if adv["trigger_hlc"] in self.hazard_triggers:
                self.stats.hazard_latency.observe(latency / 1000)
            if latency > adv["valid_until"] - adv["issued_at"]:
                self.stats.stale += 1
            if self.keep_history:
                self.stats.history.append({**adv, "received_ms": now_ms, "sim_s": fleet.t})
            direction = adv["direction"]
            self.stats.applied_to += fleet.obey(
                vehicle_num=int(number) if target else None,
                region=adv["region_id"],
                northbound=None if direction is None else direction == "NORTHBOUND",
                action=Action.BY_NAME[action],
                speed=float(speed),
                until_s=until_s,
                trigger_s=(adv["trigger_event_time"] - sim_start_ms) / 1000.0,
            )

    def close(self) -> None:
        self._stop.set()
        self._receiver.join()
        self._consumer.close()
