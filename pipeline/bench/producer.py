"""Fleet physics cost and producer throughput (issue targets: ≤ 100 ms CPU per simulated second
for 20,000 vehicles; ≥ 50,000 telemetry messages/s encoded, delivered and acknowledged)."""

from __future__ import annotations

import time
from typing import Any

from pipeline.admin import delete_prefixed, ensure_topics
from pipeline.leftovers import scratch_prefix
from pipeline.shared.corridor import load_corridor
from pipeline.shared.topics import Topics
from producers.drive import DriveConfig, WireFormat, drive
from producers.fleet import Fleet, FleetConfig
from producers.sink import TelemetrySink

__all__ = ["run_fleet", "run_producer"]


def run_fleet(vehicles: int = 20_000, quick: bool = False) -> dict[str, Any]:
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=vehicles))
    seconds = 30 if quick else 120
    c0 = time.process_time()
    for _ in range(seconds * 2):
        fleet.step(0.5)
    cpu = time.process_time() - c0
    return {"vehicles": vehicles, "simulated_s": seconds, "cpu_ms_per_sim_s": cpu * 1000 / seconds}


def run_producer(bootstrap: str, vehicles: int = 20_000, quick: bool = False) -> dict[str, Any]:
    topics = Topics(regions=9, prefix=scratch_prefix("bench"))
    ensure_topics(bootstrap, topics.specs())
    out: dict[str, Any] = {"vehicles": vehicles}
    try:
        for wire in (WireFormat.RECORDS, WireFormat.FRAMES):
            fleet = Fleet(load_corridor(), FleetConfig(vehicles=vehicles))
            sink = TelemetrySink(bootstrap)
            stats = drive(fleet, sink, topics, DriveConfig(hz=1, duration_s=10 if quick else 30, speedup=0, wire=wire))
            out[f"{wire}_kafka_records"] = sink.stats.acked
            out[f"{wire}_updates_per_s"] = stats.updates / stats.wall_s
            out[f"{wire}_records_per_s"] = sink.stats.acked / stats.wall_s
            out[f"{wire}_bytes_per_update"] = sink.stats.bytes / stats.updates
    finally:
        delete_prefixed(bootstrap, topics.prefix)  # its towers' changelogs too
    return out
