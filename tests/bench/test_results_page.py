"""The results page says what the bench measured against each target, and is what its sources say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.bench.results_page import HEADER, results_page
from pipeline.cli.results_cmd import merge_benches, read_sources, results
from pipeline.shared.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BENCH = {
    "machine": {"cores": 2, "memory_gib": 23.5, "python": "3.11.7", "platform": "Linux", "date": "2026-12-04"},
    "crdt": {"region_full_merge_ms": 11.1, "lww_map_single_delta_us": 7.5},
    "mqtt": {"skipped": "no MQTT broker | here"},
    "peak": {"error": "StackError: the broker died"},
    "durations_s": {"crdt": 3.2},
}
RUN = {"run": {"simulated_s": 300, "dead_letters": 0}, "latency_ms": {"all": {"p50": 9.0, "p99": 31.4, "n": 1200}},
       "hazards": {"debris": {"vehicles_passed": 12, "max_passing_speed_mps": 5.0}}}  # fmt: skip


def test_each_metric_is_judged_against_its_target_and_nothing_breaks_a_table() -> None:
    page = results_page(BENCH, {"faults": RUN})
    lines = page.splitlines()
    assert lines[0] == HEADER
    assert "| region_full_merge_ms | 11.10 | <= 20 ms | met |" in lines
    assert "| lww_map_single_delta_us | 7.50 | <= 5 µs | **missed** |" in lines
    assert "## crdt (3 s)" in lines and "Skipped: no MQTT broker \\| here" in lines
    assert "**Failed**: StackError: the broker died" in lines
    assert "| debris: warned vehicles passed, fastest | 12, 18 km/h |" in lines
    assert "| advisory latency, all: p50 / p99 (n) | 9.0 / 31.4 ms (1,200) |" in lines
    rows = [line for line in lines if line.startswith("| ")]
    assert all(line.replace("\\|", "").count("|") in (3, 5) for line in rows), rows


def test_the_command_writes_the_page_and_keeps_its_sources_beside_it(tmp_path: Path) -> None:
    bench, run = tmp_path / "bench.json", tmp_path / "reports" / "faults"
    run.mkdir(parents=True)
    bench.write_text(json.dumps(BENCH))
    (run / "summary.json").write_text(json.dumps(RUN))
    page = tmp_path / "docs" / "results.md"
    results(bench=[bench], run=[str(run)], page=page)
    assert page.read_text() == results_page(*read_sources(page.parent / "results"))
    assert sorted(p.name for p in (page.parent / "results").iterdir()) == ["bench.json", "faults.json"]


@pytest.mark.parametrize("text", ["[1, 2]", "{not json", "\udcff"])
def test_a_source_that_is_not_a_json_object_is_a_one_line_error_and_nothing_is_written(tmp_path: Path,
                                                                                      text: str) -> None:  # fmt: skip
    bench = tmp_path / "bench.json"
    bench.write_bytes(text.encode("utf-8", "surrogateescape"))
    page = tmp_path / "results.md"
    with pytest.raises(ConfigError, match=r"bench\.json"):
        results(bench=[bench], run=None, page=page)
    assert not page.exists()


def test_the_published_results_page_is_what_its_sources_say() -> None:
    page = ROOT / "docs" / "results.md"
    assert page.read_text() == results_page(*read_sources(ROOT / "docs" / "results")), (
        "docs/results.md is written by `corridor results`, not by hand"
    )


def test_benches_run_section_by_section_merge_and_a_later_section_says_when_it_was_measured() -> None:
    later = {"machine": {**BENCH["machine"], "date": "2026-12-05"}, "crdt": {"region_full_merge_ms": 9.0},
             "durations_s": {"crdt": 2.0}}  # fmt: skip
    merged = merge_benches([BENCH, later])
    assert merged["crdt"] == {"region_full_merge_ms": 9.0, "measured": "2026-12-05"}
    assert merged["mqtt"] == BENCH["mqtt"] and merged["durations_s"] == {"crdt": 2.0}
    assert merged["machine"] == BENCH["machine"]
