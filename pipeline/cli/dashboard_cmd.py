"""`corridor dashboard`: the live page of the corridor, read-only, on loopback."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pipeline.schema_registry import use_wire
from pipeline.shared.config import Settings

__all__ = ["DEFAULT_PORT", "dashboard"]

DEFAULT_PORT = 8765
out = Console(highlight=False)


def dashboard(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535, help="port of the page")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="address to listen on (loopback unless you mean otherwise)")] = "127.0.0.1",
) -> None:
    """Serve the live page: vehicles, hazards, advisories and tower workers, from Kafka (a consumer
    group of its own), etcd and the workers' pages. Starts nothing else; Ctrl-C stops it."""
    from pipeline.dashboard.server import serve

    settings: Settings = ctx.obj
    use_wire(settings)
    serve(settings, host, port, lambda url: out.print(f"dashboard on {url} (Ctrl-C to stop)"))
