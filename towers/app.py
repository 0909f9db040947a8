"""corridor's tower edge-clouds, one Faust app: `faust -A towers.app worker -l info`.

Each partition of the telemetry topic is one tower region; workers in the consumer group share
the regions. This module is the I/O edge: it reads settings from the environment once (a bad value
is a one-line error), declares topics, tables, agents and timers as Faust needs them at import, and
builds what does I/O — the Kafka producer, the tower-sync consumer, the etcd control plane — when
the worker starts (`Runtime`). It feeds `TowerEngine` and sends what the engine returns.

Guarantees (at-least-once, made harmless by CRDT merges):
- hazards are written to their table before their event is acknowledged;
- vehicle state is written every `flush_interval_s` (1 s) per region, and a telemetry event is
  acknowledged only once that write has carried its effects;
- an event of either kind is acknowledged only once the broker has acknowledged the advisories and
  dead letters it caused (`towers.delivery`). A crash loses nothing: the next owner reads the
  unwritten or unsent events again. Faust's wait for unacknowledged events before a rebalance or a
  shutdown is off (`stream_wait_empty=False`), so a quiet partition stalls neither;
- producers use acks=all and idempotence; tables are changelog-backed, on RocksDB (rocksdict);
- a replayed or duplicated record finds its state newer already and changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import faust
from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from faust.tables import TableManager
from faust.types import TP
from opentelemetry.trace import SpanKind

from pipeline.schema_registry import use_wire
from pipeline.shared.access import CUT_OFF_BROKER, Role, client_conf
from pipeline.shared.advisory_signing import SIGNATURE
from pipeline.shared.config import Settings
from pipeline.shared.errors import CorridorError
from pipeline.shared.topics import TopicSpec
from pipeline.shared.tracing import TOWER_SPAN, Tracing, tracing_from_env
from towers.config import TABLE_NAMES, TowerConfig, WorkerSettings, app_id
from towers.control_plane import ControlPlane, namespace
from towers.delivery import DeliveryLedger, Held, Line
from towers.engine import Outbox, TableWrites, TowerEngine
from towers.flow_control import SteadyFlowApp
from towers.guard import ClusterGuard
from towers.handover import RegionHandover
from towers.metrics import CONTENT_TYPE, WorkerFigures, exposition
from towers.region import RegionEngine
from towers.topic_setup import ensure_topics
from towers.vehicle_buckets import BUCKETS

try:
    import rocksdict  # noqa: F401

    STORE = "rocksdb://"
except ImportError:  # pragma: no cover - rocksdict installs on every supported Python
    STORE = "memory://"

try:
    settings = Settings.from_env()
    cfg = TowerConfig.from_env()
    worker = WorkerSettings.from_env()
    corridor = settings.corridor()  # CORRIDOR_ROUTE_FILE / CORRIDOR_TOWERS_FILE, as the producers
    kafka_access = settings.kafka(Role.TOWER)
    etcd_access = settings.etcd(Role.TOWER)
    TRACING = tracing_from_env("corridor-tower")  # the hazard path's spans (CORRIDOR_TRACES)
    SIGNER = settings.signer()  # every advisory signed, when the worker has a key
    use_wire(settings)  # the schema registry's ids, when one is in use: the Confluent format read (and written)
except CorridorError as exc:  # `faust -A towers.app worker` imports this module: say what is wrong, once
    sys.exit(f"corridor tower worker: {exc}")
topics = settings.topics(len(corridor.regions))
REGIONS = len(corridor.regions)
Headers = list[tuple[str, str | bytes | None]]  # confluent-kafka's


class Runtime:
    """What a running worker holds besides Faust's own, built when it starts rather than at import."""

    def __init__(self, app_name: str) -> None:
        self.engine = TowerEngine(corridor, cfg)
        self.ledger = DeliveryLedger()
        self.skew_reported = 0  # the clock correction last logged
        # input events whose state is written, waiting for the messages they caused to be settled
        self.held: Held[tuple[Any, Any, str, int]] = Held(self.ledger)  # (stream, event, topic, partition)
        # Telemetry events whose effects are in a region's memory but not yet in its tables (written
        # once a second). They are acknowledged only once written and once the advisories and dead
        # letters they caused are acknowledged by the broker: an offset is committed after everything
        # it produced, so a worker that dies in between leaves them to be read again, not lost.
        self.unwritten: dict[int, list[Any]] = {}
        self.handover = RegionHandover()  # which regions' state a rebalance leaves in memory
        self.web_url = _web_url()  # where this worker's pages are, for whoever finds it in etcd
        # every message until the broker has it: (line, number) -> (topic, value, partition, headers)
        self.outgoing: dict[tuple[Line, int], tuple[str, bytes, int, Headers | None]] = {}
        self.resend: deque[tuple[Line, int]] = deque()
        self.producer = Producer(
            client_conf(kafka_access, {"enable.idempotence": True, "acks": "all",
             "linger.ms": 1, "log_level": 3, **CUT_OFF_BROKER})
        )  # fmt: skip
        # Every tower reads every region's sync messages (the view is not partitioned: it is the neighbours').
        self.sync_consumer = Consumer(
            client_conf(kafka_access, {"group.id": f"{app_name}-sync-{os.getpid()}",
             "enable.auto.commit": False, "fetch.wait.max.ms": 10, "log_level": 3})
        )  # fmt: skip
        self.sync_consumer.assign([TopicPartition(topics.tower_sync, p, OFFSET_END) for p in range(REGIONS)])
        self.guard = ClusterGuard(self._cluster_id)
        self.guard.watch()
        self.control: ControlPlane | None = None
        if worker.etcd:
            name = f"{socket.gethostname()}-{os.getpid()}"
            # Keys live under the app id, so one set of towers (one run) never reads another's.
            self.control = ControlPlane(etcd_access, name, cfg.sync_important_s, root=namespace(app_name),
                                        keep_cas_history=worker.cas_history)  # fmt: skip
            self.control.start()

    def _cluster_id(self) -> str | None:
        try:
            cluster: str | None = self.producer.list_topics(timeout=5).cluster_id
            return cluster
        except KafkaException:
            return None

    def stop(self) -> None:
        self.guard.stop()
        if self.control is not None:
            self.control.stop()
        self.sync_consumer.close()
        self.producer.flush(5)


_runtime: Runtime | None = None
log = logging.getLogger("towers")


def rt() -> Runtime:
    assert _runtime is not None, "the worker has not started"
    return _runtime


class TowerApp(SteadyFlowApp):
    """Faust's App, plus: corridor's topics exist before the consumer subscribes to them, the
    worker's own clients start with it, and a recovery keeps the records it fetched (`flow_control`)."""

    async def on_first_start(self) -> None:
        global _runtime
        await super().on_first_start()
        # The tables' changelogs too, with their leaders elected, before Faust's consumer first reads
        # the cluster's metadata (see towers.topic_setup.ensure_topics).
        # only what the towers use: in secure mode they see (DESCRIBE) no other topic, and could not
        # create one that looked missing
        ensure_topics(kafka_access, topics.regional_specs() + changelog_specs())
        _runtime = Runtime(self.conf.id)


def _faust_credentials() -> faust.SASLCredentials | faust.SSLCredentials | None:
    if not kafka_access.secure:
        return None
    context = kafka_access.ssl_context()
    if not kafka_access.sasl:
        assert context is not None
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(username=kafka_access.username, password=kafka_access.password,
                                 ssl_context=context, mechanism=kafka_access.mechanism)  # fmt: skip


class TowerTables(TableManager):
    """Faust's table manager without its fixed one-second pause before recovery starts: the pause
    leaves time to declare tables late, and ours are all declared at import. It was a fifth of a
    restarted worker's time to recovery."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


app = TowerApp(
    # The app id names the consumer group and the changelog topics; a suffix runs a second,
    # independent set of towers over the same topics (benchmarks, replays).
    app_id(settings.topic_prefix, worker.app_suffix),
    broker=";".join(f"corridor://{hp}" for hp in settings.bootstrap_servers.split(",")),
    # Secure mode: SASL/SCRAM over TLS as the tower principal (`pipeline.shared.access_policy`).
    broker_credentials=_faust_credentials(),
    store=worker.store if "CORRIDOR_TOWER_STORE" in os.environ else STORE,
    topic_partitions=REGIONS,
    topic_replication_factor=topics.replication,
    # One broker and two cores: a standby would double the changelog reading for little gain here.
    table_standby_replicas=worker.standbys,
    producer_acks=-1,
    consumer_auto_offset_reset=worker.offset_reset,
    broker_commit_interval=1.0,
    # Telemetry is acknowledged once written to the tables (see `telemetry`): a rebalance must not wait
    # for the events not yet written. Their next owner reads them again from the committed offset.
    stream_wait_empty=False,
    # A killed worker's partitions move to the others after this long (Faust's default is 60 s).
    broker_session_timeout=worker.session_timeout_s,
    broker_heartbeat_interval=worker.heartbeat_s,
    # A broker cut off answers nothing: until a request times out, its partitions are not asked of
    # their new leader (Faust's defaults, 90 s and 20 min for the producer, outlast any outage).
    broker_request_timeout=worker.request_timeout_s or 90.0,
    producer_request_timeout=worker.request_timeout_s or 1200.0,
    # Loopback only, like the rest of the stack; a container sets 0.0.0.0 for its readiness probe.
    web_bind=worker.web_bind,
    web_port=worker.web_port,
    # Faust's own pages read tables and routing unauthenticated: off; corridor's pages say what is needed.
    web_router_enabled=False,
    web_tables_enabled=False,
    web_graph_enabled=False,
    web_stats_enabled=False,
    TableManager=TowerTables,
)

telemetry_topic = app.topic(topics.telemetry, key_serializer="raw", value_serializer="raw", partitions=REGIONS)
hazards_topic = app.topic(topics.hazards, key_serializer="raw", value_serializer="raw", partitions=REGIONS)

# Values are CRDT states in their own encodings: value_type=bytes makes Faust store them raw. Keys
# are "r" (region: hazards) or "r:b" (region, vehicle bucket or member shard).
TABLES = {name: app.Table(name, key_type=str, value_type=bytes, partitions=REGIONS) for name in TABLE_NAMES}
members_table, vehicles_table, hazards_table = (TABLES[name] for name in ("members", "vehicles", "hazards"))


def _recovered() -> bool:
    """Faust's interface type for `app.tables` lacks `recovery`, which its TableManager has."""
    tables = app.tables
    assert isinstance(tables, TableManager)
    return tables.recovery.completed.is_set()


@dataclass
class _Life:
    """This worker's life as an operator follows it: how long its first restore took, how many
    rebalances it went through."""

    started: float = field(default_factory=time.monotonic)
    restored_after_s: float | None = None
    rebalances: int = 0
    # The group's heartbeats are sent from this worker's event loop: a stall as long as the session
    # would have its regions taken away though it lives. The longest one, and how many went past a
    # third of the session (a heartbeat or two missed), say how short a session is safe here.
    loop_stall_max_s: float = 0.0
    loop_stalls_long: int = 0
    # A rebalance stops every stream of the worker, kept regions included, until its tables are
    # recovered: the longest such pause is advice held back as long.
    rebalance_pause_max_s: float = 0.0
    rebalance_began: float | None = None


LIFE = _Life()
LOOP_TICK_S = 0.05


@app.task
async def watch_loop() -> None:
    long = worker.session_timeout_s / 3
    while True:
        before = time.monotonic()
        await asyncio.sleep(LOOP_TICK_S)
        stall = time.monotonic() - before - LOOP_TICK_S
        LIFE.loop_stall_max_s = max(LIFE.loop_stall_max_s, stall)
        LIFE.loop_stalls_long += stall > long


@app.task
async def note_restored() -> None:
    tables = app.tables
    assert isinstance(tables, TableManager)
    await tables.recovery.completed.wait()
    LIFE.restored_after_s = time.monotonic() - LIFE.started


def changelog_specs() -> list[TopicSpec]:
    """The tables' changelog topics as Faust declares them: compacted, one partition per region."""
    return [
        TopicSpec(t._changelog_topic_name(), REGIONS, {"cleanup.policy": "compact"}, topics.replication)
        for t in TABLES.values()
    ]


def _load(r: int) -> RegionEngine | None:
    members = [members_table.get(f"{r}:{b}") for b in range(BUCKETS)]
    buckets = [vehicles_table.get(f"{r}:{b}") for b in range(BUCKETS)]
    hazards = hazards_table.get(str(r))
    if hazards is None and not any(members) and not any(buckets):
        return None
    return rt().engine.restore(r, members, buckets, hazards)


Source = tuple[str, int, int]  # the topic, partition and offset a dead letter came from


# A message the broker can never take: settled as failed (reading its input again would not help).
PERMANENT = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD,
    KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError._INVALID_ARG,
})  # fmt: skip
KINDS = ("advisory", "dead-letter", "tower-sync")


#: per region, the output partitions its events may write to (its own and its neighbours'): built
#: once, as every held event names them
LINES: dict[int, tuple[Line, ...]] = {
    r: tuple((kind, n) for kind in KINDS for n in (r - 1, r, r + 1) if 0 <= n < REGIONS) for r in range(REGIONS)
}


def _report(line: Line, seq: int, err: Any, _msg: Any) -> None:
    """The producer's delivery report. A message it gave up on (the broker away longer than its
    delivery timeout) is sent again; one the broker refuses for good is counted and logged."""
    runtime = rt()
    if err is not None and err.code() in PERMANENT:
        _give_up(line, seq, err)
    elif runtime.ledger.settle(line, seq, err is None):
        runtime.outgoing.pop((line, seq), None)
    else:
        runtime.resend.append((line, seq))
        n = runtime.ledger.resent[line[0]]
        if n == 1 or n % 1000 == 0:
            log.warning("%d %s message(s) not delivered in time and sent again, the last: %s", n, line[0], err)


def _give_up(line: Line, seq: int, err: Any) -> None:
    runtime = rt()
    runtime.ledger.settle(line, seq, False, permanent=True)
    runtime.outgoing.pop((line, seq), None)
    n = runtime.ledger.failed[line[0]]
    if n == 1 or n % 1000 == 0:
        log.error("%d %s message(s) refused for good, the last: %s", n, line[0], err)


def _send(line: Line, seq: int) -> None:
    topic, value, r, headers = rt().outgoing[(line, seq)]
    rt().producer.produce(topic, value, str(r).encode(), r, headers=headers, on_delivery=partial(_report, line, seq))


def _produce(kind: str, topic: str, value: bytes, r: int, headers: Headers | None = None) -> None:
    runtime = rt()
    line = (kind, r)
    seq = runtime.ledger.produced(line)
    runtime.outgoing[(line, seq)] = (topic, value, r, headers)
    if runtime.resend:  # behind others waiting to go again: in their order
        runtime.resend.append((line, seq))
        return
    try:
        _send(line, seq)
    except BufferError:  # the producer's queue is full: it goes with the next resend
        runtime.resend.append((line, seq))
    except KafkaException as exc:  # refused before it left (too large for the producer, say)
        _give_up(line, seq, exc)


def _resend() -> None:
    """Messages whose delivery timed out go again, in the order they failed; the producer's queue
    full, the rest wait for the next call."""
    runtime = rt()
    while runtime.resend:
        line, seq = runtime.resend[0]
        try:
            _send(line, seq)
        except BufferError:
            return
        except KafkaException as exc:
            _give_up(line, seq, exc)
        runtime.resend.popleft()


def _emit(out: Outbox, source: Source | None = None, advisory_headers: Headers | None = None) -> None:
    for r, value in out.advisories:
        signed = advisory_headers
        if SIGNER is not None:
            signed = [*(advisory_headers or ()), (SIGNATURE, SIGNER.sign(value))]
        _produce("advisory", topics.advisories, value, r, signed)
    for d in out.dead:
        headers: Headers = [("reason", d.reason.encode())]
        if source is not None:
            topic, partition, offset = source
            headers += [
                ("source-topic", topic.encode()),
                ("source-partition", str(partition).encode()),
                ("source-offset", str(offset).encode()),
            ]
        _produce("dead-letter", topics.dead_letter, d.value, d.region, headers)
    for r, value in out.sync:
        _produce("tower-sync", topics.tower_sync, value, r)
    rt().producer.poll(0)


async def _release() -> None:
    """Acknowledge the input events whose state is written and whose messages are settled."""
    for stream, event, _, _ in rt().held.release():
        await stream.ack(event)


def _write(writes: TableWrites) -> None:
    """Table writes, inside the stream iteration: Faust sends each to the changelog partition of the
    event being processed, which is the region's own."""
    for table_name, values in writes.items():
        table = TABLES[table_name]
        for key, value in values:
            table[key] = value


def _safely(r: int, raw: bytes, handle: Callable[..., Outbox], *args: Any) -> Outbox:
    """The engine refuses bad input itself; this is the last resort, so that a defect one record
    finds cannot stop the agent or the timer that serves every region: the record is dead-lettered
    as `internal-error`, counted and logged with its traceback, and the next one is served."""
    try:
        return handle(*args)
    except Exception as exc:
        engine = rt().engine
        engine.counts["internal-errors"] += 1
        log.exception("region %d: a record raised inside the engine (dead-lettered as internal-error)", r)
        return engine.dead_letter(raw, f"internal-error: {type(exc).__name__}: {exc}"[:500], r)


def _backlog(tp: Any, offset: int) -> int | None:
    """Records of the partition after this one, or None when not known: before its first fetch, or
    for a partition a rebalance has just taken away (aiokafka asserts it is assigned). Unknown is not
    caught up: the clock check learns only from frames read at the end of their partition."""
    try:
        highwater = app.consumer.highwater(tp)
    except (AssertionError, KeyError):
        return None
    return None if highwater is None else highwater - offset - 1


@app.agent(telemetry_topic)
async def telemetry(stream: Any) -> None:
    runtime = rt()
    engine, unwritten = runtime.engine, runtime.unwritten
    manual = stream.noack()
    async for event in manual.events():
        m = event.message
        r = m.partition
        st = engine.region(r, _load)
        _emit(_safely(r, event.value, engine.on_telemetry, r, event.value, st, _backlog(m.tp, m.offset)),
              (m.topic, r, m.offset))  # fmt: skip
        unwritten.setdefault(r, []).append(event)
        now_s = time.monotonic()
        if engine.flush_due(r, now_s):
            try:
                _write(engine.flush(r, now_s))
            except Exception as exc:  # the store failed (a full disk): rocksdict raises bare Exceptions
                # Keep serving from memory; write the whole region again at its next flush, and keep
                # its events unacknowledged until then (a restart reads them again).
                engine.states[r].mark_all_dirty()
                engine.counts["table-write-failures"] += 1
                log.error("region %d: its tables could not be written (%s); retrying at the next flush", r, exc)
                continue
            for done in unwritten.pop(r):
                runtime.held.hold((manual, done, m.topic, r), (m.topic, r), LINES[r])
        await _release()


@app.agent(hazards_topic)
async def hazards(stream: Any) -> None:
    engine = rt().engine
    manual = stream.noack()
    async for event in manual.events():
        m = event.message
        r = m.partition
        st = engine.region(r, _load)
        # traced when the report carries a trace context: each advisory carries this span's on
        with TRACING.span(TOWER_SPAN, event.headers, SpanKind.CONSUMER, region=r) as span:
            out = _safely(r, event.value, engine.on_hazard, r, event.value, st)
            _emit(out, (m.topic, r, m.offset), Tracing.headers(span) or None)
        # Hazards are rare and safety-relevant: persisted, and their alerts acknowledged, before the ack.
        _write(engine.hazard_writes(st))
        rt().held.hold((manual, event, m.topic, r), (m.topic, r), LINES[r])
        await _release()


@app.timer(interval=0.05)
async def release_settled() -> None:
    """Delivery reports arrive on `poll`; when no input comes, events still wait for theirs."""
    rt().producer.poll(0)
    _resend()
    await _release()


@app.timer(interval=0.02)
async def read_tower_sync() -> None:
    runtime = rt()
    if not runtime.engine.sync_enabled:
        return  # cut off: messages wait in the topic and are merged when sync is back
    for msg in runtime.sync_consumer.consume(1000, timeout=0):
        value, topic, r, offset = msg.value(), msg.topic(), msg.partition(), msg.offset()
        if msg.error() is None and value is not None and topic is not None and r is not None and offset is not None:
            _emit(_safely(r, value, runtime.engine.on_sync, value, r), (topic, r, offset))
    runtime.producer.poll(0)


def _load_quiet_regions() -> None:
    """Every region this worker owns is loaded once its tables are restored, not at its first event:
    a quiet region's owner, snapshot and restored hazards still reach etcd and the neighbours, and
    whoever waits for a tower per region (producers that start once there is one) is not waiting for
    the traffic it is to send. Not while a rebalance is restoring tables: they would read empty."""
    if app.rebalancing or not _recovered():
        return
    engine = rt().engine
    for r in _owned():
        if r not in engine.states:
            engine.region(r, _load)


@app.timer(interval=cfg.sync_important_s)
async def sync_important() -> None:
    runtime = rt()
    _load_quiet_regions()
    skew = runtime.engine.skew.correction_ms()
    if skew != runtime.skew_reported:
        runtime.skew_reported = skew
        log.warning("this host's clock is %+d ms off the vehicles' (median frame delay); judging time by theirs", skew)
    _emit(runtime.engine.sync_important())
    if runtime.control is not None:
        snapshots, view = runtime.engine.control_snapshot(app.conf.id)
        now = runtime.engine.wall_ms()
        staleness = runtime.engine.view.staleness_ms(now)
        runtime.control.publish(snapshots, view, {"staleness_ms": {str(k): v for k, v in staleness.items()},
                                                  "staleness_by_class_ms": _by_class(now),
                                                  "pid": os.getpid(), "web": runtime.web_url},
                               runtime.engine.event_now())  # fmt: skip


@app.timer(interval=cfg.sync_unimportant_s)
async def sync_unimportant() -> None:
    _emit(rt().engine.sync_unimportant())


# Faust's signal hints accept no handler that takes the arguments its signals are sent with.
@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def stop_runtime(app: faust.App, **_: Any) -> None:
    if _runtime is not None:
        _runtime.stop()


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def on_revoked(app: faust.App, revoked: set[Any], **_: Any) -> None:
    LIFE.rebalances += 1
    if LIFE.rebalance_began is None:
        LIFE.rebalance_began = time.monotonic()
    if _runtime is not None:
        gone = {tp.partition for tp in revoked if tp.topic == topics.telemetry}
        # Whether their state stays in memory is known at the assignment (`towers.handover`).
        _runtime.handover.on_revoked(gone, app.consumer_generation_id)
        # every member of the group goes through this at a rebalance: whole states to the newcomers
        _runtime.engine.publisher.resend_full()
        # Faust reads every revoked partition again from its committed offset, kept or not: those
        # events are read again, and acknowledged then.
        for r in gone:
            _runtime.unwritten.pop(r, None)
        lost = {(tp.topic, tp.partition) for tp in revoked}
        _runtime.held.drop(lambda item: (item[2], item[3]) not in lost)


@app.on_partitions_assigned.connect  # type: ignore[arg-type]
async def on_assigned(app: faust.App, assigned: set[Any], **_: Any) -> None:
    if _runtime is not None:
        regions = {tp.partition for tp in assigned if tp.topic == topics.telemetry}
        _runtime.engine.drop(_runtime.handover.on_assigned(regions, app.consumer_generation_id))


@app.on_rebalance_complete.connect  # type: ignore[arg-type]
async def on_rebalanced(app: faust.App, **_: Any) -> None:
    """Faust resumes the streams: the pause the rebalance made ends here."""
    if LIFE.rebalance_began is not None:
        LIFE.rebalance_pause_max_s = max(LIFE.rebalance_pause_max_s, time.monotonic() - LIFE.rebalance_began)
        LIFE.rebalance_began = None


def _digest(r: int) -> dict[str, Any]:
    st = _load(r)
    if st is None:
        return {"members": 0, "vehicles": 0, "hazards": [], "digest": ""}
    keys, stamps = st.vehicles.keys, st.vehicles.ts.tolist()
    vehicles = sorted((keys[s], stamps[s]) for s in st.live_slots().tolist())  # (id, HLC) of each live vehicle
    h = hashlib.sha256(repr((sorted(st.members.value), vehicles)).encode()).hexdigest()[:16]
    return {"members": len(st.members), "vehicles": len(vehicles), "hazards": sorted(st.hazards.value), "digest": h}


def _web_url() -> str:
    """Where this worker's pages are, for whoever finds it in etcd (the dashboard)."""
    host = worker.web_bind
    if host in ("0.0.0.0", "::", ""):  # in a container: the address its peers reach it at
        host = socket.gethostbyname(socket.gethostname())
    return f"http://{host}:{worker.web_port}"


def _rss_bytes() -> int:
    for line in open("/proc/self/status").read().splitlines():  # noqa: SIM115
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _etcd_status() -> dict[str, Any] | None:
    control = rt().control
    if control is None:
        return None
    return {"healthy": control.healthy, "errors": control.errors, "towers_alive": sorted(control.towers),
            "lease_held": control.holds_lease, "cas_retries": control.cas_retried,
            "round_s": round(control.round_s, 4), "round_max_s": round(control.round_max_s, 4),
            "writes": control.writes}  # fmt: skip


def _by_class(now_ms: int) -> dict[str, int | None]:
    """The age of what this worker shows, per class of data (`corridor status`, the dashboard)."""
    out = rt().engine.staleness_by_class(now_ms)
    control = rt().control
    if control is not None:
        wall = int(time.time() * 1000)  # the control plane stamps its commits by this host's clock
        out["etcd_snapshot"] = wall - control.last_ok_wall_ms if control.last_ok_wall_ms else None
        out["global_view"] = wall - control.last_global_ms if control.last_global_ms else None
    return out


def _owned() -> list[int]:
    return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topics.telemetry)


def _lag_records(owned: list[int]) -> dict[int, int]:
    """Per served region, telemetry records in its partition not yet read: the broker's high
    watermark as the consumer last fetched it, less the offset Faust's stream read last (Faust keeps
    that in `_read_offset`, with no public accessor). A region not fetched or read yet: no figure."""
    consumer = app.consumer
    read_offsets = getattr(consumer, "_read_offset", {})
    out = {}
    for r in owned:
        tp = TP(topics.telemetry, r)
        try:
            high = consumer.highwater(tp)
        except Exception:  # not assigned (any more), or not fetched yet: no figure, and no failed scrape
            continue
        read = read_offsets.get(tp)
        if high is not None and read is not None:
            out[r] = max(0, int(high) - int(read) - 1)
    return out


def _figures() -> WorkerFigures:
    """This worker's figures, read once for both the state page and a Prometheus scrape."""
    runtime, owned = rt(), _owned()
    engine = runtime.engine
    now = engine.wall_ms()
    return WorkerFigures(
        recovered=_recovered(),
        corridor_regions=REGIONS,
        regions=owned,
        members={r: len(engine.states[r].members) for r in owned if r in engine.states},
        counts=dict(engine.counts),
        actions=dict(engine.actions),
        dead_letters=dict(engine.dead_reasons),
        delivered=dict(runtime.ledger.delivered),
        undelivered=dict(runtime.ledger.failed),
        resent=dict(runtime.ledger.resent),
        unsettled=runtime.ledger.unsettled,
        behind_ms={r: ms for r, ms in engine.behind_ms(now).items() if r in owned},
        lag_ms={r: ms for r, ms in engine.lag_ms(now).items() if r in owned},
        lag_records=_lag_records(owned),
        sync_age_ms=engine.view.staleness_ms(now),
        data_age_ms=_by_class(now),
        clock_offset_ms=engine.skew.estimate_ms,
        etcd=_etcd_status(),
        rss_bytes=_rss_bytes(),
        cpu_s=time.process_time(),
        rebalances=LIFE.rebalances,
        rebalancing=bool(app.rebalancing),
        loop_stall_max_s=LIFE.loop_stall_max_s,
        loop_stalls_long=LIFE.loop_stalls_long,
        rebalance_pause_max_s=LIFE.rebalance_pause_max_s,
        restored_after_s=LIFE.restored_after_s,
        decided_after=engine.decided_after,  # read at once, in the loop that adds to it
        hazard_decided_after=engine.hazard_decided_after,
    )


@app.page("/corridor/state/")
async def state_page(web: Any, request: Any) -> Any:
    """This worker at a glance: its regions, counters, dead letters, sync staleness. Cheap: poll it."""
    f, view = _figures(), rt().engine.view
    return web.json(
        {
            "worker": os.getpid(),
            # Tables are restored from their changelogs before the agents run; until then they read empty.
            "recovered": f.recovered,
            "regions": f.regions,
            "members": {str(r): n for r, n in f.members.items()},
            # member counts of every region as this worker heard them through tower-sync
            "view_members": {str(r): n.member_count for r, n in view.regions.items()},
            "view_hazards": {str(r): ids for r, ids in rt().engine.view_hazard_ids().items()},
            # per other region, the send time of the newest sync message after which this worker's view
            # hashed exactly as its owner's state (tower-sync's convergence, checked)
            "view_matched_ms": {str(r): n.matched_sent_at_ms for r, n in view.regions.items() if r not in f.regions},
            "sync_enabled": rt().engine.sync_enabled,
            "counts": {
                **f.counts,
                **{f"delivered-{k}": v for k, v in f.delivered.items()},
                **{f"undelivered-{k}": v for k, v in f.undelivered.items()},
                **{f"resent-{k}": v for k, v in f.resent.items()},
            },
            # produced but neither acknowledged by the broker nor given up on yet
            "unsettled_messages": f.unsettled,
            "dead_letters": dict(f.dead_letters),
            "staleness_ms": {str(k): v for k, v in f.sync_age_ms.items()},
            "staleness_by_class_ms": dict(f.data_age_ms),
            "behind_ms": {str(r): ms for r, ms in f.behind_ms.items()},
            # this host's clock minus the senders' (plus transit): corrected for once past 2 s
            "clock_offset_ms": f.clock_offset_ms,
            "etcd": f.etcd,
            "rss_mib": round(f.rss_bytes / 2**20, 1),
            "cpu_s": round(f.cpu_s, 2),
            "rebalances": f.rebalances,
            "loop_stall_max_s": round(f.loop_stall_max_s, 3),
            "loop_stalls_long": f.loop_stalls_long,
            "rebalance_pause_max_s": round(f.rebalance_pause_max_s, 3),
        }
    )


@app.page("/metrics")
async def metrics_page(web: Any, request: Any) -> Any:
    """Prometheus's scrape (`towers.metrics`): the figures of /corridor/state/ in its text format."""
    return web.bytes(exposition(_figures()), headers={"Content-Type": CONTENT_TYPE})


@app.page("/corridor/ready/")
async def ready_page(web: Any, request: Any) -> Any:
    """For readiness probes: 200 once the tables are restored from their changelogs, 503 before."""
    recovered = _recovered()
    return web.json({"recovered": recovered, "regions": _owned()}, status=200 if recovered else 503)


@app.page("/corridor/staleness/")
async def staleness_page(web: Any, request: Any) -> Any:
    """Staleness samples (`towers.staleness`): sync messages merged and how old their oldest change
    was, hazards made and first seen, frame lag; and the control plane's commits. For a run's report."""
    control = rt().control
    return web.json({"worker": os.getpid(), "regions": _owned(), **rt().engine.view.log.as_dict(),
                     "etcd": control.staleness() if control is not None else None})  # fmt: skip


@app.page("/corridor/cas-history/")
async def cas_history_page(web: Any, request: Any) -> Any:
    """Every compare-and-swap this worker made on the global view (with CORRIDOR_TOWER_CAS_HISTORY=1),
    and whether a write of its may still be in flight (`settled`: cut off from etcd and no round running)."""
    control = rt().control
    if control is None:
        return web.json({"worker": os.getpid(), "ops": [], "settled": True})
    settled = control.offline and not control.in_round
    return web.json({"worker": os.getpid(), "ops": control.history(), "settled": settled})


@app.page("/corridor/control/{what}/{state}/")
class ControlSwitch(faust.web.View):
    """Cut this worker's tower-sync or etcd off, or restore it: drills for the availability and
    control-plane claims. POST only, with the token the drill gave the worker
    (CORRIDOR_TOWER_CONTROL_TOKEN, made per run); without one set, the switches do not exist."""

    async def post(self, request: Any, what: str, state: str) -> Any:
        token = worker.control_token
        given = request.headers.get("Authorization", "")
        if not token:
            return self.json({"error": "control switches are off for this worker"}, status=404)
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return self.json({"error": "a control switch needs this run's token"}, status=403)
        if what not in ("sync", "etcd") or state not in ("on", "off"):
            return self.json({"error": "POST /corridor/control/{sync|etcd}/{on|off}/"}, status=400)
        if what == "sync":
            rt().engine.sync_enabled = state == "on"
            return self.json({"sync_enabled": rt().engine.sync_enabled})
        control = rt().control
        if control is not None:
            control.offline = state == "off"
        return self.json({"etcd_offline": control.offline if control is not None else None})


@app.page("/corridor/tables/")
async def tables_page(web: Any, request: Any) -> Any:
    """A digest of each owned region as its tables hold it (decodes every value: not for polling)."""
    return web.json({"recovered": _recovered(), "regions": {str(r): _digest(r) for r in _owned()}})
