"""Entry point: global options become one frozen `Settings`; expected errors become one line."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.cli import (
    analytics_cmd,
    bench_cmd,
    consume_cmd,
    dashboard_cmd,
    drill_cmd,
    gateway_cmd,
    hazard_cmd,
    images_cmd,
    k8s_cmd,
    kafka_cmd,
    produce_cmd,
    results_cmd,
    schemas_cmd,
    simulate_cmd,
    stack_cmd,
    status_cmd,
    sumo_cmd,
    tower_cmd,
)
from pipeline.shared.config import ENV_VARS, Settings
from pipeline.shared.errors import CorridorError

__all__ = ["app", "main"]

app = typer.Typer(
    name="corridor",
    help="Edge stream processing for connected vehicles on the Bloomington–Indianapolis I-69 corridor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(stack_cmd.app, name="stack")
app.add_typer(kafka_cmd.app, name="kafka")
app.add_typer(images_cmd.app, name="images")
app.add_typer(k8s_cmd.app, name="k8s")
app.add_typer(schemas_cmd.app, name="schemas")
app.add_typer(sumo_cmd.app, name="sumo")
app.command("bench")(bench_cmd.bench)
app.command("simulate")(simulate_cmd.simulate)
app.command("produce")(produce_cmd.produce)
app.command("consume")(consume_cmd.consume)
app.command("status")(status_cmd.status)
app.command("hazard")(hazard_cmd.hazard)
app.command("drill")(drill_cmd.drill)
app.command("gateway")(gateway_cmd.gateway)
app.command("gateway-probe")(gateway_cmd.gateway_probe)
app.command("dashboard")(dashboard_cmd.dashboard)
app.command("analytics")(analytics_cmd.analytics)
app.command("results")(results_cmd.results)
app.add_typer(tower_cmd.app, name="tower")
err = Console(stderr=True, highlight=False, soft_wrap=True)


@app.callback()
def configure(
    ctx: typer.Context,
    state_dir: Annotated[
        Path | None, typer.Option(help=ENV_VARS["CORRIDOR_STATE_DIR"], envvar="CORRIDOR_STATE_DIR")
    ] = None,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help=ENV_VARS["KAFKA_BOOTSTRAP_SERVERS"], envvar="KAFKA_BOOTSTRAP_SERVERS")
    ] = None,
    etcd_endpoints: Annotated[
        str | None, typer.Option(help=ENV_VARS["ETCD_ENDPOINTS"], envvar="ETCD_ENDPOINTS")
    ] = None,
) -> None:
    env = {k: v for k, v in os.environ.items() if k in ENV_VARS}
    if bootstrap_servers is not None:
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap_servers
    if etcd_endpoints is not None:
        env["ETCD_ENDPOINTS"] = etcd_endpoints
    if state_dir is not None:
        env["CORRIDOR_STATE_DIR"] = str(state_dir)
    ctx.obj = Settings.from_env(env)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a command as Ctrl-C does: whatever it started is stopped


def main() -> None:
    """Run the CLI; a `CorridorError` is printed as one line and exits 1, never as a traceback."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app(standalone_mode=True)
    except CorridorError as exc:
        err.print(f"[bold red]corridor: error:[/] {exc}")
        sys.exit(1)
