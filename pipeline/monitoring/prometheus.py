"""Debian's Prometheus as a child of a run: on loopback, scraping the run's tower workers and fleet
every second, evaluating corridor's alert rules, its data in the run's own directory (deleted with
it), killed with whatever started it. Asked over its HTTP API, as an operator's tools ask it."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.monitoring.config import prometheus_config, towers_targets
from pipeline.ports import free_ports
from pipeline.shared.errors import ConfigError, StackError
from pipeline.workers import ChildProcess

__all__ = ["RULES", "PrometheusProcess", "prometheus_binary"]

#: the alert rules shipped with the manifests, read from the source tree
RULES = Path(__file__).resolve().parents[2] / "k8s" / "prometheus" / "rules.yml"


def prometheus_binary() -> str:
    """Debian's server (on PATH), or the one CORRIDOR_PROMETHEUS names; a one-line error without one."""
    named = os.environ.get("CORRIDOR_PROMETHEUS")
    if named:
        if not (os.path.isfile(named) and os.access(named, os.X_OK)):
            raise ConfigError(f"CORRIDOR_PROMETHEUS={named!r} is not an executable file")
        return named
    found = shutil.which("prometheus")
    if not found:
        raise ConfigError("--prometheus needs Prometheus's server: install Debian's `prometheus` package "
                          "(or set CORRIDOR_PROMETHEUS to its binary)")  # fmt: skip
    return found


class PrometheusProcess(ChildProcess):
    def __init__(self, workdir: Path, static: Mapping[str, Sequence[int]] | None = None) -> None:
        super().__init__(dict(os.environ), workdir / "prometheus.log")
        self.binary = prometheus_binary()
        self.workdir, self.static = workdir, dict(static or {})  # job → loopback ports, besides the towers
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self._targets_file = workdir / "towers-targets.json"
        self._ports: list[int] | None = None

    def start(self, tower_ports: list[int]) -> PrometheusProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.set_towers(tower_ports)
        rules = RULES if RULES.is_file() else None
        config = self.workdir / "prometheus.yml"
        config.write_text(
            json.dumps(
                prometheus_config(self._targets_file, self.static, rules),
                indent=1,
            )
        )
        self._spawn([self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d"])  # fmt: skip
        self._wait_ready(self._ready, "Prometheus", 30.0)
        return self

    def set_towers(self, ports: list[int]) -> None:
        """The workers to scrape (rewritten only when they change; Prometheus watches the file)."""
        if sorted(ports) == self._ports:
            return
        self._ports = sorted(ports)
        tmp = self._targets_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(towers_targets(ports)))
        tmp.replace(self._targets_file)  # whole, never half-written, when Prometheus reads it

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def query(self, expr: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        """An instant query's vector (each sample's labels and value as a float)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                answer = json.loads(resp.read())
        except (OSError, ValueError) as e:
            raise StackError(f"Prometheus did not answer {expr!r}: {e}") from e
        if answer.get("status") != "success":
            raise StackError(f"Prometheus refused {expr!r}: {answer.get('error')}")
        result = answer["data"]["result"]
        if answer["data"]["resultType"] == "scalar":
            return [{"labels": {}, "value": float(result[1])}]
        return [{"labels": r["metric"], "value": float(r["value"][1])} for r in result]

    def value(self, expr: str) -> float | None:
        """The single value of an instant query; None when it has none (nothing scraped yet)."""
        got = self.query(expr)
        return got[0]["value"] if got else None

    def firing(self) -> set[str]:
        """The alerts firing now, by name."""
        return {s["labels"]["alertname"] for s in self.query('ALERTS{alertstate="firing"}')}
