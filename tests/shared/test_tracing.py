"""Trace context across the hazard path's hops, with real OpenTelemetry spans written where a run reads
them back; and what a hostile or broken header costs (its own trace, nothing else)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.monitoring.traces import hop_breakdown
from pipeline.shared.errors import ConfigError
from pipeline.shared.tracing import (
    REPORT_SPAN,
    TOWER_SPAN,
    TRACEPARENT,
    VEHICLE_SPAN,
    FileSpanExporter,
    Tracing,
    read_spans,
    tracing_from_env,
)


def _three(folder: Path) -> tuple[Tracing, Tracing, Tracing]:
    """The three processes of the path (a run's fleet, a tower, the fleet's receiver), each exporting."""
    return tuple(Tracing(name, FileSpanExporter(folder), batch=False) for name in ("fleet", "tower", "vehicle"))  # type: ignore[return-value]


def test_a_report_its_towers_decision_and_each_advisory_received_make_one_trace(tmp_path: Path) -> None:
    fleet, tower, vehicle = _three(tmp_path)
    with fleet.span(REPORT_SPAN, hazard="deer") as report:
        sent = Tracing.headers(report)
    assert [k for k, _ in sent] == [TRACEPARENT]
    with tower.span(TOWER_SPAN, dict(sent), region=4) as decided:  # Faust hands headers as a dict
        onward = Tracing.headers(decided)
    for _ in range(3):  # three vehicles advised
        vehicle.received(VEHICLE_SPAN, onward)
    spans = read_spans(tmp_path)
    assert {s["name"] for s in spans} == {REPORT_SPAN, TOWER_SPAN, VEHICLE_SPAN} and len(spans) == 5
    assert len({s["trace"] for s in spans}) == 1
    by_name = {s["name"]: s for s in spans}
    assert by_name[TOWER_SPAN]["parent"] == by_name[REPORT_SPAN]["span"]
    assert by_name[VEHICLE_SPAN]["parent"] == by_name[TOWER_SPAN]["span"]
    hops = hop_breakdown(spans)
    assert hops["reports"] == 1 and hops["traces_complete"] == 1
    assert {h: d["n"] for h, d in hops["hops_ms"].items()} == {
        "report → tower": 3,
        "tower decides": 3,
        "tower → vehicle": 3,
        "report → vehicle": 3,
    }
    assert all(d["p50"] >= 0 for d in hops["hops_ms"].values())


def test_off_it_records_nothing_and_adds_no_header(tmp_path: Path) -> None:
    off = Tracing("fleet")
    with off.span(REPORT_SPAN) as s:
        assert s is None and Tracing.headers(s) == []
    off.received(VEHICLE_SPAN, [(TRACEPARENT, b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")])
    assert read_spans(tmp_path) == []


@pytest.mark.parametrize(
    "value", [b"\xff\xfe", b"00-zz-yy-01", b"0" * 10_000, None, b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01"]
)
def test_a_malformed_trace_context_starts_no_trace_and_breaks_nothing(tmp_path: Path, value: bytes | None) -> None:
    _, tower, vehicle = _three(tmp_path)
    with tower.span(TOWER_SPAN, {TRACEPARENT: value}) as s:
        assert s is not None  # the tower's own span, a root: no adversary's parent
    vehicle.received(VEHICLE_SPAN, [(TRACEPARENT, value)])
    spans = read_spans(tmp_path)
    assert [s["name"] for s in spans] == [TOWER_SPAN] and spans[0]["parent"] is None


def test_the_setting_is_off_a_folder_or_otlp_and_anything_else_a_one_line_error(tmp_path: Path) -> None:
    assert not tracing_from_env("t", {}).enabled and not tracing_from_env("t", {"CORRIDOR_TRACES": "off"}).enabled
    assert tracing_from_env("t", {"CORRIDOR_TRACES": f"file:{tmp_path}"}).enabled
    with pytest.raises(ConfigError, match="file:DIR or otlp"):
        tracing_from_env("t", {"CORRIDOR_TRACES": "jaeger"})


def test_a_half_written_line_of_a_killed_process_is_skipped(tmp_path: Path) -> None:
    fleet, _, _ = _three(tmp_path)
    with fleet.span(REPORT_SPAN):
        pass
    (tmp_path / "spans-1.jsonl").write_text('{"trace": "ab", "na')
    assert [s["name"] for s in read_spans(tmp_path)] == [REPORT_SPAN]
