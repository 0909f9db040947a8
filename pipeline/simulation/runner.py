"""One simulation run: stack, topics, tower workers, the fleet, the scenario's events, the report.

Everything this starts, it stops: on success, on error and on Ctrl-C (the report is then marked
partial). Tower workers get a per-run app id, so a run never resumes an older run's consumer group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from opentelemetry.trace import SpanKind

from pipeline.admin import declare, end_offsets, start_group_at_end
from pipeline.analytics.report import analytics_summary, draw_heatmap, draw_travel_times
from pipeline.analytics.segments import WINDOW_MS
from pipeline.analytics.stats_topic import read_stats
from pipeline.consistency.table import staleness_table
from pipeline.leftovers import owned
from pipeline.monitoring.config import ANALYTICS_JOB, FLEET_JOB, GATEWAYS_JOB
from pipeline.monitoring.prometheus import PrometheusProcess, prometheus_binary
from pipeline.monitoring.questions import run_questions
from pipeline.monitoring.traces import hop_breakdown
from pipeline.ports import free_ports
from pipeline.schema_registry import register_schemas, use_wire
from pipeline.shared.access import Kafka, Role, client_conf
from pipeline.shared.advisory_signing import new_signing_key, public_pem
from pipeline.shared.config import Settings
from pipeline.shared.corridor import Corridor
from pipeline.shared.crdt.hlc import HybridClock, unpack
from pipeline.shared.errors import ConfigError, StackError
from pipeline.shared.hazards import hazard_record
from pipeline.shared.messages import CODEC, HAZARD
from pipeline.shared.radio_access import MQTT_ADMIN
from pipeline.shared.radio_topics import RadioTopics
from pipeline.shared.stats import percentile
from pipeline.shared.topics import Topics
from pipeline.shared.tracing import REPORT_SPAN, FileSpanExporter, Tracing, read_spans
from pipeline.shared.waiting import poll
from pipeline.simulation.fcd_export import write_fcd
from pipeline.simulation.fleet_metrics import FleetFigures, FleetMetricsServer
from pipeline.simulation.recorder import Recorder
from pipeline.simulation.report import hazard_summary, write_report
from pipeline.simulation.scenario import Event, Scenario
from pipeline.simulation.slow_advice import late_spells
from pipeline.stack import Stack
from pipeline.stack.cpu_use import CpuByPart
from pipeline.stack.process import die_with_parent, is_our_child
from pipeline.workers import (
    AnalyticsProcess,
    DashboardProcess,
    GatewayProcess,
    TowerProcess,
    wait_for_assignment,
    worker_env,
)
from producers.drive import DriveConfig, DriveStats, WireFormat, drive, event_clock_start
from producers.encoding import vehicle_id
from producers.enrolment import Enrolment
from producers.fleet import Fleet, FleetConfig, Obstacle
from producers.hazard_driving import passing_speed_mps
from producers.listener import AdvisoryListener
from producers.radio import RadioLink, RadioListener
from producers.sink import TelemetrySink, Uplink
from producers.sumo.build import build_network, require_sumo
from producers.sumo.traffic import SumoFleet, SumoOptions
from producers.sumo.user_scenario import SumoCfgFleet
from towers.config import app_id

__all__ = ["BehindSampler", "RunResult", "behind_summary", "cpu_summary", "run_scenario"]

RADIO_CONNECTIONS = 16  # MQTT connections the simulated fleet's radios share
CONVERGE_BOUND_S = 10.0  # the design's bound for important data to be consistent again


@dataclass
class RunResult:
    summary: dict[str, Any]
    paths: dict[str, Path]


@dataclass
class _Run:
    scenario: Scenario
    settings: Settings
    topics: Topics
    stack: Stack
    workers: list[TowerProcess]
    fleet: Fleet
    recorder: Recorder
    producer: Producer
    radio: RadioLink | None = None  # vehicles report hazards over MQTT when they talk MQTT
    clock: HybridClock = field(default_factory=HybridClock)
    pending: list[Event] = field(default_factory=list)
    played: list[str] = field(default_factory=list)
    obstacles: dict[str, Obstacle] = field(default_factory=dict)
    etcd_back_at: float | None = None
    etcd_attached: bool = True  # how the stopped etcd had been started: restarted the same way
    hazard_hlcs: set[int] = field(default_factory=set)
    killed: set[int] = field(default_factory=set)  # workers the scenario killed and has not restarted
    tracing: Tracing = field(default_factory=lambda: Tracing("corridor-fleet"))  # the hazard reports' traces

    def close(self) -> None:
        """Let the hazard producer go before the broker does (see `TelemetrySink.close`)."""
        if hasattr(self, "producer"):
            del self.producer

    def play(self, sim_s: float) -> None:
        """Fire every event due at `sim_s` (called as the fleet reaches it, before its telemetry goes)."""
        while self.pending and self.pending[0].at_s <= sim_s:
            ev = self.pending.pop(0)
            self.played.append(f"{sim_s:6.0f} s  {self._fire(ev, sim_s)}")
        if self.etcd_back_at is not None and sim_s >= self.etcd_back_at:
            self.stack.etcd.start(attached=self.etcd_attached)
            self.etcd_back_at = None
            self.played.append(f"{sim_s:6.0f} s  etcd restarted")

    def _fire(self, ev: Event, sim_s: float) -> str:
        a = ev.args
        if ev.kind in ("hazard", "clear"):
            hid = a["id"]
            if ev.kind == "hazard":
                nb = None if a["direction"] == "BOTH" else a["direction"] == "NORTHBOUND"
                lanes = tuple(a.get("lanes", ()))
                # in the lanes it closes, a wall that drivers change lanes to pass; across all of them,
                # drivers squeeze by (or go through ice or a work zone) at the speed it allows
                pass_speed = 0.0 if lanes else passing_speed_mps(a["type"], a["severity"])
                ob = Obstacle(a["km"], nb, sim_s, float("inf"), pass_speed, lanes=lanes or None)
                self.obstacles[hid] = ob
                self.fleet.obstacles.append(ob)
                self.recorder.hazard_on(hid, ob, self.fleet)
                rec = hazard_record(a["km"], a["type"], a["direction"], a["severity"], self._event_ms(sim_s), 600,
                                    hid, "scenario", clock=self.clock, corridor=self.fleet.corridor,
                                    lanes_blocked=lanes, sub_cause=a.get("sub_cause", 0),
                                    relevance_m=a.get("relevance_m", 0))  # fmt: skip
                closed = f", lane(s) {', '.join(map(str, lanes))} closed" if lanes else ""
                text = f"hazard {hid}: {a['type']} at km {a['km']} ({a['direction']}{closed})"
            else:
                ob = self.obstacles[hid]
                ob.end_s = sim_s
                self.recorder.hazard_off(hid, sim_s)
                direction = "BOTH" if ob.northbound is None else "NORTHBOUND" if ob.northbound else "SOUTHBOUND"
                rec = hazard_record(ob.km, "OBSTACLE", direction, 1, self._event_ms(sim_s), 600, hid, "scenario",
                                    cancelled=True, clock=self.clock, corridor=self.fleet.corridor)  # fmt: skip
                text = f"hazard {hid} cleared"
            self.hazard_hlcs.add(rec["hlc"])
            with self.tracing.span(REPORT_SPAN, kind=SpanKind.PRODUCER, hazard=hid, region=rec["region_id"]) as span:
                carried = Tracing.headers(span)
                if self.radio is not None:
                    self.radio.report_hazard(rec["region_id"], CODEC.encode(HAZARD, rec), carried)
                    return f"{text}, over MQTT"
                self.producer.produce(self.topics.hazards, CODEC.encode(HAZARD, rec), str(rec["region_id"]).encode(),
                                      rec["region_id"], headers=carried or None)  # fmt: skip
            self.producer.flush(10)
            return text
        if ev.kind == "kill_worker":
            self.workers[a["worker"]].kill()
            self.killed.add(a["worker"])
            return f"tower worker {a['worker']} killed (SIGKILL)"
        if ev.kind == "restart_worker":
            self.workers[a["worker"]].start()
            self.killed.discard(a["worker"])
            return f"tower worker {a['worker']} restarted"
        if self.settings.etcd_external:
            return "stop_etcd skipped: etcd is external"
        pid = self.stack.etcd.process.running_pid()
        self.etcd_attached = pid is None or is_our_child(pid)
        self.stack.etcd.stop()
        self.etcd_back_at = sim_s + a["seconds"]
        return f"etcd stopped for {a['seconds']:.0f} s"

    def _event_ms(self, sim_s: float) -> int:
        return self.fleet.start_ms + int(sim_s * 1000)


#: event-time lateness the run's analytics job accepts, and how long at most the run waits at its end
#: for the job to catch up (wall seconds): a busy run can outpace Spark on two shared cores
ANALYTICS_WATERMARK_S = 10
ANALYTICS_CATCH_UP_S = 240.0


def _wait_for_stats(spark: AnalyticsProcess, admin: Kafka, topic: str, start_ms: int, last_ms: int) -> list[Any]:
    got: list[Any] = []

    def caught_up() -> bool:
        got[:] = [s for s in read_stats(admin, topic) if s["window_start"] >= start_ms]
        return not spark.alive or max((s["window_end"] for s in got), default=0) >= last_ms

    poll(caught_up, ANALYTICS_CATCH_UP_S, interval=2.0)
    return got


def _dead_letter_count(bootstrap: Kafka, topic: str, partitions: int) -> int:
    return sum(end_offsets(bootstrap, topic, partitions))


def _converged(pages: list[dict[str, Any]], regions: int) -> bool:
    """Every live worker's view of every region's member count agrees with the region's owner."""
    owners = {}
    for page in pages:
        for r, n in page.get("members", {}).items():
            owners[r] = n
    if len(owners) < regions:
        return False
    return all(page.get("view_members", {}).get(r) == n for page in pages for r, n in owners.items())


@dataclass
class _Parts:
    """What a run started, for the phases after the start: driving, settling, the report."""

    scenario: Scenario
    settings: Settings
    corridor: Corridor
    topics: Topics
    stack: Stack
    admin: Kafka
    dlq_before: int
    env: dict[str, str]
    towers_app: str
    workdir: Path
    external_towers: bool
    workers: list[TowerProcess] = field(default_factory=list)
    spark: AnalyticsProcess | None = None
    gateway: GatewayProcess | None = None
    link: RadioLink | None = None


def run_scenario(
    scenario: Scenario,
    settings: Settings,
    out_dir: Path,
    on_tick: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    external_towers: bool = False,
    keep_state: bool = False,
    web: tuple[str, int] | None = None,
    fcd: bool = False,
    on_web: Callable[[str], None] = lambda url: None,
    prometheus: bool = False,
    on_prometheus: Callable[[str], None] = lambda url: None,
    traces: bool = False,
) -> RunResult:
    """With `external_towers` the run drives the fleet and plays its events against towers that
    already serve the topics (a Kubernetes StatefulSet, say) instead of starting its own. Unless
    `keep_state`, the run's towers leave nothing behind: their changelog topics, consumer group,
    etcd keys and data directories are deleted at the end (the shared topics stay). With `prometheus`,
    Debian's Prometheus scrapes the run's workers and fleet, and the report adds what it answers. With
    `traces`, each scenario hazard is traced from its report to every advisory it causes, and the
    report breaks that latency down hop by hop."""
    if prometheus:
        prometheus_binary()  # missing: said before anything starts
    if scenario.traffic == "sumo":
        require_sumo()
    if external_towers:
        needs_local = sorted({e.kind for e in scenario.events if e.kind in ("kill_worker", "restart_worker")})
        if needs_local:
            raise ConfigError(f"scenario {scenario.name!r} has {needs_local} events: they need its own tower workers")
    t_wall = time.monotonic()
    with contextlib.ExitStack() as cleanup:
        parts = _start_stack(scenario, settings, cleanup, external_towers, keep_state)
        spans = parts.workdir / "traces"
        if traces:  # the workers write their spans beside the run's own
            parts.env["CORRIDOR_TRACES"] = f"file:{spans}"
        if not external_towers:
            _start_towers(parts, cleanup)
        if web is not None:  # the live page, from the moment there is something to show
            page = DashboardProcess(parts.env, parts.workdir / "dashboard.log")
            cleanup.callback(page.stop)
            on_web(page.start(*web).wait_ready())
        wire = WireFormat.RECORDS if scenario.radio == "mqtt" else WireFormat.FRAMES  # over MQTT, one per update
        driving = DriveConfig(hz=scenario.hz, duration_s=scenario.duration_s, speedup=scenario.speedup, wire=wire,
                              cam=scenario.cam, vehicle_hazards=scenario.vehicle_hazards)  # fmt: skip
        fleet = _fleet(parts, scenario, driving, out_dir if fcd else None, cleanup)
        if scenario.analytics:  # from the run's first record: the job reads from this wall time on
            _start_analytics(parts, out_dir, cleanup, prometheus)
        if scenario.radio == "mqtt":
            listener: AdvisoryListener = _start_radio(parts, cleanup, prometheus)
        else:
            listener = _advisory_listener(parts, cleanup)
        recorder = Recorder(parts.topics.regions, interchanges_km=parts.corridor.route.interchanges_km)
        # held by the run alone, which lets it go before the broker stops (a local name would keep it
        # to the end of this function, reconnecting to a broker that has gone)
        run = _Run(scenario, settings, parts.topics, parts.stack, parts.workers, fleet, recorder,
                   Producer(client_conf(settings.kafka(Role.VEHICLE), {"enable.idempotence": True, "linger.ms": 0,
                                                                       "log_level": 3})),
                   radio=parts.link, pending=list(scenario.events))  # fmt: skip
        cleanup.callback(run.close)  # before the broker stops (callbacks run last-registered first)
        listener.hazard_triggers = run.hazard_hlcs  # the advice a report triggers is timed apart
        if traces:
            run.tracing = listener.tracing = Tracing("corridor-fleet", FileSpanExporter(spans))
        sink: TelemetrySink | RadioLink
        if parts.link is not None:
            sink = parts.link
        else:
            sink = TelemetrySink(settings.kafka(Role.VEHICLE))
            cleanup.callback(sink.close)
        behind = BehindSampler(parts.workers)
        cpu = CpuByPart()
        cpu.sample(_cpu_parts(parts))
        last = [DriveStats()]
        prom = None
        if prometheus:
            prom = _start_prometheus(parts, lambda: _fleet_figures(fleet, listener, run, last[0]), cleanup)
            on_prometheus(prom.url)

        def tick(s: DriveStats) -> None:
            last[0] = s
            if prom is not None:
                prom.set_towers([w.port for w in parts.workers])
            if parts.link is not None and parts.gateway is not None:
                parts.link.stats.forwarded = int(parts.gateway.stats().get("updates_forwarded", 0))
            recorder.tick(fleet)
            behind.sample(fleet.t)
            if time.monotonic() - cpu.last_at >= 1.0:
                cpu.sample(_cpu_parts(parts))
            if on_tick is not None:
                on_tick({"stats": s, "fleet": fleet, "sink": sink, "listener": listener, "workers": parts.workers,
                         "run": run, "prometheus": prom})  # fmt: skip

        stats, partial = DriveStats(), False
        try:
            stats = drive(fleet, sink, parts.topics, driving, listener, on_tick=tick, should_stop=should_stop,
                          before_send=run.play)  # fmt: skip
            partial = should_stop()
        except KeyboardInterrupt:
            partial = True
            with contextlib.suppress(Exception):
                sink.flush(10)
        if run.etcd_back_at is not None:  # never leave etcd stopped behind the run
            parts.stack.etcd.start(attached=run.etcd_attached)
        cpu.sample(_cpu_parts(parts))
        summary = _settled_summary(parts, run, stats, sink, listener, partial, time.monotonic() - t_wall)
        summary["cpu"] = cpu_summary(cpu.seconds(), cpu.wall_s)
        summary["run"]["problems"] = _problems(parts, run, summary)
        summary["towers_behind_ms"] = behind.summary()
        if prom is not None:
            samples = {"all": listener.stats.latencies_ms, "hazard": _hazard_latencies(run, listener)}
            summary["prometheus"] = _asked(prom, summary, samples, time.monotonic() - t_wall)
        if traces:
            summary["traces"] = _traced(run.tracing, spans)
        corridor_stats = _analytics(parts, fleet, summary)
        paths = write_report(out_dir, summary, recorder, listener.stats.latencies_ms, _hazard_latencies(run, listener))
        if parts.spark is not None:
            paths["travel_times"] = out_dir / "travel_times.png"
            paths["heatmap"] = out_dir / "speed_heatmap.png"
            draw_travel_times(corridor_stats, fleet.start_ms, paths["travel_times"])
            draw_heatmap(corridor_stats, fleet.start_ms, parts.corridor.route.length_km, paths["heatmap"])
        if fcd:
            paths["fcd"] = out_dir / "fcd.xml"
            if not isinstance(fleet, SumoFleet):  # SUMO writes its own, as it drove them
                write_fcd(recorder.trajectories(), parts.corridor, paths["fcd"])
    return RunResult(summary, paths)


def _fleet(
    parts: _Parts, scenario: Scenario, driving: DriveConfig, fcd_dir: Path | None, cleanup: contextlib.ExitStack
) -> Fleet:
    """The vehicles: corridor's own fleet model, SUMO's on the corridor's network (`traffic: sumo`), or
    a user's own SUMO scenario (`sumo_cfg`); SUMO then writes the run's FCD itself."""
    config = FleetConfig(vehicles=scenario.vehicles, seed=scenario.seed, obeys=scenario.obey_advice)
    start_ms = event_clock_start(driving)
    if scenario.traffic != "sumo":
        return Fleet(parts.corridor, config, start_ms=start_ms)
    fcd_path = None
    if fcd_dir is not None:
        fcd_dir.mkdir(parents=True, exist_ok=True)
        fcd_path = fcd_dir / "fcd.xml"
    options = SumoOptions(step_s=driving.tick_s, fcd_path=fcd_path)
    fleet: SumoFleet
    if scenario.sumo_cfg is not None:
        fleet = SumoCfgFleet(parts.corridor, config, Path(scenario.sumo_cfg), options, start_ms=start_ms)
    else:
        network = build_network(parts.corridor.route, parts.settings.cache_dir, die_with_parent(signal.SIGKILL))
        fleet = SumoFleet(parts.corridor, config, network, options, start_ms=start_ms, workdir=parts.workdir / "sumo")
    cleanup.callback(fleet.close)
    return fleet


def _start_stack(scenario: Scenario, settings: Settings, cleanup: contextlib.ExitStack, external_towers: bool,
                 keep_state: bool) -> _Parts:  # fmt: skip
    """The stack (what is not the user's own), the topics, and where the run keeps its towers' state:
    unless kept, deleted however the run ends, so a later run picks nothing up."""
    corridor = settings.corridor()
    topics = settings.topics(len(corridor.regions))
    run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    radio = scenario.radio == "mqtt"
    # on a secure broker this run starts, its fleet's vehicles (those it starts with and, at the rate
    # vehicles replace those leaving, those it is likely to meet) are enrolled from the start
    fleet_ids = tuple(vehicle_id(i) for i in range(int(scenario.vehicles * 1.5) + 100)) if radio else ()
    confluent = settings.wire == "confluent"
    own_registry = confluent and not settings.registry_external  # a user's own is waited for by use_wire
    stack = Stack(settings, attached=True, mqtt=radio, vehicles=fleet_ids, registry=own_registry)
    cleanup.callback(stack.stop_started)
    stack.up()
    if own_registry:
        register_schemas(settings)  # the registry is the run's own: its schemas go in first
    use_wire(settings)
    admin = settings.kafka(Role.ADMIN)  # its credentials exist once a secure stack is up
    declare(settings, topics)
    if not external_towers:
        settings = _signing_keys(settings, settings.state_dir.resolve() / "runs" / run_id / "signing")
    env = worker_env(settings, extra={"CORRIDOR_TOWER_APP_SUFFIX": f"-{run_id}",
                                      "CORRIDOR_TOWER_OFFSET_RESET": "earliest"})  # fmt: skip
    parts = _Parts(scenario, settings, corridor, topics, stack, admin,
                   _dead_letter_count(admin, topics.dead_letter, topics.regions), env,
                   app_id(settings.topic_prefix, f"-{run_id}"), settings.state_dir.resolve() / "runs" / run_id,
                   external_towers)  # fmt: skip
    if not external_towers and not keep_state:
        # After the workers stop (callbacks run last-registered first): its changelogs, group, etcd
        # keys and worker data, deleted however the run ends.
        cleanup.enter_context(owned(settings, "run", parts.towers_app, (parts.workdir,)))
    return parts


def _signing_keys(settings: Settings, folder: Path) -> Settings:
    """The settings with a tower signing key, and the public key its vehicles trust: the stack's, or,
    on an open stack, a pair made for this run (in its folder, deleted with it)."""
    if settings.signer() is not None:
        return settings
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    private, public = folder / "tower-signing-key.pem", folder / "advisory-keys.pem"
    pem = new_signing_key()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public.write_bytes(public_pem(pem))
    return replace(settings, signing_key=private, advisory_keys=public)


def _start_towers(parts: _Parts, cleanup: contextlib.ExitStack) -> None:
    """The run's own tower workers, once each region has one. They start at the current end of the
    topics (older runs' records are not theirs), as committed offsets: a region whose worker dies
    before its first commit is resumed from there by the next owner, so a hazard reported meanwhile
    is not skipped."""
    topics = parts.topics
    start_group_at_end(parts.admin, parts.towers_app, [topics.telemetry, topics.hazards], topics.regions)
    parts.workers = [TowerProcess(parts.env, parts.workdir / f"worker-{i}", parts.workdir / f"worker-{i}.log",
                                  name=f"tower worker {i}") for i in range(parts.scenario.workers)]  # fmt: skip
    for w in parts.workers:
        cleanup.callback(w.stop)
        w.start()
    wait_for_assignment(parts.workers, topics.regions)


def _start_prometheus(parts: _Parts, figures: Callable[[], FleetFigures],
                      cleanup: contextlib.ExitStack) -> PrometheusProcess:  # fmt: skip
    """The fleet's /metrics page, then Prometheus scraping it and the run's workers."""
    page = FleetMetricsServer(free_ports(1)[0], figures)
    cleanup.callback(page.close)
    static = {FLEET_JOB: [page.port]}
    if parts.gateway is not None and parts.gateway.metrics_port is not None:
        static[GATEWAYS_JOB] = [parts.gateway.metrics_port]
    if parts.spark is not None and parts.spark.metrics_port is not None:
        static[ANALYTICS_JOB] = [parts.spark.metrics_port]
    prom = PrometheusProcess(parts.workdir / "prometheus", static)
    cleanup.callback(prom.stop)
    return prom.start([w.port for w in parts.workers])


def _fleet_figures(fleet: Fleet, listener: AdvisoryListener, run: _Run, stats: DriveStats) -> FleetFigures:
    ls = listener.stats
    return FleetFigures(vehicles=fleet.entered - fleet.left, simulated_s=fleet.t, behind_schedule_s=stats.lag_s,
                        updates_sent=stats.updates, hazard_reports=len(run.hazard_hlcs),
                        advisories=dict(ls.by_action), stale=ls.stale, refused=ls.refused,
                        forged=ls.forged, undecodable=ls.undecodable, latency=ls.latency,
                        hazard_latency=ls.hazard_latency,
                        radio_published=run.radio.stats.published if run.radio is not None else None)  # fmt: skip


def _asked(prom: PrometheusProcess, summary: dict[str, Any], samples_ms: dict[str, list[float]],
           seconds: float) -> dict[str, Any]:  # fmt: skip
    """What Prometheus answers about the run, or why it could not: a Prometheus that died is said."""
    if not prom.alive:
        return {"url": prom.url, "error": f"Prometheus exited during the run; its log: {prom.log}"}
    try:
        return run_questions(prom, summary["run"]["advisories_received"], samples_ms, seconds)
    except StackError as e:
        return {"url": prom.url, "error": str(e)}


def _traced(tracing: Tracing, spans: Path) -> dict[str, Any]:
    """The hops of the hazard path, once every process's spans are written (the workers write theirs
    every half second: until their count stops growing)."""
    tracing.close()
    counts: list[int] = []

    def settled() -> bool:
        counts.append(len(read_spans(spans)))
        return len(counts) >= 3 and counts[-1] == counts[-3]

    poll(settled, 10.0, interval=0.5)
    return hop_breakdown(read_spans(spans))


def _start_analytics(parts: _Parts, out_dir: Path, cleanup: contextlib.ExitStack, metrics: bool) -> None:
    shutil.rmtree(out_dir / "analytics", ignore_errors=True)  # an earlier run's, under the same name
    spark = AnalyticsProcess({**parts.env, "CORRIDOR_TOPIC_PREFIX": parts.settings.topic_prefix},
                             out_dir / "analytics", parts.workdir / "analytics-checkpoint",
                             parts.workdir / "analytics.log",
                             metrics_port=free_ports(1)[0] if metrics else None)  # fmt: skip
    cleanup.callback(spark.stop)
    scenario = parts.scenario
    spark.start(int(time.time() * 1000) - 1000, 1.0 if scenario.cam else scenario.hz, ANALYTICS_WATERMARK_S)
    spark.wait_ready()
    parts.spark = spark


def _start_radio(parts: _Parts, cleanup: contextlib.ExitStack, metrics: bool) -> RadioListener:
    """The tower gateway (MQTT ↔ Kafka) before the vehicles' radios, so no update finds no one."""
    mqtt_host, mqtt_port = parts.settings.mqtt_address
    # a user's broker by its URL; the run's own by its port, so that the gateway finds it secure when it is
    where = ({"MQTT_URL": f"mqtt://{mqtt_host}:{mqtt_port}"} if parts.settings.mqtt_external else
             {"CORRIDOR_MQTT_PORT": str(mqtt_port)})  # fmt: skip
    gateway = GatewayProcess({**parts.env, **where},
                             parts.workdir / "gateway.json", parts.workdir / "gateway.log",
                             metrics_port=free_ports(1)[0] if metrics else None)  # fmt: skip
    cleanup.callback(gateway.stop)
    gateway.start().wait_ready()
    started = parts.stack.mqtt in parts.stack.started  # then with the fleet enrolled in its starting file
    link = _radio_link(parts.settings, RadioTopics(parts.topics.regions), parts.stack.mqtt.vehicles if started else ())
    cleanup.callback(link.close)
    parts.gateway, parts.link = gateway, link
    return RadioListener(link, keep_history=True, verifier=parts.settings.verifier())


def _radio_link(settings: Settings, topics: RadioTopics, enrolled: tuple[str, ...]) -> RadioLink:
    """The fleet's radios: sharing a few anonymous connections, or on a secure broker each vehicle
    on its own as itself, enrolled by the run (the holder of the fleet's provisioning key) unless
    the broker knew it from its start."""
    access = settings.mqtt()
    if not access.secure:
        return RadioLink(access, topics, connections=RADIO_CONNECTIONS)
    enrolment = Enrolment(settings.mqtt(MQTT_ADMIN), topics, settings.mqtt_vehicle_key(), enrolled=enrolled)
    return RadioLink(access, topics, identities=(enrolment, settings.mqtt_vehicle_key()))


def _advisory_listener(parts: _Parts, cleanup: contextlib.ExitStack) -> AdvisoryListener:
    listener = AdvisoryListener(parts.settings.kafka(Role.VEHICLE), parts.topics.advisories, parts.topics.regions,
                                keep_history=True, verifier=parts.settings.verifier())  # fmt: skip
    cleanup.callback(listener.close)
    return listener


def _settled_summary(parts: _Parts, run: _Run, stats: DriveStats, sink: TelemetrySink | RadioLink,
                     listener: AdvisoryListener, partial: bool, wall_s: float) -> dict[str, Any]:  # fmt: skip
    """The run's summary once its towers have heard each other, within the bound the design gives
    important data (a sync round a second); it says how long that took, or that it did not."""
    workers, topics = parts.workers, parts.topics
    pages: list[dict[str, Any]] = []

    def heard() -> bool:
        pages[:] = [p for w in workers if w.alive and (p := w.page()) is not None]
        return parts.external_towers or _converged(pages, topics.regions)

    converged_after_s = poll(heard, CONVERGE_BOUND_S, interval=0.25)
    dead = _dead_letter_count(parts.admin, topics.dead_letter, topics.regions) - parts.dlq_before
    summary = _summary(parts.scenario, run, stats, sink, listener, pages, dead, partial, wall_s, parts.towers_app)
    staleness = [p for w in workers if w.alive and (p := w.page("staleness")) is not None]
    if staleness:
        summary["consistency"] = {"workers": len(staleness), "rows": staleness_table(staleness)}
    summary["run"]["converged_after_s"] = converged_after_s
    link, gateway = parts.link, parts.gateway
    if link is not None and gateway is not None:
        ended = time.time()  # the gateway writes its counters once a second: a fresh copy
        poll(lambda: gateway.stats_file.stat().st_mtime > ended if gateway.stats_file.exists() else False, 5.0)
        summary["radio"] = radio_summary(link, gateway.stats(), listener.stats.latencies_ms)
    if parts.external_towers:
        summary["run"]["towers_converged"] = None  # their pages are the cluster's, not ours to read
    return summary


def _analytics(parts: _Parts, fleet: Fleet, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The analytics job's windows, once it has caught up: every window the watermark can close is
    out (or it gave up); its failure said in the report, not hidden behind an empty section."""
    spark = parts.spark
    if spark is None:
        return []
    last_closable = fleet.start_ms + int(fleet.t * 1000) - ANALYTICS_WATERMARK_S * 1000 - WINDOW_MS
    corridor_stats = _wait_for_stats(spark, parts.admin, parts.topics.corridor_stats, fleet.start_ms, last_closable)
    failed = not spark.alive
    spark.stop()
    summary["analytics"] = analytics_summary(corridor_stats, fleet.start_ms)
    if failed:
        summary["analytics"]["error"] = spark.failure()
    return corridor_stats


def _cpu_parts(parts: _Parts) -> dict[str, list[int | None]]:
    """Each part's processes (their session leaders), as the run knows them now."""
    stack = parts.stack
    return {
        "fleet and run (this process)": [os.getpid()],
        "tower workers": [w.proc.pid for w in parts.workers if w.proc is not None],
        "radio gateway": [parts.gateway.proc.pid] if parts.gateway and parts.gateway.proc else [],
        "Kafka": [b.process.running_pid() for b in stack.brokers],
        "etcd": [e.process.running_pid() for e in stack.etcds],
        "MQTT broker": [stack.mqtt.process.running_pid()] if stack.with_mqtt else [],
        "schema registry": [stack.registry.process.running_pid()] if stack.with_registry else [],
        "Spark": [parts.spark.proc.pid] if parts.spark and parts.spark.proc else [],
    }


def cpu_summary(by_part: dict[str, float], wall_s: float) -> dict[str, Any]:
    """Where the machine's cores went while the fleet drove: a run that needs more cores than the
    machine has cannot keep its schedule, whatever else is tuned."""
    used = sum(by_part.values())
    return {"seconds_by_part": by_part, "wall_s": round(wall_s, 1),
            "cores_used": round(used / wall_s, 2) if wall_s > 0 else None, "cores": os.cpu_count()}  # fmt: skip


def _problems(parts: _Parts, run: _Run, summary: dict[str, Any]) -> list[str]:
    """What kept the corridor from being protected throughout: a part that died (other than a worker
    the scenario killed and left down), a gateway deaf at the end, advice given up on. Empty: green."""
    out = [f"tower worker {i} died during the run" for i, w in enumerate(parts.workers)
           if not w.alive and i not in run.killed]  # fmt: skip
    gateway = parts.gateway
    if gateway is not None:
        if not gateway.alive:
            out.append("the radio gateway died during the run")
        elif gateway.stats().get("mqtt_subscribed") is not True:
            out.append("the radio gateway was deaf at the end: the broker had not granted its subscriptions")
        dropped = summary.get("radio", {}).get("advisories_dropped_by_gateway", 0)
        if dropped:
            out.append(f"the radio gateway gave up on {dropped} advisories (its backlog was full)")
    return out


def radio_summary(link: RadioLink, gateway: dict[str, Any], end_to_end_ms: list[float]) -> dict[str, Any]:
    """The radio link's share of the run: what the vehicles sent and the gateway heard (QoS 0 loss,
    measured, not hidden), and where an advisory's time went. Means add up where percentiles do not:
    the uplink's mean (vehicle → gateway, over every update) and the gateway's (received → in a frame
    to Kafka) taken from the mean trigger → advisory received leave the rest of the way (Kafka, the
    towers, the way back: a traced run splits that for hazards)."""
    sent, heard = link.stats.published, int(gateway.get("received", 0))
    lost = max(0, sent - heard)
    up_mean = float(gateway.get("radio_ms_mean", 0.0))
    held_mean = float(gateway.get("held_ms_mean", 0.0))  # received → produced in a frame
    total_mean = sum(end_to_end_ms) / len(end_to_end_ms) if end_to_end_ms else 0.0
    return {
        "connections": link.connections, "refused_connections": link.stats.refused_connections,
        "subscriptions_refused": link.stats.subscriptions_refused,
        "updates_published": sent, "updates_heard_by_gateway": heard,
        "qos0_lost": lost, "qos0_loss_pct": round(100 * lost / sent, 3) if sent else 0.0,
        "hazards_published_qos1": link.stats.hazards, "gateway_hazards": gateway.get("hazards", 0),
        "gateway_frames": gateway.get("frames", 0), "gateway_dead_letters": gateway.get("dead_letters", {}),
        "advisories_forwarded": gateway.get("advisories_forwarded", 0), "advisory_copies_heard": link.stats.received,
        "advisories_dropped_by_gateway": gateway.get("advisories_dropped", 0),
        "handovers": link.stats.handovers,
        "mqtt_disconnects": link.stats.disconnects + gateway.get("mqtt_disconnects", 0),
        "uplink_ms": {"p50": gateway.get("radio_ms_p50", 0.0), "p99": gateway.get("radio_ms_p99", 0.0),
                      "mean": up_mean},
        "advisory_mean_ms": {"end_to_end": round(total_mean, 1), "uplink": up_mean, "gateway": held_mean,
                             "rest": round(total_mean - up_mean - held_mean, 1)},
    }  # fmt: skip


class BehindSampler:
    """Once a wall second, how far the towers are behind the telemetry (the oldest of their regions'
    newest processed frames): flat when they keep up, growing when they do not."""

    def __init__(self, workers: list[TowerProcess]) -> None:
        self.workers = workers
        self.samples: list[tuple[float, float]] = []  # (simulated s, ms behind)
        self._last = 0.0

    def sample(self, sim_s: float) -> None:
        now = time.monotonic()
        if not self.workers or now - self._last < 1.0:
            return
        self._last = now
        behind = [ms for w in self.workers if w.alive and (p := w.page(timeout=1.0)) is not None
                  for ms in p.get("behind_ms", {}).values()]  # fmt: skip
        if behind:
            self.samples.append((sim_s, float(max(behind))))

    def summary(self) -> dict[str, Any] | None:
        return behind_summary([ms for _, ms in self.samples])


def behind_summary(values: list[float], bound_ms: float = 1_000.0) -> dict[str, Any] | None:
    """Percentiles of the towers' delay, its mean in each half of the run, and whether they kept up:
    p99 within `bound_ms` and no growth from the first half to the second beyond half of it."""
    if not values:
        return None
    half = len(values) // 2
    first = sum(values[:half]) / half if half else values[0]
    second = sum(values[half:]) / (len(values) - half)
    p99 = percentile(values, 99)
    return {"p50": percentile(values, 50), "p99": p99, "max": max(values), "first_half_mean": first,
            "second_half_mean": second, "last": values[-1], "samples": len(values),
            "kept_up": p99 <= bound_ms and second - first <= bound_ms / 2}  # fmt: skip


def _hazard_latencies(run: _Run, listener: AdvisoryListener) -> list[float]:
    """Latency of the advisories a hazard report itself triggered (report sent → vehicle received)."""
    return [a["received_ms"] - unpack(a["trigger_hlc"])[0] for a in listener.stats.history
            if a["trigger_hlc"] in run.hazard_hlcs]  # fmt: skip


def _summary(
    scenario: Scenario,
    run: _Run,
    stats: DriveStats,
    sink: Uplink,
    listener: AdvisoryListener,
    pages: list[dict[str, Any]],
    dead: int,
    partial: bool,
    wall_s: float,
    towers_app: str,
) -> dict[str, Any]:
    history = listener.stats.history
    lat_all = listener.stats.latencies_ms
    lat_hz = _hazard_latencies(run, listener)
    return {
        "scenario": {"name": scenario.name, "description": scenario.description, "vehicles": scenario.vehicles,
                     "hz": "cam" if scenario.cam else scenario.hz, "speedup": scenario.speedup,
                     "duration_s": scenario.duration_s,
                     "workers": scenario.workers},
        "partial": partial,
        "run": {
            "simulated_s": round(run.fleet.t, 1), "wall_s": round(wall_s, 1), "vehicles_target": scenario.vehicles,
            # who moved the vehicles (corridor's fleet model or SUMO), whether they obeyed, collisions SUMO saw
            "traffic": scenario.traffic, "obey_advice": scenario.obey_advice,
            **({"sumo_collisions": run.fleet.collisions} if isinstance(run.fleet, SumoFleet) else {}),
            **({"sumo_cfg": scenario.sumo_cfg, "off_corridor_vehicle_steps": run.fleet.off_corridor,
                "not_carried": run.fleet.not_carried, "hazards_not_placed": run.fleet.hazards_not_placed}
               if isinstance(run.fleet, SumoCfgFleet) else {}),
            "vehicles_entered": run.fleet.entered, "vehicles_left": run.fleet.left,
            "updates_sent": stats.updates, "kafka_records_sent": sink.stats.sent,
            "kafka_records_acked": sink.stats.acked, "updates_per_s": round(stats.updates_per_s, 1),
            # messages a vehicle sent per second on the road: the rate, or what the CAM rules made of it
            "messages_per_vehicle_s": round(stats.messages_per_vehicle_s, 2),
            "behind_schedule_s": round(stats.lag_s, 2),
            "advisories_received": listener.stats.received, "stale_advisories": listener.stats.stale,
            # not signed by a tower the fleet trusts; None: the fleet had no keys to check with
            "forged_advisories": listener.stats.forged if listener.verifier is not None else None,
            # hazards the vehicles raised themselves (queue ends where they stopped), as DENM updates
            "vehicle_hazard_reports": int(stats.extra.get("vehicle_hazards", 0)),
            "lane_changes": run.fleet.lane_changes,
            # advice triggered before the advice a vehicle followed (a tower replaying its backlog)
            "outdated_advice_ignored": run.fleet.outdated_ignored,
            "dead_letters": dead, "towers_app": towers_app,
            "towers_converged": _converged(pages, run.topics.regions),
        },
        "advisories": {k: v for k, v in sorted(listener.stats.by_action.items())},
        "latency_ms": {
            name: {"p50": percentile(vals, 50), "p95": percentile(vals, 95), "p99": percentile(vals, 99),
                   "n": len(vals)}
            for name, vals in (("all", lat_all), ("hazard", lat_hz))
        },
        "late_advice": late_spells(history, run.fleet.start_ms),
        "hazards": hazard_summary(run.recorder, history),
        # free-flow speeds, lane changes per distance: what the calibration against SUMO compares
        "traffic": run.recorder.traffic(),
        "towers": [{"worker": p["worker"], "regions": p["regions"], "updates": p["counts"].get("updates", 0),
                    "advisories": p["counts"].get("advisories", 0), "dead_letters": p["dead_letters"],
                    "staleness_ms": p["staleness_ms"], "rebalances": p.get("rebalances"),
                    "loop_stall_max_s": p.get("loop_stall_max_s"), "loop_stalls_long": p.get("loop_stalls_long"),
                    "rebalance_pause_max_s": p.get("rebalance_pause_max_s"), "cpu_s": p.get("cpu_s"),
                    "rss_mib": p.get("rss_mib"), "sync_sent": p["counts"].get("delivered-tower-sync", 0),
                    "etcd": {k: (p.get("etcd") or {}).get(k) for k in ("round_s", "round_max_s", "writes")}}
                   for p in pages],
        "events_played": run.played,
    }  # fmt: skip
