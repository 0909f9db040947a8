"""A tower worker's figures in Prometheus's text format, for its `/metrics` page.

Built at scrape time from the same figures as `/corridor/state/` (nothing is counted twice on the
hot path): counters end in `_total`, times are in seconds and sizes in bytes, every name starts
with `corridor_tower_`, and labels are regions, reasons, actions, message kinds and data classes,
never vehicle ids. Pure: the app hands it a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import Metric

from pipeline.shared.metric_catalog import CONTENT_TYPE, Catalog
from pipeline.shared.metric_catalog import exposition as catalog_exposition
from pipeline.shared.stats import LatencyHistogram

__all__ = ["CONTENT_TYPE", "METRICS", "TOWER", "WorkerFigures", "exposition", "metrics_table"]


@dataclass(frozen=True)
class WorkerFigures:
    """One scrape's worth of a worker's figures (ms as the engine keeps them)."""

    recovered: bool
    corridor_regions: int  # regions of the corridor: all workers together must serve every one
    regions: list[int]
    members: Mapping[int, int]  # owned region -> vehicles
    counts: Mapping[str, int]  # the engine's counters
    actions: Mapping[str, int]  # advisories decided, by action
    dead_letters: Mapping[str, int]  # by reason
    delivered: Mapping[str, int]  # by message kind, acknowledged by the broker
    undelivered: Mapping[str, int]  # given up on
    resent: Mapping[str, int]
    unsettled: int
    behind_ms: Mapping[int, int]  # owned region -> how far behind its telemetry
    sync_age_ms: Mapping[int, int]  # region -> age of the newest tower-sync news of it (served: not shown)
    data_age_ms: Mapping[str, int | None] = field(default_factory=dict)  # class -> age of what is shown
    clock_offset_ms: int = 0
    etcd: Mapping[str, Any] | None = None  # {"healthy", "errors"}; None: no control plane
    rss_bytes: int = 0
    cpu_s: float = 0.0  # CPU time the worker used, all its threads, user and system
    rebalances: int = 0
    lag_ms: Mapping[int, int] = field(default_factory=dict)  # owned region -> its newest frame's wait
    lag_records: Mapping[int, int] = field(default_factory=dict)  # owned region -> records not read yet
    rebalancing: bool = False
    restored_after_s: float | None = None  # the first restore of its tables, from the worker's start
    loop_stall_max_s: float = 0.0  # the event loop's longest stall (its heartbeats wait as long)
    loop_stalls_long: int = 0  # stalls past a third of the group session
    rebalance_pause_max_s: float = 0.0  # the longest a rebalance held every stream of the worker
    decided_after: LatencyHistogram = field(default_factory=LatencyHistogram)
    hazard_decided_after: LatencyHistogram = field(default_factory=LatencyHistogram)


#: every metric a worker serves: name -> (type, help); the docs' table is written from this
METRICS: dict[str, tuple[str, str]] = {
    "corridor_tower_recovered": ("gauge", "1 once the worker's tables are restored from their changelogs"),
    "corridor_tower_corridor_regions": ("gauge", "regions of the corridor, which the workers together must serve"),
    "corridor_tower_regions_owned": ("gauge", "regions this worker serves"),
    "corridor_tower_region_vehicles": ("gauge", "vehicles in a region this worker serves"),
    "corridor_tower_updates_total": ("counter", "vehicle updates merged"),
    "corridor_tower_hazard_reports_total": ("counter", "hazard reports accepted"),
    "corridor_tower_advisories_total": ("counter", "advisories decided, by action"),
    "corridor_tower_stale_triggers_total": ("counter", "triggers too old to advise on (a backlog after a takeover)"),
    "corridor_tower_hazards_expired_on_arrival_total": ("counter", "hazards read after their expiry (no advice)"),
    "corridor_tower_dead_letters_total": ("counter", "inputs refused with a reason, by reason"),
    "corridor_tower_delivered_total": ("counter", "messages the broker acknowledged, by kind"),
    "corridor_tower_undelivered_total": ("counter", "messages given up on, by kind"),
    "corridor_tower_resent_total": ("counter", "messages sent again after a timeout, by kind"),
    "corridor_tower_unsettled_messages": ("gauge", "messages sent and not yet acknowledged (the delivery ledger)"),
    "corridor_tower_behind_seconds": ("gauge", "age of a served region's newest telemetry processed (grows when idle)"),
    "corridor_tower_lag_seconds": ("gauge", "how long a served region's newest frame waited to be processed (0 idle)"),
    "corridor_tower_lag_records": ("gauge", "telemetry records of a served region in Kafka, not read yet"),
    "corridor_tower_sync_age_seconds": ("gauge", "age of the newest tower-sync news of another region"),
    "corridor_tower_data_age_seconds": ("gauge", "age of what this worker shows, by class of data"),
    "corridor_tower_clock_offset_seconds": ("gauge", "this host's clock minus the vehicles' (corrected past 2 s)"),
    "corridor_tower_etcd_healthy": ("gauge", "1 while the control plane's last round with etcd succeeded"),
    "corridor_tower_etcd_errors_total": ("counter", "failed rounds with etcd"),
    "corridor_tower_etcd_lease_held": ("gauge", "1 while its registration's lease is granted and kept alive"),
    "corridor_tower_cas_retries_total": ("counter", "compare-and-swap retries merging into etcd's global view"),
    "corridor_tower_etcd_round_seconds": (
        "gauge",
        "the last round with etcd: every owned region's snapshot written (grows with the regions)",
    ),
    "corridor_tower_rebalances_total": ("counter", "rebalances of the towers' group this worker went through"),
    "corridor_tower_rebalancing": ("gauge", "1 while a rebalance is under way"),
    "corridor_tower_loop_stall_max_seconds": ("gauge", "the event loop's longest stall (the heartbeats wait as long)"),
    "corridor_tower_loop_stalls_long_total": ("counter", "event loop stalls past a third of the group session"),
    "corridor_tower_rebalance_pause_max_seconds": (
        "gauge",
        "the longest a rebalance held the worker's streams (revoked until its tables are recovered)",
    ),
    "corridor_tower_restore_seconds": ("gauge", "how long the first restore of its tables took, from its start"),
    "corridor_tower_resident_memory_bytes": ("gauge", "the worker's resident memory"),
    "corridor_tower_cpu_seconds_total": ("counter", "CPU time the worker used (user and system, all threads)"),
    "corridor_tower_advice_delay_seconds": (
        "histogram",
        "trigger stamped by its sender → advisory decided, every advisory (the towers' share)",
    ),
    "corridor_tower_hazard_advice_delay_seconds": (
        "histogram",
        "hazard report stamped → advisory decided, for the advice a report caused at once",
    ),
}


#: the labels each labelled metric carries
LABELS = {
    "corridor_tower_region_vehicles": "region", "corridor_tower_advisories_total": "action",
    "corridor_tower_dead_letters_total": "reason", "corridor_tower_delivered_total": "kind",
    "corridor_tower_undelivered_total": "kind", "corridor_tower_resent_total": "kind",
    "corridor_tower_behind_seconds": "region", "corridor_tower_sync_age_seconds": "region",
    "corridor_tower_lag_seconds": "region", "corridor_tower_lag_records": "region",
    "corridor_tower_data_age_seconds": "class",
}  # fmt: skip

TOWER = Catalog(METRICS, LABELS)
_one, _labelled = TOWER.one, TOWER.labelled


def metrics_table() -> str:
    """The manual's table of every metric (a test holds docs/observability.md to it)."""
    return TOWER.table()


def _families(f: WorkerFigures) -> Iterator[Metric]:
    yield _one("corridor_tower_recovered", int(f.recovered))
    yield _one("corridor_tower_corridor_regions", f.corridor_regions)
    yield _one("corridor_tower_regions_owned", len(f.regions))
    yield _labelled("corridor_tower_region_vehicles", f.members)
    yield _one("corridor_tower_updates_total", f.counts.get("updates", 0))
    yield _one("corridor_tower_hazard_reports_total", f.counts.get("hazards", 0))
    yield _labelled("corridor_tower_advisories_total", f.actions)
    yield _one("corridor_tower_stale_triggers_total", f.counts.get("stale_triggers", 0))
    yield _one("corridor_tower_hazards_expired_on_arrival_total", f.counts.get("hazards_expired_on_arrival", 0))
    yield _labelled("corridor_tower_dead_letters_total", f.dead_letters)
    yield _labelled("corridor_tower_delivered_total", f.delivered)
    yield _labelled("corridor_tower_undelivered_total", f.undelivered)
    yield _labelled("corridor_tower_resent_total", f.resent)
    yield _one("corridor_tower_unsettled_messages", f.unsettled)
    yield _labelled("corridor_tower_behind_seconds", {r: ms / 1000 for r, ms in f.behind_ms.items()})
    yield _labelled("corridor_tower_lag_seconds", {r: ms / 1000 for r, ms in f.lag_ms.items()})
    yield _labelled("corridor_tower_lag_records", dict(f.lag_records))
    heard = {r: ms / 1000 for r, ms in f.sync_age_ms.items() if r not in f.regions}
    yield _labelled("corridor_tower_sync_age_seconds", heard)
    ages = {c: None if ms is None else ms / 1000 for c, ms in f.data_age_ms.items()}
    yield _labelled("corridor_tower_data_age_seconds", ages)
    yield _one("corridor_tower_clock_offset_seconds", f.clock_offset_ms / 1000)
    if f.etcd is not None:
        yield _one("corridor_tower_etcd_healthy", int(bool(f.etcd.get("healthy"))))
        yield _one("corridor_tower_etcd_errors_total", int(f.etcd.get("errors", 0)))
        yield _one("corridor_tower_etcd_lease_held", int(bool(f.etcd.get("lease_held"))))
        yield _one("corridor_tower_cas_retries_total", int(f.etcd.get("cas_retries", 0)))
        yield _one("corridor_tower_etcd_round_seconds", float(f.etcd.get("round_s", 0.0)))
    yield _one("corridor_tower_rebalances_total", f.rebalances)
    yield _one("corridor_tower_rebalancing", int(f.rebalancing))
    yield _one("corridor_tower_loop_stall_max_seconds", round(f.loop_stall_max_s, 3))
    yield _one("corridor_tower_loop_stalls_long_total", f.loop_stalls_long)
    yield _one("corridor_tower_rebalance_pause_max_seconds", round(f.rebalance_pause_max_s, 3))
    if f.restored_after_s is not None:
        yield _one("corridor_tower_restore_seconds", f.restored_after_s)
    yield _one("corridor_tower_resident_memory_bytes", f.rss_bytes)
    yield _one("corridor_tower_cpu_seconds_total", round(f.cpu_s, 3))
    yield TOWER.histogram("corridor_tower_advice_delay_seconds", f.decided_after)
    yield TOWER.histogram("corridor_tower_hazard_advice_delay_seconds", f.hazard_decided_after)


def exposition(figures: WorkerFigures) -> bytes:
    return catalog_exposition(_families(figures))
