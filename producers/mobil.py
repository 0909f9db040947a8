"""Lane changes by MOBIL (Kesting, Treiber & Helbing, 2007), vectorised over the whole fleet.

A driver moves to the other lane of its carriageway when what it gains there, plus a share
(`politeness`) of what the followers concerned gain or lose, beats a threshold — and only if the
new follower would not have to brake harder than `safe_decel`:

    ã_c − a_c + p [(ã_n − a_n) + (ã_o − a_o)] > Δa_th (± a keep-right bias)

c: the driver, n: its new follower, o: its old follower; ã: accelerations after the change, all
by the IDM. Blocked lanes enter as walls (a stationary leader) in the lane they block, so a driver
facing one changes lanes to pass it, or waits for a gap. Two lanes per carriageway: the other lane
is the only candidate. At most one driver takes a given gap in a step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from producers.idm import IdmParams, idm_accel

__all__ = ["MobilParams", "lane_changes"]

F = npt.NDArray[np.float64]
I = npt.NDArray[np.int64]  # noqa: E741
B = npt.NDArray[np.bool_]

_SPAN = 1e6  # metres of progress per group in the sort key: more than the corridor's length


@dataclass(frozen=True, slots=True)
class MobilParams:
    politeness: float = 0.3
    threshold: float = 0.2  # m/s²: gains below this are not worth a change
    keep_right: float = 0.1  # m/s²: the bias towards lane 0, the right-hand lane
    safe_decel: float = 4.0  # m/s²: the most a new follower may have to brake
    min_gap_m: float = 2.0  # bumper to bumper, ahead and behind, in the target lane
    cooldown_s: float = 3.0  # between two changes of one driver


def lane_changes(
    s: F,
    group: I,
    lane: I,
    v: F,
    v0: F,
    acc: F,
    gap: F,
    dv: F,
    walls: F,
    allowed: B,
    idm: IdmParams,
    p: MobilParams,
    free_decel: F | None = None,
) -> tuple[I, F]:
    """Which drivers change lane now (indices into the arrays) and their acceleration in the new lane.

    `s`: progress along the carriageway (m); `group`: lane + 2 × carriageway; `acc`, `gap`, `dv`: each
    driver's IDM acceleration, gap and speed difference in its own lane; `walls[l]`: distance to a
    wall seen ahead in lane l (inf: none); `allowed`: drivers free to change (past their cool-down);
    `free_decel`: how hard each slows down to its desired speed, as `acc` was computed with."""
    n = len(s)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    length = idm.vehicle_length_m
    cap = np.full(n, idm.comfort_decel) if free_decel is None else free_decel
    key = group * _SPAN + s
    order = np.argsort(key, kind="stable")
    ks, gs = key[order], group[order]
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    target = 1 - lane
    tgroup = group - lane + target
    pos = np.searchsorted(ks, tgroup * _SPAN + s, side="left")
    # the new leader (first at or ahead in the target lane) and the new follower (the one before it)
    has_lead = (pos < n) & (gs[np.minimum(pos, n - 1)] == tgroup)
    lead = order[np.minimum(pos, n - 1)]
    has_fol = (pos > 0) & (gs[np.maximum(pos - 1, 0)] == tgroup)
    fol = order[np.maximum(pos - 1, 0)]
    gap_new = np.where(has_lead, s[lead] - s - length, np.inf)
    dv_new = np.where(has_lead, v - v[lead], 0.0)
    wall = walls[target, np.arange(n)]
    walled = wall < gap_new  # a wall before the new leader: a stationary leader
    gap_new = np.where(walled, wall, gap_new)
    dv_new = np.where(walled, v, dv_new)
    a_new = idm_accel(v, v0, gap_new, dv_new, idm, cap)
    # the new follower: now behind the new leader, after the change behind this driver
    back = np.where(has_fol, s - s[fol] - length, np.inf)
    a_fol_now = np.where(has_fol, acc[fol], 0.0)
    a_fol_after = np.where(has_fol, idm_accel(v[fol], v0[fol], back, v[fol] - v, idm, cap[fol]), 0.0)
    # the old follower: now behind this driver, after the change behind this driver's leader
    prev = order[np.maximum(rank - 1, 0)]
    has_old = (rank > 0) & (group[prev] == group)
    old_gap_after = gap[prev] + length + gap
    a_old_now = np.where(has_old, acc[prev], 0.0)
    a_old_after = np.where(has_old, idm_accel(v[prev], v0[prev], old_gap_after, v[prev] - v + dv, idm, cap[prev]), 0.0)
    bias = np.where(target == 0, p.keep_right, -p.keep_right)
    incentive = (a_new - acc) + p.politeness * ((a_fol_after - a_fol_now) + (a_old_after - a_old_now)) + bias
    # safe for the new follower (MOBIL's own rule) and for the driver: no change into a lane where it
    # would have to brake harder than that itself (a blocked lane just ahead)
    safe = (gap_new > p.min_gap_m) & (back > p.min_gap_m) & (a_fol_after >= -p.safe_decel) & (a_new >= -p.safe_decel)
    want = np.flatnonzero(allowed & safe & (incentive > p.threshold))
    if not len(want):
        return want, np.zeros(0)
    # one driver per gap: of those aiming at the same gap, the one furthest along takes it
    slot = tgroup[want] * (n + 1) + pos[want]
    pick = np.lexsort((-s[want], slot))
    first = np.append(True, slot[pick][1:] != slot[pick][:-1])
    chosen = want[pick[first]]
    return chosen, a_new[chosen]
