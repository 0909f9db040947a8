"""The Spark job on a recorded run, against the NumPy reference; and a restart from its checkpoint."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from pipeline.admin import ensure_topics
from pipeline.analytics.metrics import analytics_families
from pipeline.analytics.segments import NORTH, SegmentRow, segment_rows
from pipeline.shared.access import Role
from pipeline.shared.codec import AvroCodec
from pipeline.shared.config import Settings
from pipeline.shared.corridor import load_corridor
from pipeline.shared.hazards import hazard_record
from pipeline.shared.messages import ADVISORY, CODEC, FRAME, HAZARD, STATS, TELEMETRY
from pipeline.shared.metric_catalog import exposition
from pipeline.shared.topics import Topics
from pipeline.stack import Stack
from producers.drive import DriveConfig, WireFormat, drive
from producers.fleet import Fleet, FleetConfig
from producers.sink import TelemetrySink
from tests.helpers import scraped
from tests.shared.test_wire_formats import IDS as REGISTRY_IDS

pytestmark = pytest.mark.integration

try:
    import pyspark
except ImportError:  # the extra is not installed: CI installs it, and there this must not skip
    if os.environ.get("CORRIDOR_STRICT_TESTS") == "1":
        raise
    pytest.skip("pyspark is not installed: pip install -e '.[spark]'", allow_module_level=True)

CORRIDOR = load_corridor()
WATERMARK_S = 20


def _read(bootstrap: str, topic: str, partitions: int) -> list[tuple[bytes | None, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "log_level": 0})  # fmt: skip
    ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)]
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[tuple[bytes | None, bytes]] = []
    deadline = time.monotonic() + 60
    while len(out) < sum(ends) and time.monotonic() < deadline:
        out += [(m.key(), m.value()) for m in consumer.consume(10_000, 1.0) if m.error() is None]
    consumer.close()
    return out


def _updates(bootstrap: str, topics: Topics) -> list[dict[str, Any]]:
    """Every vehicle update on the telemetry topic, frames unpacked: what the job was given."""
    out = []
    for _, value in _read(bootstrap, topics.telemetry, topics.regions):
        rec = CODEC.decode(value)
        out += rec["updates"] if CODEC.writer_of(value) is FRAME else [rec]
    return out


def _reference(updates: list[dict[str, Any]]) -> dict[tuple[int, int, str], SegmentRow]:
    rows = segment_rows(
        np.array([u["event_time"] for u in updates], np.int64), np.array([u["route_km"] for u in updates]),
        np.array([u["direction"] == NORTH for u in updates]),
        np.array([u["speed_mps"] for u in updates], np.float32).astype(np.float64),
        [u["vehicle_id"] for u in updates], 1.0,
    )  # fmt: skip
    return {(r.window_start_ms, r.segment, r.direction): r for r in rows}


def _run(settings: Settings, topics: Topics, out: Path) -> Any:
    from pipeline.analytics.jars import connector_jars
    from pipeline.analytics.job import AnalyticsConfig, run_job

    jars = connector_jars(settings.cache_dir, Path(pyspark.__file__).parent / "jars")
    config = AnalyticsConfig(watermark_s=WATERMARK_S, available_now=True, driver_memory="768m")
    admin = settings.kafka(Role.ADMIN)
    return run_job(admin, admin, topics, CORRIDOR, out, out / "checkpoint", config, jars)


def _drive(settings: Settings, topics: Topics, start_ms: int, seconds: int, wire: WireFormat, seed: int) -> None:
    fleet = Fleet(CORRIDOR, FleetConfig(vehicles=150, seed=seed), start_ms=start_ms)
    drive(fleet, TelemetrySink(settings.bootstrap_servers), topics,
          DriveConfig(hz=1, duration_s=seconds, speedup=0, wire=wire))  # fmt: skip


@pytest.fixture(scope="module")
def recorded(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Topics, Path]]:
    s = stack.settings
    topics = Topics(regions=9, prefix=f"an{uuid.uuid4().hex[:6]}")
    ensure_topics(s.bootstrap_servers, topics.specs())
    yield s, topics, tmp_path_factory.mktemp("analytics")


def test_spark_equals_numpy_and_a_restart_resumes_without_double_counting(recorded) -> None:
    settings, topics, out = recorded
    t0 = (int(time.time() * 1000) // 10_000) * 10_000
    # first half: frames, and a hazard and an advisory near km 36 northbound
    _drive(settings, topics, t0, 60, WireFormat.FRAMES, seed=1)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    hazard = hazard_record(36.4, "ANIMAL", "NORTHBOUND", 5, t0 + 20_500, 600, "deer", "t")
    producer.produce(topics.hazards, CODEC.encode(HAZARD, hazard), b"4", hazard["region_id"])
    advisory = {"advisory_id": "a1", "region_id": 4, "tower": "t", "target_vehicle": "v1", "direction": NORTH,
                "action": "SLOW_DOWN", "target_speed_mps": 10.0, "reason": "deer", "hazard_id": "deer",
                "issued_at": t0 + 21_000, "valid_until": t0 + 31_000, "trigger_event_time": t0 + 21_000,
                "trigger_hlc": 0, "route_km": 35.2}  # fmt: skip
    producer.produce(topics.advisories, CODEC.encode(ADVISORY, advisory), b"4", 4)
    producer.flush(10)
    first = _run(settings, topics, out)
    assert first.rows_out > 0, "windows the watermark passed were emitted"
    # then: an update older than the watermark (late), and the second half as single records in the
    # Confluent wire format (a topic moving to it while it runs: the job reads both headers)
    late = {**_updates(settings.bootstrap_servers, topics)[0], "event_time": t0 + 1_000, "seq": 10**9}
    producer.produce(topics.telemetry, CODEC.encode(TELEMETRY, late), b"0", late["region_id"])
    producer.flush(10)
    CODEC.use_registry_ids(REGISTRY_IDS, "confluent")
    try:
        _drive(settings, topics, t0 + 60_000, 60, WireFormat.RECORDS, seed=2)
        second = _run(settings, topics, out)
        updates = [u for u in _updates(settings.bootstrap_servers, topics) if u["seq"] != 10**9]
    finally:
        CODEC.use_registry_ids({}, "single-object")
    assert sum(v[:1] == b"\x00" for _, v in _read(settings.bootstrap_servers, topics.telemetry, 9)) > 8_000
    assert second.late >= 1, "the late update is counted, not silently dropped"
    # its progress as /metrics serves it (`corridor analytics --metrics-port`)
    shown = scraped(exposition(analytics_families(second.figures())).decode())
    assert shown[("corridor_analytics_batches_total", ())] >= 1
    assert shown[("corridor_analytics_input_rows_total", ())] > 0
    assert shown[("corridor_analytics_late_rows_total", ())] == second.late
    assert shown[("corridor_analytics_records_out_total", ())] == second.rows_out

    from pyspark.sql import SparkSession

    expected = _reference(updates)
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    try:
        got = [r.asDict() for r in spark.read.parquet(str(out / "segments")).collect()]
    finally:
        spark.stop()
    keys = [(r["window_start"], r["segment"], r["direction"]) for r in got]
    assert len(keys) == len(set(keys)), "no window emitted twice across the restart"
    last_ms = max(u["event_time"] for u in updates)
    closed = {k for k in expected if k[0] + 10_000 <= last_ms - WATERMARK_S * 1000}
    keys_with_traffic = {(r["window_start"], r["segment"], r["direction"]) for r in got if r["updates"]}
    assert closed <= keys_with_traffic, f"{len(closed - keys_with_traffic)} finished windows missing"
    assert keys_with_traffic <= set(expected), "no window made up"
    for r in got:
        if not r["updates"]:  # a kilometre with a hazard or an advisory and nobody driving there
            continue
        ref = expected[(r["window_start"], r["segment"], r["direction"])]
        assert (r["vehicles"], r["updates"]) == (ref.vehicles, ref.updates), r
        assert r["mean_speed_mps"] == pytest.approx(ref.mean_speed_mps, rel=1e-6)
        assert r["p15_speed_mps"] == pytest.approx(ref.p15_speed_mps, rel=1e-6)
        assert r["density_per_km"] == pytest.approx(ref.density_per_km) and r["flow_per_h"] == pytest.approx(
            ref.flow_per_h, rel=1e-6
        )
    # the hazard and the advisory land in their kilometre, northbound
    by_key = {(r["window_start"], r["segment"], r["direction"]): r for r in got}
    assert by_key[(t0 + 20_000, 36, NORTH)]["hazards"] == 1 and by_key[(t0 + 20_000, 35, NORTH)]["advisories"] == 1
    # the stats topic: one SEGMENT record per emitted row, travel times for both directions per window
    reader = AvroCodec(CODEC.schemas)  # the second run wrote its figures in the Confluent format
    reader.use_registry_ids(REGISTRY_IDS, "single-object")
    stats = [reader.decode(v, STATS) for _, v in _read(settings.bootstrap_servers, topics.corridor_stats, 1)]
    segments = [(s["window_start"], s["segment_km"], s["direction"]) for s in stats if s["kind"] == "SEGMENT"]
    assert sorted(segments) == sorted(keys), "every row once on Kafka too"
    travel = [s for s in stats if s["kind"] == "TRAVEL_TIME"]
    assert len(travel) == 2 * len({k[0] for k in keys}) and all(40 * 60 < s["travel_time_s"] < 90 * 60 for s in travel)
