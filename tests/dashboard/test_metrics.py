"""The live page's /metrics: its figures as Prometheus reads them, and the manual's table of them."""

from __future__ import annotations

from pathlib import Path

from pipeline.dashboard.metrics import LIVE_PAGE, live_page_families
from pipeline.shared.metric_catalog import exposition
from tests.helpers import scraped


def test_the_pages_figures_come_through_with_reasons_as_labels() -> None:
    stats = {"clients": 2, "bytes_sent": 10_000, "cpu_s": 1.5, "feed_messages": 300, "undecodable": 1,
             "refused": {"clock-ahead": 4}, "updates": 250}  # fmt: skip
    got = scraped(exposition(live_page_families(stats)).decode())
    assert got[("corridor_live_page_clients", ())] == 2
    assert got[("corridor_live_page_refused_total", (("reason", "clock-ahead"),))] == 4
    assert got[("corridor_live_page_cpu_seconds_total", ())] == 1.5


def test_the_manual_lists_every_live_page_metric() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
    assert LIVE_PAGE.table() in page.read_text()
