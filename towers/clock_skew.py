"""How far this tower's clock is from its senders', judged from the frames it reads while caught up.

A tower judges an advice trigger's age, a frame's send time and its own lag by its clock. A host
clock 10 s ahead made every trigger look too old, and the tower advised nothing. Each frame says
when it was sent; read with no backlog, its delay is transit (well under a second) plus the
difference of the two clocks. The median delay, weighted by the vehicles each frame carries, is
that difference: a few senders with wrong clocks (their frames refused anyway) cannot move it,
while a tower off from all of them shows at once. Only a difference past `threshold_ms` is
corrected; below it, it is transit.

Anyone can stamp a frame, so the estimate is guarded: a frame weighs only as many rows as passed
every check that does not depend on a clock (junk weighs nothing), the estimate moves at most
`max_step_ms` each time it is recomputed, and it never passes `cap_ms` (a host off by more than
that is an operator's to fix, and the worker says so). Pure: the engine feeds it."""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["ClockSkew"]

#: a frame delay past a day is no clock skew to learn from (and a crafted send time could overflow)
_MAX_DELAY_MS = 86_400_000


class ClockSkew:
    #: the largest correction: a host off by more is an operator's to fix
    CAP_MS = 300_000

    def __init__(
        self,
        threshold_ms: int = 2_000,
        window: int = 512,
        min_weight: int = 20,
        max_step_ms: int = 2_000,
        cap_ms: int = CAP_MS,
    ) -> None:
        self.threshold_ms, self.min_weight = threshold_ms, min_weight
        self.max_step_ms, self.cap_ms = max_step_ms, cap_ms
        self._delays: deque[tuple[int, int]] = deque(maxlen=window)  # (delay ms, vehicles in the frame)
        self._since = 0
        self._estimate = 0

    def observe(self, delay_ms: int, vehicles: int, caught_up: bool) -> None:
        """A frame's delay (this clock's now − its send time) and how many believable rows it carried;
        only frames read with no backlog count."""
        if caught_up and vehicles > 0 and abs(delay_ms) <= _MAX_DELAY_MS:
            self._delays.append((delay_ms, vehicles))
            self._since += 1
            if self._since >= 16 or len(self._delays) < 16:  # every frame at first, then now and then
                self._since = 0
                target = max(-self.cap_ms, min(self.cap_ms, self._weighted_median()))
                step = max(-self.max_step_ms, min(self.max_step_ms, target - self._estimate))
                self._estimate += step

    def _weighted_median(self) -> int:
        delays, weights = (np.array(x, np.int64) for x in zip(*self._delays, strict=True))
        if weights.sum() < self.min_weight:
            return self._estimate
        order = np.argsort(delays, kind="stable")
        cum = np.cumsum(weights[order])
        return int(delays[order][np.searchsorted(cum, cum[-1] / 2)])

    @property
    def estimate_ms(self) -> int:
        """This clock minus the senders' (plus transit); positive: this clock is ahead."""
        return self._estimate

    def correction_ms(self) -> int:
        return self._estimate if abs(self._estimate) > self.threshold_ms else 0
