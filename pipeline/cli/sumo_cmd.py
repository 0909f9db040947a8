"""`corridor sumo net`: the corridor as a SUMO network, for `simulate --traffic sumo` and SUMO's own tools."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError

__all__ = ["app"]

app = typer.Typer(help="SUMO on the corridor (extra `sumo`).", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)


@app.command()
def net(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option(help="also copy the network (.net.xml) here; it is built once per route, cached")
    ] = None,
) -> None:
    """Build (or find cached) the SUMO network of the configured route: both carriageways, their lanes
    and limits, a ramp each way at every interior interchange, geo-referenced."""
    from pipeline.stack.process import die_with_parent
    from producers.sumo.build import build_network

    settings: Settings = ctx.obj
    corridor = settings.corridor()
    built = build_network(corridor.route, settings.cache_dir, die_with_parent(signal.SIGKILL))
    if output is not None:
        if output.is_dir():
            raise ConfigError(f"--output {output} is a folder: give a file name (corridor.net.xml, say)")
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(built.path, output)
        except OSError as exc:
            raise ConfigError(f"cannot write --output {output}: {exc.strerror or exc}") from None
    plan = built.plan
    table = Table(title=f"SUMO network of {corridor.route.name}", title_justify="left")
    for col in ("carriageway", "km", "through edges", "lanes", "off-ramps", "on-ramps"):
        table.add_column(col)
    for side, name in (("NB", "northbound"), ("SB", "southbound")):
        main = plan.mainline(side)
        lanes = sorted({e.lanes - int(e.aux) for e in main})
        ramps = [e for e in plan.edges if e.side == side and e.kind != "main"]
        table.add_row(name, f"{sum(e.length_m for e in main) / 1000:.1f}", str(len(main)),
                      "–".join(map(str, (lanes[0], lanes[-1]))), str(sum(e.kind == "off" for e in ramps)),
                      str(sum(e.kind == "on" for e in ramps)))  # fmt: skip
    out.print(table)
    out.print(f"network: {built.path}{' (cached)' if built.cached else ''}")
    if output is not None:
        out.print(f"copied to {output}")
