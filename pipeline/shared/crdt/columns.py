"""An LWW-Map whose values are fixed-width NumPy records: the same CRDT as `LWWMap`, merged in bulk.

A tower merges thousands of vehicle updates per Kafka record. Holding them as one Python tuple per
vehicle costs a dict, a tuple and a state dict per update; here each key owns a *slot* in a set of
arrays (stamp, writer, liveness, value), and a batch of writes is joined with a handful of vectorised
comparisons. Slots of pruned tombstones are reused.

The join is the one `LWWMap` uses (`pipeline.shared.crdt.registers.lww_order`): the larger HLC wins, then
the larger replica id, then the larger value bytes, a tombstone's being empty. The value bytes of a
record are its row's bytes (`values[slot].tobytes()`), which is also what `to_lwwmap` stores, so the
two types order every pair of writes alike: the law suite runs against both, and a test checks that
`apply_batch` equals merging the same writes element by element into an `LWWMap`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from pipeline.shared.crdt.base import Mergeable
from pipeline.shared.crdt.errors import MalformedStateError
from pipeline.shared.crdt.lwwmap import LWWMap
from pipeline.shared.crdt.registers import lww_order

__all__ = ["LWWColumns"]

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


class LWWColumns(Mergeable):
    SCHEMA_NAME: ClassVar[str] = LWWMap.SCHEMA_NAME
    __slots__ = (
        "_codes", "_scratch", "dtype", "free", "keys", "live", "replica", "replica_names", "slot", "ts", "values",
    )  # fmt: skip

    def __init__(self, dtype: npt.DTypeLike, capacity: int = 256) -> None:
        self.dtype = np.dtype(dtype)
        self.slot: dict[str, int] = {}  # key -> slot
        self.keys: list[str | None] = [None] * capacity  # slot -> key (None: free)
        self.ts = np.zeros(capacity, np.int64)  # 0 in a free slot
        self.replica = np.zeros(capacity, np.int32)  # index into replica_names
        self.live = np.zeros(capacity, np.bool_)  # False: a tombstone (or a free slot)
        self.values = np.zeros(capacity, self.dtype)
        self.replica_names: list[str] = []
        self._codes: dict[str, int] = {}
        self.free: list[int] = list(range(capacity - 1, -1, -1))
        self._scratch = np.zeros(0, np.int64)

    # ---- reading ----------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return len(self.keys)

    def __len__(self) -> int:
        """Keys held, tombstones included."""
        return len(self.slot)

    def key_at(self, slot: int) -> str:
        """The key of a used slot."""
        key = self.keys[slot]
        if key is None:
            raise KeyError(f"slot {slot} holds no key")
        return key

    def live_slots(self) -> I64:
        return np.flatnonzero(self.live)

    def used_slots(self) -> I64:
        return np.flatnonzero(self.ts > 0)

    @property
    def value(self) -> dict[str, bytes]:
        return {self.keys[s]: self.values[s].tobytes() for s in self.live_slots().tolist()}

    def replicas(self) -> set[str]:
        return {self.replica_names[c] for c in np.unique(self.replica[self.used_slots()]).tolist()}

    # ---- writing ----------------------------------------------------------------------------
    def code(self, replica: str) -> int:
        c = self._codes.get(replica)
        if c is None:
            c = self._codes[replica] = len(self.replica_names)
            self.replica_names.append(replica)
        return c

    def slots_of(self, keys: Sequence[str]) -> tuple[I64, Mask]:
        """Each key's slot, allocating slots for keys never seen; and which keys were new."""
        get = self.slot.get
        found = [get(k, -1) for k in keys]
        slots = np.fromiter(found, np.int64, len(found))
        new = slots < 0
        if new.any():
            for i in np.flatnonzero(new).tolist():
                k = keys[i]
                s = self.slot.get(k)  # a key may repeat within a batch
                if s is None:
                    s = self._allocate(k)
                slots[i] = s
        return slots, new

    def apply_batch(
        self,
        keys: Sequence[str],
        ts: I64,
        replica: str | npt.NDArray[np.int32],
        values: npt.NDArray[Any],
        live: Mask | None = None,
        slots: I64 | None = None,
    ) -> I64:
        """Join a batch of writes (`live` False: removals; `replica` one id for all, or codes of
        this map's `replica_names` per row; `slots` when the caller looked them up already).
        Returns the indices of the rows that won, at most one per key (the batch's own duplicates
        are joined first)."""
        n = len(keys)
        if n == 0:
            return np.zeros(0, np.int64)
        ts = np.asarray(ts, np.int64)
        if (ts <= 0).any():  # 0 marks a free slot: such a write would leak it (see `check_stamp`)
            raise ValueError(f"an LWW write needs a positive HLC stamp, not {int(ts.min())}")
        codes = np.full(n, self.code(replica), np.int32) if isinstance(replica, str) else np.asarray(replica, np.int32)
        live = np.ones(n, np.bool_) if live is None else np.asarray(live, np.bool_)
        if slots is None:
            slots, _ = self.slots_of(keys)
        rows = np.arange(n)
        if self._repeats(slots, rows):
            rows = self._batch_winners(slots, ts, codes, values, live)
        s = slots[rows]
        cur_ts = self.ts[s]
        win = ts[rows] > cur_ts
        tie = ts[rows] == cur_ts
        if tie.any():
            for i in np.flatnonzero(tie).tolist():
                r = int(rows[i])
                win[i] = self._order(int(ts[r]), int(codes[r]), values[r], bool(live[r])) > self._order_of(int(s[i]))
        rows, s = rows[win], s[win]
        self.ts[s] = ts[rows]
        self.replica[s] = codes[rows]
        self.live[s] = live[rows]
        won = values[rows]
        dead = ~live[rows]
        if dead.any():  # a tombstone keeps no value
            won = won.copy()
            won[dead] = np.zeros(1, self.dtype)
        self.values[s] = won
        return rows

    def remove(self, keys: Sequence[str], ts: int | I64, replica: str, slots: I64 | None = None) -> I64:
        """Tombstones for `keys` stamped `ts` (one for all, or one each); returns the rows that won."""
        n = len(keys)
        empty, dead = np.zeros(n, self.dtype), np.zeros(n, np.bool_)
        return self.apply_batch(keys, np.broadcast_to(np.asarray(ts, np.int64), n), replica, empty, dead, slots)

    def prune(self, horizon: int) -> list[str]:
        """Drop tombstones written before HLC `horizon` and free their slots; returns their keys.
        Safe once no write older than `horizon` can still arrive (see the towers' stale-update rule)."""
        dead = np.flatnonzero(~self.live & (self.ts > 0) & (self.ts < horizon)).tolist()
        keys = []
        for s in dead:
            key = self.keys[s]
            assert key is not None
            del self.slot[key]
            self.keys[s] = None
            keys.append(key)
        self.ts[dead] = 0
        self.free.extend(reversed(dead))
        return keys

    def merge_in(self, other: Self) -> None:
        used = other.used_slots()
        if not len(used):
            return
        codes = np.array([self.code(r) for r in other.replica_names], np.int32)
        keys = [other.keys[s] for s in used.tolist()]
        self.apply_batch(keys, other.ts[used], codes[other.replica[used]], other.values[used], other.live[used])

    def copy(self) -> Self:
        out = type(self)(self.dtype, 0)
        out.slot, out.keys, out.free = dict(self.slot), list(self.keys), list(self.free)
        out.ts, out.replica = self.ts.copy(), self.replica.copy()
        out.live, out.values = self.live.copy(), self.values.copy()
        out.replica_names, out._codes = list(self.replica_names), dict(self._codes)
        return out

    # ---- other forms ------------------------------------------------------------------------
    def to_lwwmap(self, slots: Iterable[int] | None = None) -> LWWMap:
        """The same state as an `LWWMap` of row bytes (its Avro form, and the law suite's yardstick)."""
        chosen = self.used_slots().tolist() if slots is None else slots
        names, ts, rep, live = self.replica_names, self.ts, self.replica, self.live
        return LWWMap(
            {self.key_at(s): (int(ts[s]), names[rep[s]], self.values[s].tobytes() if live[s] else None) for s in chosen}
        )

    @classmethod
    def from_lwwmap(cls, m: LWWMap, dtype: npt.DTypeLike) -> Self:
        out = cls(dtype, max(16, len(m.entries)))
        out.merge_lwwmap(m)
        return out

    def merge_lwwmap(self, m: LWWMap) -> None:
        keys = list(m.entries)
        if not keys:
            return
        entries = [m.entries[k] for k in keys]
        empty = bytes(self.dtype.itemsize)
        raw = b"".join(empty if v is None else v for _, _, v in entries)
        values = np.frombuffer(raw, self.dtype)
        ts = np.array([e[0] for e in entries], np.int64)
        codes = np.array([self.code(e[1]) for e in entries], np.int32)
        live = np.array([e[2] is not None for e in entries], np.bool_)
        self.apply_batch(keys, ts, codes, values, live)

    def to_record(self) -> dict[str, Any]:
        return self.to_lwwmap().to_record()

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        """The Avro form holds row bytes, not their dtype: rows come back as opaque records of the
        same width, which join, compare and encode exactly as the originals (`from_lwwmap` with the
        dtype gives named fields back)."""
        m = LWWMap.from_record(record)
        widths = {len(v) for _, _, v in m.entries.values() if v is not None}
        if len(widths) > 1 or any(not isinstance(v, bytes) for _, _, v in m.entries.values() if v is not None):
            raise MalformedStateError("an LWW-Columns record holds rows of one width, as bytes")
        return cls.from_lwwmap(m, np.dtype((np.void, widths.pop() if widths else 1)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LWWColumns):
            other = other.to_lwwmap()
        return isinstance(other, LWWMap) and self.to_lwwmap() == other

    def __repr__(self) -> str:
        return f"LWWColumns({len(self.slot)} keys, {int(self.live.sum())} live)"

    # ---- internals --------------------------------------------------------------------------
    def _allocate(self, key: str) -> int:
        if not self.free:
            self._grow()
        s = self.free.pop()
        self.slot[key] = s
        self.keys[s] = key
        return s

    def _grow(self) -> None:
        old = self.capacity
        new = max(16, old * 2)
        self.keys.extend([None] * (new - old))
        self.ts = np.concatenate([self.ts, np.zeros(new - old, np.int64)])
        self.replica = np.concatenate([self.replica, np.zeros(new - old, np.int32)])
        self.live = np.concatenate([self.live, np.zeros(new - old, np.bool_)])
        self.values = np.concatenate([self.values, np.zeros(new - old, self.dtype)])
        self.free.extend(range(new - 1, old - 1, -1))

    def _order(self, ts: int, code: int, value: Any, live: bool) -> tuple[int, str, bytes]:
        return lww_order(ts, self.replica_names[code], value.tobytes() if live else None)

    def _order_of(self, s: int) -> tuple[int, str, bytes]:
        return self._order(int(self.ts[s]), int(self.replica[s]), self.values[s], bool(self.live[s]))

    def _repeats(self, slots: I64, rows: I64) -> bool:
        """Does a slot occur twice in the batch? (A scatter and a gather: cheaper than a sort.)"""
        if len(self._scratch) < self.capacity:
            self._scratch = np.zeros(self.capacity, np.int64)
        self._scratch[slots] = rows
        return bool((self._scratch[slots] != rows).any())

    def _batch_winners(self, slots: I64, ts: I64, codes: npt.NDArray[np.int32], values: Any, live: Mask) -> I64:
        """One row per slot: the largest write of the batch for it."""
        order = np.lexsort((ts, slots))  # by slot, then stamp
        ss, st = slots[order], ts[order]
        first = np.ones(len(order), np.bool_)
        first[1:] = ss[1:] != ss[:-1]
        group = np.cumsum(first) - 1
        last = np.ones(len(order), np.bool_)
        last[:-1] = first[1:]
        top = st[last][group]  # each row's slot's largest stamp
        contenders = order[st == top]
        if len(contenders) == int(last.sum()):
            return order[last]
        best: dict[int, int] = {}  # equal top stamps: settle by replica and value, in Python (rare)
        for r in contenders.tolist():
            s, b = int(slots[r]), best.get(int(slots[r]))
            if b is None or self._row_order(r, ts, codes, values, live) > self._row_order(b, ts, codes, values, live):
                best[s] = r
        return np.array(sorted(best.values()), np.int64)

    def _row_order(self, r: int, ts: I64, codes: Any, values: Any, live: Mask) -> tuple[int, str, bytes]:
        return self._order(int(ts[r]), int(codes[r]), values[r], bool(live[r]))
