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
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from pipeline.admin import declare, end_offsets
from pipeline.drill.accounting import account, latest_rejected, latest_sent, latest_stored
from pipeline.drill.hostile import HostileSender
from pipeline.leftovers import owned, scratch_prefix
from pipeline.shared.access import Kafka, Role, client_conf
from pipeline.shared.config import Settings
from pipeline.shared.crdt.hlc import pack
from pipeline.shared.errors import ConfigError, StackError
from pipeline.shared.hazards import hazard_record
from pipeline.shared.messages import CODEC, HAZARD
from pipeline.shared.radio_topics import RadioTopics
from pipeline.shared.stats import percentile
from pipeline.shared.topics import Topics
from pipeline.stack import Stack
from pipeline.stack.mqtt import mosquitto_binary
from pipeline.stack.process import is_our_child
from pipeline.workers import GatewayProcess, TowerProcess, wait_for_assignment, wait_until_written, worker_env
from producers.drive import DriveConfig, drive
from producers.fleet import Fleet, FleetConfig, Obstacle
from producers.sink import TelemetrySink
from towers.config import TowerConfig, app_id

__all__ = ["FAULTS", "run_drill"]

HAZARD_PASS_MPS = 5.0  # drivers squeeze past the drill's standing hazards at walking-plus pace
SESSION_TIMEOUT_S = 6.0  # the drill's workers leave the group this long after they go silent


@dataclass(frozen=True, slots=True)
class Sample:
    wall: float
    owned: int  # regions served
    behind_ms: float  # the most a tower is behind the telemetry
    stale_ms: float  # the oldest news a tower has of a region it hears through tower-sync


@dataclass
class Drill:
    settings: Settings
    stack: Stack
    topics: Topics
    app: str  # the towers' app id: their consumer group
    workers: list[TowerProcess]
    events: list[str] = field(default_factory=list)
    fault_start_wall: float | None = None
    fault_end_wall: float | None = None
    counts: dict[int, int] = field(default_factory=dict)  # worker pid -> updates processed (last seen)
    tallies: dict[int, dict[str, int]] = field(default_factory=dict)  # worker pid -> its counters (last seen)
    clock_offsets: dict[int, int] = field(default_factory=dict)  # worker pid -> its host clock's offset found, ms
    samples: list[Sample] = field(default_factory=list)
    side: SideFleet | None = None
    side_updates: int = 0
    hostile: HostileSender | None = None
    gateway: GatewayProcess | None = None  # a drill over the radio link: the gateway it started
    gateway_survived: bool = True  # alive when the drill stopped it
    detached: set[str] = field(default_factory=set)  # servers killed that `stack up` had started detached
    vehicles: int = 0  # the drill's fleet
    fleet: Fleet | None = None

    def ahead_of_a_vehicle(self) -> float:
        """1.5 km ahead of a random vehicle on the road (km; read from another thread: a sample)."""
        assert self.fleet is not None
        live = np.flatnonzero(self.fleet.active)
        s = int(live[random.randrange(len(live))]) if len(live) else 0
        return round(float(self.fleet.km[s]) + (1.5 if self.fleet.nb[s] else -1.5), 2)

    def note(self, sim_s: float, text: str) -> None:
        self.events.append(f"{sim_s:4.0f} s: {text}")

    def observe(self, sample: bool = True) -> None:
        """Each worker's counters; with `sample`, also how far behind and how stale the towers are now
        (not after the traffic has ended: with no new frames, that only measures the wait)."""
        owned, behind, stale = 0, 0.0, 0.0
        for w in self.workers:
            page = w.page(timeout=1.0) if w.alive else None
            if page is None:
                continue
            assert w.proc is not None
            self.counts[w.proc.pid] = int(page["counts"].get("updates", 0))
            self.tallies[w.proc.pid] = {**page["counts"], **{f"dead:{k}": v for k, v in page["dead_letters"].items()}}
            self.clock_offsets[w.proc.pid] = int(page.get("clock_offset_ms", 0))
            owned += len(page["regions"])
            behind = max([behind, *page.get("behind_ms", {}).values()])
            mine = {str(r) for r in page["regions"]}  # a worker hears the others' regions through tower-sync
            stale = max([stale, *(ms for r, ms in page.get("staleness_ms", {}).items() if r not in mine)])
        if sample:
            self.samples.append(Sample(time.monotonic(), owned, behind, stale))


Step = Callable[[Drill, float], None]


@dataclass(frozen=True)
class Fault:
    what: str
    start: Step  # at `start_at` of the run (a fraction of its traffic)
    end: Step | None = None  # at `end_at`
    after: Step | None = None  # once the traffic has ended
    start_at: float = 1 / 3
    end_at: float = 1 / 2
    seconds: float | None = None  # the traffic's length, when the fault needs its own
    # before worker 1 starts: its data directory → what to add to its environment
    setup: Callable[[Path, contextlib.ExitStack], dict[str, str]] | None = None
    synced: bool = False  # recovered only once the towers hear each other again
    radio: bool = False  # an MQTT broker and a gateway beside the towers, when Mosquitto is installed
    report: Callable[[Drill], dict[str, Any]] | None = None  # the fault's own figures, for its row
    unavailable: Callable[[], str | None] = lambda: None  # why this machine cannot run it, if it cannot

    def runnable(self) -> bool:
        return self.unavailable() is None


class SideFleet:
    """A second fleet driven in real time beside the drill's own, in a thread of its own: more
    traffic than the towers can take (a flood), or vehicles whose clocks are off."""

    def __init__(self, d: Drill, config: FleetConfig, hz: float, clock_offset_ms: int = 0) -> None:
        self.stop = threading.Event()
        self.updates = 0
        self.error: BaseException | None = None

        def run() -> None:
            try:
                fleet = Fleet(d.settings.corridor(), config, start_ms=int(time.time() * 1000) + clock_offset_ms)
                sink = TelemetrySink(d.settings.kafka(Role.VEHICLE), delivery_timeout_s=120)
                every = DriveConfig(hz=hz, duration_s=24 * 3600, speedup=1, clock_offset_ms=clock_offset_ms)
                self.updates = drive(fleet, sink, d.topics, every, should_stop=self.stop.is_set).updates
            except BaseException as exc:  # reported by `finish`, in the drill's own thread
                self.error = exc

        self.thread = threading.Thread(target=run, name="side fleet", daemon=True)
        self.thread.start()

    def finish(self) -> int:
        self.stop.set()
        self.thread.join(300)
        if self.error is not None:
            raise StackError(f"drill: the side fleet failed: {self.error}")
        return self.updates


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


def _sync(state: str) -> Step:
    """Tower-sync off or on in every worker (each keeps advising from what it knows)."""

    def step(d: Drill, t: float) -> None:
        for w in d.workers:
            w.switch("sync", state)
        d.note(t, f"tower-sync {'cut' if state == 'off' else 'restored'} in every worker")

    return step


def _kill_server(name: str) -> Step:
    """SIGKILL the embedded `kafka` or `etcd` (a drill of a cluster of one's own is not ours to kill)."""

    def step(d: Drill, t: float) -> None:
        pid = getattr(d.stack, name).process.running_pid()
        if pid is None:
            raise ConfigError(f"this drill kills the embedded {name}: it is not running here (an external cluster?)")
        if not is_our_child(pid):
            d.detached.add(name)
        os.kill(pid, signal.SIGKILL)
        d.note(t, f"{name} SIGKILLed")

    return step


def _restart_server(name: str) -> Step:
    def step(d: Drill, t: float) -> None:
        getattr(d.stack, name).start(attached=name not in d.detached)  # as it was: `stack up`'s outlive the drill
        d.note(t, f"{name} restarted")

    return step


def _replay_shuffled(d: Drill, t: float) -> None:
    """Every telemetry record delivered twice more, in a shuffled order, to its own partition."""
    records = _read_all(d.settings.kafka(Role.ADMIN), d.topics.telemetry, d.topics.regions)
    again = records * 2
    random.Random(7).shuffle(again)
    producer = Producer(client_conf(d.settings.kafka(Role.ADMIN), {"enable.idempotence": True,
                         "log_level": 3}))  # fmt: skip
    for region, value in again:
        producer.produce(d.topics.telemetry, value, str(region).encode(), region)
        producer.poll(0)
    producer.flush(60)
    d.note(t, f"{len(again)} telemetry records delivered again, shuffled")


FLOOD_VEHICLES = 40_000  # at 10 Hz: 400,000 updates/s, above what two workers take here (the knee)
SKEWED_VEHICLES = 50
SKEW_MS = 10_000


def _flood(d: Drill, t: float) -> None:
    d.side = SideFleet(d, FleetConfig(vehicles=FLOOD_VEHICLES, seed=23, first_num=1_000_000), hz=10)
    d.note(t, f"a second fleet of {FLOOD_VEHICLES:,} vehicles at 10 Hz joins (producers faster than the towers)")


def _skewed(d: Drill, t: float) -> None:
    config = FleetConfig(vehicles=SKEWED_VEHICLES, seed=29, first_num=2_000_000)
    d.side = SideFleet(d, config, hz=1, clock_offset_ms=SKEW_MS)
    d.note(t, f"{SKEWED_VEHICLES} vehicles whose clocks are {SKEW_MS / 1000:.0f} s ahead join")


def _side_ends(d: Drill, t: float) -> None:
    assert d.side is not None
    updates = d.side_updates = d.side.finish()
    d.note(t, f"the second fleet leaves after {updates:,} updates")


HOSTILE_SHARE = 0.1  # hostile inputs per genuine vehicle update


def _hostile_starts(d: Drill, t: float) -> None:
    rate = HOSTILE_SHARE * d.vehicles  # the fleet sends one update per vehicle a second
    radio = RadioTopics(d.topics.regions) if d.gateway is not None else None
    mqtt_at = d.settings.mqtt_address if d.gateway is not None else None
    corridor = d.settings.corridor()
    standing = (round(corridor.route.length_km * 0.4, 1), round(corridor.route.length_km * 0.6, 1))
    d.hostile = HostileSender(d.settings.kafka(Role.ADMIN), corridor, d.topics, radio, mqtt_at, rate,
                              avoid_km=standing, where=d.ahead_of_a_vehicle).start()  # fmt: skip
    where = "Kafka's telemetry, hazards and tower-sync topics" + (" and the radio link" if radio else "")
    d.note(t, f"a stranger sends {rate:.0f} hostile inputs a second on {where}, and a genuine hazard every 2 s")


def _hostile_ends(d: Drill, t: float) -> None:
    assert d.hostile is not None
    d.hostile.stop()
    d.note(t, f"the stranger stops after {len(d.hostile.sent):,} hostile inputs")
    if d.gateway is not None:  # its empty frames would move the towers' clocks on past the fleet's last tick
        d.gateway_survived = d.gateway.alive
        d.gateway.stop()
        d.note(t, "the gateway, serving until now, is stopped" if d.gateway_survived else "the gateway had died")


def _hostile_report(d: Drill) -> dict[str, Any]:
    """Each hostile input's bytes must be in the dead-letter topic (a tower's or the gateway's
    refusal with its reason); each genuine hazard's advice is timed from the advisories topic."""
    assert d.hostile is not None
    h = d.hostile
    values = {v for _, _, v, _ in _records(d.settings.kafka(Role.ADMIN), d.topics.dead_letter, d.topics.regions)
              if v is not None}  # fmt: skip
    # the gateway keeps a dead letter's first 8 kB; a tower keeps it whole
    missing = [x for x in h.sent if (x.payload[:8_192] if x.channel == "mqtt" else x.payload) not in values]
    latencies = sorted(h.latencies_ms)
    gateway = d.gateway.stats() if d.gateway is not None else {}
    return {
        "hostile_sent": len(h.sent),
        "hostile_by_channel": dict(Counter(x.channel for x in h.sent)),
        "hostile_by_kind": h.by_kind(),
        "hostile_uncounted": len(missing),
        "hostile_uncounted_examples": sorted({x.kind for x in missing})[:8],
        "hazards_reported": len(h.hazards_sent),
        "hazards_advised": len(h.first_ms),
        "hazard_advisories": len(latencies),
        "hazard_p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "hazard_p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
        "hazard_first_p99_ms": round(percentile(sorted(h.first_ms.values()), 99), 1) if h.first_ms else None,
        # to the advisory's produce time on its tower (the record's create time): the towers' part alone
        "hazard_produced_p99_ms": round(percentile(h.produced_ms, 99), 1) if h.produced_ms else None,
        "sender_errors": h.errors,
        "gateway_dead_letters": gateway.get("dead_letters", {}),
        "gateway_errors": gateway.get("errors", {}),
    }


def _no_mosquitto() -> str | None:
    try:
        mosquitto_binary()
    except StackError as exc:
        return str(exc)
    return None


DISK_MB = 256
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")  # Debian's `faketime` package
HOST_SKEW_S = 10


def _not_root() -> str | None:
    if os.geteuid() == 0:
        return None
    return "the full-disk drill mounts a small tmpfs for a worker's state: run it as root"


def _no_faketime() -> str | None:
    if FAKETIME_LIB.exists():
        return None
    return f"the tower-clock drill needs libfaketime ({FAKETIME_LIB}): apt-get install faketime"


def _small_disk(datadir: Path, cleanup: contextlib.ExitStack) -> dict[str, str]:
    """Worker 1's data directory on a tmpfs of its own, so filling it fills nothing else."""
    datadir.mkdir(parents=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(datadir)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigError(f"the full-disk drill could not mount a tmpfs: {done.stderr.strip()}")
    cleanup.callback(subprocess.run, ["umount", "--lazy", str(datadir)], check=False)
    return {}


def _host_clock_ahead(datadir: Path, cleanup: contextlib.ExitStack) -> dict[str, str]:
    """Worker 1 on a host whose wall clock is ahead (libfaketime). Its monotonic clock is moved by
    the same constant, which changes no interval; leaving it true (DONT_FAKE_MONOTONIC) breaks
    Python 3.11's time.sleep, whose absolute monotonic deadline libfaketime then mangles into EINVAL
    (libfaketime issue 426; it crashed the worker whenever it slept)."""
    return {"LD_PRELOAD": str(FAKETIME_LIB), "FAKETIME": f"+{HOST_SKEW_S}s"}


def _noted(text: str) -> Step:
    def step(d: Drill, t: float) -> None:
        d.note(t, text)

    return step


def _fill_disk(d: Drill, t: float) -> None:
    block, written = b"\0" * (1 << 20), 0
    try:
        with open(d.workers[1].datadir / "filler", "wb", buffering=0) as fh:
            while True:
                written += fh.write(block)
    except OSError as exc:
        d.note(t, f"tower worker 1's disk filled ({written >> 20} MiB more: {exc.strerror})")


def _free_disk(d: Drill, t: float) -> None:
    (d.workers[1].datadir / "filler").unlink()
    w = d.workers[1]
    said = [line for line in w.log.read_text(errors="replace").splitlines() if "space" in line.lower()]
    if said:
        d.note(t, f"tower worker 1 logged {len(said)} lines on it, the first: {said[0].strip()[:160]}")
    if w.alive:
        d.note(t, "its disk freed; tower worker 1 still running")
        return
    code = w.proc.returncode if w.proc is not None else None
    w.start()
    d.note(t, f"its disk freed; tower worker 1 had exited (code {code}): restarted")


FAULTS: dict[str, Fault] = {
    "worker-kill": Fault("a tower worker SIGKILLed under load, restarted later", _kill_worker, _restart_worker),
    "worker-pause": Fault(
        "a tower worker paused (SIGSTOP) past its session timeout, then resumed",
        _signal_worker(signal.SIGSTOP, f"paused (SIGSTOP) past its {SESSION_TIMEOUT_S:.0f} s session timeout"),
        _signal_worker(signal.SIGCONT, "resumed (SIGCONT)"),
    ),
    "broker-kill": Fault(
        "the Kafka broker SIGKILLed mid-run, restarted later", _kill_server("kafka"), _restart_server("kafka")
    ),
    "etcd-kill": Fault(
        "etcd SIGKILLed for a minute, then restarted",
        _kill_server("etcd"),
        _restart_server("etcd"),
        start_at=1 / 6,
        end_at=5 / 6,
        seconds=90,
    ),
    "sync-cut": Fault(
        "tower-sync cut for 30 s in every worker, then restored",
        _sync("off"),
        _sync("on"),
        start_at=1 / 4,
        end_at=3 / 4,
        seconds=60,
        synced=True,
    ),
    "replay": Fault("every telemetry record delivered twice more, shuffled", lambda d, t: None, after=_replay_shuffled),
    "slow-towers": Fault(
        f"producers faster than the towers for a minute ({FLOOD_VEHICLES:,} more vehicles at 10 Hz)",
        _flood,
        _side_ends,
        start_at=1 / 7,
        end_at=6 / 7,
        seconds=84,
    ),
    "full-disk": Fault(
        f"the disk under a tower worker's state ({DISK_MB} MiB) full, then freed",
        _fill_disk,
        _free_disk,
        setup=_small_disk,
        unavailable=_not_root,
    ),
    "tower-clock": Fault(
        f"a tower worker's host clock {HOST_SKEW_S} s ahead, all along",
        _noted(f"tower worker 1's host clock is {HOST_SKEW_S} s ahead (since it started)"),
        setup=_host_clock_ahead,
        unavailable=_no_faketime,
    ),
    "clock-skew": Fault(
        f"{SKEWED_VEHICLES} vehicles whose clocks are {SKEW_MS / 1000:.0f} s ahead", _skewed, _side_ends
    ),
    "hostile": Fault(
        f"a stranger's crafted and random input at {HOSTILE_SHARE:.0%} of the traffic, on Kafka and the radio link",
        _hostile_starts,
        _hostile_ends,
        start_at=1 / 6,
        end_at=5 / 6,
        radio=True,
        report=_hostile_report,
        unavailable=_no_mosquitto,
    ),
}


Record = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]


def _record(m: Message) -> Record:
    """(partition, key, value, headers) of a consumed message; our headers are all bytes."""
    given = m.headers() or []
    headers = [(k, v) for k, v in (given.items() if isinstance(given, dict) else given) if isinstance(v, bytes)]
    return m.partition() or 0, m.key(), m.value(), headers


def _records(bootstrap: Kafka, topic: str, partitions: int) -> list[Record]:
    """Every record of `topic` as (partition, key, value, headers), up to its current end."""
    ends = end_offsets(bootstrap, topic, partitions)
    consumer = Consumer(client_conf(bootstrap, {"group.id": f"drill-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "log_level": 3}))  # fmt: skip
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions) if ends[p]])
    out: list[Record] = []
    position = [0] * partitions
    deadline = time.monotonic() + 120
    try:
        while any(position[p] < ends[p] for p in range(partitions)) and time.monotonic() < deadline:
            for m in consumer.consume(10_000, timeout=1.0):
                p, offset = m.partition() or 0, m.offset() or 0
                if m.error() is None and offset < ends[p]:
                    out.append(_record(m))
                    position[p] = offset + 1
    finally:
        consumer.close()
    return out


def _read_all(bootstrap: Kafka, topic: str, partitions: int) -> list[tuple[int, bytes]]:
    return [(p, v) for p, _, v, _ in _records(bootstrap, topic, partitions) if v is not None]


def _latest_per_key(bootstrap: Kafka, topic: str, partitions: int) -> list[tuple[int, bytes]]:
    """A compacted topic as a table: the last value of each (partition, key)."""
    latest = {(p, k): v for p, k, v, _ in _records(bootstrap, topic, partitions)}
    return [(p, v) for (p, _), v in latest.items() if v is not None]


def _dead_letters(bootstrap: Kafka, topics: Topics) -> tuple[list[tuple[int, bytes]], dict[str, int]]:
    """The dead letters of telemetry, and how many of each reason."""
    letters: list[tuple[int, bytes]] = []
    reasons: dict[str, int] = {}
    for p, _, value, headers in _records(bootstrap, topics.dead_letter, topics.regions):
        head = dict(headers)
        if value is None or head.get("source-topic") != topics.telemetry.encode():
            continue
        letters.append((p, value))
        reason = head.get("reason", b"").decode(errors="replace").split(":", 1)[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    return letters, reasons


def _settle(d: Drill, fleet: Fleet) -> None:
    """Until the towers have written every telemetry record, and serve every region."""

    def served() -> bool:
        d.observe()
        return d.samples[-1].owned == d.topics.regions

    last_ms = fleet.start_ms + int(fleet.t * 1000)
    try:
        wait_until_written(d.settings.kafka(Role.ADMIN), d.app, d.topics.telemetry, d.topics.regions, last_ms,
                           timeout=300, each_round=served)  # fmt: skip
    except StackError:
        raise StackError("drill: the towers did not finish processing the traffic in time") from None


def _summed(tallies: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in tallies:
        for k, v in t.items():
            out[k] = out.get(k, 0) + int(v)
    return dict(sorted(out.items()))


def _worst_s(d: Drill, what: Callable[[Sample], float]) -> float:
    """The worst of a sampled figure from the fault on (before it, the towers were still starting:
    a tower whose clock is off reads its news that much old until its first frames have come)."""
    since = d.fault_start_wall or 0.0
    return round(max((what(x) for x in d.samples if x.wall >= since), default=0.0) / 1000, 1)


def _advisories(d: Drill) -> dict[str, int]:
    """Every advisory a tower decided on reached the topic. A worker still running at the end must
    have each one acknowledged by the broker, and none given up on; a killed worker's unsent ones
    went with it, but so did the acknowledgement of the input that caused them, which the next
    owner read again (decided again, or dropped as too old and counted as a stale trigger)."""
    survivors = {w.proc.pid for w in d.workers if w.alive and w.proc is not None}
    deadline = time.monotonic() + 15
    while True:  # tower-sync can cause advisories after the last telemetry: let those settle too
        pages = [w.page(timeout=2.0) for w in d.workers if w.alive]
        if all(p is not None and p["unsettled_messages"] == 0 for p in pages) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    d.observe(sample=False)
    decided = sum(t.get("advisories", 0) for t in d.tallies.values())
    delivered = sum(t.get("delivered-advisory", 0) for t in d.tallies.values())
    undelivered = sum(t.get("undelivered-advisory", 0) for t in d.tallies.values())
    unsettled = sum(max(0, t.get("advisories", 0) - t.get("delivered-advisory", 0) - t.get("undelivered-advisory", 0))
                    for pid, t in d.tallies.items() if pid in survivors)  # fmt: skip
    in_topic = sum(end_offsets(d.settings.kafka(Role.ADMIN), d.topics.advisories, d.topics.regions))
    return {"decided": decided, "delivered": delivered, "in_topic": in_topic,
            "lost": undelivered + unsettled + max(0, delivered - in_topic)}  # fmt: skip


def _standing_hazards(d: Drill, fleet: Fleet) -> None:
    """An animal on each carriageway for the whole drill: the towers keep advising the vehicles that
    approach it, so there are advisories to account for under every fault."""
    length = fleet.corridor.route.length_km
    producer = Producer(client_conf(d.settings.kafka(Role.ADMIN), {"enable.idempotence": True,
                         "log_level": 3}))  # fmt: skip
    spots = ((round(length * 0.4, 1), "NORTHBOUND"), (round(length * 0.6, 1), "SOUTHBOUND"))
    for i, (km, direction) in enumerate(spots):
        fleet.obstacles.append(Obstacle(km, direction == "NORTHBOUND", 0.0, float("inf"), HAZARD_PASS_MPS))
        rec = hazard_record(
            km, "ANIMAL", direction, 5, fleet.start_ms, 3600, f"drill-{i}", "drill", corridor=fleet.corridor
        )
        producer.produce(d.topics.hazards, CODEC.encode(HAZARD, rec), str(rec["region_id"]).encode(), rec["region_id"])
    if producer.flush(30):
        raise StackError("drill: the standing hazards were not acknowledged by the broker")


def _recovery_s(d: Drill, synced: bool) -> float | None:
    """From the fault's end until every region is served again and no tower is 1 s behind (and, with
    `synced`, none has news of another region older than 3 s)."""
    if d.fault_end_wall is None:
        return None
    for x in d.samples:
        served = x.owned == d.topics.regions and x.behind_ms < 1000
        if x.wall >= d.fault_end_wall and served and (not synced or x.stale_ms < 3000):
            return round(x.wall - d.fault_end_wall, 1)
    return float("nan")


def run_drill(fault: str, settings: Settings, vehicles: int = 1_000, seconds: float = 36.0) -> dict[str, Any]:
    if fault not in FAULTS:
        raise ConfigError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")
    spec = FAULTS[fault]
    if (why := spec.unavailable()) is not None:
        raise ConfigError(why)
    corridor = settings.corridor()
    topics = Topics(regions=len(corridor.regions), prefix=scratch_prefix("drill"))
    app = app_id(topics.prefix)
    # The workers stop (and a drill's small disk is unmounted) before their directory is deleted.
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as cleanup:
        stack = Stack(settings, attached=True, mqtt=spec.radio)
        cleanup.callback(stack.stop_started)
        stack.up()
        declare(settings, topics)
        cleanup.enter_context(owned(settings, "drill", topics.prefix))  # its topics, group, etcd keys
        env = worker_env(settings, topics.prefix, {"CORRIDOR_TOWER_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
                                                   "CORRIDOR_TOWER_HEARTBEAT_S": "1"})  # fmt: skip
        extra = spec.setup(Path(tmp) / "w1", cleanup) if spec.setup is not None else {}
        workers = [TowerProcess({**env, **(extra if i else {})}, Path(tmp) / f"w{i}", Path(tmp) / f"w{i}.log",
                                name=f"tower worker {i}", switches=True) for i in range(2)]  # fmt: skip
        for w in workers:
            cleanup.callback(w.stop)
            w.start()
        wait_for_assignment(workers, topics.regions)
        d = Drill(settings, stack, topics, app, workers, vehicles=vehicles)
        if spec.radio:
            host, port = settings.mqtt_address
            d.gateway = GatewayProcess({**env, "MQTT_URL": f"mqtt://{host}:{port}"}, Path(tmp) / "gateway.json",
                                       Path(tmp) / "gateway.log")  # fmt: skip
            cleanup.callback(d.gateway.stop)
            d.gateway.start().wait_ready()
        fleet = Fleet(corridor, FleetConfig(vehicles=vehicles, seed=17), start_ms=int(time.time() * 1000))
        d.fleet = fleet
        _standing_hazards(d, fleet)
        seconds = spec.seconds or seconds
        pending = [(seconds * spec.start_at, spec.start), *([(seconds * spec.end_at, spec.end)] if spec.end else [])]

        def before_tick(sim_s: float) -> None:
            while pending and pending[0][0] <= sim_s:
                _, step = pending.pop(0)
                if step is spec.start:
                    d.fault_start_wall = time.monotonic()
                step(d, sim_s)
                if step is spec.end or spec.end is None:
                    d.fault_end_wall = time.monotonic()

        sink = TelemetrySink(settings.kafka(Role.VEHICLE), delivery_timeout_s=120)
        stats = drive(fleet, sink, topics, DriveConfig(hz=1, duration_s=seconds, speedup=1),
                      on_tick=lambda s: d.observe(), before_tick=before_tick)  # fmt: skip
        changelog = f"{app}-vehicles-changelog"

        def tables() -> dict[tuple[int, str], int]:
            return latest_stored(_latest_per_key(settings.kafka(Role.ADMIN), changelog, topics.regions))

        _settle(d, fleet)
        changed_after = None
        if spec.after is not None:
            before = tables()
            spec.after(d, fleet.t)
            _settle(d, fleet)
            after = tables()
            changed_after = sum(1 for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        sent = latest_sent(_read_all(settings.kafka(Role.ADMIN), topics.telemetry, topics.regions))
        letters, reasons = _dead_letters(settings.kafka(Role.ADMIN), topics)
        # departed vehicles whose tombstones the towers may have pruned by now
        horizon_ms = int(TowerConfig().tombstone_horizon_s * 1000)
        result = account(sent, tables(), latest_rejected(letters), pack(int(time.time() * 1000) - horizon_ms, 0))
        in_topic = sum(end_offsets(settings.kafka(Role.ADMIN), topics.telemetry, topics.regions))
        advisories = _advisories(d)
        processed = sum(d.counts.values())
        crashed = [w.name for w in d.workers if not w.alive and fault not in ("worker-kill", "full-disk")]
        if d.gateway is not None and not d.gateway_survived:
            crashed.append("gateway")
        return {
            **(spec.report(d) if spec.report is not None else {}),
            # processes the drill did not stop on purpose that are gone: a drill with any is not green
            "crashed": crashed,
            "fault": fault,
            "what": spec.what,
            "events": d.events,
            # drive() raises unless every record was acknowledged
            "updates_acknowledged": stats.updates + d.side_updates,
            "records_in_topic": in_topic,
            "vehicles_accounted": result.acknowledged,
            "kept": result.kept,
            "superseded": result.superseded,
            "lost": result.lost,
            "rejected": result.rejected,  # refused with a reason: in the dead-letter topic
            "dead_letters": reasons,
            # the towers' own counters, summed over every worker process (advisories, stale triggers,
            # failed table writes, dead letters of every topic)
            "tower_counts": _summed(d.tallies.values()),
            "lost_examples": [f"{r}:{v}" for r, v in result.lost_examples],
            # advisories decided by the towers (summed over every worker process), acknowledged by the
            # broker, in the topic, and lost: given up on, or never acknowledged by a surviving worker
            "advisories": advisories,
            # how far each worker process found its host's clock from the vehicles' (last seen), s
            "clock_offsets_s": sorted(round(ms / 1000, 1) for ms in d.clock_offsets.values()),
            # merged a second time: after a crash, from the last committed offset; in a replay, all of it
            "updates_processed_again": max(0, processed - stats.updates - d.side_updates),
            "recovery_s": _recovery_s(d, spec.synced),
            "max_stale_s": _worst_s(d, lambda x: x.stale_ms),
            "max_behind_s": _worst_s(d, lambda x: x.behind_ms),
            # for a fault after the traffic (a replay): table entries it changed, which must be none
            "entries_changed_after_traffic": changed_after,
        }
