"""Metrics declared once, for Prometheus's text format and for the manual's tables. Pure.

A part of corridor (a tower worker, the fleet) declares its metrics in a `Catalog` — name, type,
help and label — and builds a scrape's families from it, so what is served, what the alert rules
may read and what the manual lists are the same names."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from pipeline.shared.stats import LatencyHistogram

__all__ = ["CONTENT_TYPE", "Catalog", "exposition", "registry_of"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Catalog:
    #: name -> (type, help); a counter's name ends in `_total`, a histogram's is its base name
    metrics: dict[str, tuple[str, str]]
    labels: dict[str, str] = field(default_factory=dict)  # the label a labelled metric carries

    def table(self) -> str:
        """The manual's table (a test holds the page to it)."""
        rows = [f"| `{name}` | {kind} | {self.labels.get(name, '')} | {text} |"
                for name, (kind, text) in self.metrics.items()]  # fmt: skip
        return "\n".join(["| metric | type | label | what it is |", "|---|---|---|---|", *rows]) + "\n"

    def _family(self, name: str, labels: tuple[str, ...] = ()) -> Metric:
        kind, text = self.metrics[name]
        if kind == "counter":
            return CounterMetricFamily(name.removesuffix("_total"), text, labels=labels)
        if kind == "histogram":
            return HistogramMetricFamily(name, text, labels=labels)
        return GaugeMetricFamily(name, text, labels=labels)

    def one(self, name: str, value: float) -> Metric:
        family = self._family(name)
        family.add_metric([], value)  # type: ignore[attr-defined]
        return family

    def labelled(self, name: str, values: Mapping[Any, float | None]) -> Metric:
        """One sample per key (keys sorted as text); a None value is no sample, not a zero."""
        family = self._family(name, (self.labels[name],))
        for key, value in sorted(values.items(), key=lambda kv: str(kv[0])):
            if value is not None:
                family.add_metric([str(key)], value)  # type: ignore[attr-defined]
        return family

    def histogram(self, name: str, hist: LatencyHistogram) -> Metric:
        family = self._family(name)
        family.add_metric([], hist.cumulative(), hist.total_s)  # type: ignore[attr-defined]
        return family


class _Scrape:
    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families()


def registry_of(families: Callable[[], Iterable[Metric]]) -> CollectorRegistry:
    """A registry that asks `families` at each scrape (for prometheus_client's own HTTP server)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(families))
    return registry


def exposition(families: Iterable[Metric]) -> bytes:
    """One scrape's families in Prometheus's text format."""
    return generate_latest(registry_of(lambda: families))
