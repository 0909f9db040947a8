"""Memory at 20,000 vehicles in real time: peak resident set of the producer (`corridor produce`, a
process of its own) and of one tower worker serving every region while it runs."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.admin import delete_prefixed, ensure_topics
from pipeline.leftovers import scratch_prefix
from pipeline.shared.config import Settings
from pipeline.shared.corridor import load_corridor
from pipeline.shared.errors import StackError
from pipeline.shared.topics import Topics
from pipeline.stack.process import die_with_parent
from pipeline.workers import peak_rss_mib, worker_env

from .towers import tower_worker

__all__ = ["run_memory"]


def run_memory(settings: Settings, vehicles: int = 20_000, quick: bool = False) -> dict[str, Any]:
    bootstrap = settings.bootstrap_servers
    seconds = 6 if quick else 30
    topics = Topics(regions=len(load_corridor().regions), prefix=scratch_prefix("bm"))
    ensure_topics(bootstrap, topics.specs())
    env = worker_env(settings, topics.prefix)
    corridor_cli = Path(sys.executable).with_name("corridor")
    argv = [str(corridor_cli), "produce", "--vehicles", str(vehicles), "--duration", str(seconds), "--speedup", "1"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            worker = tower_worker(settings, topics.prefix, Path(tmp), {}, 0).start()
            try:
                worker.wait_ready(topics.regions)
                with open(Path(tmp) / "producer.log", "wb") as log:
                    proc = subprocess.Popen(
                        argv, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent()
                    )
                    producer_peak = 0.0
                    while proc.poll() is None:
                        producer_peak = max(producer_peak, peak_rss_mib(proc.pid))
                        time.sleep(0.25)
                if proc.returncode != 0:
                    tail = (Path(tmp) / "producer.log").read_text(errors="replace")[-400:]
                    raise StackError(f"memory bench: `corridor produce` exited {proc.returncode}: {tail}")
                time.sleep(2)  # the worker's last second of traffic
                page = worker.page() or {}
                out = {
                    "vehicles": vehicles,
                    "seconds": seconds,
                    "producer_peak_rss_mib": producer_peak,
                    "tower_worker_peak_rss_mib": worker.peak_rss_mib(),
                    "updates_sent": vehicles * seconds,
                    # below updates_sent: the worker, sharing 2 cores with producer and broker, lags
                    "tower_worker_updates": int(page.get("counts", {}).get("updates", 0)),
                }
            finally:
                worker.stop()
    finally:
        delete_prefixed(bootstrap, topics.prefix)  # its towers' changelogs too
    return out
