"""One fault drill: traffic in real time, one fault injected, recovery, then exact accounting.

Two tower workers serve fresh topics of the drill's own; a fleet drives for `seconds` at 1 Hz. The
fault starts a third of the way in; where it ends by itself (a restart, a resume) that is at half
way. After the traffic every region gets one more (empty) frame, so the towers write their last
second, and the drill waits until they have processed everything. Then it reads the telemetry topic
(the reference: every acknowledged update) and the towers' `vehicles` changelog (their durable
state) and accounts for each vehicle (see `accounting`). Everything the drill made is deleted.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from pipeline.admin import delete_prefixed, end_offsets, ensure_topics
from pipeline.config import Settings
from pipeline.corridor import load_corridor
from pipeline.drill.accounting import account, latest_sent, latest_stored
from pipeline.errors import ConfigError, StackError
from pipeline.stack import Stack
from pipeline.topics import Topics
from pipeline.workers import TowerProcess, wait_for_assignment
from producers.drive import DriveConfig, drive
from producers.encoding import empty_frame
from producers.fleet import Fleet, FleetConfig
from producers.sink import TelemetrySink
from towers.config import app_id

__all__ = ["FAULTS", "run_drill"]

SESSION_TIMEOUT_S = 6.0  # the drill's workers leave the group this long after they go silent


@dataclass
class Drill:
    settings: Settings
    stack: Stack
    topics: Topics
    workers: list[TowerProcess]
    events: list[str] = field(default_factory=list)
    fault_end_wall: float | None = None
    counts: dict[int, int] = field(default_factory=dict)  # worker pid -> updates processed (last seen)
    samples: list[tuple[float, int, float]] = field(default_factory=list)  # (wall, regions owned, max behind ms)

    def note(self, sim_s: float, text: str) -> None:
        self.events.append(f"{sim_s:4.0f} s: {text}")

    def observe(self) -> None:
        owned, behind = 0, 0.0
        for w in self.workers:
            page = w.page(timeout=1.0) if w.alive else None
            if page is None:
                continue
            assert w.proc is not None
            self.counts[w.proc.pid] = int(page["counts"].get("updates", 0))
            owned += len(page["regions"])
            behind = max([behind, *page.get("behind_ms", {}).values()])
        self.samples.append((time.monotonic(), owned, behind))


Step = Callable[[Drill, float], None]


@dataclass(frozen=True)
class Fault:
    what: str
    start: Step  # at a third of the run
    end: Step | None = None  # at half way
    after: Step | None = None  # once the traffic has ended


def _kill_worker(d: Drill, t: float) -> None:
    d.workers[1].kill()
    d.note(t, "tower worker 1 SIGKILLed")


def _restart_worker(d: Drill, t: float) -> None:
    d.workers[1].start()
    d.note(t, "tower worker 1 restarted")


def _signal_worker(sig: signal.Signals, text: str) -> Step:
    def step(d: Drill, t: float) -> None:
        assert d.workers[1].proc is not None
        os.killpg(d.workers[1].proc.pid, sig)
        d.note(t, f"tower worker 1 {text}")

    return step


def _kill_server(name: str) -> Step:
    """SIGKILL the embedded `kafka` or `etcd` (a drill of a cluster of one's own is not ours to kill)."""

    def step(d: Drill, t: float) -> None:
        pid = getattr(d.stack, name).process.running_pid()
        if pid is None:
            raise ConfigError(f"this drill kills the embedded {name}: it is not running here (an external cluster?)")
        os.kill(pid, signal.SIGKILL)
        d.note(t, f"{name} SIGKILLed")

    return step


def _restart_server(name: str) -> Step:
    def step(d: Drill, t: float) -> None:
        getattr(d.stack, name).start(attached=True)
        d.note(t, f"{name} restarted")

    return step


def _replay_shuffled(d: Drill, t: float) -> None:
    """Every telemetry record delivered twice more, in a shuffled order, to its own partition."""
    records = _read_all(d.settings.bootstrap_servers, d.topics.telemetry, d.topics.regions)
    again = records * 2
    random.Random(7).shuffle(again)
    producer = Producer({"bootstrap.servers": d.settings.bootstrap_servers, "enable.idempotence": True,
                         "log_level": 3})  # fmt: skip
    for region, value in again:
        producer.produce(d.topics.telemetry, value, str(region).encode(), region)
        producer.poll(0)
    producer.flush(60)
    d.note(t, f"{len(again)} telemetry records delivered again, shuffled")


FAULTS: dict[str, Fault] = {
    "worker-kill": Fault("a tower worker SIGKILLed under load, restarted later", _kill_worker, _restart_worker),
    "worker-pause": Fault(
        "a tower worker paused (SIGSTOP) past its session timeout, then resumed",
        _signal_worker(signal.SIGSTOP, f"paused (SIGSTOP) past its {SESSION_TIMEOUT_S:.0f} s session timeout"),
        _signal_worker(signal.SIGCONT, "resumed (SIGCONT)"),
    ),
    "broker-kill": Fault("the Kafka broker SIGKILLed mid-run, restarted later", _kill_server("kafka"),
                         _restart_server("kafka")),
    "etcd-kill": Fault("etcd SIGKILLed mid-run, restarted later", _kill_server("etcd"), _restart_server("etcd")),
    "replay": Fault("every telemetry record delivered twice more, shuffled", lambda d, t: None, after=_replay_shuffled),
}


def _records(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every record of `topic` as (partition, key, value), up to its current end."""
    ends = end_offsets(bootstrap, topic, partitions)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"drill-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "log_level": 3})  # fmt: skip
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions) if ends[p]])
    out: list[tuple[int, bytes | None, bytes | None]] = []
    position = [0] * partitions
    deadline = time.monotonic() + 120
    try:
        while any(position[p] < ends[p] for p in range(partitions)) and time.monotonic() < deadline:
            for m in consumer.consume(10_000, timeout=1.0):
                if m.error() is None and m.offset() < ends[m.partition()]:
                    out.append((m.partition(), m.key(), m.value()))
                    position[m.partition()] = m.offset() + 1
    finally:
        consumer.close()
    return out


def _read_all(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, bytes]]:
    return [(p, v) for p, _, v in _records(bootstrap, topic, partitions) if v is not None]


def _latest_per_key(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, bytes]]:
    """A compacted topic as a table: the last value of each (partition, key)."""
    latest = {(p, k): v for p, k, v in _records(bootstrap, topic, partitions)}
    return [(p, v) for (p, _), v in latest.items() if v is not None]


def _settle(d: Drill, fleet: Fleet, timeout: float = 120.0) -> None:
    """One empty frame per region (the towers write their last second), then wait until the towers
    have processed every record and written what they hold."""
    producer = Producer({"bootstrap.servers": d.settings.bootstrap_servers, "log_level": 3})
    last_ms = fleet.start_ms + int(fleet.t * 1000)
    time.sleep(1.2)
    for r in range(d.topics.regions):
        frame = empty_frame(r, 10**6, last_ms, int(time.time() * 1000))
        producer.produce(d.topics.telemetry, frame, str(r).encode(), r)
    producer.flush(30)
    deadline = time.monotonic() + timeout
    quiet_since, last = time.monotonic(), -1
    while time.monotonic() < deadline:
        d.observe()
        total = sum(d.counts.values())
        if total != last:
            quiet_since, last = time.monotonic(), total
        elif time.monotonic() - quiet_since > 3.0 and d.samples[-1][1] == d.topics.regions:
            return
        time.sleep(0.5)
    raise StackError("drill: the towers did not finish processing the traffic in time")


def _recovery_s(d: Drill) -> float | None:
    """From the fault's end until every region is served again and no tower is 1 s behind."""
    if d.fault_end_wall is None:
        return None
    for wall, owned, behind in d.samples:
        if wall >= d.fault_end_wall and owned == d.topics.regions and behind < 1000:
            return round(wall - d.fault_end_wall, 1)
    return float("nan")


def run_drill(fault: str, settings: Settings, vehicles: int = 1_000, seconds: float = 36.0) -> dict[str, Any]:
    if fault not in FAULTS:
        raise ConfigError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")
    spec = FAULTS[fault]
    corridor = load_corridor()
    topics = Topics(regions=len(corridor.regions), prefix=f"drill{uuid.uuid4().hex[:6]}")
    app = app_id(topics.prefix)
    with contextlib.ExitStack() as cleanup, tempfile.TemporaryDirectory() as tmp:
        stack = Stack(settings, attached=True)
        cleanup.callback(stack.stop_started)
        stack.up()
        ensure_topics(settings.bootstrap_servers, topics.specs())
        cleanup.callback(delete_prefixed, settings.bootstrap_servers, topics.prefix)
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
               "ETCD_ENDPOINTS": settings.etcd_servers, "CORRIDOR_TOPIC_PREFIX": topics.prefix,
               "CORRIDOR_TOWER_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
               "CORRIDOR_TOWER_HEARTBEAT_S": "1"}  # fmt: skip
        workers = [TowerProcess(env, Path(tmp) / f"w{i}", Path(tmp) / f"w{i}.log", name=f"tower worker {i}")
                   for i in range(2)]  # fmt: skip
        for w in workers:
            cleanup.callback(w.stop)
            w.start()
        wait_for_assignment(workers, topics.regions)
        d = Drill(settings, stack, topics, workers)
        fleet = Fleet(corridor, FleetConfig(vehicles=vehicles, seed=17), start_ms=int(time.time() * 1000))
        pending = [(seconds / 3, spec.start), *([(seconds / 2, spec.end)] if spec.end else [])]

        def before_tick(sim_s: float) -> None:
            while pending and pending[0][0] <= sim_s:
                _, step = pending.pop(0)
                step(d, sim_s)
                if step is spec.end or spec.end is None:
                    d.fault_end_wall = time.monotonic()

        sink = TelemetrySink(settings.bootstrap_servers, delivery_timeout_s=120)
        stats = drive(fleet, sink, topics, DriveConfig(hz=1, duration_s=seconds, speedup=1),
                      on_tick=lambda s: d.observe(), before_tick=before_tick)  # fmt: skip
        changelog = f"{app}-vehicles-changelog"

        def tables() -> dict[tuple[int, str], int]:
            return latest_stored(_latest_per_key(settings.bootstrap_servers, changelog, topics.regions))

        _settle(d, fleet)
        changed_after = None
        if spec.after is not None:
            before = tables()
            spec.after(d, fleet.t)
            _settle(d, fleet)
            after = tables()
            changed_after = sum(1 for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        sent = latest_sent(_read_all(settings.bootstrap_servers, topics.telemetry, topics.regions))
        result = account(sent, tables())
        in_topic = sum(end_offsets(settings.bootstrap_servers, topics.telemetry, topics.regions))
        processed = sum(d.counts.values())
        return {
            "fault": fault,
            "what": spec.what,
            "events": d.events,
            "updates_acknowledged": stats.updates,  # drive() raises unless every record was acknowledged
            "records_in_topic": in_topic,
            "vehicles_accounted": result.acknowledged,
            "kept": result.kept,
            "superseded": result.superseded,
            "lost": result.lost,
            "lost_examples": [f"{r}:{v}" for r, v in result.lost_examples],
            # merged a second time: after a crash, from the last committed offset; in a replay, all of it
            "updates_processed_again": max(0, processed - stats.updates),
            "recovery_s": _recovery_s(d),
            # for a fault after the traffic (a replay): table entries it changed, which must be none
            "entries_changed_after_traffic": changed_after,
        }
