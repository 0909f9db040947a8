"""`corridor k8s secrets` (the Secrets of a secure deployment) and `corridor k8s e2e` (the manifests on a
real cluster of one or more nodes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
import yaml

from pipeline.shared.errors import ConfigError

__all__ = ["app"]

DEV_PLAIN = Path("k8s/overlays/dev-plain")
app = typer.Typer(help="What a secure Kubernetes deployment needs besides its manifests.", no_args_is_help=True)


@app.command()
def secrets(
    namespace: Annotated[str, typer.Option(help="the namespace the overlay deploys to (its certificates name it)")],
    kafka: Annotated[str, typer.Option(help="strimzi (its operators make Kafka's) or statefulset")] = "strimzi",
    output: Annotated[Path | None, typer.Option(help="write here (owner-only) instead of standard output")] = None,
) -> None:
    """A fresh CA, server and client certificates, and passwords, as Secret manifests.

    kubectl create namespace corridor && corridor k8s secrets --namespace corridor | kubectl apply -f -"""
    from pipeline.deploy.secrets import KAFKA_VARIANTS, secret_manifests

    if kafka not in KAFKA_VARIANTS:
        raise ConfigError(f"--kafka must be one of {', '.join(KAFKA_VARIANTS)}, got {kafka!r}")
    text = yaml.safe_dump_all(secret_manifests(namespace, kafka), sort_keys=False)
    if output is None:
        typer.echo(text, nl=False)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@app.command()
def e2e(
    ctx: typer.Context,
    overlay: Annotated[
        list[Path] | None, typer.Option(help="a kustomize overlay to apply (repeat: each in turn); default dev-plain")
    ] = None,
    logs: Annotated[Path | None, typer.Option(help="keep the pods' and the cluster's logs here")] = None,
    job_timeout: Annotated[float, typer.Option(help="seconds the producers' Job may take")] = 900.0,
    nodes: Annotated[int, typer.Option(min=1, max=9, help="the cluster's nodes, each in namespaces of its own")] = 1,
    lose_node: Annotated[
        bool, typer.Option(help="lose a node (a tower's, not the Job's) 40 s into the last overlay's drive")
    ] = False,
) -> None:
    """A Kubernetes cluster (built from the Go module proxy; its control plane and each node run in
    namespaces of their own), each overlay applied to it, and the producers' Job judged by its
    summary. Needs root and Linux.

    Exit status 0 when every workload became Ready, Kafka's node ids and etcd's peers follow the pods'
    names, and the Job completed with advisories delivered and no dead letter (with --lose-node: also
    after the node was lost, its tower workers back on the others)."""
    from rich.console import Console

    from pipeline.deploy.cluster.e2e import run_e2e

    overlays = overlay or [DEV_PLAIN]
    for o in overlays:
        if not (o / "kustomization.yaml").is_file():
            raise ConfigError(f"--overlay {o} is not a kustomize overlay (no kustomization.yaml)")
    out = Console(highlight=False, soft_wrap=True)
    result = run_e2e(ctx.obj, overlays, say=lambda m: out.print(m), job_timeout=job_timeout, logs_to=logs,
                     nodes=nodes, lose_node=lose_node)  # fmt: skip
    for one in result.overlays:
        out.print(f"[bold]{one.overlay}[/]")
        typer.echo(one.pods.rstrip())
        if one.summary is not None:
            s = one.summary
            out.print(f"producers' Job: simulated {s.simulated_s} s, {s.updates:,} vehicle updates, "
                      f"{s.advisories:,} advisories delivered, dead letters {s.dead_letters}")  # fmt: skip
            if s.records_sent is not None:
                slowest = f"{s.slowest_ms:,} ms" if s.slowest_ms is not None else "none over 100 ms"
                out.print(f"  Kafka acknowledged {s.records_acked:,} of {s.records_sent:,} records; hazards advised "
                          f"{s.hazards_advised} of {s.hazards}; advice p99 {s.advice_p99_ms} ms (hazards "
                          f"{s.hazard_p99_ms} ms), the slowest {slowest}")  # fmt: skip
        out.print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in one.timings.items()))
        for problem in one.problems:
            out.print(f"[red]FAILED[/] ({one.overlay.name}): {problem}")
    for problem in result.problems:
        out.print(f"[red]FAILED[/]: {problem}")
    out.print("cluster: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items()))
    if not result.passed:
        raise typer.Exit(1)
    out.print(f"[green]PASSED[/]: {', '.join(str(o.overlay) for o in result.overlays)} on a real cluster")
