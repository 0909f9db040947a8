"""One tower region's whole state, column-wise, and what a flush writes to the tables.

- `vehicles`: each vehicle's latest state, an `LWWColumns` (LWW by the vehicle's HLC) whose rows are
  `VEHICLE` records; beside it, per slot, the vehicle's table bucket, whether it is in the swarm,
  and the last advice it was given (the cool-down);
- `members`: the swarm, an OR-Set sharded in `BUCKETS` (a flush rewrites only the shards that changed);
- `hazards`: hazard id → hazard, LWW by HLC; a cleared hazard is a tombstone.

Every change to members and hazards also goes into a delta log for tower-sync. Vehicle tombstones
(a vehicle expired or handed off) are pruned past a horizon, and their slots reused, so the state of
a region stays as large as its swarm however many vehicles pass through it. Pure: no Kafka, no Faust.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.shared.crdt import DeltaLog, LWWColumns, LWWMap, ORSet
from towers.frames import Updates
from towers.swarm import Cooldowns, Membership
from towers.vehicle_buckets import BUCKETS, VEHICLE, bucket_of, read_bucket, write_bucket

__all__ = ["Aggregates", "RegionEngine"]

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Aggregates:
    count: int
    northbound: int
    southbound: int
    mean_speed_nb: float
    mean_speed_sb: float
    density_per_km: float
    stopped: int
    braking: int
    mean_energy_pct: float


class RegionEngine:
    def __init__(
        self,
        region: int,
        tower: str,
        length_km: float,
        cooldown_s: float = 5.0,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        max_ahead_ms: int = 5_000,
    ) -> None:
        self.region, self.tower, self.length_km = region, tower, length_km
        self.wall_ms = wall_ms
        #: how far the region's event time may run ahead of the tower's clock (its drift bound)
        self.max_ahead_ms = max_ahead_ms
        self.vehicles = LWWColumns(VEHICLE, capacity=256)
        self.bucket = np.zeros(self.vehicles.capacity, np.uint8)
        self.member = np.zeros(self.vehicles.capacity, np.bool_)
        self.key_bytes: list[bytes] = [b""] * self.vehicles.capacity  # slot -> UTF-8 id, for flushes
        self.cooldowns = Cooldowns(cooldown_s, self.vehicles.capacity)
        self.members = Membership(tower)
        self.hazards = LWWMap()
        self.member_log: DeltaLog[ORSet] = DeltaLog(ORSet)
        self.hazard_log: DeltaLog[LWWMap] = DeltaLog(LWWMap)
        # wall time of the oldest membership or hazard change not yet sent to the neighbours, and not
        # yet in an etcd snapshot (0: none): how stale they are where they arrive (`towers.staleness`)
        self.unsent_since_ms = 0
        self.unsnapshotted_since_ms = 0
        self.watermark_ms = 0  # newest event time merged
        self.last_sent_ms = 0  # wall send time of the newest frame processed: how far behind the tower is
        # how long the newest frame waited before it was processed, and when that was (wall ms)
        self.waited_ms = 0
        self.processed_at_ms = 0
        self.dirty_buckets = np.zeros(BUCKETS, np.bool_)
        self.dirty_members: set[int] = set()
        self.hazards_dirty = False
        self.mean_speed = (0.0, 0.0)  # per carriageway (nb, sb), refreshed at each flush
        self.last_flush_s = 0.0

    # ---- slots ------------------------------------------------------------------------------
    def _slots(self, keys: list[str]) -> I64:
        """Slots of these vehicle ids; new ones get their bucket, swarm flag and a clean cool-down."""
        slots, new = self.vehicles.slots_of(keys)
        if new.any():
            cap = self.vehicles.capacity
            if len(self.bucket) < cap:
                self.bucket = np.concatenate([self.bucket, np.zeros(cap - len(self.bucket), np.uint8)])
                self.member = np.concatenate([self.member, np.zeros(cap - len(self.member), np.bool_)])
                self.key_bytes += [b""] * (cap - len(self.key_bytes))
                self.cooldowns.grow(cap)
            fresh = slots[new]
            idx = np.flatnonzero(new).tolist()
            for s, i in zip(fresh.tolist(), idx, strict=True):
                self.key_bytes[s] = keys[i].encode()
            buckets = [bucket_of(keys[i]) for i in idx]
            shards = self.members.shards
            self.bucket[fresh] = buckets
            self.member[fresh] = [keys[i] in shards[b].entries for i, b in zip(idx, buckets, strict=True)]
            self.cooldowns.forget(fresh)
        return slots

    def key(self, slot: int) -> str:
        k = self.vehicles.keys[slot]
        assert k is not None
        return k

    # ---- telemetry --------------------------------------------------------------------------
    def apply(self, ups: Updates, rows: I64) -> tuple[I64, I64, list[str]]:
        """Merge these rows of a batch of updates (LWW by their HLC). Returns the rows that won, their
        slots, and the ids of vehicles new to the swarm. A duplicate or older update changes nothing,
        which is what makes replays harmless."""
        every = len(rows) == len(ups)  # the common case: no row was dead-lettered, nothing to pick

        def pick(col: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return col if every else col[rows]

        keys = ups.ids if every else [ups.ids[i] for i in rows.tolist()]
        slots = self._slots(keys)
        values = np.empty(len(rows), VEHICLE)
        values["km"], values["v"], values["accel"] = pick(ups.km), pick(ups.speed), pick(ups.accel)
        values["energy"], values["nb"], values["lane"] = pick(ups.energy), pick(ups.northbound), pick(ups.lane)
        values["brake"], values["et"] = pick(ups.brake), pick(ups.event_time)
        won = self.vehicles.apply_batch(keys, pick(ups.hlc), self.tower, values, slots=slots)
        if not len(won):
            return won, won, []
        accepted, won_slots = rows[won], slots[won]
        self.dirty_buckets[self.bucket[won_slots]] = True
        self.advance_watermark(int(ups.event_time[accepted].max()))
        arrivals = []
        for s in won_slots[~self.member[won_slots]].tolist():
            vid = self.key(s)
            self.member_log.record(self.members.add(vid))
            self._changed()
            self.dirty_members.add(int(self.bucket[s]))
            self.member[s] = True
            arrivals.append(vid)
        return accepted, won_slots, arrivals

    def remove_vehicles(self, keys: list[str], ts: int | I64) -> list[str]:
        """Leave the swarm (expired or handed off) with tombstones stamped `ts` (one for all, or one
        each); returns who left."""
        if not keys:
            return []
        slots = self._slots(keys)
        won = self.vehicles.remove(keys, ts, self.tower, slots=slots)
        gone = slots[won]
        self.dirty_buckets[self.bucket[gone]] = True
        self.cooldowns.forget(gone)
        for s in gone[self.member[gone]].tolist():
            self.member_log.record(self.members.remove(self.key(s)))
            self._changed()
            self.dirty_members.add(int(self.bucket[s]))
        self.member[gone] = False
        return [keys[i] for i in won.tolist()]

    def advance_watermark(self, event_ms: int) -> None:
        """The region's event time moves on, but never past the tower's clock and its drift bound:
        one update stamped far ahead would otherwise expire the whole swarm at the next flush."""
        self.watermark_ms = max(self.watermark_ms, min(event_ms, self.wall_ms() + self.max_ahead_ms))

    def expire(self, ttl_ms: int) -> list[str]:
        """Vehicles silent for more than `ttl_ms` of event time leave the swarm, and so do vehicles
        stamped past the bound the watermark keeps (state written before that bound held)."""
        v = self.vehicles
        et = v.values["et"]
        stale = np.flatnonzero(v.live & ((et < self.watermark_ms - ttl_ms) | (et > self.wall_ms() + self.max_ahead_ms)))
        # Each tombstone just above the write it removes, by the vehicle's own clock: stamped by the
        # tower's, it would hide the vehicle's next updates for as long as its clock lags the tower's.
        return self.remove_vehicles([self.key(s) for s in stale.tolist()], v.ts[stale] + 1) if len(stale) else []

    def handed_off(self, arrivals: list[tuple[str, int]]) -> list[str]:
        """A neighbour reports these vehicles arrived there at these HLCs: drop ours if older."""
        gone = []
        for vid, ts in arrivals:
            if vid in self.members:
                gone += self.remove_vehicles([vid], ts)
        return gone

    def prune(self, horizon: int) -> int:
        """Forget vehicle tombstones older than HLC `horizon` (their buckets are rewritten without them)."""
        v = self.vehicles
        old = np.flatnonzero(~v.live & (v.ts > 0) & (v.ts < horizon))
        if not len(old):
            return 0
        self.dirty_buckets[self.bucket[old]] = True
        return len(v.prune(horizon))

    def live_slots(self) -> I64:
        return self.vehicles.live_slots()

    def vehicle(self, vid: str) -> dict[str, Any] | None:
        s = self.vehicles.slot.get(vid)
        if s is None or not self.vehicles.live[s]:
            return None
        return _as_dict(self.vehicles.values[s])

    def entry_ts(self, vid: str) -> int:
        s = self.vehicles.slot.get(vid)
        return 0 if s is None else int(self.vehicles.ts[s])

    # ---- hazards ----------------------------------------------------------------------------
    def put_hazard(self, hazard_id: str, hazard: dict[str, Any] | None, ts: int) -> bool:
        """Record (or with None, clear) a hazard; True when it changed the state."""
        cur = self.hazards.entries.get(hazard_id)
        if cur is not None and cur[0] >= ts:
            return False
        delta = self.hazards.put(hazard_id, hazard, ts, self.tower)
        self.hazards.merge_in(delta)
        self.hazard_log.record(delta)
        self.hazards_dirty = True
        self._changed()
        return True

    def _changed(self) -> None:
        if not self.unsent_since_ms or not self.unsnapshotted_since_ms:
            now = self.wall_ms()
            self.unsent_since_ms = self.unsent_since_ms or now
            self.unsnapshotted_since_ms = self.unsnapshotted_since_ms or now

    def take_unsent_since(self) -> int:
        """The oldest change a sync message about to be sent carries (0: none); it is then sent."""
        since, self.unsent_since_ms = self.unsent_since_ms, 0
        return since

    def take_unsnapshotted_since(self) -> int:
        since, self.unsnapshotted_since_ms = self.unsnapshotted_since_ms, 0
        return since

    def active_hazards(self, now_ms: int) -> dict[str, dict[str, Any]]:
        return {k: h for k, h in self.hazards.value.items() if h["expires"] > now_ms}

    # ---- derived ----------------------------------------------------------------------------
    def aggregates(self, stopped_mps: float) -> Aggregates:
        rows = self.vehicles.values[self.live_slots()]
        nb = rows["nb"].astype(np.bool_)
        v = rows["v"].astype(np.float64)
        n, n_nb = len(rows), int(nb.sum())
        return Aggregates(
            count=n,
            northbound=n_nb,
            southbound=n - n_nb,
            mean_speed_nb=float(v[nb].mean()) if n_nb else 0.0,
            mean_speed_sb=float(v[~nb].mean()) if n - n_nb else 0.0,
            density_per_km=n / self.length_km if self.length_km else 0.0,
            stopped=int((v < stopped_mps).sum()),
            braking=int(rows["brake"].astype(np.bool_).sum()),
            mean_energy_pct=float(rows["energy"].astype(np.float64).mean()) if n else 0.0,
        )

    # ---- persistence ------------------------------------------------------------------------
    def bucket_bytes(self, b: int) -> bytes:
        """Table value of vehicle bucket `b`: its entries, tombstones included."""
        v = self.vehicles
        slots = np.flatnonzero((v.ts > 0) & (self.bucket[: v.capacity] == b))
        kb = self.key_bytes
        return write_bucket([kb[s] for s in slots.tolist()], v.replica_names, v.ts[slots], v.replica[slots],
                            v.live[slots], v.values[slots])  # fmt: skip

    def load_bucket(self, raw: bytes) -> None:
        """Merge a vehicle bucket's table value (format 1 or 2) into the state."""
        self._merge(read_bucket(raw))

    def _merge(self, stored: LWWColumns) -> None:
        used = stored.used_slots()
        keys = [stored.keys[s] for s in used.tolist()]
        slots = self._slots(keys)
        codes = np.array([self.vehicles.code(n) for n in stored.replica_names], np.int32)
        self.vehicles.apply_batch(
            keys,
            stored.ts[used], codes[stored.replica[used]], stored.values[used], stored.live[used], slots=slots,
        )  # fmt: skip

    def mark_all_dirty(self) -> None:
        """The next flush writes every bucket, shard and the hazards (a flush failed part way)."""
        self.dirty_buckets[:] = True
        self.dirty_members = set(range(BUCKETS))
        self.hazards_dirty = True

    def take_dirty(self) -> tuple[list[int], list[int]]:
        """Vehicle buckets and member shards changed since the last flush (and forget it: the caller
        writes them now)."""
        out = (np.flatnonzero(self.dirty_buckets).tolist(), sorted(self.dirty_members))
        self.dirty_buckets[:] = False
        self.dirty_members = set()
        return out


def _as_dict(row: Any) -> dict[str, Any]:
    return {
        "km": float(row["km"]), "v": float(row["v"]), "nb": bool(row["nb"]), "lane": int(row["lane"]),
        "brake": bool(row["brake"]), "energy": float(row["energy"]), "et": int(row["et"]),
        "accel": float(row["accel"]),
    }  # fmt: skip
