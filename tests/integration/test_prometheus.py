"""A run watched by a real Prometheus (Debian's), asked over its HTTP API during the run and at its end
held to the run's own report; and traced, its hazard path broken down hop by hop from its spans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.monitoring.prometheus import PrometheusProcess
from pipeline.ports import is_free
from pipeline.simulation.runner import run_scenario
from pipeline.simulation.scenario import parse_scenario

pytestmark = pytest.mark.integration

DEER = {
    "name": "watched", "description": "a deer on the northbound carriageway, Prometheus beside",
    "vehicles": 250, "hz": 1, "speedup": 4, "duration_s": 100, "workers": 2, "seed": 5,
    "events": [
        {"at_s": 20, "hazard": {"km": 36.0, "type": "ANIMAL", "direction": "NORTHBOUND", "id": "deer"}},
        {"at_s": 60, "hazard": {"km": 52.0, "type": "ACCIDENT", "direction": "SOUTHBOUND", "id": "crash"}},
        {"at_s": 90, "clear": "deer"},
    ],
}  # fmt: skip


def test_prometheus_agrees_with_the_report_and_the_traces_follow_each_hazard_to_every_advisory(
    stack, prometheus_installed, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {"during": []}

    def ask(snap: dict[str, Any]) -> None:
        prom: PrometheusProcess = snap["prometheus"]
        seen["url"] = prom.url
        if snap["fleet"].t >= 40 and len(seen["during"]) < 3:
            up = prom.query('up{job="corridor-towers"}')
            seen["during"].append({
                "towers_up": sorted(s["value"] for s in up),
                "regions": prom.value("corridor:regions_served:sum"),
                "updates": prom.value("sum(corridor_tower_updates_total)"),
                "sent": prom.value("corridor_fleet_updates_sent_total"),
                "advised": prom.value("sum(corridor_tower_advisories_total)"),
                # one query, so both from the same scrapes
                "untimed": prom.value("sum(corridor_tower_advisories_total) - "
                                      "sum(corridor_tower_advice_delay_seconds_count)"),
            })  # fmt: skip

    result = run_scenario(parse_scenario(DEER, "watched"), stack.settings, tmp_path / "report", on_tick=ask,
                          prometheus=True, traces=True)  # fmt: skip
    s = result.summary
    assert seen["during"], "Prometheus was asked while the run went on"
    now = seen["during"][-1]
    assert now["towers_up"] == [1.0, 1.0], "both workers scraped"
    assert now["regions"] == 9, "the recording rule: every region served"
    assert now["updates"] > 0 and now["sent"] > 0
    assert now["advised"] > 0 and now["untimed"] == 0, "the towers' histogram times every advisory they decide"
    p = s["prometheus"]
    assert "error" not in p, p
    assert p["advisories_received"] == s["run"]["advisories_received"] > 0, "counted the same"
    assert s["latency_ms"]["hazard"]["n"] > 0
    assert p["p99_agree"] == {"all": True, "hazard": True}, (p, s["latency_ms"])
    assert p["alerts_fired"] == [], "a healthy run fires no alert"
    assert "As Prometheus saw it" in result.paths["report"].read_text()
    # the traces: each report's, through the tower that advised on it, to each vehicle that heard it
    t = s["traces"]
    assert t["reports"] == 3, "the deer, the crash and the deer's clearing"
    assert t["traces_complete"] >= 2, t
    hops = t["hops_ms"]
    assert hops["report → vehicle"]["n"] == s["latency_ms"]["hazard"]["n"], "one trace per hazard advisory heard"
    assert 0 <= hops["tower decides"]["p50"] <= hops["report → vehicle"]["p50"], hops
    assert "hop by hop" in result.paths["report"].read_text()
    port = int(seen["url"].rsplit(":", 1)[1])
    assert is_free(port), "Prometheus stopped with the run"
