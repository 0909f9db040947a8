"""The fleet's /metrics page: what Prometheus reads of a run from the vehicles' side."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pipeline.ports import free_ports
from pipeline.shared.metric_catalog import exposition
from pipeline.shared.stats import LatencyHistogram
from pipeline.simulation.fleet_metrics import FLEET, FleetFigures, FleetMetricsServer, fleet_families
from tests.helpers import scraped


def _figures() -> FleetFigures:
    latency, hazard = LatencyHistogram(), LatencyHistogram()
    for ms in (12, 30, 30, 180, 2_500):
        latency.observe(ms / 1000)
    hazard.observe(0.012)
    return FleetFigures(vehicles=240, simulated_s=80.0, behind_schedule_s=0.01, updates_sent=19_999,
                        hazard_reports=2, advisories={"SLOW_DOWN": 4, "STOP": 1}, stale=1, refused=2, forged=0,
                        undecodable=3, latency=latency, hazard_latency=hazard)  # fmt: skip


def test_the_latencies_come_through_as_cumulative_buckets_in_seconds() -> None:
    got = scraped(exposition(fleet_families(_figures())).decode())
    assert got[("corridor_fleet_advisory_latency_seconds_bucket", (("le", "0.03"),))] == 3
    assert got[("corridor_fleet_advisory_latency_seconds_bucket", (("le", "0.2"),))] == 4
    assert got[("corridor_fleet_advisory_latency_seconds_bucket", (("le", "+Inf"),))] == 5
    assert got[("corridor_fleet_advisory_latency_seconds_count", ())] == 5
    assert abs(got[("corridor_fleet_advisory_latency_seconds_sum", ())] - 2.752) < 1e-9
    assert got[("corridor_fleet_hazard_advisory_latency_seconds_count", ())] == 1
    assert got[("corridor_fleet_advisories_received_total", (("action", "STOP"),))] == 1
    assert got[("corridor_fleet_updates_sent_total", ())] == 19_999


def test_every_family_is_declared_and_prefixed() -> None:
    for family in text_string_to_metric_families(exposition(fleet_families(_figures())).decode()):
        assert family.name.startswith("corridor_fleet_")
        declared = family.name + "_total" if family.type == "counter" else family.name
        assert FLEET.metrics[declared][0] == family.type, family.name


def test_the_page_is_served_on_loopback_until_closed() -> None:
    port = free_ports(1)[0]
    server = FleetMetricsServer(port, _figures)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert ("corridor_fleet_vehicles", ()) in scraped(resp.read().decode())
        assert server._server.server_address[0] == "127.0.0.1"
    finally:
        server.close()
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
        raise AssertionError("still served after close")
    except OSError:
        pass


def test_the_manual_lists_every_fleet_metric() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
    assert FLEET.table() in page.read_text()
