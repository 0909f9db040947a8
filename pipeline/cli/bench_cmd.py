"""`corridor bench`: measure on this machine, print a table, write JSON."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.bench.report import derive, machine, render, write_json
from pipeline.leftovers import owned
from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError, StackError
from pipeline.stack import Stack
from pipeline.stack.mqtt import mosquitto_binary

__all__ = ["bench"]

# piped (CI, a log): wide enough for the table's metric names, which an 80-column pipe squeezed out
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _crdt(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.crdt import run

    return run(quick=quick)


def _fleet(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.producer import run_fleet

    return run_fleet(quick=quick)


def _sumo(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.sumo import run_sumo

    return run_sumo(ctx.obj.cache_dir, quick=quick)


def _broker(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.broker import run_broker

    return run_broker(ctx.obj, quick=quick)


def _producer(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.producer import run_producer

    return run_producer(ctx.obj.bootstrap_servers, quick=quick)


def _towers(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.towers import run_throughput

    return run_throughput(ctx.obj, quick=quick)


def _wire(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.wire import run_wire

    return run_wire(ctx.obj, quick=quick)


def _latency(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.towers import run_latency

    return run_latency(ctx.obj, quick=quick)


def _recovery(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.recovery import run_recovery

    return run_recovery(ctx.obj, quick=quick)


def _memory(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.memory import run_memory

    return run_memory(ctx.obj, quick=quick)


def _control(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.control import run_control

    host, port = ctx.obj.etcd_hosts[0]
    return run_control(host, port, quick=quick)


def _convergence(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.convergence import run_convergence

    return run_convergence(ctx.obj, quick=quick)


def _peak(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.peak import run_peak

    return run_peak(ctx.obj, quick=quick)


def _mqtt(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.mqtt import run_mqtt

    return run_mqtt(ctx.obj, quick=quick)


def _faults(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.drill.run import FAULTS, run_drill

    keep = ("updates_acknowledged", "kept", "superseded", "rejected", "lost", "advisories", "updates_processed_again",
            "max_behind_s", "max_stale_s", "recovery_s", "entries_changed_after_traffic")  # fmt: skip
    chosen, seconds = (("worker-kill",), 16.0) if quick else (tuple(n for n, f in FAULTS.items() if f.runnable()), 36.0)
    return {name: {k: v for k, v in run_drill(name, ctx.obj, seconds=seconds).items() if k in keep} for name in chosen}


def _failover(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.failover import run_failover

    return run_failover(ctx.obj, quick=quick)


def _regions(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.regions import run_regions

    return run_regions(ctx.obj, quick=quick)


def _observability(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.observability import run_observability

    return run_observability(ctx.obj, quick=quick)


def _signing(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.signing import run_signing

    return run_signing(ctx.obj, quick=quick)


def _consistency(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.consistency.partition import Plan, run_consistency

    picture = ctx.meta.get("bench_dir", Path("reports")) / "partitions.png"
    return run_consistency(ctx.obj, Plan.quick() if quick else Plan(), picture=picture)


def _analytics(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.analytics import run_analytics

    return run_analytics(ctx.obj, quick=quick)


def _live(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.live_page import run_live_page

    return run_live_page(ctx.obj, quick=quick)


def _security(ctx: typer.Context, quick: bool) -> dict[str, Any]:
    from pipeline.bench.security import run_security

    return run_security(ctx.obj, quick=quick)


SECTIONS: dict[str, Callable[[typer.Context, bool], dict[str, Any]]] = {
    "crdt": _crdt,
    "fleet": _fleet,
    "sumo": _sumo,
    "broker": _broker,
    "producer": _producer,
    "towers": _towers,
    "wire": _wire,
    "latency": _latency,
    "recovery": _recovery,
    "memory": _memory,
    "control": _control,
    "convergence": _convergence,
    "peak": _peak,
    "faults": _faults,
    "failover": _failover,
    "regions": _regions,
    "mqtt": _mqtt,
    "live": _live,
    "observability": _observability,
    "signing": _signing,
    "consistency": _consistency,
    "security": _security,  # starts a plain and a secure stack of its own
    "analytics": _analytics,
}
NEEDS_STACK = {"broker", "producer", "towers", "wire", "latency", "recovery", "memory", "control", "convergence",
               "peak", "faults", "failover", "mqtt", "live", "consistency", "analytics", "observability",
               "signing", "regions"}  # fmt: skip


def _missing_mqtt(settings: Settings) -> str | None:
    if settings.mqtt_external:
        return None
    try:
        mosquitto_binary()
    except StackError as exc:
        return str(exc)
    return None


def _missing_spark(_settings: Settings) -> str | None:
    return None if importlib.util.find_spec("pyspark") else "pyspark is not installed: pip install 'corridor[spark]'"


def _missing_sumo(_settings: Settings) -> str | None:
    found = importlib.util.find_spec("libsumo") and importlib.util.find_spec("sumo")
    return None if found else "SUMO is not installed: pip install -e '.[sumo]'"


def _present(_settings: Settings) -> str | None:
    return None


#: sections too long for --quick's few minutes, unless asked for by name
LEFT_OUT_OF_QUICK = {
    "analytics": "a Spark session alone takes tens of seconds to start",
    "failover": "its drills kill a worker six times over, a minute each",
    "regions": "two runs on a cluster of its own, a minute and a half each",
    "observability": "six drains and two latency runs: several minutes",
}
#: sections that need an optional part: skipped, with the reason, when it is missing
OPTIONAL: dict[str, Callable[[Settings], str | None]] = {
    "mqtt": _missing_mqtt,
    "analytics": _missing_spark,
    "sumo": _missing_sumo,
}


def bench(
    ctx: typer.Context,
    quick: Annotated[bool, typer.Option(help="shorter runs (under 4 minutes in all on 2 cores)")] = False,
    only: Annotated[list[str] | None, typer.Option(help=f"run only these sections: {', '.join(SECTIONS)}")] = None,
    output: Annotated[Path, typer.Option(help="where the JSON results go")] = Path("reports/bench.json"),
) -> None:
    """Measure corridor's speed and memory against the targets of its issues."""
    chosen = only or list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise ConfigError(f"unknown bench section(s) {unknown}; choose from {list(SECTIONS)}")
    if ctx.obj.route_file or ctx.obj.towers_file:  # its figures are defined on the shipped corridor
        raise ConfigError("corridor bench measures the I-69 corridor it ships: unset CORRIDOR_ROUTE_FILE and "
                          "CORRIDOR_TOWERS_FILE")  # fmt: skip
    if ctx.obj.security_material is not None and NEEDS_STACK & set(chosen):
        raise ConfigError("corridor bench measures a plain stack (its `security` section starts both kinds): "
                          "run it without --secure, in a state directory without a secure stack")  # fmt: skip
    results: dict[str, Any] = {"machine": machine()}
    ctx.meta["bench_dir"] = output.parent
    skipped = {section: why for section in chosen if (why := OPTIONAL.get(section, _present)(ctx.obj)) is not None}
    if quick and only is None:
        for section, why in LEFT_OUT_OF_QUICK.items():
            skipped.setdefault(section, f"left out of --quick: {why} (corridor bench --quick --only {section} runs it)")
    with contextlib.ExitStack() as resources:
        if NEEDS_STACK & (set(chosen) - set(skipped)):
            resources.enter_context(Stack(ctx.obj, attached=True))
            # every section's topics, groups and etcd keys are named under this prefix (`scratch_prefix`)
            resources.enter_context(owned(ctx.obj, "bench"))
        durations: dict[str, float] = {}
        failed: list[str] = []
        for section in chosen:
            if section in skipped:
                out.print(f"[bold]bench[/] {section}: skipped ({escape(skipped[section])})")
                results[section] = {"skipped": skipped[section]}
                continue
            out.print(f"[bold]bench[/] {section} …")
            t0 = time.monotonic()
            try:
                results[section] = SECTIONS[section](ctx, quick)
            except Exception as exc:  # the others still run; the bench says so and fails at the end
                results[section] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                failed.append(section)
                out.print(f"[red]bench {section} failed: {escape(results[section]['error'])}[/]")
            durations[section] = time.monotonic() - t0
    results["durations_s"] = durations
    derive(results)
    render(results, out)
    write_json(results, output)
    out.print(f"results written to {output}")
    if failed:
        out.print(f"[red]failed: {', '.join(failed)}[/]")
        raise typer.Exit(1)
