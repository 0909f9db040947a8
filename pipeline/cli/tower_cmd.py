"""`corridor tower worker …`: the Faust worker of the towers app, as `faust -A towers.app worker …`."""

from __future__ import annotations

import os
import shutil
import sys

import typer

from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError

__all__ = ["app"]

app = typer.Typer(help="Tower edge-clouds (Faust workers).", no_args_is_help=True)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help="Run a tower worker: `faust -A towers.app worker -l info` plus any Faust worker options "
    "(--web-port, -l, --loop uvloop …). Settings come from the same environment as every command.",
)
def worker(ctx: typer.Context) -> None:
    settings: Settings = ctx.obj
    faust = shutil.which("faust", path=os.path.dirname(sys.executable)) or shutil.which("faust")
    if faust is None:
        raise ConfigError("the faust command is not installed: pip install faust-streaming")
    args = list(ctx.args)
    if not any(a in ("-l", "--loglevel") or a.startswith("--loglevel=") for a in args):
        args = ["-l", "info", *args]
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        CORRIDOR_TOPIC_PREFIX=settings.topic_prefix,
        **settings.security_env(),
    )
    datadir = str(settings.state_dir / "towers" / f"worker-{os.getpid()}")
    os.execvpe(faust, [faust, "--datadir", datadir, "-A", "towers.app", "worker", *args], env)
