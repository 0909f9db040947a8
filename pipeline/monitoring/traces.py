"""The hazard path's latency hop by hop, from the spans a traced run wrote (`pipeline.shared.tracing`):
report sent → the tower's span began (uplink and Kafka), the tower's span (deciding, and handing the
advisories to its producer), the tower's span ended → a vehicle received one (Kafka and the radio's
way back). Percentiles of each, and of the whole, per advisory received. Pure."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pipeline.shared.stats import percentile
from pipeline.shared.tracing import REPORT_SPAN as REPORT
from pipeline.shared.tracing import TOWER_SPAN as TOWER
from pipeline.shared.tracing import VEHICLE_SPAN as VEHICLE

__all__ = ["HOPS", "hop_breakdown"]

HOPS = ("report → tower", "tower decides", "tower → vehicle", "report → vehicle")


def _ms(ns_a: int, ns_b: int) -> float:
    return (ns_b - ns_a) / 1e6


def hop_breakdown(spans: list[dict[str, Any]]) -> dict[str, Any]:
    by_id = {s["span"]: s for s in spans}
    hops: dict[str, list[float]] = defaultdict(list)
    traces: set[str] = set()
    for s in spans:
        if s["name"] != VEHICLE:
            continue
        tower = by_id.get(s["parent"] or "")
        report = by_id.get((tower or {}).get("parent") or "")
        if tower is None or report is None or tower["name"] != TOWER or report["name"] != REPORT:
            continue  # a trace whose earlier spans were not written (a worker killed before its flush)
        traces.add(s["trace"])
        hops["report → tower"].append(_ms(report["start_ns"], tower["start_ns"]))
        hops["tower decides"].append(_ms(tower["start_ns"], tower["end_ns"]))
        hops["tower → vehicle"].append(_ms(tower["end_ns"], s["start_ns"]))
        hops["report → vehicle"].append(_ms(report["start_ns"], s["start_ns"]))
    reports = sum(1 for s in spans if s["name"] == REPORT)
    return {
        "reports": reports, "traces_complete": len(traces), "spans": len(spans),
        "hops_ms": {h: {"p50": round(percentile(v, 50), 1), "p99": round(percentile(v, 99), 1), "n": len(v)}
                    for h in HOPS if (v := hops.get(h))},
    }  # fmt: skip
