"""Prometheus's configuration for a run, as data. Pure.

JSON is YAML, so the files are written with `json`: the scrape jobs (the tower workers by a file
that the run rewrites when a worker's port changes, the fleet by its address), a one-second scrape
and rule evaluation — a drill's alert must be able to fire within seconds — and the alert rules
shipped with the manifests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ANALYTICS_JOB", "FLEET_JOB", "GATEWAYS_JOB", "TOWERS_JOB", "prometheus_config", "towers_targets"]

TOWERS_JOB = "corridor-towers"  # the job names the alert rules read (k8s/prometheus/rules.yml)
GATEWAYS_JOB = "corridor-gateways"
FLEET_JOB = "corridor-fleet"
ANALYTICS_JOB = "corridor-analytics"


def prometheus_config(towers_file: Path, static: Mapping[str, Sequence[int]], rules: Path | None,
                      interval_s: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """The towers by file discovery; the other parts (`static`: job → loopback ports) by address."""
    every = f"{int(interval_s * 1000)}ms"
    jobs: list[dict[str, Any]] = [
        {"job_name": TOWERS_JOB, "scrape_timeout": every,
         "file_sd_configs": [{"files": [str(towers_file)], "refresh_interval": "1s"}]},
    ]  # fmt: skip
    for job, ports in static.items():
        if ports:
            jobs.append({"job_name": job, "scrape_timeout": every,
                         "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}]})  # fmt: skip
    return {
        "global": {"scrape_interval": every, "evaluation_interval": every},
        "rule_files": [str(rules)] if rules is not None else [],
        "scrape_configs": jobs,
    }


def towers_targets(ports: list[int]) -> list[dict[str, Any]]:
    """The file-discovery list of the tower workers' web pages (their `/metrics`)."""
    return [{"targets": [f"127.0.0.1:{p}" for p in sorted(set(ports))], "labels": {}}]
