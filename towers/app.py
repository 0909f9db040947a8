"""corridor's tower edge-clouds, one Faust app: `faust -A towers.app worker -l info`.

Each partition of the telemetry topic is one tower region; workers in the consumer group share
the regions. This module is the I/O edge: it reads settings from the environment, wires topics,
tables, agents and timers to `TowerEngine`, and sends what the engine returns.

Guarantees (at-least-once, made harmless by CRDT merges):
- hazards are written to their table before their event is acknowledged;
- vehicle state is written every `flush_interval_s` (0.5 s): a crash can lose at most that much of
  latest-state updates, which the vehicles' next messages (1 Hz and up) restore; expiry and
  membership are recomputed from telemetry, so they heal the same way. Holding acknowledgements
  back until a flush was tried and dropped: Faust waits for unacknowledged events before every
  rebalance and shutdown, and a quiet partition would stall both;
- producers use acks=all and idempotence; tables are changelog-backed, on RocksDB (rocksdict);
- a replayed or duplicated record finds its state newer already and changes nothing.
"""

from __future__ import annotations

import gc
import hashlib
import os
import socket
import time
from typing import Any

import faust
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from pipeline.admin import ensure_topics
from pipeline.config import Settings
from pipeline.corridor import load_corridor
from pipeline.crdt import encode_state
from pipeline.topics import TopicSpec
from towers.config import TABLE_NAMES, TowerConfig, app_id
from towers.control_plane import ControlPlane
from towers.engine import Outbox, TowerEngine
from towers.region import BUCKETS, RegionEngine

try:
    import rocksdict  # noqa: F401

    STORE = "rocksdb://"
except ImportError:  # pragma: no cover - rocksdict installs on every supported Python
    STORE = "memory://"


# A tower holds tens of thousands of small state dicts that live for minutes: CPython's default
# cyclic-GC thresholds walk them all many times a second. Measured: ~12 % more updates/s.
gc.set_threshold(50_000, 20, 100)

settings = Settings.from_env()
cfg = TowerConfig.from_env()
corridor = load_corridor()  # CORRIDOR_ROUTE_FILE / CORRIDOR_TOWERS_FILE, as the producers
topics = settings.topics(len(corridor.regions))
REGIONS = len(corridor.regions)


class TowerApp(faust.App):
    """Faust's App, plus: corridor's topics exist before the consumer subscribes to them."""

    async def on_first_start(self) -> None:
        await super().on_first_start()
        # The tables' changelogs too, with their leaders elected, before Faust's consumer first reads
        # the cluster's metadata (see pipeline.admin.ensure_topics).
        ensure_topics(settings.bootstrap_servers, topics.specs() + changelog_specs())


app = TowerApp(
    # The app id names the consumer group and the changelog topics; a suffix runs a second,
    # independent set of towers over the same topics (benchmarks, replays).
    app_id(settings.topic_prefix, os.environ.get("CORRIDOR_TOWER_APP_SUFFIX", "")),
    broker=";".join(f"corridor://{hp}" for hp in settings.bootstrap_servers.split(",")),
    store=os.environ.get("CORRIDOR_TOWER_STORE", STORE),
    topic_partitions=REGIONS,
    topic_replication_factor=topics.replication,
    # One broker and two cores: a standby would double the changelog reading for little gain here.
    table_standby_replicas=int(os.environ.get("CORRIDOR_TOWER_STANDBYS", "0")),
    producer_acks=-1,
    consumer_auto_offset_reset=os.environ.get("CORRIDOR_TOWER_OFFSET_RESET", "earliest"),
    broker_commit_interval=1.0,
    # A killed worker's partitions move to the others after this long (Faust's default is 60 s).
    broker_session_timeout=float(os.environ.get("CORRIDOR_TOWER_SESSION_TIMEOUT_S", "10")),
    broker_heartbeat_interval=float(os.environ.get("CORRIDOR_TOWER_HEARTBEAT_S", "3")),
    # Loopback only, like the rest of the stack; a container sets 0.0.0.0 for its readiness probe.
    web_bind=os.environ.get("CORRIDOR_TOWER_WEB_BIND", "127.0.0.1"),
    web_port=int(os.environ.get("CORRIDOR_TOWER_WEB_PORT", "6066")),
)

telemetry_topic = app.topic(topics.telemetry, key_serializer="raw", value_serializer="raw", partitions=REGIONS)
hazards_topic = app.topic(topics.hazards, key_serializer="raw", value_serializer="raw", partitions=REGIONS)

# Values are CRDT states in their own Avro encoding (pipeline.crdt.wire): value_type=bytes makes
# Faust store them raw. Keys are "r" (region: hazards) or "r:b" (region, vehicle bucket or member shard).
TABLES = {name: app.Table(name, key_type=str, value_type=bytes, partitions=REGIONS) for name in TABLE_NAMES}
members_table, vehicles_table, hazards_table = (TABLES[name] for name in ("members", "vehicles", "hazards"))


def changelog_specs() -> list[TopicSpec]:
    """The tables' changelog topics as Faust declares them: compacted, one partition per region."""
    return [
        TopicSpec(t.changelog_topic_name, REGIONS, {"cleanup.policy": "compact"}, topics.replication)
        for t in TABLES.values()
    ]


engine = TowerEngine(corridor, cfg)
_producer = Producer(
    {
        "bootstrap.servers": settings.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 1,
        "log_level": 3,
    }
)
_sync_consumer: Consumer | None = None


def _load(r: int) -> RegionEngine | None:
    members = [members_table.get(f"{r}:{b}") for b in range(BUCKETS)]
    buckets = [vehicles_table.get(f"{r}:{b}") for b in range(BUCKETS)]
    hazards = hazards_table.get(str(r))
    if hazards is None and not any(members) and not any(buckets):
        return None
    return engine.restore(r, members, buckets, hazards)


def _emit(out: Outbox, source: Any = None) -> None:
    for r, value in out.advisories:
        _producer.produce(topics.advisories, value, str(r).encode(), r)
    for d in out.dead:
        headers = [("reason", d.reason.encode())]
        if source is not None:
            headers += [
                ("source-topic", source.topic.encode()),
                ("source-partition", str(source.partition).encode()),
                ("source-offset", str(source.offset).encode()),
            ]
        _producer.produce(topics.dead_letter, d.value, str(d.region).encode(), d.region, headers=headers)
    for r, value in out.sync:
        _producer.produce(topics.tower_sync, value, str(r).encode(), r)
    _producer.poll(0)


def _flush(r: int) -> None:
    """Write the region's changed table values (inside the stream iteration: Faust sends each write
    to the changelog partition of the event being processed, which is region r's)."""
    for table_name, writes in engine.flush(r, time.monotonic()).items():
        table = TABLES[table_name]
        for key, value in writes:
            table[key] = value


@app.agent(telemetry_topic)
async def telemetry(stream: Any) -> None:
    async for event in stream.events():
        r = event.message.partition
        st = engine.region(r, _load)
        _emit(engine.on_telemetry(r, event.value, st), event.message)
        if engine.flush_due(r, time.monotonic()):
            _flush(r)


@app.agent(hazards_topic)
async def hazards(stream: Any) -> None:
    async for event in stream.events():
        r = event.message.partition
        st = engine.region(r, _load)
        _emit(engine.on_hazard(r, event.value, st), event.message)
        if st.hazards_dirty:  # hazards are rare and safety-relevant: persisted before the ack
            hazards_table[str(r)] = encode_state(st.hazards)
            st.hazards_dirty = False


@app.timer(interval=0.02)
async def read_tower_sync() -> None:
    """Every tower reads every region's sync messages (the view is not partitioned: it is the neighbours')."""
    global _sync_consumer
    if _sync_consumer is None:
        _sync_consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": f"{app.conf.id}-sync-{os.getpid()}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                "log_level": 3,
            }
        )
        _sync_consumer.assign([TopicPartition(topics.tower_sync, p, OFFSET_END) for p in range(REGIONS)])
    if not engine.sync_enabled:
        return  # cut off: messages wait in the topic and are merged when sync is back
    for msg in _sync_consumer.consume(1000, timeout=0):
        if msg.error() is None:
            _emit(engine.on_sync(msg.value()))
    _producer.poll(0)


@app.timer(interval=cfg.sync_important_s)
async def sync_important() -> None:
    _emit(engine.sync_important())
    if control is not None:
        snapshots, view = engine.control_snapshot(app.conf.id)
        now = int(time.time() * 1000)
        status = {"staleness_ms": {str(k): v for k, v in engine.view.staleness_ms(now).items()}, "pid": os.getpid()}
        control.publish(snapshots, view, status)


@app.timer(interval=cfg.sync_unimportant_s)
async def sync_unimportant() -> None:
    _emit(engine.sync_unimportant())


control: ControlPlane | None = None
if os.environ.get("CORRIDOR_TOWER_ETCD", "1") != "0":
    _etcd_host, _etcd_port = settings.etcd_hosts[0]
    control = ControlPlane(_etcd_host, _etcd_port, f"{socket.gethostname()}-{os.getpid()}", cfg.sync_important_s)


@app.task
async def start_control_plane() -> None:
    if control is not None:
        control.start()


@app.on_before_shutdown.connect
async def stop_control_plane(app: faust.App, **_: Any) -> None:
    if control is not None:
        control.stop()


@app.on_partitions_revoked.connect
async def on_revoked(app: faust.App, revoked: set[Any], **_: Any) -> None:
    engine.drop({tp.partition for tp in revoked if tp.topic == topics.telemetry})


def _digest(r: int) -> dict[str, Any]:
    st = _load(r)
    if st is None:
        return {"members": 0, "vehicles": 0, "hazards": [], "digest": ""}
    vehicles = sorted((vid, st.entry_ts(vid)) for vid in st.vehicles_dict())
    h = hashlib.sha256(repr((sorted(st.members.value), vehicles)).encode()).hexdigest()[:16]
    return {"members": len(st.members), "vehicles": len(vehicles), "hazards": sorted(st.hazards.value), "digest": h}


def _owned() -> list[int]:
    return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topics.telemetry)


@app.page("/corridor/state/")
async def state_page(web: Any, request: Any) -> Any:
    """This worker at a glance: its regions, counters, dead letters, sync staleness. Cheap: poll it."""
    now = int(time.time() * 1000)
    return web.json(
        {
            "worker": os.getpid(),
            # Tables are restored from their changelogs before the agents run; until then they read empty.
            "recovered": app.tables.recovery.completed.is_set(),
            "regions": _owned(),
            "members": {str(r): len(engine.states[r].members) for r in _owned() if r in engine.states},
            # member counts of every region as this worker heard them through tower-sync
            "view_members": {str(r): n.member_count for r, n in engine.view.regions.items()},
            "view_hazards": {str(r): sorted(n.hazards.value) for r, n in engine.view.regions.items()},
            "sync_enabled": engine.sync_enabled,
            "counts": dict(engine.counts),
            "dead_letters": dict(engine.dead_reasons),
            "staleness_ms": {str(k): v for k, v in engine.view.staleness_ms(now).items()},
            "etcd": {"healthy": control.healthy, "errors": control.errors, "towers_alive": sorted(control.towers)}
            if control is not None
            else None,
        }
    )


@app.page("/corridor/ready/")
async def ready_page(web: Any, request: Any) -> Any:
    """For readiness probes: 200 once the tables are restored from their changelogs, 503 before."""
    recovered = app.tables.recovery.completed.is_set()
    return web.json({"recovered": recovered, "regions": _owned()}, status=200 if recovered else 503)


@app.page("/corridor/sync/{state}/")
async def sync_switch(web: Any, request: Any, state: str) -> Any:
    """Cut tower-sync off (`off`) or restore it (`on`): a drill for the availability claims."""
    engine.sync_enabled = state != "off"
    return web.json({"sync_enabled": engine.sync_enabled})


@app.page("/corridor/tables/")
async def tables_page(web: Any, request: Any) -> Any:
    """A digest of each owned region as its tables hold it (decodes every value: not for polling)."""
    return web.json(
        {"recovered": app.tables.recovery.completed.is_set(), "regions": {str(r): _digest(r) for r in _owned()}}
    )
