"""Small timing helpers: best-of-N wall time for bulk work, mean per call for tiny work."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["best_of", "per_call_us"]


def best_of(runs: int, setup: Callable[[], T], work: Callable[[T], object]) -> float:
    """Seconds of the fastest of `runs` calls of `work(setup())`, setup excluded."""
    best = float("inf")
    for _ in range(runs):
        arg = setup()
        t0 = time.perf_counter()
        work(arg)
        best = min(best, time.perf_counter() - t0)
    return best


def per_call_us(calls: list[Callable[[], object]]) -> float:
    """Mean microseconds per call over a prepared list of calls (the loop's own cost included)."""
    t0 = time.perf_counter()
    for call in calls:
        call()
    return (time.perf_counter() - t0) / len(calls) * 1e6
