"""The two Avro headers side by side: the fleet's producer and one tower worker, each writing and
reading single-object records and then the Confluent wire format (ids from the real registry), on
the same broker in one run; and what the registry costs (the ids are looked up once, at start)."""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.admin import delete_prefixed, ensure_topics
from pipeline.bench.towers import drain_rate, tower_worker
from pipeline.leftovers import scratch_prefix
from pipeline.schema_registry import register_schemas, registry_ids
from pipeline.shared.codec import WIRE_FORMATS
from pipeline.shared.codec import WireFormat as Header
from pipeline.shared.config import Settings
from pipeline.shared.corridor import load_corridor
from pipeline.shared.messages import CODEC
from pipeline.shared.topics import Topics
from pipeline.stack.registry import RegistryServer
from producers.drive import DriveConfig, WireFormat, drive, event_clock_start
from producers.fleet import Fleet, FleetConfig
from producers.sink import TelemetrySink

__all__ = ["run_wire"]


def _produce(settings: Settings, topics: Topics, vehicles: int, seconds: int, frames: bool) -> dict[str, float]:
    driving = DriveConfig(hz=1, duration_s=seconds, speedup=0, wire=WireFormat.FRAMES if frames else WireFormat.RECORDS)
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=vehicles, seed=5), start_ms=event_clock_start(driving))
    sink = TelemetrySink(settings.bootstrap_servers)
    stats = drive(fleet, sink, topics, driving)
    return {"updates": stats.updates, "updates_per_s": stats.updates / stats.wall_s,
            "bytes_per_update": sink.stats.bytes / stats.updates}  # fmt: skip


def _drain(settings: Settings, wire: Header, topics: Topics, total: int, workdir: Path) -> float:
    """One worker, a consumer group of its own, reading `topics` from the start: updates/s."""
    env = {"CORRIDOR_TOWER_APP_SUFFIX": f"-w{uuid.uuid4().hex[:4]}", "CORRIDOR_TOWER_MAX_TRIGGER_AGE_S": "3600"}
    worker = tower_worker(replace(settings, topic_prefix=topics.prefix, wire=wire), topics.prefix, workdir, env, 0)
    worker.start()
    try:
        rate = drain_rate([worker], total, timeout=300)
        if not worker.alive:
            raise RuntimeError(f"the {wire} worker died: {worker.log.read_text()[-300:]}")
        return rate
    finally:
        worker.stop()


def run_wire(settings: Settings, quick: bool = False) -> dict[str, Any]:
    server = RegistryServer(settings)
    started = server.start(attached=True)
    out: dict[str, Any] = {}
    made: list[Topics] = []
    try:
        t0 = time.perf_counter()
        register_schemas(settings)
        out["register_ms"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        ids = registry_ids(settings)
        out["lookup_ms"] = (time.perf_counter() - t0) * 1000
        out["schemas_looked_up"] = len(ids)
        vehicles, seconds, drains = (20_000, 20, 1) if quick else (20_000, 60, 3)
        frames: dict[str, tuple[Topics, int]] = {}
        for wire in WIRE_FORMATS:
            CODEC.use_registry_ids(ids, wire)
            row: dict[str, Any] = {}
            for kind in ("records", "frames"):
                topics = Topics(regions=9, prefix=scratch_prefix("bw"))
                made.append(topics)
                ensure_topics(settings.bootstrap_servers, topics.specs())
                register_schemas(replace(settings, topic_prefix=topics.prefix))  # subjects follow the topics
                n = seconds if kind == "frames" else seconds // 4
                row[f"producer_{kind}"] = _produce(settings, topics, vehicles, n, frames=kind == "frames")
            frames[wire] = (made[-1], row["producer_frames"]["updates"])
            out[wire] = row
        CODEC.use_registry_ids({}, "single-object")
        # each format's worker drains its frames in turn, `drains` times: one short drain is noisy
        rates: dict[str, list[float]] = {wire: [] for wire in WIRE_FORMATS}
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(drains):
                for wire in WIRE_FORMATS:
                    topics, total = frames[wire]
                    rates[wire].append(_drain(settings, wire, topics, total, Path(tmp) / f"{wire}-{i}"))
        for name, seen in rates.items():
            out[name]["worker_updates_per_s"] = statistics.median(seen)
            out[name]["worker_updates_per_s_min"], out[name]["worker_updates_per_s_max"] = min(seen), max(seen)
    finally:
        CODEC.use_registry_ids({}, "single-object")
        for topics in made:
            delete_prefixed(settings.bootstrap_servers, topics.prefix)
        if started:
            server.stop()
    return out
