"""A gateway's /metrics page: its counters as Prometheus reads them, served while it runs."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.ports import free_ports
from pipeline.shared.errors import StackError
from pipeline.shared.messages import CODEC, TELEMETRY
from pipeline.shared.metric_catalog import exposition
from tests.helpers import scraped
from tests.hostile.test_gateway import deliver, gateway
from tests.towers.test_engine import upd
from towers.gateway.metrics import GATEWAY


def test_what_it_received_refused_and_forwarded_comes_through_with_reasons() -> None:
    gw, _ = gateway()
    now = int(time.time() * 1000)  # the gateway refuses stamps far from its clock
    good = CODEC.encode(TELEMETRY, upd("veh-1", 38.0) | {"event_time": now, "hlc": now << 16})
    for topic, payload in ((b"corridor/v2/region/4/telemetry/veh-1", good),
                           (b"corridor/v2/region/4/telemetry/veh-1", b"junk"),
                           (b"corridor/v2/region/4/hazards/veh-1", b"\x00" * 2_000_000)):  # fmt: skip
        deliver(gw, topic, payload)
    gw._uplink()
    gw._frames(True)
    got = scraped(exposition(gw.metric_families()).decode())
    assert got[("corridor_gateway_received_total", ())] == 2
    assert got[("corridor_gateway_dead_letters_total", (("reason", "too-large"),))] == 1
    assert got[("corridor_gateway_dead_letters_total", (("reason", "undecodable"),))] == 1
    assert got[("corridor_gateway_updates_forwarded_total", ())] == 1
    assert got[("corridor_gateway_mqtt_subscribed", ())] == 0, "not connected here: deaf, and said so"
    for family in text_string_to_metric_families(exposition(gw.metric_families()).decode()):
        declared = family.name + "_total" if family.type == "counter" else family.name
        assert GATEWAY.metrics[declared][0] == family.type


def test_it_serves_metrics_on_the_port_asked_and_a_port_taken_is_a_one_line_error() -> None:
    gw, _ = gateway()
    port = free_ports(1)[0]
    gw.serve_metrics("127.0.0.1", port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert ("corridor_gateway_frames_total", ()) in scraped(resp.read().decode())
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        with pytest.raises(StackError, match=r"cannot listen on 127\.0\.0\.1"):
            gateway()[0].serve_metrics("127.0.0.1", held.getsockname()[1])


def test_the_manual_lists_every_gateway_metric() -> None:
    page = Path(__file__).resolve().parents[3] / "docs" / "observability.md"
    assert GATEWAY.table() in page.read_text()
