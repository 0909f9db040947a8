"""The Spark job's progress on `/metrics` (`corridor analytics --metrics-port`): micro-batches, rows in,
processing rate, late telemetry, stats records out and how long after a window closed its record went
out. Pure: the job hands it a snapshot of its sink's counters."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import Metric

from pipeline.shared.metric_catalog import Catalog

__all__ = ["ANALYTICS", "analytics_families"]

ANALYTICS = Catalog(
    {
        "corridor_analytics_batches_total": ("counter", "micro-batches Spark reported progress on"),
        "corridor_analytics_input_rows_total": ("counter", "rows the query read from the corridor's topics"),
        "corridor_analytics_processed_rows_per_second": ("gauge", "the latest micro-batch's processing rate"),
        "corridor_analytics_batch_seconds": ("gauge", "the latest micro-batch's duration"),
        "corridor_analytics_late_rows_total": ("counter", "telemetry later than the watermark, counted not used"),
        "corridor_analytics_records_out_total": ("counter", "stats records sent to the corridor-stats topic"),
        "corridor_analytics_window_delay_seconds": ("gauge", "window closed (event time) → its record sent"),
    }
)


def analytics_families(f: Mapping[str, Any]) -> Iterator[Metric]:
    yield ANALYTICS.one("corridor_analytics_batches_total", f["batches"])
    yield ANALYTICS.one("corridor_analytics_input_rows_total", f["input_rows"])
    yield ANALYTICS.one("corridor_analytics_processed_rows_per_second", f["rows_per_s"])
    if f["batch_s"] is not None:
        yield ANALYTICS.one("corridor_analytics_batch_seconds", f["batch_s"])
    yield ANALYTICS.one("corridor_analytics_late_rows_total", f["late"])
    yield ANALYTICS.one("corridor_analytics_records_out_total", f["records_out"])
    if f["window_delay_s"] is not None:
        yield ANALYTICS.one("corridor_analytics_window_delay_seconds", f["window_delay_s"])
