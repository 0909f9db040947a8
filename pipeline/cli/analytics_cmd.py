"""`corridor analytics`: the Spark Structured Streaming job over the whole corridor (extra `spark`)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.shared.access import Role
from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError, StackError

__all__ = ["analytics"]

out = Console(highlight=False)


def analytics(
    ctx: typer.Context,
    master: Annotated[str, typer.Option(help="Spark master: local[N], spark://host:port, …")] = "local[2]",
    output: Annotated[Path, typer.Option(help="where the Parquet files go")] = Path("reports/analytics"),
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Spark's checkpoint: a restarted job resumes from it (default: OUTPUT/checkpoint)"),
    ] = None,
    hz: Annotated[float, typer.Option(min=0.1, max=50, help="the fleet's update rate, for density and flow")] = 1.0,
    watermark: Annotated[
        int, typer.Option(min=0, help="event-time lateness accepted, s; later updates are counted")
    ] = 30,
    starting: Annotated[str, typer.Option(help="earliest, latest, or a wall time in ms")] = "earliest",
    available_now: Annotated[bool, typer.Option(help="process what the topics hold, then stop")] = False,
    driver_memory: Annotated[str, typer.Option(help="Spark driver memory")] = "1g",
    trigger: Annotated[float, typer.Option(min=0.1, help="seconds between micro-batches")] = 2.0,
    ready_file: Annotated[Path | None, typer.Option(help="touched once the streaming query runs")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="serve its progress on /metrics (Prometheus), on 127.0.0.1")
    ] = None,
) -> None:
    """Per 10-second window: each 1-km segment's vehicles, speeds, density and flow, advisories and
    hazards; travel times; congestion episodes and their shockwaves. To Parquet and to
    `<prefix>.corridor-stats` (read it with `corridor consume corridor-stats`)."""
    try:
        import pyspark
    except ImportError:
        raise ConfigError("corridor analytics needs Spark: pip install 'corridor[spark]'") from None
    from prometheus_client import start_http_server

    from pipeline.admin import ensure_topics
    from pipeline.analytics.jars import connector_jars
    from pipeline.analytics.job import AnalyticsConfig, StatsSink, run_job
    from pipeline.analytics.metrics import analytics_families
    from pipeline.schema_registry import use_wire
    from pipeline.shared.metric_catalog import registry_of

    if not (starting in ("earliest", "latest") or starting.isdigit()):
        raise ConfigError(f"--starting must be earliest, latest or a wall time in ms, got {starting!r}")
    settings: Settings = ctx.obj
    use_wire(settings)
    corridor = settings.corridor()
    topics = settings.topics(len(corridor.regions))
    ensure_topics(settings.kafka(Role.ADMIN), topics.specs())
    jars = connector_jars(settings.cache_dir, Path(pyspark.__file__).parent / "jars")
    config = AnalyticsConfig(master=master, hz=hz, watermark_s=watermark, starting=starting, trigger_s=trigger,
                             available_now=available_now, driver_memory=driver_memory)  # fmt: skip

    def ready() -> None:
        out.print("query started")
        if ready_file is not None:
            ready_file.touch()

    def serve(sink: StatsSink) -> None:
        assert metrics_port is not None
        try:
            start_http_server(metrics_port, addr="127.0.0.1",
                              registry=registry_of(lambda: analytics_families(sink.figures())))  # fmt: skip
        except OSError as exc:
            raise StackError(f"the job's metrics cannot listen on 127.0.0.1:{metrics_port}: {exc.strerror}") from None

    stop = threading.Event()
    out.print(f"analytics on {master}: {topics.telemetry}, {topics.advisories}, {topics.hazards} → "
              f"{topics.corridor_stats} and {output}")  # fmt: skip
    try:
        sink = run_job(settings.kafka(Role.ANALYTICS), settings.kafka(Role.ANALYTICS), topics, corridor, output,
                       checkpoint or output / "checkpoint", config, jars, stop,
                       on_ready=ready, on_sink=serve if metrics_port is not None else None)  # fmt: skip
    except KeyboardInterrupt:
        stop.set()
        return
    out.print(f"stats records written: {sink.rows_out:,}; late updates counted: {sink.late:,}")
