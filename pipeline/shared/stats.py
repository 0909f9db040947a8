"""The one percentile every report, bench and drill uses, and the latency buckets Prometheus reads. Pure."""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "LATENCY_BOUNDS_S",
    "LatencyHistogram",
    "bucket_index",
    "buckets_apart",
    "histogram_rank_sample",
    "percentile",
]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (the sample at rank round(q/100 · (n−1)) of the sorted values); NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


#: upper bounds (seconds) of the advisory-latency buckets: fine around the budgets (50 ms for a hazard,
#: 100 ms for any advice), coarse past the advice's validity (10 s)
LATENCY_BOUNDS_S: tuple[float, ...] = (
    0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
    0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0,
)  # fmt: skip


def histogram_rank_sample(values: list[float], q: float) -> float:
    """The sample a histogram's q-quantile (PromQL's histogram_quantile) falls beside: the one at rank
    ⌈q/100 · n⌉, whose bucket first holds that many. Where the tail is sparse it can lie buckets
    above the nearest-rank percentile (n = 189: the 188th sample against the 187th). NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


def bucket_index(seconds: float, bounds: tuple[float, ...] = LATENCY_BOUNDS_S) -> int:
    """The bucket a value falls in: the first whose upper bound is ≥ it (len(bounds) for +Inf)."""
    return bisect_left(bounds, seconds)


@dataclass(slots=True)
class LatencyHistogram:
    """Counts per bucket, kept as values arrive (a bisection each), so a scrape reads them as they are
    instead of sorting a run's every latency."""

    bounds: tuple[float, ...] = LATENCY_BOUNDS_S
    counts: list[int] = field(default_factory=list)  # one per bound, then +Inf
    total_s: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError("bucket bounds must rise strictly")
        self.counts = self.counts or [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bucket_index(seconds, self.bounds)] += 1
        self.total_s += seconds
        self.n += 1

    def observe_many(self, seconds: list[float]) -> None:
        """A batch at once (a gateway's second of updates): one sorted search for all of them."""
        if not seconds:
            return
        values = np.asarray(seconds, dtype=np.float64)
        found = np.bincount(np.searchsorted(self.bounds, values, side="left"), minlength=len(self.counts))
        for i, count in enumerate(found.tolist()):
            self.counts[i] += count
        self.total_s += float(values.sum())
        self.n += len(values)

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, values ≤ it) as Prometheus's `le` buckets, "+Inf" last."""
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


def buckets_apart(a_s: float, b_s: float, bounds: tuple[float, ...] = LATENCY_BOUNDS_S) -> int:
    """How many buckets lie between two latencies' (0: the same bucket), to hold an estimate from
    buckets (PromQL's histogram_quantile) against a figure computed from every sample."""
    return abs(bucket_index(a_s, bounds) - bucket_index(b_s, bounds))
