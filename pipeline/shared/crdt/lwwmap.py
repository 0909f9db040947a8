"""A map of last-writer-wins records: vehicle id → latest known state.

Each key holds an LWW register kept as a tuple `(hlc, replica, value)` rather than an object: the
towers merge one per telemetry event, so the join is a dict lookup and an integer comparison. A
removal (a vehicle handed off to the next region, or silent past its TTL) is a write of `None` —
a tombstone that loses to any later update, so a vehicle that comes back is simply there again.
Tombstones are dropped by `prune` once older than any write that can still arrive.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pipeline.shared.crdt.base import Mergeable
from pipeline.shared.crdt.errors import MalformedStateError
from pipeline.shared.crdt.registers import check_stamp, lww_order

__all__ = ["Entry", "LWWMap"]

Entry = tuple[int, str, Any]  # (hlc, replica, value or None for a tombstone)


class LWWMap(Mergeable):
    SCHEMA_NAME: ClassVar[str] = "corridor.crdt.LWWMap"
    __slots__ = ("entries",)

    def __init__(self, entries: dict[str, Entry] | None = None) -> None:
        self.entries: dict[str, Entry] = dict(entries) if entries else {}

    @property
    def value(self) -> dict[str, Any]:
        return {k: e[2] for k, e in self.entries.items() if e[2] is not None}

    def get(self, key: str) -> Any:
        entry = self.entries.get(key)
        return None if entry is None else entry[2]

    def live_count(self) -> int:
        return sum(1 for e in self.entries.values() if e[2] is not None)

    def put(self, key: str, value: Any, ts: int, replica: str) -> LWWMap:
        check_stamp(ts)
        return LWWMap({key: (ts, replica, value)})

    def remove(self, key: str, ts: int, replica: str) -> LWWMap:
        check_stamp(ts)
        return LWWMap({key: (ts, replica, None)})

    def expire(self, older_than: int, ts: int, replica: str) -> LWWMap:
        """Delta of tombstones for every live entry last written before HLC `older_than` (TTL)."""
        check_stamp(ts)
        return LWWMap(
            {k: (ts, replica, None) for k, e in self.entries.items() if e[2] is not None and e[0] < older_than}
        )

    def prune(self, horizon: int) -> int:
        """Drop tombstones written before `horizon`; returns how many. Local garbage collection, safe
        only once no write older than `horizon` can still be delivered: the caller bounds how late a
        write may arrive (the drift check bounds stamps ahead, not late delivery), or makes a late
        one harmless (the towers expire a replayed vehicle again at the next flush)."""
        dead = [k for k, e in self.entries.items() if e[2] is None and e[0] < horizon]
        for k in dead:
            del self.entries[k]
        return len(dead)

    def merge_in(self, other: Self) -> None:
        get = self.entries.get
        # One comprehension, then one bulk update: the cheapest join CPython offers at 10k keys.
        self.entries.update(
            {
                key: new
                for key, new in other.entries.items()
                if (cur := get(key)) is None
                or new[0] > cur[0]
                or (new[0] == cur[0] and lww_order(*new) > lww_order(*cur))
            }
        )

    def copy(self) -> Self:
        return type(self)(self.entries)

    def replicas(self) -> set[str]:
        return {e[1] for e in self.entries.values()}

    def to_record(self) -> dict[str, Any]:
        return {
            "entries": [
                {"key": k, "ts": ts, "replica": r, "value": v} for k, (ts, r, v) in sorted(self.entries.items())
            ]
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        try:
            entries = {e["key"]: (e["ts"], e["replica"], e["value"]) for e in record["entries"]}
        except (KeyError, TypeError):
            raise MalformedStateError("an LWW-Map record needs 'entries' of key, ts, replica, value") from None
        if any(not isinstance(ts, int) or ts <= 0 for ts, _, _ in entries.values()):
            raise MalformedStateError("LWW-Map timestamps must be positive HLCs")
        return cls(entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LWWMap):
            return NotImplemented  # an LWWColumns compares itself with an LWWMap
        return self.entries == other.entries

    def __repr__(self) -> str:
        return f"LWWMap({len(self.entries)} entries)"
