"""What a drill on the cluster says of the genuine hazards reported during it: reports are judged
by when they were sent, against the fault's window (and the second after it)."""

from __future__ import annotations

from typing import Any

from pipeline.drill.cluster_faults import hazards_report
from pipeline.drill.hostile import HostileSender


def _reporter(sent: dict[str, int], reaction: dict[str, float], named: set[str]) -> HostileSender:
    h = HostileSender.__new__(HostileSender)  # its figures only: no thread, no client
    h.hazards_sent, h.reaction_ms, h.errors, h.acked_ms = sent, reaction, [], {"never": 9_100.0}
    h.first_ms = {hid: reaction.get(hid, 900.0) for hid in named}
    h.hazard_where = {hid: (10.0 + i, i % 9) for i, hid in enumerate(sent)}
    return h


class _Drill:
    def __init__(self, hazards: HostileSender | None, start: int | None, end: int | None, expired: int = 0) -> None:
        self.hazards: Any = hazards
        self.fault_start_ms, self.fault_end_ms = start, end
        # two workers' counters: what each read only after its validity had lapsed
        self.tallies = {1: {"updates": 10}, 2: {"updates": 5, "hazards_expired_on_arrival": expired}}


def test_hazards_reported_while_the_fault_lasted_are_timed_apart_and_the_unadvised_named() -> None:
    sent = {"before": 1_000, "during": 5_000, "just-after": 8_500, "late": 20_000, "never": 6_000}
    reaction = {"before": 12.0, "during": 4_200.0, "just-after": 900.0, "late": 15.0}
    report = hazards_report(_Drill(_reporter(sent, reaction, set(reaction)), 4_000, 8_000))  # type: ignore[arg-type]
    assert report["hazards_reported"] == 5 and report["hazards_advised"] == 4
    assert report["hazards_unadvised"] == [{"id": "never", "km": 14.0, "region": 4, "acked_after_ms": 9_100}]
    assert report["hazards_unaccounted"] == 1, "the towers read none after its validity: it went silently"
    assert report["hazards_during_fault"] == 3  # during, never, and the one a second after it ended
    assert report["hazard_during_fault_worst_ms"] == 4_200.0
    assert report["hazard_p99_ms"] > 4_000  # over the whole run, the fault's worst included


def test_a_drill_without_a_reporter_reports_nothing_of_hazards() -> None:
    assert hazards_report(_Drill(None, 1, 2)) == {}  # type: ignore[arg-type]


def test_an_unadvised_hazard_the_towers_read_only_after_its_validity_is_accounted_for() -> None:
    sent = {"held": 5_000, "on-time": 6_000}
    reporter = _reporter(sent, {"on-time": 30.0}, {"on-time"})
    report = hazards_report(_Drill(reporter, 4_000, 8_000, expired=1))  # type: ignore[arg-type]
    assert report["hazards_expired_on_arrival"] == 1 and report["hazards_unaccounted"] == 0
    assert [h["id"] for h in report["hazards_unadvised"]] == ["held"], "still listed, with where it was"
