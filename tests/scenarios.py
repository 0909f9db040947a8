"""The hazard → advisory scenario, shared by the tests on local processes and on containers."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer

from pipeline.shared.corridor import load_corridor
from pipeline.shared.hazards import hazard_record
from pipeline.shared.messages import CODEC, HAZARD
from pipeline.shared.topics import Topics
from producers.drive import DriveConfig, drive, event_clock_start
from producers.fleet import Fleet, FleetConfig
from producers.listener import AdvisoryListener
from producers.sink import TelemetrySink

CORRIDOR = load_corridor()


def drive_past_a_hazard(bootstrap: str, topics: Topics, hid: str) -> tuple[list[dict[str, Any]], int]:
    """900 vehicles drive 24 simulated seconds (4× real time); an animal on the northbound carriageway
    at km 35.5 (region 4) is reported after 6 s. The advisories about it, and when it was sent (ms)."""
    driving = DriveConfig(hz=1, duration_s=24, speedup=4)
    fleet = Fleet(CORRIDOR, FleetConfig(vehicles=900, seed=21), start_ms=event_clock_start(driving))
    listener = AdvisoryListener(bootstrap, topics.advisories, topics.regions, keep_history=True)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    sent: list[int] = []

    def report_hazard(sim_s: float) -> None:
        if sim_s >= 6 and not sent:
            rec = hazard_record(35.5, "ANIMAL", "NORTHBOUND", 6, fleet.start_ms + int(sim_s * 1000), 600, hid, "t")
            producer.produce(topics.hazards, CODEC.encode(HAZARD, rec), b"4", rec["region_id"])
            producer.flush(10)
            sent.append(rec["hlc"] >> 16)  # wall ms of sending

    try:
        drive(
            fleet,
            TelemetrySink(bootstrap),
            topics,
            driving,
            listener,
            before_send=report_hazard,
        )
    finally:
        listener.close()
    assert sent, "the hazard was reported"
    return [a for a in listener.stats.history if a["hazard_id"] == hid], sent[0]


def assert_advice_for_hazard(about: list[dict[str, Any]], sent_ms: int, page: dict | None, hid: str, log: str) -> None:
    """Region 4's tower and, through tower-sync, region 3's (upstream for northbound traffic) advise
    the vehicles approaching the hazard to slow down, below the speed limit, within the sync interval."""
    regions = {a["region_id"] for a in about if a["action"] in ("SLOW_DOWN", "STOP")}
    assert {3, 4} <= regions, f"advice came from regions {regions}:\\n{log}"
    assert all(a["direction"] == "NORTHBOUND" for a in about)
    upstream = [a for a in about if a["region_id"] == 3]
    assert all(a["tower"] == "tower-03" for a in upstream), "region 3's own tower advised, from tower-sync"
    first_upstream_ms = min(a["received_ms"] for a in upstream) - sent_ms
    assert first_upstream_ms < 1_000 + 2_000, "within the important interval (1 s) plus slack"
    assert page is not None, "the worker's state page answers"
    assert hid in page["view_hazards"]["4"], "the towers of regions 3 and 5 hold region 4's hazard in their view"
    speeds = {a["target_vehicle"]: a["target_speed_mps"] for a in about if a["action"] == "SLOW_DOWN"}
    assert speeds and max(speeds.values()) < 31.3, "advised below the 70 mph limit"
