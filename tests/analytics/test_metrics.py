"""The Spark job's /metrics: its progress as Prometheus reads it, and the manual's table of it."""

from __future__ import annotations

from pathlib import Path

from pipeline.analytics.metrics import ANALYTICS, analytics_families
from pipeline.shared.metric_catalog import exposition
from tests.helpers import scraped


def test_before_its_first_batch_there_is_no_duration_nor_delay_to_show() -> None:
    figures = {"batches": 0, "input_rows": 0, "rows_per_s": 0.0, "batch_s": None, "late": 0, "records_out": 0,
               "window_delay_s": None}  # fmt: skip
    got = scraped(exposition(analytics_families(figures)).decode())
    assert got[("corridor_analytics_batches_total", ())] == 0
    assert not [name for name, _ in got if name.endswith(("batch_seconds", "delay_seconds"))]
    later = scraped(exposition(analytics_families({**figures, "batch_s": 1.5, "window_delay_s": 12.0})).decode())
    assert later[("corridor_analytics_window_delay_seconds", ())] == 12.0


def test_the_manual_lists_every_analytics_metric() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
    assert ANALYTICS.table() in page.read_text()
