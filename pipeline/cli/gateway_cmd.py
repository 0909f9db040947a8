"""`corridor gateway`: a tower's radio gateway (MQTT ↔ Kafka), until Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.schema_registry import use_wire
from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError

__all__ = ["gateway", "gateway_probe"]

out = Console(highlight=False)


def gateway(
    ctx: typer.Context,
    regions: Annotated[str, typer.Option(help="regions it serves: all, N, N-M or a list (0,2,5-8)")] = "all",
    group: Annotated[str, typer.Option(help="MQTT 5 shared subscription: its gateways share the load")] = "gateways",
    batch_ms: Annotated[float, typer.Option(min=0, max=1000, help="at most one frame per region this often: "
                                             "updates arriving within it share one")] = 5.0,
    downlink: Annotated[bool, typer.Option(help="also carry the towers' advisories to MQTT")] = True,
    stats: Annotated[Path | None, typer.Option(help="write its counters here (JSON) once a second")] = None,
    metrics_port: Annotated[int | None, typer.Option(min=1, max=65535, help="serve /metrics (Prometheus) here")] = None,
    metrics_host: Annotated[str, typer.Option(help="where /metrics binds (0.0.0.0 in a pod)")] = "127.0.0.1",
) -> None:  # fmt: skip
    """Vehicles' MQTT telemetry and hazard reports → Kafka (as the towers' frames); advisories → MQTT.
    Starts no broker: run `corridor stack up --mqtt` first, or set MQTT_URL."""
    from towers.gateway.bridge import Gateway, parse_regions

    settings: Settings = ctx.obj
    use_wire(settings)
    n = len(settings.corridor().regions)
    try:
        served = parse_regions(regions, n)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not group or any(c in group for c in "/+#"):
        raise ConfigError(f"--group {group!r}: a name without '/', '+' or '#'")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    gw = Gateway(settings, served, n, group=group, batch_s=batch_ms / 1000, downlink=downlink)
    if metrics_port is not None:
        gw.serve_metrics(metrics_host, metrics_port)
    host, port = settings.mqtt_address
    out.print(f"gateway for regions {served} · MQTT {host}:{port} · Kafka {settings.bootstrap_servers}")
    try:
        result = gw.run(stats)
    except KeyboardInterrupt:
        result = gw.stats
    dead = result.dead_letters or 0
    out.print(f"gateway stopped: {result.received:,} updates received, {result.frames:,} frames, "
              f"{result.advisories_forwarded:,} advisories forwarded, dead letters {dead}")  # fmt: skip


def gateway_probe(
    stats: Annotated[Path, typer.Argument(help="the file the gateway writes with --stats")],
    max_age_s: Annotated[float, typer.Option(min=1, help="older than this: the gateway's loop is stuck")] = 10.0,
    connected: Annotated[bool, typer.Option(help="also require a live connection to the MQTT broker")] = False,
) -> None:
    """Exit 0 while a gateway is serving (its counters written within MAX_AGE_S), 1 otherwise: the
    liveness and readiness probes of its Deployment."""
    import json
    import time

    try:
        data = json.loads(stats.read_text())
        age = time.time() - stats.stat().st_mtime
    except (OSError, ValueError) as exc:
        out.print(f"gateway not serving: {stats}: {exc}")
        raise typer.Exit(1) from None
    if age > max_age_s:
        out.print(f"gateway not serving: its counters are {age:.0f} s old")
        raise typer.Exit(1)
    if connected and not (isinstance(data, dict) and data.get("mqtt_connected") is True):
        out.print("gateway not ready: not connected to the MQTT broker")
        raise typer.Exit(1)
    if connected and data.get("mqtt_subscribed") is not True:
        out.print("gateway not ready: its subscriptions are not granted (yet)")
        raise typer.Exit(1)
    out.print("gateway serving")
