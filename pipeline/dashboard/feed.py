"""The dashboard's Kafka side: telemetry, hazards and advisories into a `Board`, in a thread.

It reads with a consumer group of its own (never the towers'), assigned every partition: telemetry,
advisories and the cloud tier's corridor-wide figures from their ends (a page shows what happens
now), hazards from the beginning (a hazard reported before the page was opened is still on the road
until it expires or is cleared).
Frames are decoded column-wise, as the towers decode them; a record that does not decode, or holds
anything the board cannot take, is counted and skipped — the towers dead-letter it, the dashboard
only shows, and no record can stop the thread that feeds every open page.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, Message, TopicPartition

from pipeline.dashboard.board import Board
from pipeline.shared.access import Kafka, client_conf
from pipeline.shared.codec import CodecError
from pipeline.shared.messages import ADVISORY, CODEC, FRAME, HAZARD, STATS
from pipeline.shared.topics import Topics
from towers.frames import decode_frame, decode_record

__all__ = ["Feed"]

log = logging.getLogger("dashboard")


class Feed:
    def __init__(self, bootstrap: Kafka, topics: Topics, board: Board, lock: threading.Lock) -> None:
        self.topics, self.board, self.lock = topics, board, lock
        self.undecodable = 0
        self.messages = 0
        self._stop = threading.Event()
        group = f"corridor-dashboard-{uuid.uuid4().hex[:8]}"  # its own, never the towers'
        self._consumer = Consumer(client_conf(bootstrap, {"group.id": group, "enable.auto.commit": False,
                                   "log_level": 3}))  # fmt: skip
        parts = range(topics.regions)
        # hazards written before the page started: they set the hazards on the road, not the timeline
        self._history_end = self._ends(topics.hazards, topics.regions)
        self._consumer.assign(
            [TopicPartition(topics.telemetry, p, OFFSET_END) for p in parts]
            + [TopicPartition(topics.advisories, p, OFFSET_END) for p in parts]
            + [TopicPartition(topics.hazards, p, OFFSET_BEGINNING) for p in parts]
            + [TopicPartition(topics.corridor_stats, 0, OFFSET_END)]  # written only when the Spark job runs
        )
        self._thread = threading.Thread(target=self._run, name="dashboard-feed", daemon=True)

    def _ends(self, topic: str, partitions: int) -> dict[int, int]:
        """The topic's end offsets now; none when it does not exist yet (no run has created it) or
        Kafka does not answer: then everything read is news, and the page says what it can."""
        ends: dict[int, int] = {}
        try:
            for p in range(partitions):
                ends[p] = self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
        except KafkaException as exc:
            log.warning("no end offsets for %s (%s): hazards read from it all go on the timeline", topic, exc)
            return {}
        return ends

    def start(self) -> Feed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                msgs = self._consumer.consume(5_000, timeout=0.1)
                now = int(time.time() * 1000)
                with self.lock:
                    for m in msgs:
                        if m.error() is None:
                            self._apply(m, now)
        finally:
            self._consumer.close()

    def _apply(self, m: Message, now_ms: int) -> None:
        value = m.value()
        if value is None:
            return
        self.messages += 1
        try:
            if m.topic() == self.topics.telemetry:
                writer = CODEC.writer_of(value)
                updates = decode_frame(value)[1] if writer.fingerprint == FRAME.fingerprint else decode_record(value)
                self.board.add_updates(updates, now_ms)
            elif m.topic() == self.topics.advisories:
                self.board.add_advisory(CODEC.decode(value, ADVISORY), now_ms)
            elif m.topic() == self.topics.corridor_stats:
                self.board.add_stats(CODEC.decode(value, STATS))
            else:
                old = (m.offset() or 0) < self._history_end.get(m.partition() or 0, 0)
                self.board.add_hazard(CODEC.decode(value, HAZARD), in_timeline=not old)
        except (CodecError, ValueError, KeyError, ArithmeticError, TypeError, IndexError) as exc:
            self.undecodable += 1
            if self.undecodable == 1 or self.undecodable % 1000 == 0:
                log.warning("%d undecodable record(s) skipped, the last on %s: %s", self.undecodable, m.topic(), exc)
