"""A run's trajectories as SUMO floating-car data (FCD, geo coordinates), for SUMO users' tools.

The same form `producers/fcd.py` reads, so a run exported here replays through the towers again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.shared.corridor import Corridor

__all__ = ["write_fcd"]


def write_fcd(traj: dict[str, npt.NDArray[Any]], corridor: Corridor, path: Path) -> int:
    """Write `<fcd-export>` with one `<timestep>` per moment kept; returns the vehicle rows written."""
    route = corridor.route
    t = traj["t"]
    order = np.argsort(t, kind="stable")
    bounds = np.flatnonzero(np.diff(t[order])) + 1
    with open(path, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<fcd-export>\n')
        for rows in np.split(order, bounds):
            if not len(rows):
                continue
            km, nb = traj["km"][rows], traj["nb"][rows]
            lat, lon = route.lat_lon(km)
            heading = route.heading_deg(km, nb)
            f.write(f'  <timestep time="{float(t[rows[0]]):.2f}">\n')
            num, v, lane = traj["num"][rows], traj["v"][rows], traj["lane"][rows]
            for i in range(len(rows)):
                side = "NB" if nb[i] else "SB"
                f.write(f'    <vehicle id="veh-{int(num[i]):07d}" x="{lon[i]:.6f}" y="{lat[i]:.6f}" '
                        f'angle="{heading[i]:.2f}" type="DEFAULT_VEHTYPE" speed="{v[i]:.2f}" '
                        f'pos="{km[i] * 1000:.2f}" lane="I69_{side}_{int(lane[i])}" slope="0.00"/>\n')  # fmt: skip
            f.write("  </timestep>\n")
        f.write("</fcd-export>\n")
    return len(t)
