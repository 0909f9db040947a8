"""A worker's /metrics page as Prometheus reads it: its names, units and labels, and the figures
of the state page they come from."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import scraped
from towers.metrics import METRICS, WorkerFigures, exposition, metrics_table

FIGURES = WorkerFigures(
    recovered=True,
    corridor_regions=9,
    regions=[3, 4],
    members={3: 12, 4: 0},
    counts={"updates": 1_500, "hazards": 2, "stale_triggers": 7, "advisories": 40},
    actions={"SLOW_DOWN": 30, "STOP": 4, "SPEED_UP": 6},
    dead_letters={"clock-drift": 3, "sync-MalformedStateError": 1},
    delivered={"advisory": 40, "sync": 90},
    undelivered={},
    resent={"advisory": 1},
    unsettled=2,
    behind_ms={3: 250, 4: 0},
    sync_age_ms={2: 1_200, 5: 800},
    data_age_ms={"important": 900, "unimportant": None, "etcd_snapshot": 1_500},
    clock_offset_ms=-10_000,
    etcd={"healthy": True, "errors": 5, "towers_alive": ["t1"], "lease_held": True, "cas_retries": 3},
    rss_bytes=150 * 1024 * 1024,
    rebalances=2,
    lag_records={3: 12, 4: 0},
    restored_after_s=1.25,
)


def test_the_figures_come_through_in_base_units_with_their_labels() -> None:
    got = scraped(exposition(FIGURES).decode())
    assert got[("corridor_tower_updates_total", ())] == 1_500
    assert got[("corridor_tower_advisories_total", (("action", "STOP"),))] == 4
    assert got[("corridor_tower_dead_letters_total", (("reason", "clock-drift"),))] == 3
    assert got[("corridor_tower_behind_seconds", (("region", "3"),))] == 0.25
    assert got[("corridor_tower_sync_age_seconds", (("region", "2"),))] == 1.2
    assert got[("corridor_tower_data_age_seconds", (("class", "etcd_snapshot"),))] == 1.5
    assert ("corridor_tower_data_age_seconds", (("class", "unimportant"),)) not in got, "nothing heard: no sample"
    assert got[("corridor_tower_clock_offset_seconds", ())] == -10.0
    assert got[("corridor_tower_etcd_healthy", ())] == 1 and got[("corridor_tower_etcd_errors_total", ())] == 5
    assert got[("corridor_tower_resident_memory_bytes", ())] == 150 * 1024 * 1024
    assert got[("corridor_tower_regions_owned", ())] == 2
    assert got[("corridor_tower_etcd_lease_held", ())] == 1 and got[("corridor_tower_cas_retries_total", ())] == 3
    assert got[("corridor_tower_rebalances_total", ())] == 2 and got[("corridor_tower_rebalancing", ())] == 0
    assert got[("corridor_tower_restore_seconds", ())] == 1.25
    assert got[("corridor_tower_lag_records", (("region", "3"),))] == 12


def test_every_name_is_declared_prefixed_and_a_counter_ends_in_total() -> None:
    text = exposition(FIGURES).decode()
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("corridor_tower_")
        declared = family.name + "_total" if family.type == "counter" else family.name
        assert declared in METRICS and METRICS[declared][0] == family.type, family.name
    counted = "messages|regions|owned|vehicles|records"
    units = re.compile(rf"_(seconds|bytes|total|{counted}|healthy|recovered|held|rebalancing)$")
    assert all(units.search(name) for name in METRICS), "base units, or a count of things"


def test_without_a_control_plane_there_is_no_etcd_figure() -> None:
    got = scraped(exposition(WorkerFigures(**{**FIGURES.__dict__, "etcd": None, "restored_after_s": None})).decode())
    assert not [name for name, _ in got if "etcd" in name or "cas_" in name]
    assert ("corridor_tower_restore_seconds", ()) not in got, "not restored yet: no figure, not a zero"


def test_the_manuals_table_lists_every_metric() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
    assert metrics_table() in page.read_text()
