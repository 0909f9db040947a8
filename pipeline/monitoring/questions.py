"""What a run asks its Prometheus at the end, beside its own figures: the same advisories counted,
the latency percentiles estimated from the histograms' buckets, and the alerts that fired."""

from __future__ import annotations

import math
from typing import Any, Protocol

from pipeline.shared.stats import buckets_apart, histogram_rank_sample
from pipeline.shared.waiting import poll

__all__ = ["P99", "run_questions"]

P99 = {
    "all": "histogram_quantile(0.99, sum by (le) (corridor_fleet_advisory_latency_seconds_bucket))",
    "hazard": "histogram_quantile(0.99, sum by (le) (corridor_fleet_hazard_advisory_latency_seconds_bucket))",
}
ADVISORIES = "sum(corridor_fleet_advisories_received_total)"


class Asks(Protocol):
    url: str

    def value(self, expr: str) -> float | None: ...

    def query(self, expr: str, timeout: float = 5.0) -> list[dict[str, Any]]: ...


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else v


def run_questions(prom: Asks, advisories: int, samples_ms: dict[str, list[float]], seconds: float,
                  wait_s: float = 10.0) -> dict[str, Any]:  # fmt: skip
    """Once Prometheus has scraped the fleet's last count (a few seconds at most), its answers,
    and whether they agree with the run's own: the count exactly, each p99 within one bucket of the
    sample the histogram's quantile falls beside (not the nearest-rank p99, which a sparse tail can
    put two buckets lower)."""
    poll(lambda: prom.value(ADVISORIES) == advisories, wait_s, interval=0.5)
    counted = prom.value(ADVISORIES)
    out: dict[str, Any] = {"url": prom.url, "advisories_received": counted,
                           "advisories_agree": counted == advisories, "p99_ms": {}, "p99_agree": {}}  # fmt: skip
    for name, expr in P99.items():
        estimate = _finite(prom.value(expr))
        own = histogram_rank_sample(samples_ms.get(name, []), 99)
        out["p99_ms"][name] = None if estimate is None else round(estimate * 1000, 1)
        if not math.isfinite(own):
            out["p99_agree"][name] = estimate is None  # no samples on either side
        else:
            out["p99_agree"][name] = estimate is not None and buckets_apart(estimate, own / 1000) <= 1
    window = f"{max(1, math.ceil(seconds))}s"
    fired = prom.query(f'max by (alertname) (max_over_time(ALERTS{{alertstate="firing"}}[{window}]))')
    out["alerts_fired"] = sorted(s["labels"].get("alertname", "") for s in fired)
    return out
