"""Which alerts a drill's Prometheus fired, when, and when they resolved, from its answers once a
second. The clock and the question are handed in: the bookkeeping is pure."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pipeline.shared.errors import StackError

__all__ = ["AlertWatch"]


class AlertWatch:
    def __init__(self, firing: Callable[[], set[str]], clock: Callable[[], float] = time.monotonic,
                 every_s: float = 1.0) -> None:  # fmt: skip
        self._firing, self._clock, self._every = firing, clock, every_s
        self._last = float("-inf")
        self.fired: dict[str, float] = {}  # alert -> first seen firing
        self.resolved: dict[str, float] = {}  # alert -> first seen not firing after it fired (if it stays so)
        self.errors = 0  # rounds Prometheus did not answer

    def sample(self) -> None:
        now = self._clock()
        if now - self._last < self._every:
            return
        self._last = now
        try:
            names = self._firing()
        except StackError:  # a round unanswered is counted and said in the report, not fatal
            self.errors += 1
            return
        for name in names:
            self.fired.setdefault(name, now)
            self.resolved.pop(name, None)  # firing again: not resolved (yet)
        for name in self.fired.keys() - names:
            self.resolved.setdefault(name, now)

    def all_resolved(self) -> bool:
        """Asks again (once a second at most): has every alert that fired resolved since?"""
        self.sample()
        return not self.fired.keys() - self.resolved.keys()

    def report(self, fault_start: float | None, fault_end: float | None) -> dict[str, Any]:
        """Per alert: seconds from the fault's start to its firing, and from the fault's end to its
        resolving (None: still firing when the drill ended)."""

        def since(t: float | None, origin: float | None) -> float | None:
            return None if t is None or origin is None else round(t - origin, 1)

        fired = {name: {"fired_after_s": since(at, fault_start),
                        "resolved_after_s": since(self.resolved.get(name), fault_end)}
                 for name, at in sorted(self.fired.items())}  # fmt: skip
        return {"fired": fired, "unanswered_rounds": self.errors}
