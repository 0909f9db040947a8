"""`corridor bench --only failover`: how long a killed tower worker's regions go unadvised, over
several kills, with the drills' group sessions and with the workers' default on corridor's own
brokers.

Each kill is one `worker-kill` drill (two workers, a fleet in real time, one worker SIGKILLed a
third of the way in): its *served again in* is the time from the kill until every region is owned
and no tower is a second behind, sampled ten times a second. A percentile over n kills is only as good
as n: with ten, p99 is the worst kill, and the report says so by giving the worst too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.drill.drill import SESSION
from pipeline.drill.run import run_drill
from pipeline.shared.config import Settings
from pipeline.workers import FAST_FAILOVER

__all__ = ["SESSIONS", "run_failover"]

#: the drills' sessions (which any broker accepts), and the workers' default on corridor's own brokers
SESSIONS = {"6 s sessions": SESSION, "1 s sessions": FAST_FAILOVER}


def _kills(settings: Settings, session: dict[str, str], kills: int, seconds: float) -> dict[str, Any]:
    rows = [run_drill("worker-kill", settings, seconds=seconds, session=session) for _ in range(kills)]
    served = np.array([r["served_again_s"] for r in rows], dtype=float)
    return {
        "kills": kills,
        "served_again_s": served.tolist(),
        "served_again_p50_s": round(float(np.nanpercentile(served, 50)), 1),
        "served_again_p99_s": round(float(np.nanpercentile(served, 99)), 1),
        "served_again_worst_s": round(float(np.nanmax(served)), 1),
        # a kill whose regions were never all served again: counted apart, never averaged away
        "never_served_again": int(np.isnan(served).sum()),
        "updates_lost": sum(int(r["lost"]) for r in rows),
        "advisories_lost": sum(int(r["advisories"]["lost"]) for r in rows),
        # the survivor or the restarted worker gone: not a failover measured, a failure
        "crashed": sorted({name for r in rows for name in r["crashed"]}),
    }


def run_failover(settings: Settings, quick: bool = False) -> dict[str, Any]:
    """Short sessions only on corridor's own broker: a user's brokers refuse sessions under 6 s."""
    kills, seconds = (3, 16.0) if quick else (10, 24.0)
    chosen = {k: v for k, v in SESSIONS.items() if not settings.kafka_external or k == "6 s sessions"}
    return {name: _kills(settings, session, kills, seconds) for name, session in chosen.items()}
