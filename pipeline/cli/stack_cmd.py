"""`corridor stack up|down|status`: the embedded Kafka + etcd, or a check of the external ones."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.shared.access import Role
from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError
from pipeline.stack import Stack, StackStatus

__all__ = ["app"]

app = typer.Typer(help="Start, stop and inspect the local Kafka and etcd (one node each, or a cluster).",
                  no_args_is_help=True)  # fmt: skip
out = Console(highlight=False)


def print_status(status: StackStatus) -> None:
    table = Table(title="corridor stack", title_justify="left")
    for col in ("service", "state", "address", "version", "pid", "detail"):
        table.add_column(col)
    for s in status.services:
        colour = "green" if s.state in ("running", "external") else "yellow" if s.state == "degraded" else "red"
        table.add_row(s.name, f"[{colour}]{s.state}[/]", s.address, s.version, str(s.pid or ""), s.detail)
    out.print(table)


@app.command()
def up(
    ctx: typer.Context,
    mqtt: Annotated[bool, typer.Option(help="also the radio link's MQTT broker (Mosquitto)")] = False,
    registry: Annotated[
        bool, typer.Option(help="also the schema registry (Apicurio), corridor's schemas registered in it")
    ] = False,
    secure: Annotated[
        bool, typer.Option(help="TLS, SASL/SCRAM and ACLs on Kafka; client certificates and roles on etcd")
    ] = False,
    brokers: Annotated[
        int | None,
        typer.Option(
            help="Kafka nodes (1, 3 or 5), each a broker and a controller; topics then "
            "have 3 replicas, 2 in sync for a write"
        ),
    ] = None,
    etcd_members: Annotated[int | None, typer.Option(help="etcd members (1, 3 or 5)")] = None,
) -> None:
    """Start Kafka (KRaft) and etcd on 127.0.0.1 and wait until both answer; a no-op when running.
    A stack started secure stays secure (later commands find its material) until `down --purge`;
    one started as a cluster stays one, with as many nodes."""
    settings: Settings = ctx.obj.with_overrides(secure=secure or None).as_cluster(brokers, etcd_members)
    t0 = time.monotonic()
    status = Stack(settings, mqtt=mqtt, registry=registry).up()
    if registry:
        from pipeline.schema_registry import register_schemas

        register_schemas(settings)
    print_status(status)
    out.print(f"ready in {time.monotonic() - t0:.1f} s; state in {settings.state_dir.resolve()}")


@app.command()
def wait(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 300.0,
    towers: Annotated[bool, typer.Option(help="also wait until every region has a live tower worker")] = False,
) -> None:
    """Wait until the configured Kafka and etcd answer (a Job's init container, before its cluster
    is up); exit 1 with what is missing at the timeout."""
    from pipeline.stack.wait import wait_for_stack

    took = wait_for_stack(ctx.obj, timeout, towers=towers, on_wait=lambda m: out.print(f"waiting: {m}"))
    out.print(f"stack ready after {took:.1f} s")


@app.command()
def down(
    ctx: typer.Context,
    purge: Annotated[bool, typer.Option(help="also delete the stack's data and logs")] = False,
) -> None:
    """Stop every embedded server: SIGTERM, a grace period, then SIGKILL."""
    stopped = Stack(ctx.obj).down(purge=purge)
    out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command("rotate-certs")
def rotate_certs(
    ctx: typer.Context,
    new_ca: Annotated[bool, typer.Option(help="a new CA as well: every client must then restart")] = False,
) -> None:
    """Issue the secure stack's certificates again, with fresh keys (before they expire, or after a
    key leaked); its passwords, topics and keys stay. Running servers restart on the new ones."""
    restarted = Stack(ctx.obj).rotate_certs(new_ca=new_ca)
    material = ctx.obj.security_material
    out.print(f"certificates issued again in {material}"
              + (f"; restarted: {', '.join(restarted)}" if restarted else "; no server was running"))  # fmt: skip


@app.command()
def revoke(
    ctx: typer.Context,
    vehicles: Annotated[list[str], typer.Argument(help="the vehicles' ids, as on the radio link (veh-0000042)")],
) -> None:
    """Refuse vehicles on the secure radio link from now on (a unit stolen, or sending what it must
    not): disconnected now if the broker runs, and refused at every later start of the stack's broker
    until `stack down --purge`."""
    from pipeline.shared.radio_access import MQTT_ADMIN, check_vehicle_id
    from pipeline.shared.radio_topics import RadioTopics
    from pipeline.stack.mqtt import MqttBroker
    from pipeline.stack.security import SecurityMaterial
    from producers.enrolment import Enrolment

    settings: Settings = ctx.obj
    material = settings.security_material
    if not settings.mqtt_external and material is None:
        raise ConfigError("only the secure radio link has identities to revoke: `corridor stack up --secure --mqtt`")
    topics = RadioTopics(len(settings.corridor().regions))
    try:
        for vid in vehicles:
            check_vehicle_id(topics, vid)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if material is not None and not settings.mqtt_external:
        SecurityMaterial(material).revoke_vehicles(vehicles)
        if MqttBroker(settings).process.running_pid() is None:
            out.print(f"revoked {', '.join(vehicles)}: the radio link's broker refuses them when it starts")
            return
    enrolment = Enrolment(settings.mqtt(MQTT_ADMIN), topics, settings.mqtt_vehicle_key())
    try:
        enrolment.revoke(vehicles)
    finally:
        enrolment.close()
    out.print(f"revoked {', '.join(vehicles)}: disconnected, and refused from now on")


@app.command()
def status(ctx: typer.Context) -> None:
    """Show each server's state, address and version; exit 1 unless both answer."""
    st = Stack(ctx.obj).status()
    print_status(st)
    if not st.healthy:
        raise typer.Exit(1)


@app.command()
def jars(ctx: typer.Context) -> None:
    """Resolve Kafka's jars from Maven Central into the cache (done by `up` when needed)."""
    from pipeline.stack.jars import resolve_jars

    settings: Settings = ctx.obj
    out.print(f"Kafka jars in {resolve_jars(settings.cache_dir, quiet=False)}")


@app.command()
def etcd(ctx: typer.Context) -> None:
    """Build etcd and etcdctl from the Go module proxy into the cache (done by `up` when needed)."""
    from pipeline.stack.etcd_build import ETCD_VERSION, resolve_etcd

    settings: Settings = ctx.obj
    out.print(f"etcd {ETCD_VERSION} in {resolve_etcd(settings.cache_dir, log=out.print)}")


@app.command()
def smoke(
    ctx: typer.Context,
    regions: Annotated[int, typer.Option(min=1, max=64, help="tower regions (one partition each)")] = 9,
) -> None:
    """Start the stack (unless external), send one record through Kafka and one key through etcd, stop."""
    from pipeline.smoke import smoke as run_smoke

    settings: Settings = ctx.obj
    with Stack(settings, attached=True) as stack:
        print_status(stack.status())
        result = run_smoke(settings, regions)
        out.print(f"topics created: {', '.join(result.topics_created) or 'none (already there)'}")
        out.print(f"Kafka produce → consume round trip: {result.kafka_round_trip_ms:.0f} ms")
        out.print(f"etcd lease + put + get round trip: {result.etcd_round_trip_ms:.0f} ms")
    out.print("[green]smoke run passed[/]; the stack was stopped")


@app.command()
def declare(ctx: typer.Context) -> None:
    """Create corridor's topics and, on a secure cluster, its ACLs (`pipeline.shared.access_policy`),
    as the admin principal; what a deployment runs once before its towers (a Kubernetes Job)."""
    from pipeline.admin import declare as declare_topics

    settings: Settings = ctx.obj
    topics = settings.topics(len(settings.corridor().regions))
    secure = settings.kafka(Role.ADMIN).secure
    created = declare_topics(settings, topics, acls=secure)
    out.print(f"topics created: {', '.join(created) or 'none (already there)'}")
    if secure:
        out.print(f"ACLs of prefix {topics.prefix!r} in place")


@app.command("etcd-auth")
def etcd_auth(ctx: typer.Context) -> None:
    """Create etcd's users and roles and turn auth on, presenting the root certificate given by
    ETCD_CA_FILE / ETCD_CERT_FILE / ETCD_KEY_FILE; a no-op when auth is already on."""
    from pipeline.stack.etcd import enable_auth

    access = ctx.obj.etcd(Role.ADMIN)
    if not access.secure or access.cert_file is None:
        raise ConfigError("etcd-auth needs TLS to etcd with the root client certificate (ETCD_CA_FILE, "
                          "ETCD_CERT_FILE, ETCD_KEY_FILE)")  # fmt: skip
    out.print("etcd auth enabled" if enable_auth(access, ctx.obj.cache_dir) else "etcd auth was already on")
