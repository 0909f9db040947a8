"""The whole corridor at its peak in real time, end to end, and the knee beyond it.

`corridor-peak` runs as a simulation does (broker, etcd, the fleet and two tower workers sharing the
machine): 4,600 vehicles at 10 Hz. The knee probes larger fleets at 10 Hz, a short run each, up to
the first whose towers or producer fall behind real time.

Issue targets: hazard → advisory received p99 ≤ 50 ms at corridor-peak, the towers' delay bounded.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from pipeline.shared.config import Settings
from pipeline.simulation.runner import run_scenario
from pipeline.simulation.scenario import Event, Scenario, load_scenario

__all__ = ["KNEE_FLEETS", "run_peak"]

#: fleets probed for the knee, at 10 Hz in real time
KNEE_FLEETS = (8_000, 12_000, 16_000, 20_000, 24_000, 28_000)


def _shortened(s: Scenario, duration_s: float) -> Scenario:
    ratio = duration_s / s.duration_s
    events = tuple(dataclasses.replace(e, at_s=e.at_s * ratio) for e in s.events)
    return dataclasses.replace(s, duration_s=duration_s, events=events)


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    run, lat, behind = summary["run"], summary["latency_ms"], summary.get("towers_behind_ms") or {}
    return {
        "updates_per_s": run["updates_per_s"],
        "producer_behind_schedule_s": run["behind_schedule_s"],
        "dead_letters": run["dead_letters"],
        "hazard_p50_ms": lat["hazard"]["p50"],
        "hazard_p99_ms": lat["hazard"]["p99"],
        "all_advisories_p99_ms": lat["all"]["p99"],
        "towers_behind_p99_ms": behind.get("p99", float("nan")),
        "towers_behind_max_ms": behind.get("max", float("nan")),
        "towers_kept_up": bool(behind.get("kept_up")) and run["behind_schedule_s"] < 1.0,
    }


def run_peak(settings: Settings, quick: bool = False) -> dict[str, Any]:
    peak = load_scenario("corridor-peak")
    if quick:
        peak = _shortened(peak, 12)
    out: dict[str, Any] = {"vehicles": peak.vehicles, "hz": peak.hz, "simulated_s": peak.duration_s}
    with tempfile.TemporaryDirectory() as tmp:
        out.update(_figures(run_scenario(peak, settings, Path(tmp) / "peak").summary))
        if quick:
            return out
        knee = 0
        for n in KNEE_FLEETS:
            probe = dataclasses.replace(
                peak, name=f"knee-{n}", vehicles=n, duration_s=40,
                events=(Event(20, "hazard", {"km": 37.5, "type": "OBSTACLE", "direction": "NORTHBOUND",
                                             "id": f"knee-{n}", "severity": 6}),),
            )  # fmt: skip
            figures = _figures(run_scenario(probe, settings, Path(tmp) / probe.name).summary)
            out[f"knee_{n}"] = figures
            if not figures["towers_kept_up"] or figures["updates_per_s"] < 0.97 * n * peak.hz:
                break
            knee = n
        out["knee_vehicles_at_10hz"] = knee
    return out
