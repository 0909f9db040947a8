"""What a drill holds while it runs: its workers, samples, side traffic and the fault it plays."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.drill.hostile import HostileSender
from pipeline.shared.access import Role
from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from pipeline.shared.topics import Topics
from pipeline.stack import Stack
from pipeline.workers import GatewayProcess, TowerProcess
from producers.drive import DriveConfig, drive
from producers.fleet import Fleet, FleetConfig
from producers.sink import TelemetrySink

__all__ = ["CLUSTER_SESSION", "Drill", "Fault", "Sample", "SideFleet", "Step"]

HAZARD_PASS_MPS = 5.0  # drivers squeeze past the drill's standing hazards at walking-plus pace
#: the drill's workers leave the group 6 s after they go silent (the least any broker accepts by
#: default); the environment may ask for shorter on corridor's own broker, which allows 1 s
SESSION = {"CORRIDOR_TOWER_SESSION_TIMEOUT_S": "6", "CORRIDOR_TOWER_HEARTBEAT_S": "1"}
#: on a cluster, the workers also give up a request to a broker that answers nothing after as long
#: (the least Faust allows), and ask the partition's new leader: with Faust's 90 s they waited for a
#: broker cut off for 12 s to come back (13-16 s behind in two runs; 7-14 s in three with 6 s)
CLUSTER_SESSION = {**SESSION, "CORRIDOR_TOWER_REQUEST_TIMEOUT_S": "6"}


@dataclass(frozen=True, slots=True)
class Sample:
    wall: float
    owned: int  # regions served
    behind_ms: float  # the most a tower is behind the telemetry
    stale_ms: float  # the oldest news a tower has of a region it hears through tower-sync
    stale_of: str = ""  # whose news of which region that was
    etcd_age_ms: float = 0.0  # the oldest of the workers' last commits to etcd


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
    traffic_end_wall: float | None = None
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
    hazards: HostileSender | None = None  # genuine hazards reported all along, each advice timed
    target: Any = None  # the cluster node the fault stopped
    waiting: list[threading.Thread] = field(default_factory=list)  # for a restarted node, beside the traffic
    fault_start_ms: int | None = None  # wall clock (epoch ms), to compare with the hazards' report times
    fault_end_ms: int | None = None
    takeover_s: float | None = None  # from the fault's start until every region was served again (10 Hz)

    def watch_takeover(self, limit_s: float = 60.0) -> None:
        """Sample the answering workers' pages ten times a second from the fault's start until they
        serve every region, none a second behind: the traffic's once-a-second samples would round a
        takeover up to the next whole second."""
        start = self.fault_start_wall
        assert start is not None

        def served() -> bool:
            pages = [p for w in self.workers if w.alive and (p := w.page(timeout=0.3)) is not None]
            behind = [ms for p in pages for ms in p.get("behind_ms", {}).values()]
            return sum(len(p["regions"]) for p in pages) == self.topics.regions and max(behind, default=1e9) < 1000

        def run() -> None:
            while time.monotonic() - start < limit_s:
                if served():
                    self.takeover_s = round(time.monotonic() - start, 2)
                    return
                time.sleep(0.1)

        threading.Thread(target=run, name="takeover watch", daemon=True).start()

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
        owned, behind, stale, stale_of, etcd_age = 0, 0.0, 0.0, "", 0.0
        for w in self.workers:
            page = w.page(timeout=1.0) if w.alive else None
            if page is None:
                continue
            assert w.proc is not None
            self.counts[w.proc.pid] = int(page["counts"].get("updates", 0))
            self.tallies[w.proc.pid] = {**page["counts"], **{f"dead:{k}": v for k, v in page["dead_letters"].items()}}
            self.clock_offsets[w.proc.pid] = int(page.get("clock_offset_ms", 0))
            owned += len(page["regions"])
            etcd_age = max(etcd_age, float((page.get("staleness_by_class_ms") or {}).get("etcd_snapshot") or 0))
            behind = max([behind, *page.get("behind_ms", {}).values()])
            mine = {str(r) for r in page["regions"]}  # a worker hears the others' regions through tower-sync
            for r, ms in page.get("staleness_ms", {}).items():
                if r not in mine and ms > stale:
                    stale, stale_of = ms, f"{w.name} of region {r}"
        if sample:
            self.samples.append(Sample(time.monotonic(), owned, behind, stale, stale_of, etcd_age))


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
    alerts: tuple[str, ...] = ()  # what Prometheus, watching, must fire (and resolve once it is over)
    cluster: bool = False  # played on three Kafka nodes and three etcd members (corridor's own)
    hazards: bool = False  # genuine hazards reported all along, each one's advice timed
    takeover: bool = False  # a worker lost: how soon every region is served again, sampled 10 times a second

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
