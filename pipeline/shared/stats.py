"""The one percentile every report, bench and drill uses. Pure."""

from __future__ import annotations

__all__ = ["percentile"]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (the sample at rank round(q/100 · (n−1)) of the sorted values); NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
