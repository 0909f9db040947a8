"""Recovery: a tower worker restarted on an empty disk restores its tables from the changelog topics.
Issue target: 100,000 vehicles restored within 5 s.

A first worker builds the tables from real telemetry; its table digests are noted and it stops. A
second worker of the same app, with a fresh data directory, must read the changelogs back: timed
from its process start until it reports recovery, and until its tables give the same digests.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pipeline.admin import delete_prefixed, end_offsets, ensure_topics
from pipeline.leftovers import scratch_prefix
from pipeline.shared.config import Settings
from pipeline.shared.corridor import load_corridor
from pipeline.shared.errors import StackError
from pipeline.shared.topics import Topics
from pipeline.workers import TowerProcess, wait_until_written
from producers.drive import DriveConfig, WireFormat, drive, event_clock_start
from producers.fleet import Fleet, FleetConfig
from producers.sink import TelemetrySink
from towers.config import app_id, changelog_topics

from .towers import tower_worker

__all__ = ["run_recovery"]


def _digests(worker: TowerProcess) -> dict[str, Any] | None:
    page = worker.page("tables", timeout=60)
    return page["regions"] if page and page["recovered"] else None


def _build_tables(bootstrap: str, topics: Topics, app: str, worker: TowerProcess, vehicles: int, seconds: int) -> dict:
    driving = DriveConfig(hz=1, duration_s=seconds, speedup=0, wire=WireFormat.FRAMES)
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=vehicles, seed=11),
                  start_ms=event_clock_start(driving))  # fmt: skip
    drive(fleet, TelemetrySink(bootstrap), topics, driving)
    # The empty frames that make the worker write its last second carry the last tick's event time:
    # a later one would expire the fleet (vehicles silent for 10 s leave).
    last_tick_ms = fleet.start_ms + int(fleet.t * 1000)
    wait_until_written(bootstrap, app, topics.telemetry, topics.regions, last_tick_ms, timeout=300)
    digests = _digests(worker)
    if digests is None:
        raise StackError("recovery bench: the first worker's tables page did not answer")
    return digests


def _recover_once(settings: Settings, vehicles: int, seconds: int, workdir: Path) -> dict[str, Any]:
    bootstrap = settings.bootstrap_servers
    corridor = load_corridor()
    topics = Topics(regions=len(corridor.regions), prefix=scratch_prefix("br"))
    ensure_topics(bootstrap, topics.specs())
    suffix = f"-r{uuid.uuid4().hex[:4]}"
    app_env = {"CORRIDOR_TOWER_APP_SUFFIX": suffix, "CORRIDOR_TOWER_ETCD": "0"}
    changelogs = changelog_topics(app_id(topics.prefix, suffix))
    try:
        first = tower_worker(settings, topics.prefix, workdir / "first", app_env, 0).start()
        try:
            first.wait_ready(topics.regions)
            before = _build_tables(bootstrap, topics, app_id(topics.prefix, suffix), first, vehicles, seconds)
        finally:
            first.stop()
        stored = sum(d["vehicles"] for d in before.values())
        changelog = sum(sum(end_offsets(bootstrap, t, topics.regions)) for t in changelogs)
        t0 = time.monotonic()
        second = tower_worker(settings, topics.prefix, workdir / "second", app_env, 1).start()
        try:
            second.wait_ready(topics.regions, timeout=120)
            recovered_s = time.monotonic() - t0
            restored_s, after = float("nan"), None
            while time.monotonic() - t0 < 120:
                after = _digests(second)
                if after == before:
                    restored_s = time.monotonic() - t0
                    break
                time.sleep(0.5)
            if after != before:
                raise StackError("recovery bench: the restarted worker's tables differ from the first worker's")
        finally:
            second.stop()
    finally:
        delete_prefixed(bootstrap, topics.prefix)  # its towers' changelogs too
    return {
        "vehicles_in_tables": stored,
        "changelog_records": changelog,
        "start_to_recovered_s": recovered_s,
        "start_to_tables_equal_s": restored_s,
    }


def run_recovery(settings: Settings, quick: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sizes = (10_000,) if quick else (10_000, 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        for vehicles in sizes:
            out[f"vehicles_{vehicles}"] = _recover_once(settings, vehicles, 3, Path(tmp) / str(vehicles))
    return out
