"""Targets from the issues, and the table + JSON a bench run leaves behind."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["TARGETS", "Target", "derive", "flatten", "machine", "render", "write_json"]


@dataclass(frozen=True, slots=True)
class Target:
    op: str  # "<=" or ">="
    bound: float
    unit: str

    def met(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value >= self.bound


#: (section, metric) -> target; metrics without one are reported for context.
TARGETS: dict[tuple[str, str], Target] = {
    ("crdt", "region_full_merge_ms"): Target("<=", 20, "ms"),
    ("crdt", "lww_map_single_delta_us"): Target("<=", 5, "µs"),
    ("fleet", "cpu_ms_per_sim_s"): Target("<=", 100, "ms"),
    ("producer", "records_records_per_s"): Target(">=", 50_000, "msg/s"),
    ("towers", "workers_1_updates_per_s"): Target(">=", 250_000, "updates/s"),
    ("latency", "load_5000.p99_ms"): Target("<=", 100, "ms"),
    ("recovery", "vehicles_100000.start_to_tables_equal_s"): Target("<=", 5, "s"),
    ("control", "independent.cas_retries_p99"): Target("<=", 3, "retries"),
    ("convergence", "converged_after_s"): Target("<=", 2, "s"),
    ("peak", "hazard_p99_ms"): Target("<=", 50, "ms"),
    ("live", "shown_max_ms"): Target("<=", 2000, "ms"),
    ("live", "never_shown"): Target("<=", 0, "hazards"),
    ("peak", "towers_behind_p99_ms"): Target("<=", 1000, "ms"),
    # the design's bound for important data: consistent again within 10 s, whatever the partition lasted
    **{
        ("consistency", f"partitions.tower-sync cut {s} s.converged_after_s"): Target("<=", 10, "s")
        for s in (10, 60, 300)
    },
    ("consistency", "partitions.worker 1 cut off etcd 30 s.converged_after_s"): Target("<=", 10, "s"),
    # a killed tower worker's regions advised again within 2 s (p99 over ten kills), nothing lost
    ("failover", "1 s sessions.served_again_p99_s"): Target("<=", 2, "s"),
    ("observability", "towers.scraped_cost_pct"): Target("<=", 3, "%"),
    ("observability", "towers.histograms_cost_pct"): Target("<=", 3, "%"),
    ("observability", "towers.histograms_cost_at_default_scenario_pct"): Target("<=", 3, "%"),
    ("signing", "latency.forged_refused"): Target("<=", 0, "advisories"),
    **{
        ("failover", f"{s}.{m}"): Target("<=", 0, m.split("_")[0])
        for s in ("6 s sessions", "1 s sessions")
        for m in ("updates_lost", "advisories_lost", "never_served_again")
    },
}


def machine() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def derive(results: dict[str, Any]) -> None:
    """Ratios between sections measured in the same run: ours against the raw broker's."""
    broker, producer = results.get("broker") or {}, results.get("producer") or {}
    if "confluent_produce_per_s" in broker and "records_records_per_s" in producer:  # both measured
        ours = producer["records_records_per_s"]
        producer["share_of_confluent_loop_pct"] = 100 * ours / broker["confluent_produce_per_s"]
        producer["share_of_kafka_tools_pct"] = 100 * ours / broker["kafka_tools_produce_per_s"]


def render(results: dict[str, dict[str, Any]], console: Console) -> None:
    table = Table(title="corridor bench", title_justify="left")
    for col in ("section", "metric", "value", "target", ""):
        # On a narrow terminal (or a pipe: 80 columns) long metric names wrap instead of being cut.
        table.add_column(col, overflow="fold", no_wrap=col != "metric")
    for section, metrics in results.items():
        if section in ("machine", "durations_s"):
            continue
        for metric, value in flatten(metrics).items():
            target = TARGETS.get((section, metric))
            shown = f"{value:,.2f}" if isinstance(value, float) else escape(str(value))  # a reason may hold [..]
            verdict = ""
            if target is not None and isinstance(value, int | float):
                verdict = "[green]met[/]" if target.met(value) else "[red]missed[/]"
            table.add_row(
                section, metric, shown, f"{target.op} {target.bound:g} {target.unit}" if target else "", verdict
            )
    console.print(table)
    took = ", ".join(f"{k} {v:.0f} s" for k, v in results.get("durations_s", {}).items())
    if took:
        console.print(f"sections took: {took}")
    m = results.get("machine", {})
    console.print(
        f"machine: {m.get('cores')} cores, {m.get('memory_gib')} GiB, Python {m.get('python')}, {m.get('date')}"
    )


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
