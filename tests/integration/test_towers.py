"""Tower workers (`faust -A towers.app worker`) on the real broker: advice, recovery, replay, dead letters."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import etcd3
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from pipeline.admin import ensure_topics
from pipeline.shared.codec import CodecError
from pipeline.shared.corridor import load_corridor
from pipeline.shared.messages import CODEC, FRAME, HAZARD, SYNC
from pipeline.shared.topics import Topics
from pipeline.stack.wait import towers_missing
from pipeline.workers import TowerProcess, wait_until_written
from producers.drive import DriveConfig, drive, event_clock_start
from producers.fleet import Fleet, FleetConfig
from producers.sink import TelemetrySink
from tests.conftest import REPO
from tests.helpers import corridor, eventually, read_messages
from tests.scenarios import assert_advice_for_hazard, drive_past_a_hazard
from tests.towers.test_engine import engine, upd
from tests.towers.test_poison import VALID_FRAME, VALID_HAZARD, mangled
from towers.config import app_id
from towers.control_plane import close_client, read_namespaces

pytestmark = pytest.mark.integration
CORRIDOR = load_corridor()


def tower_env(bootstrap: str, prefix: str, etcd: str = "") -> dict[str, str]:
    """A worker's environment; with no `etcd`, its control plane is off (CORRIDOR_TOWER_ETCD=0)."""
    return dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        CORRIDOR_TOPIC_PREFIX=prefix,
        PYTHONPATH=str(REPO),
        CORRIDOR_TOWER_OFFSET_RESET="earliest",
        ETCD_ENDPOINTS=etcd,
        CORRIDOR_TOWER_ETCD="1" if etcd else "0",
    )


@pytest.fixture(scope="module")
def towers(stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TowerProcess, Topics]]:
    """One worker serving all nine regions, shared by the tests that do not kill it."""
    prefix = f"tw{uuid.uuid4().hex[:8]}"
    topics = Topics(regions=len(CORRIDOR.regions), prefix=prefix)
    ensure_topics(stack.settings.bootstrap_servers, topics.specs())
    tmp = tmp_path_factory.mktemp("towers")
    etcd = stack.settings.etcd_servers
    worker = TowerProcess(
        tower_env(stack.settings.bootstrap_servers, prefix, etcd), tmp / "data", tmp / "worker.log"
    ).start()
    worker.wait_ready(9)
    yield worker, topics
    worker.stop()


def test_a_hazard_slows_vehicles_in_its_region_and_upstream(bootstrap: str, towers) -> None:
    worker, topics = towers
    hid = f"hz-{uuid.uuid4().hex[:6]}"
    about, sent_ms = drive_past_a_hazard(bootstrap, topics, hid)
    assert_advice_for_hazard(about, sent_ms, worker.page(), hid, worker.tail())


def test_the_metrics_page_is_what_prometheus_reads_and_agrees_with_the_state_page(towers) -> None:
    """After the hazard test's traffic (the worker is idle): the same counts, in Prometheus's format."""
    worker, _ = towers
    page = worker.page()
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=5) as resp:
        kind, text = resp.headers["Content-Type"], resp.read().decode()
    assert kind.startswith("text/plain") and "version=0.0.4" in kind
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def total(name: str, label: str | None = None) -> dict[str, float]:
        return {s.labels.get(label, "") if label else "": s.value for s in samples if s.name == name}

    assert page is not None and page["counts"]["updates"] > 0
    assert total("corridor_tower_updates_total") == {"": page["counts"]["updates"]}
    by_action = total("corridor_tower_advisories_total", "action")
    assert sum(by_action.values()) == page["counts"]["advisories"] > 0 and "SLOW_DOWN" in by_action
    assert total("corridor_tower_dead_letters_total", "reason") == page["dead_letters"]
    assert total("corridor_tower_regions_owned") == {"": 9}
    assert set(total("corridor_tower_behind_seconds", "region")) == {str(r) for r in range(9)}
    # every advisory timed, the hazard's too; its first restore and its one rebalance (joining) said
    assert total("corridor_tower_advice_delay_seconds_count") == {"": page["counts"]["advisories"]}
    assert total("corridor_tower_hazard_advice_delay_seconds_count")[""] > 0
    assert 0 < total("corridor_tower_restore_seconds")[""] < 120
    assert total("corridor_tower_rebalances_total")[""] >= 1 and total("corridor_tower_rebalancing") == {"": 0}
    assert total("corridor_tower_etcd_lease_held") == {"": 1}, "registered with etcd, its lease kept alive"
    assert total("corridor_tower_lag_records", "region") == {str(r): 0 for r in range(9)}, "idle: all read"


def test_poison_records_are_dead_lettered_and_good_ones_around_them_processed(bootstrap: str, towers) -> None:
    worker, topics = towers
    before = (worker.page() or {}).get("counts", {}).get("updates", 0)
    now = int(time.time() * 1000)
    good = {
        "vehicle_id": "veh-9990001",
        "seq": 0,
        "event_time": now,
        "hlc": now << 16,
        "lat": 39.0,
        "lon": -86.5,
        "route_km": 5.0,
        "direction": "NORTHBOUND",
        "lane": 0,
        "heading_deg": 0.0,
        "speed_mps": 20.0,
        "accel_mps2": 0.0,
        "brake": False,
        "energy_pct": 50.0,
        "region_id": 0,
    }
    nan = {**good, "vehicle_id": "veh-9990002", "speed_mps": float("nan")}

    def frame(updates: list[dict]) -> bytes:
        return CODEC.encode(
            FRAME, {"region_id": 0, "frame_seq": 0, "event_time": now, "sent_at": now, "updates": updates}
        )

    producer = Producer({"bootstrap.servers": bootstrap})
    for value in (frame([good]), b"\xde\xad\xbe\xef not avro", frame([nan, {**good, "seq": 1}]), frame([])):
        producer.produce(topics.telemetry, value, b"0", 0)
    producer.flush(10)
    dead = read_messages(bootstrap, topics.dead_letter, 2, timeout=30)
    reasons = sorted(dict(m.headers())["reason"].decode().split(":")[0] for m in dead)
    assert reasons == ["not-a-number", "undecodable"], reasons
    assert any(m.value() == b"\xde\xad\xbe\xef not avro" for m in dead), "the original bytes are kept"
    deadline = time.monotonic() + 20
    while (worker.page() or {}).get("counts", {}).get("updates", 0) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.page()["counts"]["updates"] >= before + 2
    assert worker.alive, "the worker is still running"


def test_every_changelog_write_lands_on_its_source_partition(bootstrap: str, towers) -> None:
    """Co-partitioning: the state of region r lives on partition r of every changelog. One vehicle
    in each region, sent here; then each region's writes are looked for on its own partition."""
    _, topics = towers
    now = int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": bootstrap})
    for reg in CORRIDOR.regions.regions:
        vid = f"veh-99{reg.id:05d}"
        one = {**upd(vid, (reg.from_km + reg.to_km) / 2, region=reg.id), "event_time": now, "hlc": now << 16}
        frame = CODEC.encode(FRAME, {"region_id": reg.id, "frame_seq": 1, "event_time": now, "sent_at": now,
                                     "updates": [one]})  # fmt: skip
        producer.produce(topics.telemetry, frame, str(reg.id).encode(), reg.id)
    producer.flush(10)
    _settle(bootstrap, topics, towers[0])
    app_id = f"{topics.prefix}-towers"
    for table in ("members", "vehicles"):
        regions_seen: set[int] = set()
        for m in read_messages(bootstrap, f"{app_id}-{table}-changelog", 10_000, timeout=10):
            region = int(json.loads(m.key()).split(":")[0])
            assert region == m.partition(), f"{table}: region {region} written to partition {m.partition()}"
            regions_seen.add(region)
        assert regions_seen == set(range(topics.regions)), f"{table}: every region's state was written"


def _settle(bootstrap: str, topics: Topics, worker: TowerProcess) -> dict:
    """Until the worker has written everything it was sent; then the tables' digest."""
    wait_until_written(bootstrap, f"{topics.prefix}-towers", topics.telemetry, topics.regions, int(time.time() * 1000))
    return worker.page("tables")["regions"]


def test_a_killed_worker_recovers_its_tables_from_the_changelog(bootstrap: str, stack, tmp_path: Path) -> None:
    prefix = f"tk{uuid.uuid4().hex[:8]}"
    topics = Topics(regions=9, prefix=prefix)
    ensure_topics(bootstrap, topics.specs())
    env = tower_env(bootstrap, prefix)
    worker = TowerProcess(env, tmp_path / "a", tmp_path / "a.log").start()
    worker.wait_ready(9)
    driving = DriveConfig(hz=1, duration_s=10, speedup=5)
    fleet = Fleet(CORRIDOR, FleetConfig(vehicles=300, seed=31), start_ms=event_clock_start(driving))
    drive(fleet, TelemetrySink(bootstrap), topics, driving)
    before = _settle(bootstrap, topics, worker)
    assert sum(r["members"] for r in before.values()) > 250
    worker.kill()
    # A new data directory: nothing local survives, the changelog alone must restore the tables.
    again = TowerProcess(env, tmp_path / "b", tmp_path / "b.log").start()
    try:
        again.wait_ready(9)
        after = again.page("tables")["regions"]
        assert after == before, again.tail()
    finally:
        again.stop()


def test_replaying_the_whole_telemetry_topic_twice_yields_the_same_state(bootstrap: str, stack, tmp_path: Path) -> None:
    prefix = f"tr{uuid.uuid4().hex[:8]}"
    topics = Topics(regions=9, prefix=prefix)
    ensure_topics(bootstrap, topics.specs())
    driving = DriveConfig(hz=1, duration_s=8, speedup=0)
    fleet = Fleet(CORRIDOR, FleetConfig(vehicles=200, seed=41), start_ms=event_clock_start(driving))
    drive(fleet, TelemetrySink(bootstrap), topics, driving)
    # The settling frames are stamped with the time they are sent, and the replay reads the first
    # settle's too: with the 10 s vehicle TTL, a restart slower than that (late in a loaded suite)
    # expired every vehicle in the second state. This test is about replays, not expiry.
    env = {**tower_env(bootstrap, prefix), "CORRIDOR_TOWER_VEHICLE_TTL_S": "600"}
    worker = TowerProcess(env, tmp_path / "d", tmp_path / "w.log").start()
    worker.wait_ready(9)
    first = _settle(bootstrap, topics, worker)
    worker.stop()
    group = f"{prefix}-towers"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    from confluent_kafka import ConsumerGroupTopicPartitions

    rewind = [TopicPartition(topics.telemetry, p, 0) for p in range(9)]
    for fut in admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, rewind)]).values():
        fut.result(30)
    worker = TowerProcess(env, tmp_path / "d", tmp_path / "w.log").start()
    try:
        worker.wait_ready(9)
        second = _settle(bootstrap, topics, worker)
        assert second == first, worker.tail()
    finally:
        worker.stop()


def test_workers_register_in_etcd_and_publish_consistent_snapshots(towers, cli_env) -> None:
    worker, _ = towers
    deadline = time.monotonic() + 15
    while not ((worker.page() or {}).get("etcd") or {}).get("healthy") and time.monotonic() < deadline:
        time.sleep(0.3)
    assert worker.page()["etcd"]["healthy"], worker.tail()
    ages = worker.page()["staleness_by_class_ms"]
    assert set(ages) == {"hazards", "membership", "vehicle_state", "aggregates", "etcd_snapshot", "global_view"}
    assert 0 <= ages["etcd_snapshot"] < 5_000, "committed within the last rounds"
    result = corridor({**cli_env, "COLUMNS": "220"}, "status", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "tower workers alive (1)" in result.stdout and "tower-04" in result.stdout
    header = next(line for line in result.stdout.splitlines() if "etcd snapshot" in line)
    assert all(label in header for label in ("membership", "aggregates", "vehicle state", "global view"))


def test_a_worker_owns_its_regions_in_etcd_before_any_traffic(stack, tmp_path: Path) -> None:
    """Producers that wait for a tower per region (a Kubernetes Job) must not wait for their own traffic."""
    prefix = f"tq{uuid.uuid4().hex[:8]}"
    topics = Topics(regions=len(CORRIDOR.regions), prefix=prefix)
    ensure_topics(stack.settings.bootstrap_servers, topics.specs())
    env = tower_env(stack.settings.bootstrap_servers, prefix, stack.settings.etcd_servers)
    worker = TowerProcess(env, tmp_path / "data", tmp_path / "worker.log").start()
    host, port = stack.settings.etcd_hosts[0]
    client = etcd3.client(host=host, port=port, timeout=5)
    try:
        worker.wait_ready(9)

        def missing() -> str | None:
            return towers_missing({k: v for k, v in read_namespaces(client).items() if k == app_id(prefix)}, 9)

        eventually(lambda: missing() is None, "every region has a live owner in etcd", timeout=15)
    finally:
        close_client(client)
        worker.stop()


def _sent(bootstrap: str, topic: str, partition: int, values: list[bytes]) -> dict[int, bytes]:
    """Produce `values` to one partition; offset → value, from the delivery reports."""
    offsets: dict[int, bytes] = {}
    producer = Producer({"bootstrap.servers": bootstrap})

    def delivered(err: object, msg: Any) -> None:
        assert err is None, err
        offsets[msg.offset()] = msg.value()

    for value in values:
        producer.produce(topic, value, str(partition).encode(), partition, on_delivery=delivered)
    producer.flush(30)
    return offsets


def _valid_sync() -> bytes:
    e = engine()
    e.on_telemetry(4, VALID_FRAME, e.region(4))
    ((_, message),) = e.on_hazard(4, VALID_HAZARD, e.states[4]).sync
    return message


@settings(max_examples=1, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_records_on_every_input_topic_of_a_running_worker_are_dead_letters(bootstrap: str, towers, data) -> None:
    """Structured fuzzing (truncations, flipped bytes, foreign fingerprints, noise) of telemetry, hazards
    and tower-sync against a running worker: each record it cannot read is a dead letter holding its
    bytes and naming its source, and the worker goes on serving."""
    worker, topics = towers
    batches = {
        (topics.telemetry, FRAME): data.draw(st.lists(mangled(VALID_FRAME), min_size=40, max_size=40)),
        (topics.hazards, HAZARD): data.draw(st.lists(mangled(VALID_HAZARD), min_size=40, max_size=40)),
        (topics.tower_sync, SYNC): data.draw(st.lists(mangled(_valid_sync()), min_size=40, max_size=40)),
    }
    unreadable: set[tuple[str, int]] = set()
    for (topic, schema), values in batches.items():
        for offset, value in _sent(bootstrap, topic, 4, values).items():
            try:
                CODEC.decode(value, schema)
            except CodecError:
                unreadable.add((topic, offset))
    assert len(unreadable) > 60, "most of the fuzzed records cannot be read"
    found: dict[tuple[str, int], list[str]] = {}
    deadline = time.monotonic() + 60
    while not unreadable <= found.keys() and time.monotonic() < deadline:
        found = {}
        for m in read_messages(bootstrap, topics.dead_letter, 10_000, timeout=3):
            head = {k: v.decode() for k, v in m.headers() or []}
            if "source-topic" in head:
                found.setdefault((head["source-topic"], int(head["source-offset"])), []).append(head["reason"])
    missing = unreadable - found.keys()
    assert not missing, f"{len(missing)} unreadable records are not dead letters, e.g. {sorted(missing)[:3]}"
    assert all(found[k] and found[k][0].split(":")[0] for k in unreadable), "each with its reason"
    before = worker.page()["counts"]["updates"]
    now = int(time.time() * 1000)
    fresh = {**upd("veh-9990100", 40.0), "event_time": now, "hlc": now << 16}
    good = CODEC.encode(FRAME, {"region_id": 4, "frame_seq": 1, "event_time": now, "sent_at": now, "updates": [fresh]})
    _sent(bootstrap, topics.telemetry, 4, [good])
    deadline = time.monotonic() + 20
    while worker.page()["counts"]["updates"] <= before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.alive and worker.page()["counts"]["updates"] > before, "the worker still merges good telemetry"
