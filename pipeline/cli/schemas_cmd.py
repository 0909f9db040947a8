"""`corridor schemas subjects|register|check`: corridor's Avro schemas in a schema registry."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError, StackError
from pipeline.shared.subjects import subjects

__all__ = ["app"]

app = typer.Typer(help="corridor's Avro schemas in a schema registry (Confluent API).", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)


@app.command("subjects")
def list_subjects(ctx: typer.Context) -> None:
    """Each subject, the schema files that are its versions, its compatibility level and its topic."""
    settings: Settings = ctx.obj
    table = Table(title="schema registry subjects", title_justify="left")
    for col in ("subject", "versions (oldest first)", "compatibility", "carried by"):
        table.add_column(col)
    for s in subjects(settings.topics(len(settings.corridor().regions))):
        table.add_row(s.name, ", ".join(f"{f}.avsc" for f in s.files), s.compatibility, s.carried_by)
    out.print(table)


@app.command()
def register(ctx: typer.Context) -> None:
    """Register every schema under its subject, with the subject's compatibility level, in the
    configured registry (SCHEMA_REGISTRY_URL, else the stack's: `corridor stack up --registry`)."""
    from pipeline.schema_registry import register_schemas, registry_up

    settings: Settings = ctx.obj
    if not registry_up(settings, timeout=10.0):  # as patient as the registering itself: a busy registry is up
        raise StackError(f"no schema registry answers at {settings.schema_registry_url}: "
                         "`corridor stack up --registry`, or set SCHEMA_REGISTRY_URL")  # fmt: skip
    for r in register_schemas(settings):
        out.print(f"{r.subject}: ids {', '.join(map(str, r.ids))} ({r.compatibility})")


@app.command()
def check(
    ctx: typer.Context,
    folder: Annotated[
        Path | None, typer.Option("--dir", help="a folder of edited .avsc files laid out as corridor's schemas/")
    ] = None,
) -> None:
    """Would the registry take these schemas? Checked against the configured registry's versions, or,
    when none answers, against corridor's own schemas registered in a registry started for the check.
    Exit 1 with one line per refused subject."""
    from pipeline.schema_registry import check_schemas, register_schemas, registry_up
    from pipeline.stack.registry import RegistryServer

    settings: Settings = ctx.obj
    if folder is not None and not folder.is_dir():
        raise ConfigError(f"--dir {folder}: no such folder")
    if registry_up(settings) or settings.registry_external:
        problems, against = check_schemas(settings, folder), settings.schema_registry_url
    else:
        from pipeline.ports import free_ports

        with tempfile.TemporaryDirectory(prefix="corridor-schemas-") as state:
            (port,) = free_ports(1)
            own = dataclasses.replace(settings, state_dir=Path(state),
                                      ports=dataclasses.replace(settings.ports, registry=port))  # fmt: skip
            server = RegistryServer(own)
            server.start(attached=True)
            try:
                register_schemas(own)
                problems = check_schemas(own, folder)
            finally:
                server.stop()
        against = "corridor's own schemas"
    for line in problems:
        out.print(f"[red]refused[/] {line}")
    if problems:
        raise typer.Exit(1)
    out.print(f"every subject fits ({against})")
