"""`corridor images build|list`: the container images of Kafka, etcd and corridor, built locally."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError

__all__ = ["app"]

app = typer.Typer(help="Build and list corridor's container images (Podman or Docker).", no_args_is_help=True)
out = Console(highlight=False)


@app.command()
def build(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="kafka, etcd, corridor (default: all)")] = None,
    force: Annotated[bool, typer.Option(help="rebuild even the images that are up to date")] = False,
) -> None:
    """Build the images from k8s/images/ with whichever engine is present (Docker running, else Podman).

    An image whose sources have not changed since it was built is kept (its label holds their digest)."""
    from pipeline.containers.engine import find_engine
    from pipeline.containers.images import IMAGES, build_images

    unknown = sorted(set(names or []) - set(IMAGES))
    if unknown:
        raise ConfigError(f"unknown image(s) {unknown}; choose from {sorted(IMAGES)}")
    settings: Settings = ctx.obj
    engine = find_engine(settings)
    t0 = time.monotonic()
    try:
        timings = build_images(engine, settings, names, force=force, progress=lambda s: out.print(f"building {s} …"))
    finally:
        engine.stop()
    if not timings:
        out.print("every image is up to date")
    for name, seconds in timings.items():
        out.print(f"{name}: {seconds:.1f} s")
    out.print(f"images built with {engine.kind} in {time.monotonic() - t0:.1f} s")


@app.command("list")
def list_images(ctx: typer.Context) -> None:
    """The images corridor uses, and whether each is built."""
    from pipeline.containers.engine import find_engine
    from pipeline.containers.images import IMAGES, up_to_date

    engine = find_engine(ctx.obj)
    try:
        table = Table(title=f"corridor images ({engine.kind})", title_justify="left")
        for col in ("image", "reference", "built"):
            table.add_column(col)
        for name, img in IMAGES.items():
            state = "[green]up to date[/]" if up_to_date(engine, img) else "[yellow]stale[/]"
            table.add_row(name, img.ref, state if engine.image_exists(img.ref) else "[red]no[/]")
        out.print(table)
    finally:
        engine.stop()
