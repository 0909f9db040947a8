"""The live page's own figures on its `/metrics`: who watches it, what it sends, what it reads. Pure."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import Metric

from pipeline.shared.metric_catalog import Catalog

__all__ = ["LIVE_PAGE", "live_page_families"]

LIVE_PAGE = Catalog(
    {
        "corridor_live_page_clients": ("gauge", "browsers following the page's event stream"),
        "corridor_live_page_sent_bytes_total": ("counter", "bytes of the event stream sent to them"),
        "corridor_live_page_cpu_seconds_total": ("counter", "CPU time the page's server has used"),
        "corridor_live_page_messages_read_total": ("counter", "messages it read from the corridor's topics"),
        "corridor_live_page_undecodable_total": ("counter", "messages it read that did not decode"),
        "corridor_live_page_refused_total": ("counter", "decoded messages it did not show, by reason"),
        "corridor_live_page_updates_total": ("counter", "vehicle updates it put on the map"),
    },
    {"corridor_live_page_refused_total": "reason"},
)


def live_page_families(stats: Mapping[str, Any]) -> Iterator[Metric]:
    yield LIVE_PAGE.one("corridor_live_page_clients", stats["clients"])
    yield LIVE_PAGE.one("corridor_live_page_sent_bytes_total", stats["bytes_sent"])
    yield LIVE_PAGE.one("corridor_live_page_cpu_seconds_total", stats["cpu_s"])
    yield LIVE_PAGE.one("corridor_live_page_messages_read_total", stats["feed_messages"])
    yield LIVE_PAGE.one("corridor_live_page_undecodable_total", stats["undecodable"])
    yield LIVE_PAGE.labelled("corridor_live_page_refused_total", stats["refused"])
    yield LIVE_PAGE.one("corridor_live_page_updates_total", stats["updates"])
