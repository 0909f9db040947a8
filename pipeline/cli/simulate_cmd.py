"""`corridor simulate [SCENARIO]`: the Bloomington–Indianapolis route simulation, end to end."""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live

from pipeline.cli.dashboard_cmd import DEFAULT_PORT
from pipeline.shared.codec import WIRE_FORMATS
from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError
from pipeline.simulation.scenario import builtin_scenarios, load_scenario, over_radio, with_cam, with_traffic

__all__ = ["simulate"]

out = Console(highlight=False)


def simulate(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Argument(help="a built-in scenario name or a scenario .yaml file")] = (
        "bloomington-indianapolis"
    ),
    report_dir: Annotated[Path, typer.Option(help="where the report goes (a sub-folder per run)")] = Path("reports"),
    live: Annotated[bool, typer.Option(help="show the live view")] = True,
    external_towers: Annotated[
        bool, typer.Option(help="use the towers already serving the topics (on Kubernetes, say); start none")
    ] = False,
    keep_state: Annotated[
        bool, typer.Option(help="keep the run's changelog topics, etcd keys and worker data (deleted by default)")
    ] = False,
    radio: Annotated[
        str | None, typer.Option(help="how vehicles send: kafka (straight) or mqtt (to a tower gateway)")
    ] = None,
    cam: Annotated[
        bool, typer.Option(help="vehicles send by the ETSI CAM rules (turned, moved, sped up; 1-10 Hz), not at hz")
    ] = False,
    fcd: Annotated[
        bool, typer.Option(help="also write the run's trajectories as SUMO FCD (fcd.xml, geo) to its report")
    ] = False,
    traffic: Annotated[
        str | None,
        typer.Option(
            help="who moves the vehicles: builtin (corridor's fleet model) or sumo (extra `sumo`, via libsumo)"
        ),
    ] = None,
    sumo_cfg: Annotated[
        Path | None,
        typer.Option(help="a SUMO scenario of your own (.sumocfg, geo-referenced, on the corridor) moves the vehicles"),
    ] = None,
    obey_advice: Annotated[
        bool, typer.Option(help="vehicles obey the towers' advice; --no-obey-advice: they hear it and ignore it")
    ] = True,
    web: Annotated[bool, typer.Option(help="serve the live page (corridor dashboard) during the run")] = False,
    analytics: Annotated[
        bool, typer.Option(help="run the Spark job beside it (extra `spark`); the report adds corridor-wide figures")
    ] = False,
    web_port: Annotated[int, typer.Option(min=1, max=65535, help="its port, on 127.0.0.1")] = DEFAULT_PORT,
    prometheus: Annotated[
        bool, typer.Option(help="Prometheus (Debian's) beside the run, on 127.0.0.1, scraping its workers and fleet")
    ] = False,
    traces: Annotated[
        bool, typer.Option(help="trace hazards from report to advisories (OpenTelemetry): the report gives each hop")
    ] = False,
    secure: Annotated[
        bool, typer.Option(help="TLS, SASL/SCRAM and ACLs on Kafka; client certificates and roles on etcd")
    ] = False,
    wire: Annotated[
        str | None,
        typer.Option(
            help="the Avro header written: single-object, or confluent (ids from a schema registry: the "
            "run's own, or SCHEMA_REGISTRY_URL's)"
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            help="first wait up to this many seconds for Kafka, etcd and (with --external-towers) "
            "a live tower for every region: a Job started beside them",
        ),
    ] = 0.0,
) -> None:
    """Run a scenario: stack, towers (2 Faust workers), the fleet, scripted events, then a report."""
    from pipeline.simulation.live import LiveView
    from pipeline.simulation.runner import run_scenario

    if wire is not None and wire not in WIRE_FORMATS:
        raise ConfigError(f"--wire must be {' or '.join(WIRE_FORMATS)}, got {wire!r}")
    settings: Settings = ctx.obj.with_overrides(secure=secure or None, wire=wire)
    sc = load_scenario(scenario)
    if radio is not None:
        sc = over_radio(sc, radio)
    if traffic is not None or sumo_cfg is not None:
        sc = with_traffic(sc, traffic or "sumo", None if sumo_cfg is None else str(sumo_cfg))
    if not obey_advice:
        sc = replace(sc, obey_advice=False)
    if cam:
        sc = with_cam(sc)
    if analytics:
        sc = replace(sc, analytics=True)
    out.print(f"[bold]{sc.name}[/]: {sc.vehicles:,} vehicles, {sc.duration_s / 60:.0f} simulated minutes at "
              f"{sc.speedup:g}x (≈ {sc.wall_s:.0f} s), {sc.workers} tower workers; built in: "
              f"{', '.join(builtin_scenarios())}")  # fmt: skip
    if wait > 0:
        from pipeline.stack.wait import wait_for_stack

        took = wait_for_stack(settings, wait, towers=external_towers, on_wait=lambda m: out.print(f"waiting: {m}"))
        out.print(f"stack ready after {took:.0f} s")
    stop = {"requested": False}

    def interrupt(signum: int, frame: Any) -> None:
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        out.print("[yellow]stopping: finishing the report (Ctrl-C again to abort)[/]")

    previous = signal.signal(signal.SIGINT, interrupt)
    view = LiveView(sc.name)
    target = report_dir / sc.name
    page: dict[str, Any] = {
        "web": ("127.0.0.1", web_port) if web else None,
        "fcd": fcd,
        "on_web": lambda url: out.print(f"[bold]live page: {url}[/] (open it in a browser; it stops with the run)"),
        "prometheus": prometheus,
        "traces": traces,
        "on_prometheus": lambda url: out.print(f"[bold]Prometheus: {url}[/] (its data and it stop with the run)"),
    }
    try:
        if live:
            with Live(console=out, refresh_per_second=4, transient=False) as display:
                result = run_scenario(sc, settings, target, on_tick=lambda snap: display.update(view.render(snap)),
                                      should_stop=lambda: stop["requested"],
                                      external_towers=external_towers, keep_state=keep_state, **page)  # fmt: skip
        else:
            result = run_scenario(sc, settings, target, should_stop=lambda: stop["requested"],
                                  external_towers=external_towers, keep_state=keep_state, **page)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    s = result.summary
    run = s["run"]
    flag = "[yellow]PARTIAL (interrupted)[/] " if s["partial"] else ""
    out.print(f"{flag}simulated {run['simulated_s']:.0f} s in {run['wall_s']:.0f} s: {run['updates_sent']:,} vehicle "
              f"updates, {run['advisories_received']:,} advisories, dead letters {run['dead_letters']}, towers "
              f"converged: {run['towers_converged']}")  # fmt: skip
    if (cpu := s.get("cpu")) and cpu.get("cores_used") is not None:
        out.print(_cpu_line(cpu))
    if (behind := run.get("behind_schedule_s") or 0) > 1.0:
        out.print(f"[yellow]not in real time: the fleet fell {behind:.0f} s behind its {sc.speedup:g}× schedule[/]")
    out.print(delivery_line(s))
    lat = s["latency_ms"]["hazard"]
    if lat["n"]:
        out.print(f"hazard → advisory latency p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms (n={lat['n']})")
    hops = (s.get("traces") or {}).get("hops_ms", {})
    if hops:
        out.print("hazard path from its traces: " + ", ".join(f"{h} p99 {d['p99']:.0f} ms" for h, d in hops.items()))
    prom = s.get("prometheus")
    if prom is not None:
        out.print(_prometheus_line(prom))
    for name, path in result.paths.items():
        out.print(f"{name:>9}: {path}")
    problems = run.get("problems", [])
    for problem in problems:
        out.print(f"[red]not protected throughout: {problem}[/]")
    if problems:  # a green run means the corridor was protected throughout; this one was not
        raise typer.Exit(1)


def delivery_line(s: dict[str, Any]) -> str:
    """What the fleet alone can tell of delivery, for a run whose towers are not its own (a
    Kubernetes Job): every record acknowledged, every hazard advised, the slowest advice."""
    run, spells = s["run"], s["late_advice"]["spells"]
    advised = sum(1 for h in s["hazards"].values() if h["advisories"] > 0)
    worst = max((x["worst_ms"] for x in spells), default=None)
    slowest = (
        f"the slowest {worst:,.0f} ms" if worst is not None else f"none over {s['late_advice']['budget_ms']:.0f} ms"
    )
    # over the radio link the fleet's sink is the MQTT link: what it counts is the gateways' forwarding
    how = "the gateways forwarded" if s.get("radio") else "Kafka acknowledged"
    return (f"delivery: {how} {run['kafka_records_acked']:,} of {run['kafka_records_sent']:,} records; "
            f"hazards advised {advised} of {len(s['hazards'])}; every advisory p99 "
            f"{s['latency_ms']['all']['p99'] or 0:.0f} ms, {slowest}")  # fmt: skip


def _cpu_line(cpu: dict[str, Any]) -> str:
    wall = cpu["wall_s"] or 1.0
    parts = ", ".join(f"{part} {sec / wall:.2f}" for part, sec in list(cpu["seconds_by_part"].items())[:4])
    return f"CPU while the fleet drove: {cpu['cores_used']} cores of {cpu['cores']} ({parts})"


def _prometheus_line(prom: dict[str, Any]) -> str:
    if "error" in prom:
        return f"[red]Prometheus: {prom['error']}[/]"
    agree = prom["advisories_agree"] and all(prom["p99_agree"].values())
    fired = ", ".join(prom["alerts_fired"]) or "none"
    return (
        f"Prometheus counted {prom['advisories_received']:.0f} advisories; p99 from its histograms: all "
        f"{prom['p99_ms']['all']} ms, hazard {prom['p99_ms']['hazard']} ms "
        f"({'agrees with' if agree else '[red]differs from[/]'} the report); alerts fired: {fired}"
    )
