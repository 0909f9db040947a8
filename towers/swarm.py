"""What a tower keeps about its swarm besides the vehicles' state: who is in it (an OR-Set sharded
by table bucket) and the last advice each vehicle was given (so unchanged advice is not repeated
within the cool-down). Pure."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pipeline.shared.crdt import ORSet
from towers.vehicle_buckets import BUCKETS, bucket_of

__all__ = ["ACTIONS", "KEEP", "SLOW_DOWN", "SPEED_UP", "STOP", "Cooldowns", "Membership"]

I64 = npt.NDArray[np.int64]


class Membership:
    """The swarm as `BUCKETS` OR-Sets, one per vehicle bucket. Each shard tags its dots with its own
    replica id (`tower#b`), so shards never share a dot and their join is still one valid OR-Set:
    deltas of different shards can be joined for tower-sync, and `union()` is the whole swarm."""

    __slots__ = ("shards", "tower")

    def __init__(self, tower: str) -> None:
        self.tower = tower
        self.shards = [ORSet() for _ in range(BUCKETS)]

    def __contains__(self, vid: str) -> bool:
        return vid in self.shards[bucket_of(vid)].entries

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    @property
    def value(self) -> frozenset[str]:
        return frozenset().union(*(s.value for s in self.shards))

    def add(self, vid: str) -> ORSet:
        b = bucket_of(vid)
        delta = self.shards[b].add(vid, f"{self.tower}#{b}")
        self.shards[b].merge_in(delta)
        return delta

    def remove(self, vid: str) -> ORSet:
        b = bucket_of(vid)
        delta = self.shards[b].remove(vid)
        self.shards[b].merge_in(delta)
        return delta

    def union(self) -> ORSet:
        out = ORSet()
        for shard in self.shards:
            out.merge_in(shard)
        return out

    def copy(self) -> Membership:
        out = Membership(self.tower)
        out.shards = [s.copy() for s in self.shards]
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Membership) and self.shards == other.shards


#: Advisory actions, in the order of the ControlAdvisory schema's enum.
ACTIONS = ("SLOW_DOWN", "SPEED_UP", "KEEP", "STOP")
SLOW_DOWN, SPEED_UP, KEEP, STOP = range(4)


class Cooldowns:
    """The last advice given to each vehicle slot, so an unchanged advisory is not repeated within
    the cool-down; arrays beside the vehicles' slots."""

    __slots__ = ("action", "at_ms", "seconds", "speed")

    def __init__(self, seconds: float, capacity: int) -> None:
        self.seconds = seconds
        self.action = np.full(capacity, -1, np.int8)
        self.speed = np.zeros(capacity, np.float64)
        self.at_ms = np.zeros(capacity, np.int64)

    def grow(self, capacity: int) -> None:
        extra = capacity - len(self.action)
        if extra > 0:
            self.action = np.concatenate([self.action, np.full(extra, -1, np.int8)])
            self.speed = np.concatenate([self.speed, np.zeros(extra)])
            self.at_ms = np.concatenate([self.at_ms, np.zeros(extra, np.int64)])

    def forget(self, slots: I64) -> None:
        self.action[slots] = -1

    def advised_slow(self, slots: I64) -> npt.NDArray[np.bool_]:
        a = self.action[slots]
        slow: npt.NDArray[np.bool_] = (a == SLOW_DOWN) | (a == STOP)
        return slow

    def allow(self, slots: I64, action: I64, speed: npt.NDArray[np.float64], now_ms: int) -> npt.NDArray[np.bool_]:
        """Which of these pieces of advice may go out now; those are remembered."""
        repeat = (
            (self.action[slots] == action)
            & (np.abs(self.speed[slots] - speed) < 2.0)
            & (now_ms - self.at_ms[slots] < self.seconds * 1000)
        )
        ok: npt.NDArray[np.bool_] = ~repeat
        s = slots[ok]
        self.action[s], self.speed[s], self.at_ms[s] = action[ok], speed[ok], now_ms
        return ok
