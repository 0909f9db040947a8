"""The queue behind a hazard, from the run's own trajectories: how fast its ends move upstream.

Every `bin_s`, the vehicles slower than `slow_mps` within `reach_km` upstream of the hazard, on its
carriageway, form the queue: the run of them that starts nearest the hazard, slow vehicles no more
than `gap_km` apart. Its upstream end (the tail) moves back while the hazard blocks the road: the
forming wave. After the hazard is cleared its downstream end (the head) follows as vehicles drive
off: the recovering wave. Each speed is a least-squares line through those ends, in km/h, positive
upstream. Published bands for comparison: forming 3–19 km/h, recovering 9–27 km/h (Indiana
connected-vehicle trajectories). Pure (NumPy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["queue_waves"]

F = npt.NDArray[np.float64]


def _queue(upstream_km: F, gap_km: float) -> tuple[float, float] | None:
    """(head, tail) of the run of slow vehicles that starts nearest the hazard, km upstream of it."""
    if not len(upstream_km):
        return None
    u = np.sort(upstream_km)
    if u[0] > gap_km:
        return None  # nothing queued at the hazard itself
    breaks = np.flatnonzero(np.diff(u) > gap_km)
    end = int(breaks[0]) if len(breaks) else len(u) - 1
    return float(u[0]), float(u[end])


def _speed_kmh(times: list[float], km: list[float]) -> float | None:
    if len(times) < 3 or max(km) - min(km) < 0.05:
        return None
    slope = np.polyfit(np.array(times), np.array(km), 1)[0]  # km per second
    return round(float(slope) * 3600, 1)


def queue_waves(tr: dict[str, npt.NDArray[Any]], hazard_km: float, northbound: bool | None, start_s: float,
                end_s: float | None, slow_mps: float = 5.0, reach_km: float = 10.0, gap_km: float = 0.3,
                bin_s: float = 10.0) -> dict[str, float | None]:  # fmt: skip
    """The forming and recovering waves of the queue behind one hazard (None where there was none)."""
    sides = [True, False] if northbound is None else [northbound]
    out: dict[str, float | None] = {"forming_kmh": None, "recovering_kmh": None, "queue_max_km": 0.0}
    for nb in sides:
        sel = (tr["nb"] == nb) & (tr["v"] < slow_mps)
        up = (hazard_km - tr["km"][sel]) if nb else (tr["km"][sel] - hazard_km)
        t = tr["t"][sel]
        near = (up >= 0) & (up <= reach_km)
        up, t = up[near], t[near]
        last = float(tr["t"].max(initial=start_s))
        clear = end_s if end_s is not None else last
        tails: tuple[list[float], list[float]] = ([], [])
        heads: tuple[list[float], list[float]] = ([], [])
        for b0 in np.arange(start_s, last, bin_s):
            in_bin = (t >= b0) & (t < b0 + bin_s)
            q = _queue(up[in_bin], gap_km)
            if q is None:
                if b0 >= clear and heads[0]:
                    break  # the queue has gone
                continue
            mid = float(b0 + bin_s / 2)
            if b0 + bin_s <= clear:
                tails[0].append(mid)
                tails[1].append(q[1])
            elif b0 >= clear:
                heads[0].append(mid)
                heads[1].append(q[0])
            out["queue_max_km"] = max(out["queue_max_km"] or 0.0, round(q[1], 2))
        forming, recovering = _speed_kmh(*tails), _speed_kmh(*heads)
        if forming is not None and (out["forming_kmh"] is None or forming > out["forming_kmh"]):
            out["forming_kmh"] = forming
        if recovering is not None and (out["recovering_kmh"] is None or recovering > out["recovering_kmh"]):
            out["recovering_kmh"] = recovering
    return out
