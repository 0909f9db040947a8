"""How far this tower's clock is from its senders', judged from the frames it reads while caught up.

A tower judges an advice trigger's age, a frame's send time and its own lag by its clock. A host
clock 10 s ahead made every trigger look too old, and the tower advised nothing. Each frame says
when it was sent; read with no backlog, its delay is transit (well under a second) plus the
difference of the two clocks. The median delay, weighted by the vehicles each frame carries, is
that difference: a few senders with wrong clocks (their frames refused anyway) cannot move it,
while a tower off from all of them shows at once. Only a difference past `threshold_ms` is
corrected; below it, it is transit.

Transit is not always short: while a broker's partitions move to another (a node lost), the
senders' frames wait in their producers for seconds and then arrive at a tower that is caught up.
Taken for skew, that delay set this clock back, and fresh frames then looked sent from the future
and were refused. A skew lasts; a stall passes. So the estimate follows the part of the median that
lasted `hold_ms` of this host's time (the median nearest zero over that span), and moves back
toward zero at once.

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

    #: how long a skew must be seen before it is corrected: longer than a partition's move lasts
    HOLD_MS = 60_000

    def __init__(
        self,
        threshold_ms: int = 2_000,
        window: int = 512,
        min_weight: int = 20,
        max_step_ms: int = 2_000,
        cap_ms: int = CAP_MS,
        hold_ms: int = HOLD_MS,
    ) -> None:
        self.threshold_ms, self.min_weight = threshold_ms, min_weight
        self.max_step_ms, self.cap_ms, self.hold_ms = max_step_ms, cap_ms, hold_ms
        self._delays: deque[tuple[int, int]] = deque(maxlen=window)  # (delay ms, vehicles in the frame)
        self._since, self._last_ms = 0, 0
        self._estimate = 0
        # (this host's ms, the weighted median) of each recompute over the last `hold_ms`; bounded: a flood
        # of frames shortens the span it covers, and a span short of `hold_ms` corrects nothing
        self._medians: deque[tuple[int, int]] = deque(maxlen=4096)

    def observe(self, delay_ms: int, vehicles: int, caught_up: bool, now_ms: int) -> None:
        """A frame's delay (this clock's `now_ms` − its send time) and how many believable rows it
        carried; only frames read with no backlog count."""
        if caught_up and vehicles > 0 and abs(delay_ms) <= _MAX_DELAY_MS:
            self._delays.append((delay_ms, vehicles))
            self._since += 1
            # every frame at first, then every 16 frames or half a second (a correction comes in steps)
            if self._since >= 16 or len(self._delays) < 16 or now_ms - self._last_ms >= 500:
                self._since, self._last_ms = 0, now_ms
                self._move(self._weighted_median(), now_ms)

    def _move(self, median: int, now_ms: int) -> None:
        """Toward the skew that lasted: of the medians of the last `hold_ms`, the one nearest zero
        (zero when they differ in sign, or span less than that)."""
        seen = self._medians
        seen.append((now_ms, median))
        while len(seen) > 1 and now_ms - seen[1][0] >= self.hold_ms:
            seen.popleft()  # the oldest kept is the last one from before the window: it covers its start
        lasting = 0
        if now_ms - seen[0][0] >= self.hold_ms:  # one side of zero all along: its nearest; else none lasted
            low, high = min(m for _, m in seen), max(m for _, m in seen)
            lasting = low if low > 0 else high if high < 0 else 0
        lasting = max(-self.cap_ms, min(self.cap_ms, lasting))
        if min(0, self._estimate) <= lasting <= max(0, self._estimate):
            self._estimate = lasting  # toward zero, at once: a correction no longer seen is withdrawn
        else:
            self._estimate += max(-self.max_step_ms, min(self.max_step_ms, lasting - self._estimate))

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
