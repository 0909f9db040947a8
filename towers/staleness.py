"""How stale each class of a tower worker's data is, sampled where a change becomes visible here.

Every change is stamped with the wall time its owner made it. A sync message carries the oldest
change it holds (`changes_since`), so the worker that merges it knows the worst age among its
changes at the moment they became visible: an upper bound per change, exact for the oldest one.
Hazards are followed one by one: when their owner accepted them, when each worker first saw them.
The samples are joined across workers afterwards (`pipeline.consistency.table`); here they are only
kept, in bounded memory.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HAZARD_LIMIT", "LIMIT", "SyncMerge", "VisibilityLog", "note_first"]

#: samples kept of each kind: enough for a p99 over a long run, a few hundred kB at most
LIMIT = 20_000
#: hazards followed at once; past it the longest-followed one is forgotten first
HAZARD_LIMIT = 5_000


def note_first(times: dict[str, int], key: str, now_ms: int, limit: int = HAZARD_LIMIT) -> None:
    """Keep the first time `key` was noted, in a dict of at most `limit` keys (oldest noted go first)."""
    if key in times:
        return
    while len(times) >= limit:
        del times[next(iter(times))]
    times[key] = now_ms


@dataclass(frozen=True, slots=True)
class SyncMerge:
    """A neighbour's sync message merged here: its class, region, send time and the age of its
    oldest change when it was merged."""

    sync_class: str
    region: int
    sent_at: int
    age_ms: int


@dataclass
class VisibilityLog:
    merges: deque[SyncMerge] = field(default_factory=lambda: deque(maxlen=LIMIT))
    vehicle_lag_ms: deque[int] = field(default_factory=lambda: deque(maxlen=LIMIT))  # frame sent → applied
    hazard_made: dict[str, int] = field(default_factory=dict)  # id → when its owner (this worker) accepted it
    hazard_seen: dict[str, int] = field(default_factory=dict)  # id → when it first reached this worker's view

    def merged(self, sync_class: str, region: int, sent_at: int, changes_since: int, now_ms: int) -> None:
        if changes_since > 0:
            self.merges.append(SyncMerge(sync_class, region, sent_at, max(0, now_ms - changes_since)))

    def hazards_seen(self, ids: set[str], now_ms: int) -> None:
        for hid in ids:
            note_first(self.hazard_seen, hid, now_ms)

    def hazard_accepted(self, hid: str, now_ms: int) -> None:
        note_first(self.hazard_made, hid, now_ms)
        note_first(self.hazard_seen, hid, now_ms)  # its owner sees it as it accepts it

    def as_dict(self) -> dict[str, Any]:
        return {
            "merges": [[m.sync_class, m.region, m.sent_at, m.age_ms] for m in list(self.merges)],
            "vehicle_lag_ms": list(self.vehicle_lag_ms),
            "hazard_made": dict(self.hazard_made),
            "hazard_seen": dict(self.hazard_seen),
        }
