"""What survived a fault, exactly: the towers' tables against a reference computed from the topic.

The reference is every acknowledged vehicle update, as the telemetry topic holds it: for each
(region, vehicle), the newest HLC sent. The towers' durable state is what their `vehicles` changelog
holds (the table a restarted worker recovers): for each (region, vehicle), the HLC of the entry kept.
An update is *kept* when the table holds exactly it, *superseded* when the table holds a newer write
of the same vehicle (a departure's tombstone, stamped later by the tower's clock), and *lost* when the
table holds an older one or nothing — unless the tower refused that update with a reason: then it
is *rejected*, and the dead-letter topic holds it (a vehicle whose clock is too far ahead). A
departed vehicle's tombstone is itself forgotten past the towers' horizon: an update older than that
horizon whose vehicle the table no longer holds counts as superseded. Pure: the drill does the reading.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.shared.codec import CodecError
from pipeline.shared.messages import CODEC, FRAME, TELEMETRY
from towers.frames import decode_frame, decode_record
from towers.vehicle_buckets import read_bucket

__all__ = ["Accounting", "account", "latest_rejected", "latest_sent", "latest_stored"]

Key = tuple[int, str]  # (region, vehicle id)


def latest_sent(frames: Iterable[tuple[int, bytes]]) -> dict[Key, int]:
    """(partition, frame bytes) → the newest HLC of each vehicle in each region. A record that is
    no frame (a stranger's, in the hostile drill) is the dead letters' to account for: skipped."""
    out: dict[Key, int] = {}
    for region, raw in frames:
        try:
            _, ups = decode_frame(raw)
        except (CodecError, ValueError):
            continue
        for vid, hlc in zip(ups.ids, ups.hlc.tolist(), strict=True):
            key = (region, vid)
            if hlc > out.get(key, 0):
                out[key] = hlc
    return out


def latest_rejected(dead: Iterable[tuple[int, bytes]]) -> dict[Key, int]:
    """(partition, dead letter of the telemetry topic: a whole frame or one update of one) → the
    newest HLC refused of each vehicle in each region. Letters that are not telemetry are skipped."""
    out: dict[Key, int] = {}
    for region, raw in dead:
        try:
            writer = CODEC.writer_of(raw)
            if writer is FRAME:
                ups = decode_frame(raw)[1]
            elif writer is TELEMETRY:
                ups = decode_record(raw)
            else:
                continue
        except (CodecError, ValueError):
            continue
        for vid, hlc in zip(ups.ids, ups.hlc.tolist(), strict=True):
            key = (region, vid)
            if hlc > out.get(key, 0):
                out[key] = hlc
    return out


def latest_stored(buckets: Iterable[tuple[int, bytes]]) -> dict[Key, int]:
    """(region, vehicle bucket table value) → the HLC of each vehicle's entry, tombstones included."""
    out: dict[Key, int] = {}
    for region, raw in buckets:
        cols = read_bucket(raw)
        for s in cols.used_slots().tolist():
            key = (region, cols.keys[s])
            out[key] = max(out.get(key, 0), int(cols.ts[s]))
    return out


@dataclass(frozen=True, slots=True)
class Accounting:
    acknowledged: int
    kept: int
    superseded: int
    lost: int
    lost_examples: list[Key] = field(default_factory=list)
    rejected: int = 0


def account(
    sent: dict[Key, int], stored: dict[Key, int], rejected: dict[Key, int] | None = None, pruned_before: int = 0
) -> Accounting:
    """`pruned_before`: the HLC below which the towers may have forgotten a departed vehicle."""
    refused = rejected or {}
    kept = superseded = dead = 0
    lost: list[Key] = []
    for key, hlc in sent.items():
        have = stored.get(key, 0)
        if have == hlc:
            kept += 1
        elif have > hlc or (have == 0 and hlc < pruned_before):
            superseded += 1
        elif refused.get(key, 0) >= hlc:
            dead += 1
        else:
            lost.append(key)
    return Accounting(len(sent), kept, superseded, len(lost), sorted(lost)[:5], dead)
