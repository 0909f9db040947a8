"""`corridor bench --only regions`: what a tower region costs, by running the same traffic over 9
regions and over 90 (ten corridors' worth) on the bench's stack: one broker and one etcd member, or
the local cluster of three each (`CORRIDOR_KAFKA_BROKERS=3 CORRIDOR_ETCD_MEMBERS=3`).

The road, the fleet and its rate stay the same; only the regions are cut ten times finer. What grows
is then what a region costs on its own: its partitions (of every regional topic and changelog), the
worker's timers and sync messages per region, its etcd snapshot in every round, its state in memory,
and the hand-overs of vehicles crossing more boundaries. The capacity plan (docs/capacity.md) scales
these figures to Indiana's interstates and to the nation's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from pipeline.leftovers import scratch_prefix
from pipeline.shared.config import Settings
from pipeline.simulation.runner import run_scenario
from pipeline.simulation.scenario import Event, Scenario, load_scenario
from pipeline.stack.cpu_use import cpu_seconds

__all__ = ["REGION_COUNTS", "even_regions", "per_region", "run_regions"]

REGION_COUNTS = (9, 90)


def even_regions(length_km: float, n: int, hysteresis_m: int = 200) -> dict[str, Any]:
    """A towers file of `n` regions of equal length along a route of `length_km`."""
    step = length_km / n
    return {
        "notes": f"{n} regions of {step:.2f} km: the bench's cut of the shipped route",
        "hysteresis_m": min(hysteresis_m, int(step * 1000 / 4)),
        "regions": [{"id": i, "tower": f"tower-{i:03d}", "name": f"region {i}", "from_km": round(i * step, 3),
                     "to_km": round(length_km if i == n - 1 else (i + 1) * step, 3)} for i in range(n)],
    }  # fmt: skip


def _traffic(quick: bool) -> Scenario:
    """The shipped scenario's fleet in real time, one hazard half-way (its advice is timed apart)."""
    base = load_scenario("bloomington-indianapolis")
    seconds = 40.0 if quick else 150.0
    crash = Event(seconds / 2, "hazard", {"km": 37.5, "type": "ACCIDENT", "direction": "NORTHBOUND",
                                          "id": "regions-crash", "severity": 7})  # fmt: skip
    return dataclasses.replace(base, name="regions", speedup=1.0, duration_s=seconds, events=(crash,))


def servers_cpu_s(state_dir: Path) -> dict[str, float]:
    """CPU seconds used so far by the stack's Kafka nodes and etcd members (the processes whose
    command line names a folder of `state_dir`), by kind."""
    mark = str(state_dir.resolve())
    out = {"kafka": 0.0, "etcd": 0.0}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        kind = "etcd" if "etcd" in cmdline.split(" ")[0] else "kafka" if "java" in cmdline.split(" ")[0] else None
        if kind is not None and mark in cmdline and math.isfinite(cpu := cpu_seconds(int(pid))):
            out[kind] += cpu
    return out


def _figures(summary: dict[str, Any], wall_s: float, servers_s: dict[str, float]) -> dict[str, Any]:
    run, lat, towers = summary["run"], summary["latency_ms"], summary["towers"]
    rounds = [t["etcd"]["round_s"] for t in towers if t["etcd"].get("round_s") is not None]
    return {
        "updates_per_s": run["updates_per_s"],
        "producer_behind_schedule_s": run["behind_schedule_s"],
        "dead_letters": run["dead_letters"],
        "converged": run["towers_converged"],
        "all_advisories_p99_ms": lat["all"]["p99"],
        "hazard_p99_ms": lat["hazard"]["p99"],
        "towers_behind_p99_ms": (summary.get("towers_behind_ms") or {}).get("p99"),
        # the workers together: CPU per second of the run (1.0 is one core busy), memory, messages
        "workers_cpu_cores": round(sum(t["cpu_s"] or 0 for t in towers) / wall_s, 3),
        "workers_rss_mib": round(sum(t["rss_mib"] or 0 for t in towers), 1),
        "sync_messages_per_s": round(sum(t["sync_sent"] for t in towers) / wall_s, 1),
        "etcd_writes_per_s": round(sum(t["etcd"].get("writes") or 0 for t in towers) / wall_s, 1),
        "etcd_round_max_s": max((t["etcd"].get("round_max_s") or 0 for t in towers), default=None),
        "etcd_round_last_s": max(rounds, default=None),
        # the stack's servers over the same run (topics created, the workers' start included)
        "kafka_cpu_cores": round(servers_s["kafka"] / wall_s, 3),
        "etcd_cpu_cores": round(servers_s["etcd"] / wall_s, 3),
    }


def per_region(few: dict[str, Any], many: dict[str, Any], regions: tuple[int, int] = REGION_COUNTS) -> dict[str, Any]:
    """What one more region adds, from two runs of the same traffic over `regions` regions."""
    extra = regions[1] - regions[0]

    def each(key: str, scale: float = 1.0) -> float:
        return round((many[key] - few[key]) / extra * scale, 4)

    return {
        "cpu_millicores": each("workers_cpu_cores", 1000),
        "rss_mib": each("workers_rss_mib"),
        "sync_messages_per_s": each("sync_messages_per_s"),
        "etcd_writes_per_s": each("etcd_writes_per_s"),
        "kafka_cpu_millicores": each("kafka_cpu_cores", 1000),
        "etcd_cpu_millicores": each("etcd_cpu_cores", 1000),
    }


def run_regions(settings: Settings, quick: bool = False) -> dict[str, Any]:
    scenario = _traffic(quick)
    out: dict[str, Any] = {
        "vehicles": scenario.vehicles,
        "hz": scenario.hz,
        "simulated_s": scenario.duration_s,
        "kafka_nodes": settings.ports.brokers,
        "etcd_members": settings.ports.etcd_members,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        length_km = settings.corridor().route.length_km
        for n in REGION_COUNTS:
            towers = root / f"towers-{n}.json"
            towers.write_text(json.dumps(even_regions(length_km, n)))
            run = dataclasses.replace(settings, towers_file=towers, topic_prefix=scratch_prefix(f"regions{n}"))
            before = servers_cpu_s(settings.state_dir)
            summary = run_scenario(scenario, run, root / f"run-{n}").summary
            after = servers_cpu_s(settings.state_dir)
            used = {k: after[k] - before[k] for k in after}
            out[f"{n}_regions"] = _figures(summary, summary["run"]["wall_s"], used)
    out["per_region"] = per_region(out[f"{REGION_COUNTS[0]}_regions"], out[f"{REGION_COUNTS[1]}_regions"])
    return out
