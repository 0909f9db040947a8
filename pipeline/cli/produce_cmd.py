"""`corridor produce`: drive a fleet on the corridor and send its telemetry to Kafka."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pipeline.admin import ensure_topics
from pipeline.schema_registry import use_wire
from pipeline.shared.access import Role
from pipeline.shared.config import Settings
from pipeline.shared.corridor import load_corridor
from pipeline.shared.errors import ConfigError

if TYPE_CHECKING:  # imported where used: `corridor --help` stays quick
    from producers.drive import DriveStats
    from producers.fcd import ReplayFleet
    from producers.fleet import Fleet
    from producers.listener import AdvisoryListener
    from producers.sink import Uplink

__all__ = ["produce"]

out = Console(highlight=False)
MAX_HZ = 50.0
MAX_VEHICLES = 100_000


def _progress(stats: DriveStats, fleet: Fleet | ReplayFleet, sink: Uplink, listener: AdvisoryListener | None) -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_row("simulated", f"{fleet.t:,.0f} s", "vehicles", f"{fleet.vehicle_count():,}")
    t.add_row(
        "updates/s", f"{stats.updates_per_s:,.0f}", "acked", f"{sink.stats.acked:,} / {sink.stats.sent:,} records"
    )
    t.add_row(
        "advisories", f"{listener.stats.received:,}" if listener else "-", "behind schedule", f"{stats.lag_s:.2f} s"
    )
    return t


def produce(
    ctx: typer.Context,
    vehicles: Annotated[int, typer.Option(help="vehicles on the road at once")] = 300,
    hz: Annotated[float, typer.Option(help="telemetry messages per vehicle per simulated second (CAM: 1–10)")] = 1.0,
    duration: Annotated[float, typer.Option(help="simulated seconds to drive")] = 60.0,
    speedup: Annotated[float, typer.Option(help="simulated seconds per wall second; 0 = as fast as possible")] = 1.0,
    wire: Annotated[
        str, typer.Option(help="frames (one record per region per tick) or records (one per update)")
    ] = "frames",
    route: Annotated[Path | None, typer.Option(help="route JSON file (default: I-69 Bloomington–Indianapolis)")] = None,
    towers: Annotated[Path | None, typer.Option(help="tower regions JSON file (default: 9 regions)")] = None,
    listen: Annotated[bool, typer.Option(help="obey the towers' advisories (closes the loop)")] = True,
    seed: Annotated[int, typer.Option(help="random seed of the fleet")] = 7,
    radio: Annotated[
        str,
        typer.Option(help="kafka (straight to the topics) or mqtt (to the towers' gateways: run `corridor gateway`)"),
    ] = "kafka",
    fcd: Annotated[
        Path | None,
        typer.Option(help="replay a SUMO FCD file (--fcd-output.geo) instead of simulating a fleet; at its own step"),
    ] = None,
) -> None:
    """Drive a fleet along I-69 and send its telemetry to the region topics; vehicles obey advisories."""
    from producers.drive import DriveConfig, WireFormat, drive, event_clock_start
    from producers.fcd import ReplayFleet, read_fcd
    from producers.fleet import Fleet, FleetConfig
    from producers.listener import AdvisoryListener
    from producers.sink import TelemetrySink

    if not 1 <= vehicles <= MAX_VEHICLES:
        raise ConfigError(f"--vehicles must be between 1 and {MAX_VEHICLES:,}, got {vehicles}")
    if not 0 < hz <= MAX_HZ:
        raise ConfigError(f"--hz must be above 0 and at most {MAX_HZ:g} (CAM allows up to 10 Hz), got {hz:g}")
    if duration <= 0 or speedup < 0:
        raise ConfigError("--duration must be positive and --speedup ≥ 0")
    try:
        wire_format = WireFormat(wire)
    except ValueError:
        raise ConfigError(f"--wire must be 'frames' or 'records', got {wire!r}") from None
    if radio not in ("kafka", "mqtt"):
        raise ConfigError(f"--radio must be 'kafka' or 'mqtt', got {radio!r}")
    settings: Settings = ctx.obj
    use_wire(settings)
    corridor = load_corridor(route or settings.route_file, towers or settings.towers_file)
    topics = settings.topics(len(corridor.regions))
    ensure_topics(settings.kafka(Role.ADMIN), topics.specs())
    fleet: Fleet | ReplayFleet = Fleet(
        corridor,
        FleetConfig(vehicles=vehicles, seed=seed),
        start_ms=event_clock_start(DriveConfig(duration_s=duration, speedup=speedup)),
    )
    if fcd is not None:  # SUMO's vehicles, as they drove there: they cannot obey advice
        trace = read_fcd(fcd, corridor)
        fleet = ReplayFleet(trace, corridor, start_ms=0)
        hz, duration, listen = 1.0 / trace.step_s, fleet.duration_s, False
        fleet.start_ms = event_clock_start(DriveConfig(duration_s=duration, speedup=speedup))
        out.print(f"replaying {fcd}: {len(trace.ids):,} vehicles, {len(trace.steps):,} steps of {trace.step_s:g} s, "
                  f"{trace.off_route:,} points off the corridor left out")  # fmt: skip
    link = None
    if radio == "mqtt":  # a message per update, to the region's MQTT topic; advisories heard over the air
        from pipeline.shared.radio_topics import RadioTopics
        from producers.radio import RadioLink, RadioListener

        if settings.mqtt().secure:
            raise ConfigError("corridor produce --radio mqtt speaks anonymously: on a secure stack, use corridor "
                              "simulate --radio mqtt, whose vehicles are enrolled")  # fmt: skip
        link = RadioLink(settings.mqtt(), RadioTopics(len(corridor.regions)))
        wire_format = WireFormat.RECORDS
    sink: Uplink = link if link is not None else TelemetrySink(settings.kafka(Role.VEHICLE))
    listener: AdvisoryListener | None = None
    if listen:
        vehicle = settings.kafka(Role.VEHICLE)
        listener = (RadioListener(link) if link is not None else
                    AdvisoryListener(vehicle, topics.advisories, len(corridor.regions)))  # fmt: skip
    config = DriveConfig(hz=hz, duration_s=duration, speedup=speedup, wire=wire_format)
    try:
        with Live(_progress_stub(), console=out, refresh_per_second=4, transient=False) as live:
            stats = drive(
                fleet,
                sink,
                topics,
                config,
                listener,
                on_tick=lambda s: live.update(_progress(s, fleet, sink, listener)),
            )
    finally:
        if listener is not None:
            listener.close()
        if link is not None:
            link.close()
    out.print(
        f"drove {stats.ticks} ticks: {stats.updates:,} vehicle updates in {sink.stats.sent:,} records, "
        f"{sink.stats.acked:,} acknowledged, {stats.updates_per_s:,.0f} updates/s, "
        f"physics {stats.cpu_step_s * 1000 / max(fleet.t, 1e-9):.1f} ms CPU per simulated second"
    )


def _progress_stub() -> Table:
    return Table.grid()
