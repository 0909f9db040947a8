"""`corridor bench --only analytics`: what Spark sustains here on telemetry frames, local[2], and its
delay from event time to the stats record, beside one tower worker on the same records.

1. Throughput: a 20,000-vehicle fleet's frames (1 Hz) fill a fresh topic; the job then processes
   them with an available-now trigger, timed from its query's start (the session's start-up is
   reported apart); one tower worker drains the same topic.
2. Delay: a fleet drives in real time while the job runs with a 1-second trigger and a 5-second
   watermark; each window's delay is the wall time its records are produced minus its end (event
   time): the watermark, the trigger and the batch's own time, all included.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pipeline.admin import delete_prefixed, ensure_topics
from pipeline.analytics.jars import connector_jars
from pipeline.analytics.job import AnalyticsConfig, run_job
from pipeline.bench.towers import drain_rate, tower_worker
from pipeline.leftovers import scratch_prefix
from pipeline.shared.access import Role
from pipeline.shared.config import Settings
from pipeline.shared.corridor import load_corridor
from pipeline.shared.stats import percentile
from pipeline.shared.topics import Topics
from producers.drive import DriveConfig, drive
from producers.fleet import Fleet, FleetConfig
from producers.sink import TelemetrySink

__all__ = ["run_analytics"]


def _jars(settings: Settings) -> list[Path]:
    import pyspark

    return connector_jars(settings.cache_dir, Path(pyspark.__file__).parent / "jars")


def _throughput(settings: Settings, topics: Topics, vehicles: int, seconds: int, work: Path) -> dict[str, Any]:
    corridor = load_corridor()
    admin = settings.kafka(Role.ADMIN)
    stats = drive(Fleet(corridor, FleetConfig(vehicles=vehicles, seed=11)), TelemetrySink(admin), topics,
                  DriveConfig(hz=1, duration_s=seconds, speedup=0))  # fmt: skip
    started: list[float] = []
    t0 = time.monotonic()
    config = AnalyticsConfig(available_now=True, watermark_s=10)
    sink = run_job(admin, admin, topics, corridor, work / "out", work / "ckpt", config, _jars(settings),
                   on_ready=lambda: started.append(time.monotonic()))  # fmt: skip
    done = time.monotonic()
    spark_s = done - (started[0] if started else t0)
    out: dict[str, Any] = {"vehicles": vehicles, "updates": stats.updates,
                           "spark_session_start_s": round((started[0] if started else done) - t0, 1),
                           "spark_updates_per_s": round(stats.updates / spark_s),
                           "spark_stats_records": sink.rows_out}  # fmt: skip
    # as the towers section drains: old records advised as live ones (no trigger age bound)
    app_env = {"CORRIDOR_TOWER_APP_SUFFIX": f"-ba{uuid.uuid4().hex[:4]}", "CORRIDOR_TOWER_MAX_TRIGGER_AGE_S": "3600"}
    worker = tower_worker(settings, topics.prefix, work, app_env, 0)
    worker.start()
    try:
        out["tower_worker_updates_per_s"] = round(drain_rate([worker], stats.updates, timeout=300))
    finally:
        worker.stop()
    out["spark_share_of_tower_worker"] = round(out["spark_updates_per_s"] / out["tower_worker_updates_per_s"], 3)
    return out


def _delay(settings: Settings, topics: Topics, vehicles: int, seconds: int, work: Path) -> dict[str, Any]:
    corridor = load_corridor()
    admin = settings.kafka(Role.ADMIN)
    stop, ready = threading.Event(), threading.Event()
    config = AnalyticsConfig(watermark_s=5, trigger_s=1.0, starting="latest")
    result: dict[str, Any] = {}

    def job() -> None:
        result["sink"] = run_job(admin, admin, topics, corridor, work / "out", work / "ckpt", config,
                                 _jars(settings), stop, on_ready=ready.set)  # fmt: skip

    thread = threading.Thread(target=job, name="analytics")
    thread.start()
    try:
        if not ready.wait(240):
            raise TimeoutError("the analytics query did not start within 240 s")
        time.sleep(3)  # its first (empty) batches, so the fleet's first records are read as they come
        drive(Fleet(corridor, FleetConfig(vehicles=vehicles, seed=12), start_ms=int(time.time() * 1000)),
              TelemetrySink(admin), topics, DriveConfig(hz=1, duration_s=seconds, speedup=1))  # fmt: skip
        time.sleep(3)
    finally:
        stop.set()
        thread.join(120)
    delays = [float(d) for d in result["sink"].delays_ms] if "sink" in result else []
    batches = [float(b) for b in result["sink"].batch_ms] if "sink" in result else []
    return {"vehicles": vehicles, "seconds": seconds, "windows": len(delays), "watermark_s": 5, "trigger_s": 1,
            "delay_p50_ms": percentile(delays, 50), "delay_p99_ms": percentile(delays, 99),
            "batch_p50_ms": percentile(batches, 50), "batch_p99_ms": percentile(batches, 99)}  # fmt: skip


def run_analytics(settings: Settings, quick: bool = False) -> dict[str, Any]:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return {"skipped": "pyspark is not installed: pip install 'corridor[spark]'"}
    corridor = load_corridor()
    out: dict[str, Any] = {}
    for part, (vehicles, seconds) in (("throughput", (20_000, 30 if quick else 90)),
                                      ("delay", (2_000, 40 if quick else 90))):  # fmt: skip
        topics = Topics(regions=len(corridor.regions), prefix=scratch_prefix("ba"))
        ensure_topics(settings.kafka(Role.ADMIN), topics.specs())
        try:
            with tempfile.TemporaryDirectory(prefix="corridor-bench-analytics-") as tmp:
                fn = _throughput if part == "throughput" else _delay
                out[part] = fn(settings, topics, vehicles, seconds, Path(tmp))
        finally:
            delete_prefixed(settings.kafka(Role.ADMIN), topics.prefix)
    return out
