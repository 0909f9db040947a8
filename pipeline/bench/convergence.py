"""Convergence after a tower-sync stall: two workers, traffic in real time, tower-sync cut for 30 s
(a hazard reported meanwhile), then restored. Issue target: all towers agree within 2 s.

"Agree": every worker has merged, from every region, a sync message sent after the restore, and
knows the hazard reported during the stall.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from pipeline.admin import delete_prefixed, ensure_topics
from pipeline.leftovers import scratch_prefix
from pipeline.shared.access import client_conf
from pipeline.shared.config import Settings
from pipeline.shared.corridor import load_corridor
from pipeline.shared.hazards import hazard_record
from pipeline.shared.messages import CODEC, HAZARD
from pipeline.shared.topics import Topics
from pipeline.workers import TowerProcess, wait_for_assignment, worker_env
from producers.drive import DriveConfig, drive
from producers.fleet import Fleet, FleetConfig
from producers.sink import TelemetrySink

__all__ = ["run_convergence"]


def _agree(pages: list[dict[str, Any]], regions: int, since_resume_ms: int, hid: str) -> bool:
    """Every worker heard every region after the restore (its newest message is younger than the
    time since), and knows the hazard reported during the stall."""
    for page in pages:
        stale = page["staleness_ms"]
        if any(str(r) not in stale or stale[str(r)] > since_resume_ms for r in range(regions)):
            return False
        if not any(hid in ids for ids in page["view_hazards"].values()):
            return False
    return True


def run_convergence(settings: Settings, quick: bool = False) -> dict[str, Any]:
    bootstrap = settings.bootstrap_servers
    corridor = load_corridor()
    stall_s = 5.0 if quick else 30.0
    topics = Topics(regions=len(corridor.regions), prefix=scratch_prefix("bc"))
    ensure_topics(bootstrap, topics.specs())
    env = worker_env(settings, topics.prefix, {"CORRIDOR_TOWER_OFFSET_RESET": "earliest"})
    with tempfile.TemporaryDirectory() as tmp:
        workers = [TowerProcess(env, Path(tmp) / f"d{i}", Path(tmp) / f"w{i}.log", name=f"worker {i}",
                                switches=True).start()
                   for i in range(2)]  # fmt: skip
        try:
            wait_for_assignment(workers, topics.regions)
            fleet = Fleet(corridor, FleetConfig(vehicles=1000, seed=4), start_ms=int(time.time() * 1000))
            warmup_s, after_s = (3.0, 3.0) if quick else (10.0, 20.0)
            total = warmup_s + stall_s + after_s
            traffic = threading.Thread(
                target=drive,
                args=(fleet, TelemetrySink(bootstrap), topics, DriveConfig(hz=1, duration_s=total, speedup=1)),
            )
            traffic.start()
            time.sleep(warmup_s)
            for w in workers:
                w.switch("sync", "off")
            time.sleep(stall_s / 3)
            hid = f"stall-{uuid.uuid4().hex[:6]}"
            rec = hazard_record(35.5, "OBSTACLE", "BOTH", 5, int(time.time() * 1000), 600, hid, "bench")
            producer = Producer(client_conf(bootstrap))
            producer.produce(topics.hazards, CODEC.encode(HAZARD, rec), b"4", rec["region_id"])
            producer.flush(10)
            time.sleep(stall_s * 2 / 3)
            resumed = time.monotonic()
            for w in workers:
                w.switch("sync", "on")
            converged_s = float("nan")
            while time.monotonic() - resumed < 15:
                pages = [p for w in workers if (p := w.page(timeout=1)) is not None]
                since_ms = int((time.monotonic() - resumed) * 1000)
                if len(pages) == len(workers) and _agree(pages, topics.regions, since_ms, hid):
                    converged_s = time.monotonic() - resumed
                    break
                time.sleep(0.05)
            traffic.join()
        finally:
            for w in workers:
                w.stop()
            delete_prefixed(bootstrap, topics.prefix)  # its towers' changelogs too
    return {"stall_s": stall_s, "converged_after_s": converged_s}
