"""The Intelligent Driver Model (Treiber, Hennecke & Helbing, 2000), vectorised.

dv/dt = a [1 − (v/v0)^δ − (s*/s)²],  s* = s0 + vT + vΔv / (2√(ab))

with the free-road part a [1 − (v/v0)^δ] held above −b: a driver over its desired speed slows at a
comfortable rate, not at the model's unbounded one (cf. the improved IDM of Treiber & Kesting).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["IdmParams", "idm_accel"]

F = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class IdmParams:
    """Highway parameters from Treiber's tables: T 1.0–2.0 s, s0 2 m, a 1 m/s², b 1.5–3 m/s², δ 4."""

    time_headway_s: float = 1.5
    min_gap_m: float = 2.0
    max_accel: float = 1.0
    comfort_decel: float = 2.0
    delta: float = 4.0
    max_decel: float = 9.0  # physical braking limit, m/s²
    vehicle_length_m: float = 4.5


def idm_accel(v: F, v0: F, gap: F, dv: F, p: IdmParams, free_decel: F | float | None = None) -> F:
    """Acceleration of each follower; `gap` is bumper to bumper (inf = free road), `dv` = v − v_leader;
    `free_decel` (default `p.comfort_decel`): how hard each slows down to its desired speed."""
    v0 = np.maximum(v0, 0.1)
    s_star = p.min_gap_m + np.maximum(
        0.0, v * p.time_headway_s + v * dv / (2.0 * np.sqrt(p.max_accel * p.comfort_decel))
    )
    gap = np.maximum(gap, 0.1)
    # Above its desired speed (a lower limit, an advisory) the IDM's free-road term brakes as hard as
    # the ratio says; drivers slow down comfortably instead. Braking for the vehicle ahead is uncapped.
    cap = p.comfort_decel if free_decel is None else free_decel
    free = np.maximum(p.max_accel * (1.0 - (v / v0) ** p.delta), -cap)
    acc = free - p.max_accel * (s_star / gap) ** 2
    return np.maximum(acc, -p.max_decel)
