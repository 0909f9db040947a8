"""One fault drill: traffic in real time, one fault injected, recovery, then exact accounting.

Two tower workers serve fresh topics of the drill's own; a fleet drives for `seconds` at 1 Hz. The
fault starts a third of the way in; where it ends by itself (a restart, a resume) that is at half
way. After the traffic every region gets one more (empty) frame, so the towers write their last
second, and the drill waits until they have processed everything. Then it reads the telemetry topic
(the reference: every acknowledged update) and the towers' `vehicles` changelog (their durable
state) and accounts for each vehicle (see `accounting`). Everything the drill made is deleted.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from pipeline.admin import declare, end_offsets
from pipeline.drill.accounting import account, latest_rejected, latest_sent, latest_stored
from pipeline.drill.drill import CLUSTER_SESSION, HAZARD_PASS_MPS, SESSION, Drill, Sample
from pipeline.drill.faults import FAULTS
from pipeline.drill.hostile import HostileSender
from pipeline.drill.reading import dead_letters, latest_per_key, read_all
from pipeline.leftovers import owned, scratch_prefix
from pipeline.monitoring.alerts import AlertWatch
from pipeline.monitoring.prometheus import PrometheusProcess, prometheus_binary
from pipeline.ports import cluster_ports
from pipeline.shared.access import Role, client_conf
from pipeline.shared.config import Settings
from pipeline.shared.crdt.hlc import pack
from pipeline.shared.errors import ConfigError, StackError
from pipeline.shared.hazards import hazard_record
from pipeline.shared.messages import CODEC, HAZARD
from pipeline.shared.topics import Topics
from pipeline.shared.waiting import poll
from pipeline.stack import Stack
from pipeline.workers import GatewayProcess, TowerProcess, wait_for_assignment, wait_until_written, worker_env
from producers.drive import DriveConfig, drive
from producers.fleet import Fleet, FleetConfig, Obstacle
from producers.sink import TelemetrySink
from towers.config import TowerConfig, app_id

__all__ = ["FAULTS", "run_drill"]


def _settle(d: Drill, fleet: Fleet) -> None:
    """Until the towers have written every telemetry record, and serve every region."""

    def served() -> bool:
        d.observe()
        return d.samples[-1].owned == d.topics.regions

    last_ms = fleet.start_ms + int(fleet.t * 1000)
    try:
        wait_until_written(d.settings.kafka(Role.ADMIN), d.app, d.topics.telemetry, d.topics.regions, last_ms,
                           timeout=300, each_round=served)  # fmt: skip
    except StackError:
        raise StackError("drill: the towers did not finish processing the traffic in time") from None


def _summed(tallies: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in tallies:
        for k, v in t.items():
            out[k] = out.get(k, 0) + int(v)
    return dict(sorted(out.items()))


def _worst_s(d: Drill, what: Callable[[Sample], float]) -> float:
    """The worst of a sampled figure from the fault on (before it, the towers were still starting:
    a tower whose clock is off reads its news that much old until its first frames have come)."""
    since = d.fault_start_wall or 0.0
    return round(max((what(x) for x in d.samples if x.wall >= since), default=0.0) / 1000, 1)


def _stalest(d: Drill) -> str:
    """Whose news was the oldest, of which region, and when (the worst sample of `max_stale_s`)."""
    since = d.fault_start_wall or 0.0
    worst = max((x for x in d.samples if x.wall >= since), key=lambda x: x.stale_ms, default=None)
    if worst is None or not worst.stale_of:
        return ""
    when = f"{worst.wall - since:.0f} s after the fault began"
    if d.traffic_end_wall is not None and worst.wall > d.traffic_end_wall:
        when += f", {worst.wall - d.traffic_end_wall:.0f} s after the traffic ended"
    return f"{worst.stale_of}, {when}"


def _advisories(d: Drill) -> dict[str, int]:
    """Every advisory a tower decided on reached the topic. A worker still running at the end must
    have each one acknowledged by the broker, and none given up on; a killed worker's unsent ones
    went with it, but so did the acknowledgement of the input that caused them, which the next
    owner read again (decided again, or dropped as too old and counted as a stale trigger)."""
    survivors = {w.proc.pid for w in d.workers if w.alive and w.proc is not None}
    deadline = time.monotonic() + 15
    while True:  # tower-sync can cause advisories after the last telemetry: let those settle too
        pages = [w.page(timeout=2.0) for w in d.workers if w.alive]
        if all(p is not None and p["unsettled_messages"] == 0 for p in pages) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    d.observe(sample=False)
    decided = sum(t.get("advisories", 0) for t in d.tallies.values())
    delivered = sum(t.get("delivered-advisory", 0) for t in d.tallies.values())
    undelivered = sum(t.get("undelivered-advisory", 0) for t in d.tallies.values())
    unsettled = sum(max(0, t.get("advisories", 0) - t.get("delivered-advisory", 0) - t.get("undelivered-advisory", 0))
                    for pid, t in d.tallies.items() if pid in survivors)  # fmt: skip
    in_topic = sum(end_offsets(d.settings.kafka(Role.ADMIN), d.topics.advisories, d.topics.regions))
    return {"decided": decided, "delivered": delivered, "in_topic": in_topic,
            "lost": undelivered + unsettled + max(0, delivered - in_topic)}  # fmt: skip


def _standing_hazards(d: Drill, fleet: Fleet) -> None:
    """An animal on each carriageway for the whole drill: the towers keep advising the vehicles that
    approach it, so there are advisories to account for under every fault."""
    length = fleet.corridor.route.length_km
    producer = Producer(client_conf(d.settings.kafka(Role.ADMIN), {"enable.idempotence": True,
                         "log_level": 3}))  # fmt: skip
    spots = ((round(length * 0.4, 1), "NORTHBOUND"), (round(length * 0.6, 1), "SOUTHBOUND"))
    for i, (km, direction) in enumerate(spots):
        fleet.obstacles.append(Obstacle(km, direction == "NORTHBOUND", 0.0, float("inf"), HAZARD_PASS_MPS))
        rec = hazard_record(
            km, "ANIMAL", direction, 5, fleet.start_ms, 3600, f"drill-{i}", "drill", corridor=fleet.corridor
        )
        producer.produce(d.topics.hazards, CODEC.encode(HAZARD, rec), str(rec["region_id"]).encode(), rec["region_id"])
    if producer.flush(30):
        raise StackError("drill: the standing hazards were not acknowledged by the broker")


def _recovery_s(d: Drill, synced: bool) -> float | None:
    """From the fault's end until every region is served again and no tower is 1 s behind (and, with
    `synced`, none has news of another region older than 3 s)."""
    if d.fault_end_wall is None:
        return None
    for x in d.samples:
        served = x.owned == d.topics.regions and x.behind_ms < 1000
        if x.wall >= d.fault_end_wall and served and (not synced or x.stale_ms < 3000):
            return round(x.wall - d.fault_end_wall, 1)
    return float("nan")


def _served_again_s(d: Drill) -> float | None:
    """From the fault's start until every region is served and no tower is 1 s behind: for a worker
    killed or paused, how long its regions went unadvised before a survivor took them over (sampled
    ten times a second then; for other faults, once a second)."""
    if d.fault_start_wall is None:
        return None
    if d.takeover_s is not None:
        return d.takeover_s
    for x in d.samples:
        if x.wall >= d.fault_start_wall and x.owned == d.topics.regions and x.behind_ms < 1000:
            return round(x.wall - d.fault_start_wall, 1)
    return float("nan")


#: a drill watched by Prometheus drives at least this long, so that a fault ending at half way has
#: outlasted the alert rules' `for` (10 s); and waits this long after it for what fired to resolve
ALERTED_DRILL_S = 75.0
ALERT_RESOLVE_S = 30.0


def _watch_alerts(d: Drill, workdir: Path, cleanup: contextlib.ExitStack) -> AlertWatch:
    prom = PrometheusProcess(workdir)  # the workers only: the drill's fleet has no page
    cleanup.callback(prom.stop)
    prom.start([w.port for w in d.workers])

    def firing() -> set[str]:
        prom.set_towers([w.port for w in d.workers])  # a restarted worker may have had to change port
        if not prom.alive:
            raise StackError("Prometheus exited")
        return prom.firing()

    return AlertWatch(firing)


def _cluster_settings(settings: Settings, state_dir: Path) -> Settings:
    """Three Kafka nodes and three etcd members: the configured stack when it is such a cluster,
    else one of the drill's own, on free ports, in its own directory (gone with the drill)."""
    if settings.kafka_external or settings.etcd_external:
        raise ConfigError("this drill stops nodes of corridor's own cluster: unset KAFKA_BOOTSTRAP_SERVERS and "
                          "ETCD_ENDPOINTS")  # fmt: skip
    if settings.ports.brokers >= 3 and settings.ports.etcd_members >= 3:
        return settings
    ports = cluster_ports(3, 3)
    return replace(settings, state_dir=state_dir, ports=ports, topic_replication=3)


def run_drill(
    fault: str,
    settings: Settings,
    vehicles: int = 1_000,
    seconds: float = 36.0,
    session: Mapping[str, str] | None = None,
    prometheus: bool = False,
) -> dict[str, Any]:
    """`session`: the workers' group session variables (`SESSION`'s), over the environment's. With
    `prometheus`, Debian's Prometheus scrapes the workers and evaluates corridor's alert rules; the
    row says which alerts fired, how long after the fault began, and when they resolved."""
    if prometheus:
        prometheus_binary()
    if fault not in FAULTS:
        raise ConfigError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")
    spec = FAULTS[fault]
    if (why := spec.unavailable()) is not None:
        raise ConfigError(why)
    corridor = settings.corridor()
    # The workers stop (and a drill's small disk is unmounted) before their directory is deleted.
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as cleanup:
        if spec.cluster:
            settings = _cluster_settings(settings, Path(tmp) / "cluster")
        topics = Topics(regions=len(corridor.regions), prefix=scratch_prefix("drill"),
                        replication=settings.topic_replication)  # fmt: skip
        app = app_id(topics.prefix)
        stack = Stack(settings, attached=True, mqtt=spec.radio)
        cleanup.callback(stack.stop_started)
        stack.up()
        declare(settings, topics)
        cleanup.enter_context(owned(settings, "drill", topics.prefix))  # its topics, group, etcd keys
        defaults = CLUSTER_SESSION if spec.cluster else SESSION
        asked = {**{k: v for k, v in os.environ.items() if k in defaults}, **(session or {})}
        env = worker_env(settings, topics.prefix, {**defaults, **asked})
        extra = spec.setup(Path(tmp) / "w1", cleanup) if spec.setup is not None else {}
        workers = [TowerProcess({**env, **(extra if i else {})}, Path(tmp) / f"w{i}", Path(tmp) / f"w{i}.log",
                                name=f"tower worker {i}", switches=True) for i in range(2)]  # fmt: skip
        for w in workers:
            cleanup.callback(w.stop)
            w.start()
        wait_for_assignment(workers, topics.regions)
        d = Drill(settings, stack, topics, app, workers, vehicles=vehicles)
        watch = _watch_alerts(d, Path(tmp) / "prometheus", cleanup) if prometheus else None
        if spec.radio:
            host, port = settings.mqtt_address
            d.gateway = GatewayProcess({**env, "MQTT_URL": f"mqtt://{host}:{port}"}, Path(tmp) / "gateway.json",
                                       Path(tmp) / "gateway.log")  # fmt: skip
            cleanup.callback(d.gateway.stop)
            d.gateway.start().wait_ready()
        fleet = Fleet(corridor, FleetConfig(vehicles=vehicles, seed=17), start_ms=int(time.time() * 1000))
        d.fleet = fleet
        _standing_hazards(d, fleet)
        if spec.hazards:
            d.hazards = HostileSender(settings.kafka(Role.ADMIN), corridor, topics, None, None, 0.0,
                                      where=d.ahead_of_a_vehicle,
                                      avoid_km=tuple(o.km for o in fleet.obstacles)).start()  # fmt: skip
            cleanup.callback(d.hazards.stop, 0.0)
        seconds = spec.seconds or seconds
        if watch is not None and seconds < ALERTED_DRILL_S:
            d.note(0, f"traffic lengthened to {ALERTED_DRILL_S:.0f} s: the fault outlasts the alert rules' `for`")
            seconds = ALERTED_DRILL_S
        pending = [(seconds * spec.start_at, spec.start), *([(seconds * spec.end_at, spec.end)] if spec.end else [])]

        def due(sim_s: float) -> None:
            while pending and pending[0][0] <= sim_s:
                _, step = pending.pop(0)
                if step is spec.start:
                    d.fault_start_wall, d.fault_start_ms = time.monotonic(), int(time.time() * 1000)
                step(d, sim_s)
                if step is spec.start and spec.takeover:
                    d.watch_takeover()
                if step is spec.end or spec.end is None:
                    d.fault_end_wall, d.fault_end_ms = time.monotonic(), int(time.time() * 1000)

        sink = TelemetrySink(settings.kafka(Role.VEHICLE), delivery_timeout_s=120)
        cleanup.callback(sink.close)  # before the broker stops, or its producer reconnects to nothing

        def on_tick(s: Any) -> None:
            d.observe()
            if watch is not None:
                watch.sample()

        stats = drive(fleet, sink, topics, DriveConfig(hz=1, duration_s=seconds, speedup=1),
                      on_tick=on_tick, before_send=due)  # fmt: skip
        d.traffic_end_wall = time.monotonic()
        for thread in d.waiting:
            thread.join(120)
        if d.hazards is not None:  # the last hazard's advice is heard before the listener stops
            d.hazards.stop()
        if watch is not None:  # what fired resolves once the fault is over: give it the rules' `for`
            poll(watch.all_resolved, ALERT_RESOLVE_S, interval=0.5)
        changelog = f"{app}-vehicles-changelog"

        def tables() -> dict[tuple[int, str], int]:
            return latest_stored(latest_per_key(settings.kafka(Role.ADMIN), changelog, topics.regions))

        _settle(d, fleet)
        changed_after = None
        if spec.after is not None:
            before = tables()
            spec.after(d, fleet.t)
            _settle(d, fleet)
            after = tables()
            changed_after = sum(1 for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        sent = latest_sent(read_all(settings.kafka(Role.ADMIN), topics.telemetry, topics.regions))
        letters, reasons = dead_letters(settings.kafka(Role.ADMIN), topics)
        # departed vehicles whose tombstones the towers may have pruned by now
        horizon_ms = int(TowerConfig().tombstone_horizon_s * 1000)
        result = account(sent, tables(), latest_rejected(letters), pack(int(time.time() * 1000) - horizon_ms, 0))
        in_topic = sum(end_offsets(settings.kafka(Role.ADMIN), topics.telemetry, topics.regions))
        advisories = _advisories(d)
        processed = sum(d.counts.values())
        crashed = [w.name for w in d.workers if not w.alive and fault not in ("worker-kill", "full-disk")]
        if not settings.kafka_external:  # a node the fault stopped was started again
            crashed += [b.name for b in stack.brokers if b.process.running_pid() is None]
        if not settings.etcd_external:
            crashed += [e.name for e in stack.etcds if e.process.running_pid() is None]
        if d.gateway is not None and not d.gateway_survived:
            crashed.append("gateway")
        return {
            **(spec.report(d) if spec.report is not None else {}),
            **(
                {"alerts": {**watch.report(d.fault_start_wall, d.fault_end_wall), "expected": list(spec.alerts)}}
                if watch is not None
                else {}
            ),
            # processes the drill did not stop on purpose that are gone: a drill with any is not green
            "crashed": crashed,
            "fault": fault,
            "what": spec.what,
            "events": d.events,
            # drive() raises unless every record was acknowledged
            "updates_acknowledged": stats.updates + d.side_updates,
            "records_in_topic": in_topic,
            "vehicles_accounted": result.acknowledged,
            "kept": result.kept,
            "superseded": result.superseded,
            "lost": result.lost,
            "rejected": result.rejected,  # refused with a reason: in the dead-letter topic
            "dead_letters": reasons,
            # the towers' own counters, summed over every worker process (advisories, stale triggers,
            # failed table writes, dead letters of every topic)
            "tower_counts": _summed(d.tallies.values()),
            "lost_examples": [f"{r}:{v}" for r, v in result.lost_examples],
            # advisories decided by the towers (summed over every worker process), acknowledged by the
            # broker, in the topic, and lost: given up on, or never acknowledged by a surviving worker
            "advisories": advisories,
            # how far each worker process found its host's clock from the vehicles' (last seen), s
            "clock_offsets_s": sorted(round(ms / 1000, 1) for ms in d.clock_offsets.values()),
            # merged a second time: after a crash, from the last committed offset; in a replay, all of it
            "updates_processed_again": max(0, processed - stats.updates - d.side_updates),
            "recovery_s": _recovery_s(d, spec.synced),
            "served_again_s": _served_again_s(d),
            "max_stale_s": _worst_s(d, lambda x: x.stale_ms),
            "max_stale_of": _stalest(d),
            "max_behind_s": _worst_s(d, lambda x: x.behind_ms),
            # the longest any worker went without committing its state to etcd, from the fault on
            "max_etcd_age_s": _worst_s(d, lambda x: x.etcd_age_ms),
            "cluster": {
                "brokers": len(stack.brokers),
                "etcd_members": len(stack.etcds),
                "replication": topics.replication,
            }
            if spec.cluster
            else None,
            # for a fault after the traffic (a replay): table entries it changed, which must be none
            "entries_changed_after_traffic": changed_after,
        }
