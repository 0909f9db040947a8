"""Fuzz targets: bytes in, and whatever the bytes, only the errors a decoder promises come out. Each
target is also what `test_regressions.py` replays its kept inputs through (no fuzzer needed)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from pipeline.shared.codec import CodecError
from pipeline.shared.crdt import CrdtError, decode_state
from pipeline.shared.messages import CODEC, HAZARD, SYNC
from pipeline.shared.radio_topics import RadioTopics
from tests.towers.test_engine import T0, engine
from towers.frames import decode_frame
from towers.gateway.batch import FrameBatcher
from towers.vehicle_buckets import read_bucket

__all__ = ["TARGETS"]

_TOPICS = RadioTopics(regions=9)


def frames(data: bytes) -> None:
    """The columnar frame decoder, then the tower's telemetry handler on the same bytes."""
    with contextlib.suppress(CodecError):
        decode_frame(data)
    e = engine()
    e.on_telemetry(4, data, e.region(4), backlog=0)  # never raises


def records(data: bytes) -> None:
    """The single-object codec under every reader, then the hazard and tower-sync handlers."""
    for reader in (None, HAZARD, SYNC):
        with contextlib.suppress(CodecError):
            CODEC.decode(data, reader)
    e = engine()
    e.on_hazard(4, data, e.region(4))
    e.on_sync(data, 4)


def states(data: bytes) -> None:
    """CRDT states (tower-sync deltas, table values) and vehicle buckets as the tables keep them."""
    for read in (decode_state, read_bucket):
        with contextlib.suppress(CrdtError):
            read(data)


def radio(data: bytes) -> None:
    """The gateway's batcher: the first byte picks a topic (one of ours or raw bytes), the rest is
    the payload; then every region's frame is taken out."""
    pick, payload = (data[0], data[1:]) if data else (0, b"")
    topic = _TOPICS.telemetry(pick % 12, "veh-0000001") if pick < 200 else payload[:20].decode("utf-8", "replace")
    batcher = FrameBatcher(_TOPICS)
    batcher.add(topic, payload, T0 + 60_000)
    batcher.frames(list(range(9)), T0 + 60_000)


TARGETS: dict[str, Callable[[bytes], None]] = {"frames": frames, "records": records, "states": states, "radio": radio}
