"""Waiting for a condition rather than for a fixed time: the one way the tools wait. Pure but for
the clock it reads."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["poll"]


def poll(check: Callable[[], object], timeout: float, interval: float = 0.1) -> float | None:
    """Seconds until `check()` was first true (checked at once, then every `interval`), or None if
    it was not within `timeout`: a verdict taken after a fixed sleep is right only on a good day."""
    start = time.monotonic()
    while True:
        if check():
            return round(time.monotonic() - start, 3)
        if time.monotonic() - start >= timeout:
            return None
        time.sleep(interval)
