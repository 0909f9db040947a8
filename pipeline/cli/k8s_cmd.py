"""`corridor k8s secrets`: the Secrets of a secure deployment, printed for `kubectl apply -f -`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
import yaml

from pipeline.shared.errors import ConfigError

__all__ = ["app"]

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
