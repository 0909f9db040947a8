"""`corridor hazard`: report a hazard (a DENM-like record) to the tower of its region."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import typer
from confluent_kafka import Producer
from opentelemetry.trace import SpanKind
from rich.console import Console

from pipeline.admin import ensure_topics
from pipeline.schema_registry import use_wire
from pipeline.shared.access import Role, client_conf
from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError, StackError
from pipeline.shared.hazards import CAUSE_CODES, OPERATOR, hazard_record
from pipeline.shared.messages import CODEC, HAZARD
from pipeline.shared.tracing import REPORT_SPAN, Tracing, tracing_from_env

__all__ = ["hazard"]

out = Console(highlight=False)


def hazard(
    ctx: typer.Context,
    km: Annotated[float, typer.Option(help="position along I-69 from Bloomington, km")],
    kind: Annotated[str, typer.Option("--type", help=f"one of {', '.join(CAUSE_CODES)}")] = "OBSTACLE",
    direction: Annotated[str, typer.Option(help="NORTHBOUND, SOUTHBOUND or BOTH")] = "BOTH",
    severity: Annotated[int, typer.Option(help="1 (minor) to 7 (road blocked)")] = 6,
    validity: Annotated[float, typer.Option(help="seconds the report stays valid (DENM default 600)")] = 600.0,
    hazard_id: Annotated[str | None, typer.Option(help="id; give the same id with --cancel to clear it")] = None,
    cancel: Annotated[bool, typer.Option(help="cancel (clear) the hazard with this id")] = False,
    lane: Annotated[
        list[int] | None, typer.Option(help="a lane it closes, 0 = the right-hand one (repeat; none: every lane)")
    ] = None,
    relevance: Annotated[int, typer.Option(help="metres upstream to warn (0: the towers' default, 3 km)")] = 0,
    sub_cause: Annotated[int, typer.Option(help="DENM sub-cause code (0: unavailable)")] = 0,
) -> None:
    """Report (or cancel) a hazard; the tower of its region advises the vehicles approaching it."""
    settings: Settings = ctx.obj
    use_wire(settings)
    if cancel and hazard_id is None:
        raise ConfigError("--cancel needs the --hazard-id of the hazard to clear")
    corridor = settings.corridor()
    rec = hazard_record(
        km,
        kind.upper(),
        direction.upper(),
        severity,
        int(time.time() * 1000),
        validity,
        hazard_id or f"hz-{uuid.uuid4().hex[:8]}",
        OPERATOR,
        cancel,
        corridor=corridor,
        lanes_blocked=lane or (),
        sub_cause=sub_cause,
        relevance_m=relevance,
    )
    topics = settings.topics(len(corridor.regions))
    ensure_topics(settings.kafka(Role.ADMIN), topics.specs())
    producer = Producer(client_conf(settings.kafka(Role.VEHICLE), {"enable.idempotence": True}))
    tracing = tracing_from_env("corridor-hazard")  # with CORRIDOR_TRACES, the report starts a trace
    with tracing.span(REPORT_SPAN, kind=SpanKind.PRODUCER, hazard=rec["hazard_id"], region=rec["region_id"]) as span:
        producer.produce(topics.hazards, CODEC.encode(HAZARD, rec), str(rec["region_id"]).encode(), rec["region_id"],
                         headers=Tracing.headers(span) or None)  # fmt: skip
    tracing.close()
    if producer.flush(15):
        raise StackError("the hazard report was not acknowledged within 15 s")
    verb = "cancelled" if cancel else "reported"
    out.print(
        f"{verb} {rec['hazard_type']} {rec['hazard_id']} at km {km} ({rec['direction']}), region {rec['region_id']}"
    )
