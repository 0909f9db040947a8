"""The simulated fleet's side of a run on a `/metrics` page: what the vehicles sent, what advice
reached them and how long it took — the report's latency figures, as Prometheus histograms.

The figures are read when scraped (the listener keeps its buckets as advisories arrive). The page is
served on loopback, by the run's own process, for as long as the run lasts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import Metric

from pipeline.shared.metric_catalog import Catalog, registry_of
from pipeline.shared.stats import LatencyHistogram

__all__ = ["FLEET", "FleetFigures", "FleetMetricsServer", "fleet_families"]


@dataclass(frozen=True)
class FleetFigures:
    vehicles: int  # on the road now
    simulated_s: float
    behind_schedule_s: float
    updates_sent: int
    hazard_reports: int
    advisories: Mapping[str, int]  # received and believed, by action
    stale: int
    refused: int
    forged: int  # not signed by a tower the fleet trusts
    undecodable: int
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    hazard_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    radio_published: int | None = None  # updates sent over MQTT (QoS 0), when the fleet talks MQTT


FLEET = Catalog(
    {
        "corridor_fleet_vehicles": ("gauge", "vehicles on the road"),
        "corridor_fleet_simulated_seconds": ("gauge", "simulated time since the run began"),
        "corridor_fleet_behind_schedule_seconds": ("gauge", "how far the fleet's loop is behind its schedule"),
        "corridor_fleet_updates_sent_total": ("counter", "vehicle updates sent (by Kafka or MQTT)"),
        "corridor_fleet_hazard_reports_total": ("counter", "hazard reports and cancellations the run sent"),
        "corridor_fleet_advisories_received_total": ("counter", "advisories received and believed, by action"),
        "corridor_fleet_stale_advisories_total": ("counter", "advisories received after their validity had lapsed"),
        "corridor_fleet_refused_advisories_total": ("counter", "advisories decoded but not believable"),
        "corridor_fleet_forged_advisories_total": ("counter", "advisories no trusted tower signed: not obeyed"),
        "corridor_fleet_undecodable_advisories_total": ("counter", "advisories that did not decode"),
        "corridor_fleet_advisory_latency_seconds": ("histogram", "trigger sent → advisory received, every advisory"),
        "corridor_fleet_radio_published_total": ("counter", "updates sent over MQTT (QoS 0), on the radio link"),
        "corridor_fleet_hazard_advisory_latency_seconds": (
            "histogram", "hazard report sent → advisory received, for the advice a report itself triggered"),
    },
    {"corridor_fleet_advisories_received_total": "action"},
)  # fmt: skip


def fleet_families(f: FleetFigures) -> Iterator[Metric]:
    yield FLEET.one("corridor_fleet_vehicles", f.vehicles)
    yield FLEET.one("corridor_fleet_simulated_seconds", f.simulated_s)
    yield FLEET.one("corridor_fleet_behind_schedule_seconds", f.behind_schedule_s)
    yield FLEET.one("corridor_fleet_updates_sent_total", f.updates_sent)
    yield FLEET.one("corridor_fleet_hazard_reports_total", f.hazard_reports)
    yield FLEET.labelled("corridor_fleet_advisories_received_total", f.advisories)
    yield FLEET.one("corridor_fleet_stale_advisories_total", f.stale)
    yield FLEET.one("corridor_fleet_refused_advisories_total", f.refused)
    yield FLEET.one("corridor_fleet_forged_advisories_total", f.forged)
    yield FLEET.one("corridor_fleet_undecodable_advisories_total", f.undecodable)
    if f.radio_published is not None:
        yield FLEET.one("corridor_fleet_radio_published_total", f.radio_published)
    yield FLEET.histogram("corridor_fleet_advisory_latency_seconds", f.latency)
    yield FLEET.histogram("corridor_fleet_hazard_advisory_latency_seconds", f.hazard_latency)


class FleetMetricsServer:
    """`/metrics` of the fleet on 127.0.0.1:`port`, in a daemon thread, until `close`."""

    def __init__(self, port: int, figures: Callable[[], FleetFigures]) -> None:
        registry = registry_of(lambda: fleet_families(figures()))
        self.port = port
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr="127.0.0.1", registry=registry)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
