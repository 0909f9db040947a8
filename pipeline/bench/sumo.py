"""What it costs SUMO to move the corridor's vehicles, beside corridor's own fleet model.

Both fleets of the default scenario's size move for the same simulated time as `drive` steps them at
1 Hz (two half-second sub-steps a tick; SUMO steps once a second). Telemetry is made each tick, as in a
run. SUMO's part is split into its own step (`simulationStep`) and the coupling (reading every
vehicle's road, position, lane, speed and acceleration back into the fleet's arrays; pushing advice).
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline.shared.corridor import load_corridor
from pipeline.stack.process import die_with_parent
from producers.fleet import Fleet, FleetConfig
from producers.sumo.build import build_network
from producers.sumo.traffic import SumoFleet, SumoOptions

__all__ = ["run_sumo"]

WARM_UP_S = 30  # SUMO inserts the fleet's first vehicles over its first seconds: not counted


def _cost(fleet: Fleet, seconds: int) -> dict[str, float]:
    for _ in range(WARM_UP_S * 2):
        fleet.step(0.5)
    vehicle_s = 0
    in_sumo = getattr(fleet, "sumo_cpu_s", 0.0)
    c0 = time.process_time()
    for _ in range(seconds):
        fleet.step(0.5)
        fleet.step(0.5)
        vehicle_s += len(fleet.telemetry())
    cpu = time.process_time() - c0
    in_sumo = getattr(fleet, "sumo_cpu_s", 0.0) - in_sumo
    return {"cpu_s": cpu, "in_sumo_s": in_sumo, "vehicle_s": vehicle_s, "cpu_ms_per_sim_s": cpu * 1000 / seconds,
            "us_per_vehicle_s": cpu * 1e6 / max(vehicle_s, 1)}  # fmt: skip


def run_sumo(cache_dir: Path, vehicles: int = 3_600, quick: bool = False, seconds: int | None = None) -> dict[str, Any]:
    """Costs per vehicle and simulated second (a vehicle's telemetry each second: its "vehicle-second")."""
    corridor = load_corridor()
    seconds = seconds or (60 if quick else 300)
    config = FleetConfig(vehicles=vehicles, seed=7)
    builtin = _cost(Fleet(corridor, config), seconds)
    t0 = time.monotonic()
    network = build_network(corridor.route, cache_dir, die_with_parent(signal.SIGKILL))
    with tempfile.TemporaryDirectory(prefix="corridor-bench-sumo-") as tmp:
        fleet = SumoFleet(corridor, config, network, SumoOptions(step_s=1.0), workdir=Path(tmp))
        try:
            start_s = time.monotonic() - t0
            sumo = _cost(fleet, seconds)
        finally:
            fleet.close()
    vehicle_s, in_sumo = sumo["vehicle_s"], sumo["in_sumo_s"]
    return {
        "vehicles": vehicles, "simulated_s": seconds, "sumo_start_s": round(start_s, 2),
        "builtin_cpu_ms_per_sim_s": round(builtin["cpu_ms_per_sim_s"], 1),
        "builtin_us_per_vehicle_s": round(builtin["us_per_vehicle_s"], 2),
        "sumo_cpu_ms_per_sim_s": round(sumo["cpu_ms_per_sim_s"], 1),
        "sumo_us_per_vehicle_s": round(sumo["us_per_vehicle_s"], 2),
        "sumo_own_step_us_per_vehicle_s": round(in_sumo * 1e6 / max(vehicle_s, 1), 2),
        "coupling_us_per_vehicle_s": round((sumo["cpu_s"] - in_sumo) * 1e6 / max(vehicle_s, 1), 2),
        # the share of one core SUMO's fleet takes at the default scenario's 4x real time
        "sumo_core_share_at_4x_pct": round(sumo["cpu_ms_per_sim_s"] * 4 / 10, 1),
        "builtin_core_share_at_4x_pct": round(builtin["cpu_ms_per_sim_s"] * 4 / 10, 1),
    }  # fmt: skip
