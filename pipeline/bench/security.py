"""`corridor bench --only security`: what TLS, SASL/SCRAM and ACLs cost, plain against secure.

Both stacks are started by this section, one after the other, on their own ports and state
directories, and measured the same way: a vehicle principal's bare producer on the telemetry topic
(acknowledged records/s, and the broker's CPU per record), the time a new client takes to its first
metadata (TLS handshake and the SCRAM exchange happen there), and a short scenario's
trigger → advisory latency, whose path crosses the broker four times (vehicle → broker → tower →
broker → vehicle) plus etcd.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from pipeline.admin import declare
from pipeline.bench.broker import _confluent_produce, telemetry_sample
from pipeline.ports import free_ports
from pipeline.shared.access import Role, client_conf
from pipeline.shared.config import Ports, Settings
from pipeline.simulation.runner import run_scenario
from pipeline.simulation.scenario import parse_scenario
from pipeline.stack import Stack

__all__ = ["run_security"]

_TICK_S = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK_S


def _scenario(quick: bool) -> dict[str, Any]:
    """Hazards one after another over the run, each cleared a while later: many hazard-triggered
    advisories, so that a tail percentile rests on more than a handful of samples."""
    duration = 48 if quick else 240
    kms = [12.0, 24.0, 36.0, 48.0, 60.0, 70.0] * (1 if quick else 3)
    events: list[dict[str, Any]] = []
    for i, km in enumerate(kms):
        at = 10 + i * (duration - 20) / len(kms)
        hid = f"h{i}"
        direction = "NORTHBOUND" if i % 2 else "SOUTHBOUND"
        events.append({"at_s": round(at), "hazard": {"km": km, "type": "ANIMAL", "direction": direction, "id": hid}})
        events.append({"at_s": round(at) + 8, "clear": hid})
    events.sort(key=lambda e: e["at_s"])
    return {"name": "security-bench", "description": "hazard → advisory under both modes", "vehicles": 300,
            "hz": 1, "speedup": 6, "duration_s": duration, "workers": 2, "seed": 5, "events": events}  # fmt: skip


def _connect_ms(settings: Settings, tries: int = 5) -> float:
    """Median time from a new client to its first metadata answer."""
    samples = []
    for _ in range(tries):
        t0 = time.perf_counter()
        AdminClient(client_conf(settings.kafka(Role.VEHICLE), {"log_level": 0})).list_topics(timeout=10)
        samples.append((time.perf_counter() - t0) * 1000)
    return sorted(samples)[len(samples) // 2]


def _one_mode(base: Settings, secure: bool, records: int, quick: bool, workdir: Path) -> dict[str, Any]:
    ports = Ports(*free_ports(5))
    settings = Settings(state_dir=workdir, cache_dir=base.cache_dir, secure=secure, topic_prefix="sbench", ports=ports)
    with Stack(settings, attached=True) as stack:
        topics = settings.topics(len(settings.corridor().regions))
        declare(settings, topics)
        pid = stack.kafka.process.running_pid()
        out: dict[str, Any] = {"connect_ms": round(_connect_ms(settings), 1)}
        values = telemetry_sample()
        cpu0, mine0, t0 = _cpu_s(pid), time.process_time(), time.perf_counter()
        out["produce_per_s"] = round(_confluent_produce(settings.kafka(Role.VEHICLE), topics.telemetry, values,
                                                        records))  # fmt: skip
        out["broker_cpu_us_per_record"] = round((_cpu_s(pid) - cpu0) / records * 1e6, 2)
        # the producer's process: librdkafka's threads, TLS included (the encoding is done beforehand)
        out["client_cpu_us_per_record"] = round((time.process_time() - mine0) / records * 1e6, 2)
        out["produce_wall_s"] = round(time.perf_counter() - t0, 1)
        if quick:  # the hazard → advisory comparison needs a run of its own: the full bench has it
            return out
        result = run_scenario(parse_scenario(_scenario(quick), "security-bench"), settings, workdir / "report")
        lat = result.summary["latency_ms"]
        out["hazard_advisory_p50_ms"] = round(lat["hazard"]["p50"], 1)
        out["hazard_advisory_p95_ms"] = round(lat["hazard"]["p95"], 1)
        out["hazard_advisory_p99_ms"] = round(lat["hazard"]["p99"], 1)
        out["hazard_advisories"] = lat["hazard"]["n"]
        out["any_advisory_p99_ms"] = round(lat["all"]["p99"], 1)
        out["dead_letters"] = result.summary["run"]["dead_letters"]
        del result
        gc.collect()  # the run's clients go before their broker does, or they log its absence
    return out


def run_security(settings: Settings, quick: bool = False) -> dict[str, Any]:
    records = 200_000 if quick else 1_000_000
    out: dict[str, Any] = {"records": records}
    for mode in ("plain", "secure"):
        with tempfile.TemporaryDirectory(prefix=f"corridor-bench-{mode}-") as tmp:
            out[mode] = _one_mode(settings, mode == "secure", records, quick, Path(tmp))
    plain, secure = out["plain"], out["secure"]
    out["produce_ratio"] = round(secure["produce_per_s"] / plain["produce_per_s"], 3)
    if not quick:
        out["hazard_p50_ratio"] = round(secure["hazard_advisory_p50_ms"] / plain["hazard_advisory_p50_ms"], 3)
        out["hazard_p99_ratio"] = round(secure["hazard_advisory_p99_ms"] / plain["hazard_advisory_p99_ms"], 3)
    out["broker_cpu_ratio"] = round(secure["broker_cpu_us_per_record"] / plain["broker_cpu_us_per_record"], 3)
    out["client_cpu_ratio"] = round(secure["client_cpu_us_per_record"] / plain["client_cpu_us_per_record"], 3)
    return out
