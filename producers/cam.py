"""When a vehicle sends: the CAM generation rules of ETSI EN 302 637-2, instead of a fixed rate.

Checked every 100 ms (T_GenCamMin), a vehicle sends when, since its last message, its heading
changed by more than 4°, its position by more than 4 m or its speed by more than 0.5 m/s — and in
any case once 1 s (T_GenCamMax) has passed. A car at motorway speed (≈ 30 m/s, 3 m per check)
sends about every 200 ms; one stopped in a queue, once a second. Pure: arrays in, a mask out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["CHECK_S", "CamTrigger"]

CHECK_S = 0.1  # T_GenCamMin: the rules are checked (and a vehicle sends at most) this often
MAX_GAP_S = 1.0  # T_GenCamMax
HEADING_DEG = 4.0
POSITION_M = 4.0
SPEED_MPS = 0.5

F64 = npt.NDArray[np.float64]


class CamTrigger:
    """Per fleet slot, what the last message said; a slot taken by a new vehicle starts afresh."""

    def __init__(self) -> None:
        self._num = np.full(0, -1, np.int64)
        self._t = np.zeros(0)
        self._km = np.zeros(0)
        self._heading = np.zeros(0)
        self._speed = np.zeros(0)

    def _grow(self, size: int) -> None:
        extra = size - len(self._num)
        if extra > 0:
            self._num = np.concatenate([self._num, np.full(extra, -1, np.int64)])
            grown = [np.concatenate([a, np.zeros(extra)]) for a in (self._t, self._km, self._heading, self._speed)]
            self._t, self._km, self._heading, self._speed = grown

    def due(self, slot: npt.NDArray[np.int64], num: npt.NDArray[np.int64], t_s: float, km: F64, heading: F64,
            speed: F64) -> npt.NDArray[np.bool_]:  # fmt: skip
        """Which of these vehicles send now; those are remembered as having sent."""
        self._grow(int(slot.max()) + 1 if len(slot) else 0)
        new = self._num[slot] != num
        elapsed = t_s - self._t[slot]
        turn = np.abs((heading - self._heading[slot] + 180.0) % 360.0 - 180.0)
        send = new | (elapsed >= MAX_GAP_S - 1e-9) | (
            (elapsed >= CHECK_S - 1e-9)
            & ((turn > HEADING_DEG) | (np.abs(km - self._km[slot]) * 1000 > POSITION_M)
               | (np.abs(speed - self._speed[slot]) > SPEED_MPS))
        )  # fmt: skip
        s = slot[send]
        self._num[s], self._t[s] = num[send], t_s
        self._km[s], self._heading[s], self._speed[s] = km[send], heading[send], speed[send]
        return send
