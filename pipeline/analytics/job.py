"""`corridor analytics`: the cloud tier's Spark Structured Streaming job over the whole corridor.

Spark's Kafka source reads telemetry (frames and single records), advisories and hazard reports;
`from_avro` decodes them once their 10-byte single-object header is cut off, selected by the
header's schema fingerprint. One event-time aggregation (10-second windows, a watermark) gives each
window × 1-km segment × direction its traffic and its advisories and hazards; each finished window
becomes, in `foreachBatch`, Parquet files and `CorridorStats` records on `<prefix>.corridor-stats`,
with the window's travel times and congestion episodes (`pipeline.analytics.segments`).

A restarted job resumes from its checkpoint. A batch Spark replays after a crash rewrites its own
Parquet folder and is not sent to Kafka twice (the last batch sent is kept beside the output).
Updates later than the watermark are counted (`late_dropped`), from Spark's progress reports.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

import schemas
from pipeline.analytics.segments import (
    NORTH,
    SOUTH,
    WINDOW_MS,
    EpisodeTracker,
    SegmentGrid,
    SegmentRow,
)
from pipeline.shared.access import KafkaAccess, client_conf
from pipeline.shared.corridor import Corridor
from pipeline.shared.errors import StackError
from pipeline.shared.messages import ADVISORY, CODEC, FRAME, HAZARD, STATS, TELEMETRY
from pipeline.shared.topics import Topics

__all__ = ["AnalyticsConfig", "run_job"]


@dataclass(frozen=True, slots=True)
class AnalyticsConfig:
    master: str = "local[2]"
    hz: float = 1.0  # the fleet's update rate: each update stands for 1/hz s of its vehicle
    watermark_s: int = 30  # event-time lateness accepted before a window is final
    trigger_s: float = 2.0
    starting: str = "earliest"  # earliest | latest | a wall time in ms (the offsets of that moment)
    available_now: bool = False  # process what is there, then stop (recorded runs, tests)
    driver_memory: str = "1g"


def kafka_options(access: KafkaAccess) -> dict[str, str]:
    """Spark's Kafka source options for `access` (the Java client's names, prefixed `kafka.`)."""
    opts = {"kafka.bootstrap.servers": access.bootstrap}
    if access.secure:
        opts.update({f"kafka.{k}": v for k, v in access.java_properties().items()})
    return opts


def session(config: AnalyticsConfig, jars: list[Path], work: Path) -> Any:
    from pyspark.sql import SparkSession

    # loopback only, like the rest of the stack: the driver's and the block manager's addresses
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return (
        SparkSession.builder.master(config.master)
        .appName("corridor-analytics")
        .config("spark.jars", ",".join(str(j) for j in jars))
        .config("spark.driver.memory", config.driver_memory)
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.local.dir", str(work / "spark-local"))
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def _source(spark: Any, access: KafkaAccess, topic: str, config: AnalyticsConfig) -> Any:
    reader = spark.readStream.format("kafka").options(**kafka_options(access)).option("subscribe", topic)
    reader = reader.option("failOnDataLoss", "false").option("maxOffsetsPerTrigger", 2_000_000)
    if config.starting.isdigit():  # a partition with nothing at or after that time starts at its end
        reader = reader.option("startingOffsetsByTimestampStrategy", "latest")
        return reader.option("startingTimestamp", config.starting).load()
    return reader.option("startingOffsets", config.starting).load()


def _decoded(raw: Any, schema: Any, name: str) -> Any:
    """Records of one writer schema under either header (single-object, or Confluent once the
    registry's ids are known), decoded; a record that does not decode becomes null and is dropped.
    One branch per schema whatever the headers: the query's sources (and its checkpoint) stay the same
    when a topic moves from one header to the other."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    length = None
    for head in CODEC.headers_of(schema):
        match = F.substring("value", 1, len(head)) == F.lit(head)
        length = F.when(match, len(head)) if length is None else length.when(match, len(head))
    mine = raw.withColumn("head", length).where("head IS NOT NULL")
    body = F.expr("substring(value, head + 1, length(value) - head)")
    return mine.select(from_avro(body, json.dumps(schemas.load(name)), {"mode": "PERMISSIVE"}).alias("r")).where(
        "r IS NOT NULL"
    )


def events(spark: Any, access: KafkaAccess, topics: Topics, config: AnalyticsConfig) -> Any:
    """Telemetry updates, advisories and hazard reports as one stream of (time, km, direction, ...)."""
    from pyspark.sql import functions as F

    tel_raw = _source(spark, access, topics.telemetry, config)
    frames = _decoded(tel_raw, FRAME, "telemetry_frame").select(F.explode("r.updates").alias("u")).select("u.*")
    singles = _decoded(tel_raw, TELEMETRY, "vehicle_telemetry").select("r.*")
    cols = ["event_time", "route_km", "direction", "speed_mps", "vehicle_id"]
    telemetry = frames.select(*cols).unionByName(singles.select(*cols)).withColumn("kind", F.lit("T"))
    both = F.array(F.lit(NORTH), F.lit(SOUTH))
    adv = _decoded(_source(spark, access, topics.advisories, config), ADVISORY, "control_advisory").select(
        F.col("r.issued_at").alias("event_time"), F.col("r.route_km").alias("route_km"),
        F.explode(F.when(F.col("r.direction").isNull(), both).otherwise(F.array("r.direction"))).alias("direction"),
    ).where("route_km IS NOT NULL")  # fmt: skip
    haz = _decoded(_source(spark, access, topics.hazards, config), HAZARD, "hazard_report").where(
        "NOT r.cancelled"
    ).select(
        F.col("r.detection_time").alias("event_time"), F.col("r.route_km").alias("route_km"),
        F.explode(F.when(F.col("r.direction") == "BOTH", both).otherwise(F.array("r.direction"))).alias("direction"),
    )  # fmt: skip
    extra = [F.lit(None).cast("float").alias("speed_mps"), F.lit(None).cast("string").alias("vehicle_id")]
    return telemetry.unionByName(adv.select("*", *extra, F.lit("A").alias("kind"))).unionByName(
        haz.select("*", *extra, F.lit("H").alias("kind"))
    )


def segment_stats(ev: Any, config: AnalyticsConfig) -> Any:
    """One row per 10-second window × segment × direction, final once the watermark passes it."""
    from pyspark.sql import functions as F

    tel = F.col("kind") == "T"
    return (
        ev.withColumn("ts", F.timestamp_millis("event_time"))
        .withWatermark("ts", f"{config.watermark_s} seconds")
        .groupBy(
            F.window("ts", f"{WINDOW_MS // 1000} seconds"),
            F.floor("route_km").cast("int").alias("segment"),
            "direction",
        )
        .agg(
            F.approx_count_distinct(F.when(tel, F.col("vehicle_id")), 0.01).alias("vehicles"),
            F.sum(tel.cast("int")).alias("updates"),
            F.avg(F.when(tel, F.col("speed_mps"))).alias("mean_speed_mps"),
            F.percentile_approx(F.when(tel, F.col("speed_mps")), 0.15, 10_000).alias("p15_speed_mps"),
            F.sum((F.col("kind") == "A").cast("int")).alias("advisories"),
            F.sum((F.col("kind") == "H").cast("int")).alias("hazards"),
        )
        .select(
            F.unix_millis(F.col("window.start")).alias("window_start"),
            "segment",
            "direction",
            "vehicles",
            "updates",
            "mean_speed_mps",
            "p15_speed_mps",
            "advisories",
            "hazards",
        )
    )


class StatsSink:
    """`foreachBatch`: finished windows → Parquet and `CorridorStats` records (with travel times and
    congestion episodes derived from them)."""

    def __init__(self, out_dir: Path, producer_access: KafkaAccess, topic: str, corridor: Corridor,
                 config: AnalyticsConfig) -> None:  # fmt: skip
        self.out_dir, self.topic, self.config = out_dir, topic, config
        self.grid = SegmentGrid.of(corridor.route.length_km, corridor.route.speed_limit_mps)
        self.tracker = EpisodeTracker(self.grid.limits_mps)
        self.late = 0
        self.rows_out = 0
        self.delays_ms: list[int] = []  # window end (event time) → record produced (wall), for the bench
        self.batch_ms: list[int] = []  # each micro-batch's own duration, from Spark's progress
        self.batches = 0  # micro-batches Spark reported progress on
        self.input_rows = 0
        self.rows_per_s = 0.0  # the latest batch's processing rate
        self._sent_file = out_dir / "_kafka_batches"
        self._producer: Producer | None = Producer(
            client_conf(producer_access, {"enable.idempotence": True, "linger.ms": 5, "log_level": 3})
        )
        self._lock = threading.Lock()

    def _sent_up_to(self) -> int:
        try:
            return int(self._sent_file.read_text())
        except (OSError, ValueError):
            return -1

    def __call__(self, batch: Any, batch_id: int) -> None:
        from pyspark.sql import functions as F

        hz, t_s = self.config.hz, WINDOW_MS / 1000
        shaped = batch.withColumn("density_per_km", F.col("updates") / F.lit(hz * t_s)).withColumn(
            "flow_per_h", F.col("density_per_km") * F.col("mean_speed_mps") * 3.6
        )
        shaped = shaped.persist()  # written and collected: computed once
        # a replayed batch overwrites its own folder: each window is in the dataset once
        shaped.write.mode("overwrite").parquet(str(self.out_dir / "segments" / f"batch={batch_id}"))
        collected = shaped.collect()
        shaped.unpersist()
        rows = [
            SegmentRow(
                int(r.window_start),
                int(r.segment),
                str(r.direction),
                int(r.vehicles),
                int(r.updates),
                float(r.mean_speed_mps),
                float(r.p15_speed_mps),
                float(r.density_per_km),
                float(r.flow_per_h),
                int(r.advisories),
                int(r.hazards),
            )
            for r in collected
            if r.updates
        ]
        # kilometres with only advisories or hazards (nobody driving there) still count those
        rows += [SegmentRow(int(r.window_start), int(r.segment), str(r.direction), 0, 0, 0.0, 0.0, 0.0, 0.0,
                            int(r.advisories), int(r.hazards))
                 for r in collected if not r.updates]  # fmt: skip
        if batch_id <= self._sent_up_to():
            return  # a replayed batch: its records are on the topic already
        self._send(rows)
        assert self._producer is not None
        if self._producer.flush(30):
            raise RuntimeError("the stats records were not all acknowledged within 30 s")  # the batch is retried
        self._sent_file.write_text(f"{batch_id}\n")

    def _send(self, rows: list[SegmentRow]) -> None:
        by_window: dict[int, list[SegmentRow]] = {}
        for r in rows:
            by_window.setdefault(r.window_start_ms, []).append(r)
        now = int(time.time() * 1000)
        for w in sorted(by_window):
            wrows = by_window[w]
            base = {"window_start": w, "window_end": w + WINDOW_MS, "late_dropped": self.late, "emitted_at": now}
            for r in wrows:
                self._emit(f"S:{w}:{r.segment}:{r.direction[0]}", {
                    **base, "kind": "SEGMENT", "direction": r.direction, "segment_km": r.segment,
                    "vehicles": r.vehicles, "updates": r.updates, "mean_speed_mps": r.mean_speed_mps,
                    "p15_speed_mps": r.p15_speed_mps, "density_per_km": r.density_per_km, "flow_per_h": r.flow_per_h,
                    "advisories": r.advisories, "hazards": r.hazards,
                })  # fmt: skip
            for direction in (NORTH, SOUTH):
                speeds = {r.segment: r.mean_speed_mps for r in wrows if r.direction == direction and r.updates}
                tt = self.grid.travel_time_s(speeds)
                self._emit(f"T:{w}:{direction[0]}", {**base, "kind": "TRAVEL_TIME", "direction": direction,
                                                     "travel_time_s": tt})  # fmt: skip
            for ep in self.tracker.add_window(w, [r for r in wrows if r.updates]):
                self._emit(f"E:{w}:{ep.episode_id}", {
                    **base, "kind": "EPISODE", "direction": ep.direction, "episode_id": ep.episode_id,
                    "episode_start": ep.start_ms, "from_km": float(ep.first_km), "to_km": float(ep.last_km + 1),
                    "shockwave_kmh": ep.shockwave_kmh(),
                })  # fmt: skip
            self.delays_ms.append(now - (w + WINDOW_MS))

    def _emit(self, key: str, record: dict[str, Any]) -> None:
        value = CODEC.encode(STATS, record)
        assert self._producer is not None
        while True:
            try:
                self._producer.produce(self.topic, value, key.encode())
                break
            except BufferError:
                self._producer.poll(0.1)
        self.rows_out += 1

    def on_progress(self, progress: Any) -> None:
        """Spark's progress report: the rows its watermark dropped are late telemetry, counted."""
        with self._lock:
            self.batches += 1
            self.input_rows += int(getattr(progress, "numInputRows", 0) or 0)
            self.rows_per_s = float(getattr(progress, "processedRowsPerSecond", 0.0) or 0.0)
            took = (getattr(progress, "durationMs", None) or {}).get("triggerExecution")
            if took is not None and int(getattr(progress, "numInputRows", 0) or 0) > 0:
                self.batch_ms.append(int(took))
            for op in getattr(progress, "stateOperators", []) or []:
                self.late += int(getattr(op, "numRowsDroppedByWatermark", 0) or 0)

    def figures(self) -> dict[str, Any]:
        """Its counters for `/metrics` (`pipeline.analytics.metrics`), read under its lock."""
        with self._lock:
            return {"batches": self.batches, "input_rows": self.input_rows, "rows_per_s": self.rows_per_s,
                    "batch_s": self.batch_ms[-1] / 1000 if self.batch_ms else None, "late": self.late,
                    "records_out": self.rows_out,
                    "window_delay_s": self.delays_ms[-1] / 1000 if self.delays_ms else None}  # fmt: skip

    def close(self) -> None:
        """Flush, and let the producer go with the job (it would log its broker's absence otherwise)."""
        if self._producer is not None:
            self._producer.flush(30)
            self._producer = None


def run_job(
    access: KafkaAccess, producer_access: KafkaAccess, topics: Topics, corridor: Corridor, out_dir: Path,
    checkpoint: Path, config: AnalyticsConfig, jars: list[Path], stop: threading.Event | None = None,
    on_ready: Any = None, on_sink: Any = None,
) -> StatsSink:  # fmt: skip
    """Run until `stop` is set (or, with `available_now`, until what is in the topics is processed)."""
    from pyspark.errors import StreamingQueryException
    from pyspark.sql.streaming import StreamingQueryListener

    out_dir.mkdir(parents=True, exist_ok=True)
    spark = session(config, jars, out_dir.parent)
    spark.sparkContext.setLogLevel("ERROR")
    sink = StatsSink(out_dir, producer_access, topics.corridor_stats, corridor, config)
    if on_sink is not None:  # its figures served while the query runs (`corridor analytics --metrics-port`)
        on_sink(sink)

    class Listener(StreamingQueryListener):
        def onQueryStarted(self, event: Any) -> None:
            if on_ready is not None:
                on_ready()

        def onQueryProgress(self, event: Any) -> None:
            sink.on_progress(event.progress)

        def onQueryIdle(self, event: Any) -> None:
            pass

        def onQueryTerminated(self, event: Any) -> None:
            pass

    spark.streams.addListener(Listener())
    writer = segment_stats(events(spark, access, topics, config), config).writeStream.outputMode("append")
    writer = writer.foreachBatch(sink).option("checkpointLocation", str(checkpoint))
    writer = (
        writer.trigger(availableNow=True)
        if config.available_now
        else writer.trigger(processingTime=f"{config.trigger_s} seconds")
    )
    query = writer.start()
    try:
        while query.isActive:
            if stop is not None and stop.is_set():
                query.stop()
                break
            query.awaitTermination(0.5)
    except StreamingQueryException as exc:  # one line, as every corridor error: Spark's plan is in its log
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StackError(f"the analytics query stopped: {message[:400]}") from None
    finally:
        sink.close()
        spark.stop()
    return sink
