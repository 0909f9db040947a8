"""How long a hazard's entry outlives the hazard, so that hazard maps stay bounded.

An entry past its expiry advises nobody; it is dropped `EXPIRED_GRACE_MS` later (a copy merged in
again, from a replay or a neighbour, is expired too and goes at the next pass). A cancellation's
tombstone must outlive every report it cancelled: a report expires at most `MAX_HAZARD_LIFETIME_MS`
after its detection, so a tombstone older than that (and a margin) can cancel nothing that is still
live, and goes. Pure: the towers call it at each flush, the control plane on etcd's global view."""

from __future__ import annotations

from pipeline.shared.bounds import MAX_HAZARD_LIFETIME_MS
from pipeline.shared.crdt import LWWMap
from pipeline.shared.crdt.hlc import unpack

__all__ = ["EXPIRED_GRACE_MS", "TOMBSTONE_KEEP_MS", "prune_hazards"]

EXPIRED_GRACE_MS = 60_000
TOMBSTONE_KEEP_MS = MAX_HAZARD_LIFETIME_MS + 3_600_000


def prune_hazards(hazards: LWWMap, now_ms: int, tombstones_before_ms: int, prefix: str = "") -> int:
    """Drop, among the keys starting with `prefix`, hazards expired more than the grace before
    `now_ms` (event time: what hazards expire by) and tombstones stamped before
    `tombstones_before_ms` (the HLC's wall clock); returns how many went."""
    gone = [
        key
        for key, (ts, _, h) in hazards.entries.items()
        if key.startswith(prefix)
        and (
            (h is None and unpack(ts)[0] < tombstones_before_ms)
            or (isinstance(h, dict) and isinstance(h.get("expires"), int) and h["expires"] < now_ms - EXPIRED_GRACE_MS)
        )
    ]
    for key in gone:
        del hazards.entries[key]
    return len(gone)
