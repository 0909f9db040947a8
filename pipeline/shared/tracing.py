"""Traces of the hazard path: W3C trace context from a hazard report to each advisory it causes.

A report's producer opens a span and sends its context with the record (a Kafka header, or an MQTT 5
user property that the gateway copies into one); the tower that advises on it opens a child span and
sends that span's context with each advisory; the vehicle that receives one closes the trace with a
span of its own. Hazard reports only: they are rare and what the budget is about, where a trace per
telemetry update would cost more than it tells.

Off unless `CORRIDOR_TRACES` says where spans go: `file:DIR` (each process appends its spans to
DIR/spans-<pid>.jsonl, which a run reads back for its report) or `otlp` (OpenTelemetry's OTLP exporter,
configured by the standard `OTEL_EXPORTER_OTLP_*` variables, for a user's own backend; it needs the
`opentelemetry-exporter-otlp` package). Off, every call here returns at once.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pipeline.shared.errors import ConfigError

__all__ = [
    "REPORT_SPAN", "TOWER_SPAN", "TRACEPARENT", "VEHICLE_SPAN", "FileSpanExporter", "Tracing", "read_spans",
    "tracing_from_env",
]  # fmt: skip

TRACEPARENT = "traceparent"
#: the hazard path's spans, one per hop's end: the report sent, the tower's decision, a vehicle's receipt
REPORT_SPAN, TOWER_SPAN, VEHICLE_SPAN = "hazard report", "tower advises on a hazard", "vehicle receives an advisory"
_PROPAGATOR = TraceContextTextMapPropagator()
Headers = Sequence[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None]


class FileSpanExporter(SpanExporter):
    """Spans as JSON lines, one file per process: what a run reads back to break its latency down."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"spans-{os.getpid()}.jsonl"
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(_row(s)) + "\n" for s in spans]
        with self._lock, open(self.path, "a") as fh:
            fh.writelines(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _row(s: ReadableSpan) -> dict[str, Any]:
    ctx, parent = s.get_span_context(), s.parent
    return {
        "trace": f"{ctx.trace_id:032x}" if ctx else "", "span": f"{ctx.span_id:016x}" if ctx else "",
        "parent": f"{parent.span_id:016x}" if parent else None, "name": s.name,
        "service": s.resource.attributes.get("service.name", ""), "start_ns": s.start_time, "end_ns": s.end_time,
        "attributes": dict(s.attributes or {}),
    }  # fmt: skip


def read_spans(folder: Path) -> list[dict[str, Any]]:
    """Every span the processes of a run wrote (a half-written last line, of a killed one, skipped)."""
    out = []
    for path in sorted(folder.glob("spans-*.jsonl")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


class Tracing:
    """One process's tracer; `enabled` False: nothing is recorded and nothing is sent."""

    def __init__(self, service: str, exporter: SpanExporter | None = None, batch: bool = True) -> None:
        self.enabled = exporter is not None
        self._provider: TracerProvider | None = None
        if exporter is not None:
            self._provider = TracerProvider(resource=Resource.create({"service.name": service}))
            processor = (
                BatchSpanProcessor(exporter, schedule_delay_millis=500) if batch else SimpleSpanProcessor(exporter)
            )
            self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("corridor") if self._provider else trace.NoOpTracer()

    @contextmanager
    def span(self, name: str, carried: Headers | None = None, kind: trace.SpanKind = trace.SpanKind.INTERNAL,
             **attributes: str | int | float) -> Iterator[trace.Span | None]:  # fmt: skip
        """A span, child of the context `carried` headers hold (if any); None when tracing is off."""
        if not self.enabled:
            yield None
            return
        parent = _extract(carried) if carried is not None else None
        with self._tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes) as s:
            yield s

    def received(self, name: str, carried: Headers, at_ns: int | None = None, **attributes: str | int | float) -> None:
        """The end of a trace: a span at the moment (`at_ns`, default now) a traced message arrived;
        nothing without a valid context."""
        if self.enabled and (parent := _extract(carried)) is not None:
            span = self._tracer.start_span(name, context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes,
                                           start_time=at_ns)  # fmt: skip
            span.end(end_time=at_ns)

    @staticmethod
    def headers(s: trace.Span | None) -> list[tuple[str, str | bytes | None]]:
        """The Kafka headers that carry `s`'s context to the next hop ([] when not tracing)."""
        if s is None:
            return []
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(s))
        return [(k, v.encode()) for k, v in carrier.items()]

    def close(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def _extract(carried: Headers) -> Context | None:
    """The trace context in a message's headers; None when there is none or it is malformed (an
    adversary's header costs nothing but its own trace)."""
    pairs = carried.items() if isinstance(carried, Mapping) else carried
    for key, value in pairs:
        if key == TRACEPARENT and value is not None:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
            ctx = _PROPAGATOR.extract({TRACEPARENT: text[:128]})
            return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None
    return None


def tracing_from_env(service: str, environ: Mapping[str, str] | None = None) -> Tracing:
    """This process's tracing, as `CORRIDOR_TRACES` asks (see the module's docstring)."""
    setting = (os.environ if environ is None else environ).get("CORRIDOR_TRACES", "").strip()
    if not setting or setting == "off":
        return Tracing(service)
    if setting.startswith("file:") and len(setting) > 5:
        return Tracing(service, FileSpanExporter(Path(setting[5:])))
    if setting == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            raise ConfigError("CORRIDOR_TRACES=otlp needs the opentelemetry-exporter-otlp package") from None
        return Tracing(service, OTLPSpanExporter())
    raise ConfigError(f"CORRIDOR_TRACES={setting!r}: off, file:DIR or otlp")
