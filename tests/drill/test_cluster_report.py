"""What a drill on the cluster says of the genuine hazards reported during it: reports are judged
by when they were sent, against the fault's window (and the second after it)."""

from __future__ import annotations

from typing import Any

from pipeline.drill.cluster_faults import hazards_report
from pipeline.drill.hostile import HostileSender


def _reporter(sent: dict[str, int], reaction: dict[str, float], named: set[str]) -> HostileSender:
    h = HostileSender.__new__(HostileSender)  # its figures only: no thread, no client
    h.hazards_sent, h.reaction_ms, h.errors = sent, reaction, []
    h.first_ms = {hid: reaction.get(hid, 900.0) for hid in named}
    h.hazard_where = {hid: (10.0 + i, i % 9) for i, hid in enumerate(sent)}
    return h


class _Drill:
    def __init__(self, hazards: HostileSender | None, start: int | None, end: int | None) -> None:
        self.hazards: Any = hazards
        self.fault_start_ms, self.fault_end_ms = start, end


def test_hazards_reported_while_the_fault_lasted_are_timed_apart_and_the_unadvised_named() -> None:
    sent = {"before": 1_000, "during": 5_000, "just-after": 8_500, "late": 20_000, "never": 6_000}
    reaction = {"before": 12.0, "during": 4_200.0, "just-after": 900.0, "late": 15.0}
    report = hazards_report(_Drill(_reporter(sent, reaction, set(reaction)), 4_000, 8_000))  # type: ignore[arg-type]
    assert report["hazards_reported"] == 5 and report["hazards_advised"] == 4
    assert [h["id"] for h in report["hazards_unadvised"]] == ["never"]
    assert report["hazards_during_fault"] == 3  # during, never, and the one a second after it ended
    assert report["hazard_during_fault_worst_ms"] == 4_200.0
    assert report["hazard_p99_ms"] > 4_000  # over the whole run, the fault's worst included


def test_a_drill_without_a_reporter_reports_nothing_of_hazards() -> None:
    assert hazards_report(_Drill(None, 1, 2)) == {}  # type: ignore[arg-type]
