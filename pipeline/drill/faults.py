"""The faults a drill can play: what each does at its start and end, and its own report."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from pipeline.drill import host_clock
from pipeline.drill.cluster_faults import (
    active_controller,
    etcd_follower,
    etcd_leader,
    hazards_report,
    kill_node,
    pause_node,
    restart_node,
    resume_node,
    telemetry_leader,
)
from pipeline.drill.drill import Drill, Fault, SideFleet, Step
from pipeline.drill.hostile import HostileSender
from pipeline.drill.reading import read_all, records
from pipeline.shared.access import Role, client_conf
from pipeline.shared.errors import ConfigError, StackError
from pipeline.shared.radio_topics import RadioTopics
from pipeline.shared.stats import percentile
from pipeline.stack.mqtt import mosquitto_binary
from pipeline.stack.process import is_our_child
from producers.fleet import FleetConfig

__all__ = ["FAULTS"]


def _kill_worker(d: Drill, t: float) -> None:
    d.workers[1].kill()
    d.note(t, "tower worker 1 SIGKILLed")


def _restart_worker(d: Drill, t: float) -> None:
    d.workers[1].start()
    d.note(t, "tower worker 1 restarted")


def _signal_worker(sig: signal.Signals, text: str) -> Step:
    def step(d: Drill, t: float) -> None:
        assert d.workers[1].proc is not None
        os.killpg(d.workers[1].proc.pid, sig)
        d.note(t, f"tower worker 1 {text}")

    return step


def _sync(state: str) -> Step:
    """Tower-sync off or on in every worker (each keeps advising from what it knows)."""

    def step(d: Drill, t: float) -> None:
        for w in d.workers:
            w.switch("sync", state)
        d.note(t, f"tower-sync {'cut' if state == 'off' else 'restored'} in every worker")

    return step


def _kill_server(name: str) -> Step:
    """SIGKILL the embedded `kafka` or `etcd` (a drill of a cluster of one's own is not ours to kill)."""

    def step(d: Drill, t: float) -> None:
        pid = getattr(d.stack, name).process.running_pid()
        if pid is None:
            raise ConfigError(f"this drill kills the embedded {name}: it is not running here (an external cluster?)")
        if not is_our_child(pid):
            d.detached.add(name)
        os.kill(pid, signal.SIGKILL)
        d.note(t, f"{name} SIGKILLed")

    return step


def _restart_server(name: str) -> Step:
    def step(d: Drill, t: float) -> None:
        getattr(d.stack, name).start(attached=name not in d.detached)  # as it was: `stack up`'s outlive the drill
        d.note(t, f"{name} restarted")

    return step


def _replay_shuffled(d: Drill, t: float) -> None:
    """Every telemetry record delivered twice more, in a shuffled order, to its own partition."""
    records = read_all(d.settings.kafka(Role.ADMIN), d.topics.telemetry, d.topics.regions)
    again = records * 2
    random.Random(7).shuffle(again)
    producer = Producer(client_conf(d.settings.kafka(Role.ADMIN), {"enable.idempotence": True,
                         "log_level": 3}))  # fmt: skip
    for region, value in again:
        producer.produce(d.topics.telemetry, value, str(region).encode(), region)
        producer.poll(0)
    producer.flush(60)
    d.note(t, f"{len(again)} telemetry records delivered again, shuffled")


FLOOD_VEHICLES = 40_000  # at 10 Hz: 400,000 updates/s, above what two workers take here (the knee)
SKEWED_VEHICLES = 50
SKEW_MS = 10_000


def _flood(d: Drill, t: float) -> None:
    d.side = SideFleet(d, FleetConfig(vehicles=FLOOD_VEHICLES, seed=23, first_num=1_000_000), hz=10)
    d.note(t, f"a second fleet of {FLOOD_VEHICLES:,} vehicles at 10 Hz joins (producers faster than the towers)")


def _skewed(d: Drill, t: float) -> None:
    config = FleetConfig(vehicles=SKEWED_VEHICLES, seed=29, first_num=2_000_000)
    d.side = SideFleet(d, config, hz=1, clock_offset_ms=SKEW_MS)
    d.note(t, f"{SKEWED_VEHICLES} vehicles whose clocks are {SKEW_MS / 1000:.0f} s ahead join")


def _side_ends(d: Drill, t: float) -> None:
    assert d.side is not None
    updates = d.side_updates = d.side.finish()
    d.note(t, f"the second fleet leaves after {updates:,} updates")


HOSTILE_SHARE = 0.1  # hostile inputs per genuine vehicle update


def _hostile_starts(d: Drill, t: float) -> None:
    rate = HOSTILE_SHARE * d.vehicles  # the fleet sends one update per vehicle a second
    radio = RadioTopics(d.topics.regions) if d.gateway is not None else None
    mqtt_at = d.settings.mqtt_address if d.gateway is not None else None
    corridor = d.settings.corridor()
    standing = (round(corridor.route.length_km * 0.4, 1), round(corridor.route.length_km * 0.6, 1))
    d.hostile = HostileSender(d.settings.kafka(Role.ADMIN), corridor, d.topics, radio, mqtt_at, rate,
                              avoid_km=standing, where=d.ahead_of_a_vehicle).start()  # fmt: skip
    where = "Kafka's telemetry, hazards and tower-sync topics" + (" and the radio link" if radio else "")
    d.note(t, f"a stranger sends {rate:.0f} hostile inputs a second on {where}, and a genuine hazard every 2 s")


def _hostile_ends(d: Drill, t: float) -> None:
    assert d.hostile is not None
    d.hostile.stop()
    d.note(t, f"the stranger stops after {len(d.hostile.sent):,} hostile inputs")
    if d.gateway is not None:  # its empty frames would move the towers' clocks on past the fleet's last tick
        d.gateway_survived = d.gateway.alive
        d.gateway.stop()
        d.note(t, "the gateway, serving until now, is stopped" if d.gateway_survived else "the gateway had died")


def _hostile_report(d: Drill) -> dict[str, Any]:
    """Each hostile input's bytes must be in the dead-letter topic (a tower's or the gateway's
    refusal with its reason); each genuine hazard's advice is timed from the advisories topic."""
    assert d.hostile is not None
    h = d.hostile
    values = {v for _, _, v, _ in records(d.settings.kafka(Role.ADMIN), d.topics.dead_letter, d.topics.regions)
              if v is not None}  # fmt: skip
    # the gateway keeps a dead letter's first 8 kB; a tower keeps it whole
    missing = [x for x in h.sent if (x.payload[:8_192] if x.channel == "mqtt" else x.payload) not in values]
    latencies = sorted(h.latencies_ms)
    gateway = d.gateway.stats() if d.gateway is not None else {}
    return {
        "hostile_sent": len(h.sent),
        "hostile_by_channel": dict(Counter(x.channel for x in h.sent)),
        "hostile_by_kind": h.by_kind(),
        "hostile_uncounted": len(missing),
        "hostile_uncounted_examples": sorted({x.kind for x in missing})[:8],
        "hazards_reported": len(h.hazards_sent),
        "hazards_advised": len(h.first_ms),
        **h.unadvised_report(d.tallies.values()),
        "hazard_advisories": len(latencies),
        "hazard_p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "hazard_p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
        "hazard_first_p99_ms": round(percentile(sorted(h.first_ms.values()), 99), 1) if h.first_ms else None,
        # to the advisory's produce time on its tower (the record's create time): the towers' part alone
        "hazard_produced_p99_ms": round(percentile(h.produced_ms, 99), 1) if h.produced_ms else None,
        "sender_errors": h.errors,
        "gateway_dead_letters": gateway.get("dead_letters", {}),
        "gateway_errors": gateway.get("errors", {}),
    }


def _no_mosquitto() -> str | None:
    try:
        mosquitto_binary()
    except StackError as exc:
        return str(exc)
    return None


DISK_MB = 256
HOST_SKEW_S = 10
#: how long the skewed worker sees its clock off before it corrects it (CORRIDOR_TOWER_CLOCK_SKEW_HOLD_S): at
#: once, so that the drill judges the correction; how long a skew must last is the unit tests' to judge
HOST_SKEW_HOLD_S = 0


def _not_root() -> str | None:
    if os.geteuid() == 0:
        return None
    return "the full-disk drill mounts a small tmpfs for a worker's state: run it as root"


def _small_disk(datadir: Path, cleanup: contextlib.ExitStack) -> dict[str, str]:
    """Worker 1's data directory on a tmpfs of its own, so filling it fills nothing else."""
    datadir.mkdir(parents=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(datadir)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigError(f"the full-disk drill could not mount a tmpfs: {done.stderr.strip()}")
    cleanup.callback(subprocess.run, ["umount", "--lazy", str(datadir)], check=False)
    return {}


def _host_clock_ahead(datadir: Path, cleanup: contextlib.ExitStack) -> dict[str, str]:
    """Worker 1 on a host whose wall clock is ahead: its Python clock, by `host_clock`'s
    sitecustomize (why not libfaketime: said there)."""
    path = os.pathsep.join(p for p in (str(host_clock.FOLDER), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, host_clock.AHEAD_ENV: str(HOST_SKEW_S),
            "CORRIDOR_TOWER_CLOCK_SKEW_HOLD_S": str(HOST_SKEW_HOLD_S)}  # fmt: skip


def _noted(text: str) -> Step:
    def step(d: Drill, t: float) -> None:
        d.note(t, text)

    return step


def _fill_disk(d: Drill, t: float) -> None:
    block, written = b"\0" * (1 << 20), 0
    try:
        with open(d.workers[1].datadir / "filler", "wb", buffering=0) as fh:
            while True:
                written += fh.write(block)
    except OSError as exc:
        d.note(t, f"tower worker 1's disk filled ({written >> 20} MiB more: {exc.strerror})")


def _free_disk(d: Drill, t: float) -> None:
    (d.workers[1].datadir / "filler").unlink()
    w = d.workers[1]
    said = [line for line in w.log.read_text(errors="replace").splitlines() if "space" in line.lower()]
    # its own word on its tables, not whichever library spoke first (RocksDB's and Faust's lines come too)
    own = [line for line in said if "could not be written" in line]
    if said:
        quoted = own[0] if own else said[0]
        d.note(t, f"tower worker 1 logged {len(said)} lines on it ({len(own)} its own), e.g.: {quoted.strip()[:160]}")
    if w.alive:
        d.note(t, "its disk freed; tower worker 1 still running")
        return
    code = w.proc.returncode if w.proc is not None else None
    w.start()
    d.note(t, f"its disk freed; tower worker 1 had exited (code {code}): restarted")


#: an etcd member down from 10 s to 40 s of a 60 s run: long past its leases' and elections' timeouts
ETCD_OUTAGE = {"start_at": 1 / 6, "end_at": 2 / 3, "seconds": 60.0}


def _on_cluster(what: str, start: Step, end: Step, **timing: float) -> Fault:
    """A fault of one node of three, with genuine hazards reported all along and timed."""
    return Fault(what, start, end, cluster=True, hazards=True, report=hazards_report, **timing)  # type: ignore[arg-type]


FAULTS: dict[str, Fault] = {
    "worker-kill": Fault(
        "a tower worker SIGKILLed under load, restarted later",
        _kill_worker,
        _restart_worker,
        alerts=("CorridorTowerDown",),
        takeover=True,
    ),
    "worker-pause": Fault(
        "a tower worker paused (SIGSTOP) past its session timeout, then resumed",
        _signal_worker(signal.SIGSTOP, "paused (SIGSTOP) past its session timeout"),
        _signal_worker(signal.SIGCONT, "resumed (SIGCONT)"),
        alerts=("CorridorTowerDown",),
        takeover=True,
    ),
    "broker-kill": Fault(
        "the Kafka broker SIGKILLed mid-run, restarted later", _kill_server("kafka"), _restart_server("kafka")
    ),
    "etcd-kill": Fault(
        "etcd SIGKILLed for a minute, then restarted",
        _kill_server("etcd"),
        _restart_server("etcd"),
        start_at=1 / 6,
        end_at=5 / 6,
        seconds=90,
    ),
    "sync-cut": Fault(
        "tower-sync cut for 30 s in every worker, then restored",
        _sync("off"),
        _sync("on"),
        start_at=1 / 4,
        end_at=3 / 4,
        seconds=60,
        synced=True,
    ),
    "replay": Fault("every telemetry record delivered twice more, shuffled", lambda d, t: None, after=_replay_shuffled),
    "slow-towers": Fault(
        f"producers faster than the towers for a minute ({FLOOD_VEHICLES:,} more vehicles at 10 Hz)",
        _flood,
        _side_ends,
        start_at=1 / 7,
        end_at=6 / 7,
        seconds=84,
    ),
    "full-disk": Fault(
        f"the disk under a tower worker's state ({DISK_MB} MiB) full, then freed",
        _fill_disk,
        _free_disk,
        setup=_small_disk,
        unavailable=_not_root,
    ),
    "tower-clock": Fault(
        f"a tower worker's host clock {HOST_SKEW_S} s ahead, all along (corrected as soon as seen, not after the "
        "60 s a deployment waits)",
        _noted(f"tower worker 1's host clock is {HOST_SKEW_S} s ahead (since it started)"),
        setup=_host_clock_ahead,
    ),
    "clock-skew": Fault(
        f"{SKEWED_VEHICLES} vehicles whose clocks are {SKEW_MS / 1000:.0f} s ahead", _skewed, _side_ends
    ),
    "leader-kill": _on_cluster(
        "of three brokers, the one leading the most telemetry partitions SIGKILLed under load, restarted later",
        kill_node(telemetry_leader, "leader of the most telemetry partitions"),
        restart_node,
    ),
    "controller-kill": _on_cluster(
        "of three KRaft controllers, the active one SIGKILLed under load, restarted later",
        kill_node(active_controller, "the active controller"),
        restart_node,
    ),
    "broker-cut": _on_cluster(
        "of three brokers, the telemetry's leader cut off (paused) for 12 s, past its 3 s broker session",
        pause_node(telemetry_leader, "leader of the most telemetry partitions"),
        resume_node,
        start_at=1 / 4,
        end_at=1 / 2,
        seconds=48,
    ),
    "etcd-member-kill": _on_cluster(
        "of three etcd members, a follower SIGKILLed for 30 s",
        kill_node(etcd_follower, "a follower"),
        restart_node,
        **ETCD_OUTAGE,
    ),
    "etcd-leader-kill": _on_cluster(
        "of three etcd members, the leader SIGKILLed for 30 s",
        kill_node(etcd_leader, "the leader"),
        restart_node,
        **ETCD_OUTAGE,
    ),
    "hostile": Fault(
        f"a stranger's crafted and random input at {HOSTILE_SHARE:.0%} of the traffic, on Kafka and the radio link",
        _hostile_starts,
        _hostile_ends,
        start_at=1 / 6,
        end_at=5 / 6,
        radio=True,
        report=_hostile_report,
        unavailable=_no_mosquitto,
    ),
}
