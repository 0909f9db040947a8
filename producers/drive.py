"""The fleet's main loop: step the physics, send telemetry, obey advisories, keep the pace."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from pipeline.shared.crdt.hlc import HybridClock
from pipeline.shared.messages import CODEC, HAZARD
from pipeline.shared.topics import Topics
from producers.cam import CHECK_S, CamTrigger
from producers.denm import HazardSpotter
from producers.encoding import TelemetryEncoder, empty_frame
from producers.fcd import ReplayFleet
from producers.fleet import Fleet
from producers.listener import AdvisoryListener
from producers.sink import Uplink

__all__ = ["DriveConfig", "DriveStats", "WireFormat", "drive", "event_clock_start"]

MAX_STEP_S = 0.5  # IDM integration step; telemetry ticks are split into steps no longer than this


class WireFormat(StrEnum):
    FRAMES = "frames"  # one TelemetryFrame per region per tick (what towers read fastest)
    RECORDS = "records"  # one VehicleTelemetry record per vehicle update


@dataclass(frozen=True, slots=True)
class DriveConfig:
    hz: float = 1.0
    duration_s: float = 60.0  # simulated seconds
    speedup: float = 1.0  # simulated seconds per wall second; 0 = as fast as possible
    wire: WireFormat = WireFormat.FRAMES
    # The fleet's clocks against true time (a skewed GNSS fix, a bad RTC): its HLC stamps and the
    # times its frames carry are off by this much. Towers refuse stamps too far ahead of their own.
    clock_offset_ms: int = 0
    # CAM generation rules (producers/cam.py) instead of `hz`: checked every 100 ms, each vehicle
    # sends when it turned, moved or changed speed enough, and at least once a second
    cam: bool = False
    # vehicles raise hazards themselves (producers/denm.py): one stopped on the motorway reports a queue's end
    vehicle_hazards: bool = False

    @property
    def tick_s(self) -> float:
        return CHECK_S if self.cam else 1.0 / self.hz


def event_clock_start(config: DriveConfig, now_ms: int | None = None) -> int:
    """Where a fleet's event clock starts so that its event times never pass its wall clock (with
    the fleet's own offset), at any speed-up: towers refuse an event time ahead of the time its
    message was sent, since one such stamp would carry a region's clock off and expire its swarm.
    A run faster than real time therefore replays the recent past, ending at the present."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    sim_ms = config.duration_s * 1000
    wall_ms = sim_ms / config.speedup if config.speedup > 0 else 0.0
    return now_ms + config.clock_offset_ms - max(0, math.ceil(sim_ms - wall_ms))


@dataclass(slots=True)
class DriveStats:
    ticks: int = 0
    updates: int = 0
    wall_s: float = 0.0
    lag_s: float = 0.0  # how far the loop is behind its wall-clock schedule
    cpu_step_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def updates_per_s(self) -> float:
        return self.updates / self.wall_s if self.wall_s else 0.0

    @property
    def messages_per_vehicle_s(self) -> float:
        """Messages a vehicle sent per simulated second on the road, over the fleet."""
        vehicle_s = self.extra.get("vehicle_s", 0.0)
        return self.updates / vehicle_s if vehicle_s else 0.0


def drive(
    fleet: Fleet | ReplayFleet,
    sink: Uplink,
    topics: Topics,
    config: DriveConfig,
    listener: AdvisoryListener | None = None,
    on_tick: Callable[[DriveStats], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    before_send: Callable[[float], None] | None = None,
) -> DriveStats:
    """Run until `duration_s` of simulated time has passed (or `should_stop`); flush at the end."""
    offset = config.clock_offset_ms
    clock = HybridClock(physical=lambda: int(time.time() * 1000) + offset)
    encoder = TelemetryEncoder()
    stats = DriveStats()
    tick_s = config.tick_s
    substeps = max(1, math.ceil(tick_s / MAX_STEP_S))
    ticks = round(config.duration_s / tick_s)
    cam = CamTrigger() if config.cam else None
    obeying = fleet if isinstance(fleet, Fleet) else None  # replayed vehicles cannot obey
    spotter = HazardSpotter() if config.vehicle_hazards and obeying is not None else None
    t0 = time.monotonic()
    if before_send is not None:
        before_send(fleet.t)

    for k in range(ticks):
        if should_stop():
            break
        c0 = time.process_time()
        for _ in range(substeps):
            fleet.step(tick_s / substeps)
            sink.poll()  # a radio without threads of its own reads what came meanwhile
        stats.cpu_step_s += time.process_time() - c0
        if before_send is not None:
            # what is due by now happens now, just before the tick's telemetry goes and the advice it
            # brings is listened for: a report is not held back while the physics of the tick runs
            # (a few ms for corridor's fleet, tens for SUMO's, which holds the interpreter meanwhile)
            before_send(fleet.t)
        stats.extra["vehicle_s"] = stats.extra.get("vehicle_s", 0.0) + tick_s * int(fleet.active.sum())
        batch = fleet.telemetry(cam)
        if config.wire is WireFormat.FRAMES:
            first = clock.reserve(len(batch))
            encoded = encoder.encode(batch, first + np.arange(len(batch), dtype=np.int64))
            now_ms = int(time.time() * 1000) + offset
            frames = encoded.frames(k, batch.event_time_ms, now_ms)
            for region in range(topics.regions):
                # A region with no vehicle this tick still gets its (empty) frame: the tower's clock
                # moves on, so it expires silent vehicles and flushes its state.
                frame = frames.get(region) or empty_frame(region, k, batch.event_time_ms, now_ms)
                sink.send(topics.telemetry, region, str(region).encode(), [frame])
        else:
            # A message per vehicle: each region's are stamped (their HLC) and encoded just before they
            # go, as a vehicle stamps what it sends; one process sending the whole fleet's tick would
            # otherwise age the last region's updates by the time it took to send the others'.
            order = np.argsort(batch.region, kind="stable")
            bounds = np.flatnonzero(np.diff(batch.region[order])) + 1
            for chunk in np.split(order, bounds):
                if len(chunk):
                    part = batch.take(chunk)
                    first = clock.reserve(len(part))
                    records = encoder.encode(part, first + np.arange(len(part), dtype=np.int64)).records()
                    region = int(part.region[0])
                    sink.send(topics.telemetry, region, str(region).encode(), records)
        if spotter is not None and obeying is not None:
            for rec in spotter.spot(obeying, clock):
                sink.send_hazard(topics.hazards, rec["region_id"], CODEC.encode(HAZARD, rec))
            stats.extra["vehicle_hazards"] = spotter.reports
        sink.poll()
        if listener is not None and obeying is not None:
            listener.poll(obeying, fleet.start_ms)
        stats.ticks += 1
        stats.updates += len(batch)
        stats.wall_s = time.monotonic() - t0
        if config.speedup > 0:
            due = (k + 1) * tick_s / config.speedup
            stats.lag_s = max(0.0, stats.wall_s - due)
            # Wait for the next tick while still listening: advisories are applied within ~10 ms.
            while (ahead := due - (time.monotonic() - t0)) > 0:
                if listener is not None and obeying is not None:
                    listener.poll(obeying, fleet.start_ms)
                sink.poll()
                time.sleep(min(0.01, ahead))
        if on_tick is not None:
            on_tick(stats)
    sink.flush()
    stats.wall_s = time.monotonic() - t0
    return stats
