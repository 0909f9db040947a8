"""`corridor drill FAULT`: traffic, one fault, recovery, and exact accounting of what the towers kept."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError

__all__ = ["drill"]

out = Console(highlight=False)


def drill(
    ctx: typer.Context,
    fault: Annotated[
        str,
        typer.Argument(
            help="worker-kill, worker-pause, broker-kill, etcd-kill, replay, "
            "sync-cut, slow-towers, full-disk, clock-skew, tower-clock, hostile, or all"
        ),
    ],
    vehicles: Annotated[int, typer.Option(min=10, max=20_000, help="vehicles driving at 1 Hz")] = 1_000,
    seconds: Annotated[float, typer.Option(min=12, max=600, help="seconds of traffic, in real time")] = 36.0,
    prometheus: Annotated[
        bool, typer.Option(help="Prometheus (Debian's) watching, with corridor's alert rules: which fired, when")
    ] = False,
) -> None:
    """Inject one fault under traffic; then check every acknowledged update against the towers' tables,
    and every advisory the towers decided on against the topic. Exits 1 if any was lost, if a process
    the drill did not stop died, or (hostile) if a hostile input went uncounted or hazard advice
    missed its budget, or (--prometheus) if an alert the fault must fire did not, or one stayed firing."""
    from pipeline.drill.run import FAULTS, run_drill

    settings: Settings = ctx.obj
    names = [n for n, f in FAULTS.items() if f.runnable()] if fault == "all" else [fault]
    if fault == "all":
        for name in FAULTS.keys() - set(names):
            out.print(f"[yellow]skipped[/] {name}: {FAULTS[name].unavailable()}")
    if not set(names) <= set(FAULTS):
        raise ConfigError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)} or all")
    table = Table(title="fault drills", title_justify="left")
    for col in ("fault", "vehicle updates", "kept", "superseded", "rejected", "lost", "advisories lost",
                "processed again", "changed by replay", "most behind", "oldest sync news", "served again in",
                "recovered in"):  # fmt: skip
        table.add_column(col, overflow="fold")  # wrapped on a narrow terminal, never cut
    lost, failed, events = 0, [], []
    for name in names:
        out.print(f"[bold]drill[/] {name} …")
        row = run_drill(name, settings, vehicles, seconds, prometheus=prometheus)
        if "alerts" in row:
            events += _alert_lines(name, row["alerts"])
            failed += _alert_failures(name, row["alerts"])
        lost += row["lost"] + row["advisories"]["lost"]
        failed += [f"{name}: {what} died during the drill" for what in row["crashed"]]
        if row.get("cluster"):
            events += _cluster_lines(name, row)
            failed += _cluster_failures(name, row)
        if "hostile_sent" in row:
            events += _hostile_lines(name, row)
            failed += _hostile_failures(name, row)
        adv = row["advisories"]
        recovery, changed = row["recovery_s"], row["entries_changed_after_traffic"]
        events += [f"{name}: {e}" for e in row["events"]]
        letters = sorted(row["dead_letters"].items())
        events += [f"{name}: dead letters of telemetry: {reason} × {n:,}" for reason, n in letters]
        events.append(f"{name}: the towers counted " + ", ".join(f"{k} {v:,}" for k, v in row["tower_counts"].items()))
        table.add_row(name, f"{row['updates_acknowledged']:,}", f"{row['kept']:,}", f"{row['superseded']:,}",
                      f"{row['rejected']:,}", f"[red]{row['lost']}[/]" if row["lost"] else "0",
                      f"[red]{adv['lost']}[/] of {adv['decided']:,}" if adv["lost"] else f"0 of {adv['decided']:,}",
                      f"{row['updates_processed_again']:,}", "—" if changed is None else str(changed),
                      f"{row['max_behind_s']:.1f} s", f"{row['max_stale_s']:.1f} s",
                      "—" if row["served_again_s"] is None else f"{row['served_again_s']:.1f} s",
                      "—" if recovery is None else f"{recovery:.1f} s")  # fmt: skip
    out.print(table)
    for line in events:
        out.print(f"  {line}")
    for line in failed:
        out.print(f"[red]{line}[/]")
    if lost or failed:
        raise typer.Exit(1)


def _hostile_lines(name: str, row: dict[str, Any]) -> list[str]:
    kinds = ", ".join(f"{k} × {n:,}" for k, n in row["hostile_by_kind"].items())
    return [
        f"{name}: {row['hostile_sent']:,} hostile inputs ({row['hostile_by_channel']}), "
        f"{row['hostile_sent'] - row['hostile_uncounted']:,} refused with a reason in the dead-letter topic, "
        f"{row['hostile_uncounted']} uncounted {row['hostile_uncounted_examples'] or ''}",
        f"{name}: hostile inputs by kind: {kinds}",
        f"{name}: genuine hazards {row['hazards_reported']}, advised {row['hazards_advised']}"
        f"{_expired(row)}; hazard → advisory "
        f"p50 {row['hazard_p50_ms']} ms, p99 {row['hazard_p99_ms']} ms over {row['hazard_advisories']:,} advisories "
        f"(first advisory per hazard p99 {row['hazard_first_p99_ms']} ms; to the towers' produce p99 "
        f"{row['hazard_produced_p99_ms']} ms)",
        f"{name}: the gateway refused {row['gateway_dead_letters']}, its own errors {row['gateway_errors'] or 'none'}",
    ]


HAZARD_P99_BUDGET_MS = 50.0


def _cluster_lines(name: str, row: dict[str, Any]) -> list[str]:
    c = row["cluster"]
    return [
        f"{name}: on {c['brokers']} Kafka nodes (topics replicated {c['replication']}×) and {c['etcd_members']} etcd "
        f"members; the longest a worker went without committing to etcd: {row['max_etcd_age_s']:.1f} s",
        f"{name}: genuine hazards {row['hazards_reported']}, advised {row['hazards_advised']}"
        f"{_expired(row)}; report → the first "
        f"advisory it triggered p99 {row['hazard_p99_ms']} ms; of the {row['hazards_during_fault']} reported during "
        f"the fault p99 {row['hazard_during_fault_p99_ms']} ms, worst {row['hazard_during_fault_worst_ms']} ms",
    ]


def _cluster_failures(name: str, row: dict[str, Any]) -> list[str]:
    out = [f"{name}: the hazard reporter failed: {e}" for e in row["sender_errors"]]
    if row["hazards_unaccounted"]:
        out.append(_unadvised_line(name, row))
    return out


def _expired(row: dict[str, Any]) -> str:
    n = row.get("hazards_expired_on_arrival", 0)
    return f" ({n} read by the towers only after their validity had lapsed: advising no one, counted)" if n else ""


def _unadvised_line(name: str, row: dict[str, Any]) -> str:
    def one(h: dict[str, Any]) -> str:
        acked = h.get("acked_after_ms")
        taken = "never acknowledged by Kafka" if acked is None else f"acknowledged by Kafka {acked / 1000:.1f} s after"
        return f"km {h['km']} (region {h['region']}; {taken})"

    unadvised = row["hazards_unadvised"]
    where = ", ".join(one(h) for h in unadvised[:5])
    return (f"{name}: {len(unadvised)} genuine hazards were never advised, {row['hazards_unaccounted']} of them "
            f"not accounted for by the towers (read after their validity: {row['hazards_expired_on_arrival']}): "
            f"{where}")  # fmt: skip


def _hostile_failures(name: str, row: dict[str, Any]) -> list[str]:
    out = [f"{name}: the stranger's sender failed: {e}" for e in row["sender_errors"]]
    if row["hostile_uncounted"]:
        out.append(f"{name}: {row['hostile_uncounted']} hostile inputs were neither dead-lettered nor counted")
    # the towers' budget: from the report to the advisory on its way (its produce time); what a consumer
    # in the drill's own busy process adds on top is reported beside it, not judged
    p99 = row["hazard_produced_p99_ms"]
    if row["hazards_unaccounted"]:
        out.append(_unadvised_line(name, row))
    if p99 is None:
        out.append(f"{name}: no genuine hazard's report made its tower advise anyone at once")
    elif p99 > HAZARD_P99_BUDGET_MS:
        out.append(f"{name}: hazard → advisory p99 {p99} ms, over the towers' {HAZARD_P99_BUDGET_MS:.0f} ms budget")
    return out


def _alert_lines(name: str, alerts: dict[str, Any]) -> list[str]:
    def when(a: dict[str, Any]) -> str:
        resolved = a["resolved_after_s"]
        end = "still firing at the end" if resolved is None else f"resolved {resolved} s after the fault ended"
        return f"fired {a['fired_after_s']} s after the fault began, {end}"

    lines = [f"{name}: alert {alert} {when(a)}" for alert, a in alerts["fired"].items()] or [f"{name}: no alert fired"]
    if alerts["unanswered_rounds"]:
        lines.append(f"{name}: Prometheus did not answer {alerts['unanswered_rounds']} rounds")
    return lines


def _alert_failures(name: str, alerts: dict[str, Any]) -> list[str]:
    fired = alerts["fired"]
    out = [f"{name}: alert {a} never fired on Prometheus" for a in alerts["expected"] if a not in fired]
    return out + [f"{name}: alert {a} was still firing when the drill ended" for a, when in fired.items()
                  if when["resolved_after_s"] is None]  # fmt: skip
