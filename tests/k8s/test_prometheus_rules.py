"""The alert rules shipped for the tower workers' metrics: valid for Prometheus, each alert firing on
the series that should fire it and not before (`promtool test rules`), and over metrics that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from towers.gateway.metrics import GATEWAY
from towers.metrics import METRICS

RULES = Path(__file__).resolve().parents[2] / "k8s" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        why = "promtool is not installed: apt-get install prometheus"
        if os.environ.get("CORRIDOR_STRICT_TESTS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return found


def test_the_rules_are_valid(promtool: str) -> None:
    done = subprocess.run([promtool, "check", "rules", "rules.yml"], cwd=RULES, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_alert_fires_when_it_should_and_only_then(promtool: str) -> None:
    done = subprocess.run([promtool, "test", "rules", "rules-test.yml"], cwd=RULES, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_read_only_metrics_the_workers_and_gateways_serve_and_every_alert_is_tested() -> None:
    rules = [r for g in yaml.safe_load((RULES / "rules.yml").read_text())["groups"] for r in g["rules"]]
    declared = {**METRICS, **GATEWAY.metrics}
    served = {n.removesuffix("_total") for n in declared} | set(declared)
    served |= {f"{n}_{part}" for n, (kind, _) in declared.items() if kind == "histogram"
               for part in ("bucket", "sum", "count")}  # fmt: skip
    for rule in rules:
        for name in re.findall(r"\b(corridor_(?:tower|gateway)_[a-z_]+)", rule["expr"]):
            assert name in served, f"{rule.get('alert') or rule.get('record')}: {name} is served by no part"
    tested = {t["alertname"] for case in yaml.safe_load((RULES / "rules-test.yml").read_text())["tests"]
              for t in case["alert_rule_test"]}  # fmt: skip
    assert {r["alert"] for r in rules if "alert" in r} == tested


def test_the_tower_pods_are_scraped_on_their_web_port_at_metrics() -> None:
    docs = list(yaml.safe_load_all((RULES.parent / "corridor" / "towers.yaml").read_text()))
    (service,) = [d for d in docs if d["kind"] == "Service"]
    (workers,) = [d for d in docs if d["kind"] == "StatefulSet"]
    notes = workers["spec"]["template"]["metadata"]["annotations"]
    web = {p["name"]: p["port"] for p in service["spec"]["ports"]}["web"]
    assert notes == {"prometheus.io/scrape": "true", "prometheus.io/port": str(web), "prometheus.io/path": "/metrics"}


def test_the_gateway_pods_serve_and_announce_their_metrics_port() -> None:
    docs = list(yaml.safe_load_all((RULES.parent / "radio" / "gateways.yaml").read_text()))
    (gateways,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = gateways["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    command = container["command"]
    port = command[command.index("--metrics-port") + 1]
    assert command[command.index("--metrics-host") + 1] == "0.0.0.0", "reachable from a scraper in the cluster"
    assert {"name": "metrics", "containerPort": int(port)} in container["ports"]
    assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": port,
                                              "prometheus.io/path": "/metrics"}  # fmt: skip


def test_the_clusters_prometheus_config_is_valid_and_finds_each_part_by_its_headless_service(promtool: str) -> None:
    done = subprocess.run([promtool, "check", "config", "--syntax-only", "prometheus.yml"], cwd=RULES,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load((RULES / "prometheus.yml").read_text())
    services = {d["metadata"]["name"]: d for f in ("corridor/towers.yaml", "radio/gateways.yaml")
                for d in yaml.safe_load_all((RULES.parent / f).read_text()) if d["kind"] == "Service"}  # fmt: skip
    jobs = {j["job_name"]: j["dns_sd_configs"][0] for j in config["scrape_configs"]}
    assert set(jobs) == {"corridor-towers", "corridor-gateways"}, "the jobs the rules read"
    for sd in jobs.values():
        (name,) = sd["names"]
        service = services[name]
        assert service["spec"]["clusterIP"] == "None", f"{name}: a record per pod, not one virtual address"
        assert sd["port"] in {p["port"] for p in service["spec"]["ports"]}
