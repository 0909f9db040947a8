"""One tower region's swarm state, built from CRDTs, and what a flush writes to the tables.

- `members`: OR-Set of vehicle ids (add-wins; a vehicle seen again after leaving is simply back),
  sharded like the vehicles so a flush rewrites only the shards that changed;
- `buckets`: the latest state of each vehicle, LWW by the vehicle's HLC, split into `BUCKETS` maps
  so that a flush writes only the buckets that changed, not the whole region;
- `hazards`: hazard id → hazard, LWW by HLC; a cleared hazard is a tombstone.

Every change also goes into a delta log, from which tower-sync ships deltas to the neighbours.
Pure: no Kafka, no Faust.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from pipeline.crdt import DeltaLog, LWWMap, ORSet, decode_state, encode_state
from pipeline.crdt.hlc import HybridClock

__all__ = ["BUCKETS", "Aggregates", "RegionState", "bucket_of", "pack_vehicle", "unpack_vehicle"]

BUCKETS = 16

# A vehicle's latest state as it is stored in the `vehicles` table: version byte, then km (f64),
# speed m/s, acceleration m/s², energy % (f32 each), northbound, lane, brake (u8 each), event time ms
# (i64), little-endian. Packing is ~8× cheaper than Avro-encoding a map of unions per vehicle, and
# the flush that writes every vehicle once a second is the towers' largest cost.
_VEHICLE = struct.Struct("<BdfffBBBq")
_VEHICLE_V1 = 1


def pack_vehicle(s: dict[str, Any]) -> bytes:
    return _VEHICLE.pack(_VEHICLE_V1, s["km"], s["v"], s["accel"], s["energy"], s["nb"], s["lane"], s["brake"], s["et"])


def unpack_vehicle(raw: bytes) -> dict[str, Any]:
    version, km, v, accel, energy, nb, lane, brake, et = _VEHICLE.unpack(raw)
    if version != _VEHICLE_V1:
        raise ValueError(f"unknown vehicle state version {version}")
    return {
        "km": km,
        "v": v,
        "nb": bool(nb),
        "lane": lane,
        "brake": bool(brake),
        "energy": energy,
        "et": et,
        "accel": accel,
    }


_BUCKET_CACHE: dict[str, int] = {}


def bucket_of(vehicle_id: str) -> int:
    """Stable across processes (unlike `hash`), so a key always lands in the same table bucket."""
    b = _BUCKET_CACHE.get(vehicle_id)
    if b is None:
        if len(_BUCKET_CACHE) > 1_000_000:  # ids are per trip: bound the memo
            _BUCKET_CACHE.clear()
        b = _BUCKET_CACHE[vehicle_id] = zlib.crc32(vehicle_id.encode()) % BUCKETS
    return b


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


@dataclass
class RegionState:
    region: int
    tower: str
    length_km: float
    members: Membership = field(init=False)
    buckets: list[LWWMap] = field(default_factory=lambda: [LWWMap() for _ in range(BUCKETS)])
    hazards: LWWMap = field(default_factory=LWWMap)
    watermark_ms: int = 0  # newest event time merged
    dirty_buckets: set[int] = field(default_factory=set)
    dirty_members: set[int] = field(default_factory=set)
    hazards_dirty: bool = False
    member_log: DeltaLog[ORSet] = field(default_factory=lambda: DeltaLog(ORSet))
    hazard_log: DeltaLog[LWWMap] = field(default_factory=lambda: DeltaLog(LWWMap))

    def __post_init__(self) -> None:
        self.members = Membership(self.tower)

    # ---- telemetry --------------------------------------------------------------------------
    def apply(self, updates: list[dict[str, Any]]) -> tuple[list[tuple[str, dict[str, Any], int]], list[str]]:
        """Merge vehicle updates (LWW by their HLC). Returns the accepted ones as (id, state, hlc), and
        the ids of vehicles new to the swarm. A duplicate or older update changes nothing, which is
        what makes replays harmless."""
        accepted: list[tuple[str, dict[str, Any], int]] = []
        arrivals = []
        buckets, members, replica = self.buckets, self.members, self.tower
        for u in updates:
            vid = u["vehicle_id"]
            b = bucket_of(vid)
            entries = buckets[b].entries
            cur = entries.get(vid)
            ts = u["hlc"]
            if cur is not None and cur[0] >= ts:
                continue
            state = {
                "km": u["route_km"], "v": u["speed_mps"], "nb": u["direction"] == "NORTHBOUND",
                "lane": u["lane"], "brake": u["brake"], "energy": u["energy_pct"], "et": u["event_time"],
                "accel": u["accel_mps2"],
            }  # fmt: skip
            entries[vid] = (ts, replica, state)
            accepted.append((vid, state, ts))
            self.dirty_buckets.add(b)
            if u["event_time"] > self.watermark_ms:
                self.watermark_ms = u["event_time"]
            if vid not in members:
                self.member_log.record(members.add(vid))
                self.dirty_members.add(b)
                arrivals.append(vid)
        return accepted, arrivals

    def remove_vehicle(self, vid: str, ts: int) -> bool:
        """Leave the swarm (expired or handed off) with a tombstone stamped `ts`."""
        b = bucket_of(vid)
        cur = self.buckets[b].entries.get(vid)
        if cur is not None and cur[0] >= ts:
            return False
        self.buckets[b].entries[vid] = (ts, self.tower, None)
        self.dirty_buckets.add(b)
        if vid in self.members:
            self.member_log.record(self.members.remove(vid))
            self.dirty_members.add(b)
        return True

    def expire(self, ttl_ms: int, clock: HybridClock) -> list[str]:
        """Vehicles silent for more than `ttl_ms` of event time leave the swarm."""
        cutoff = self.watermark_ms - ttl_ms
        stale = [vid for m in self.buckets for vid, e in m.entries.items() if e[2] is not None and e[2]["et"] < cutoff]
        if stale:
            ts = clock.now()
            for vid in stale:
                self.remove_vehicle(vid, ts)
        return stale

    def handed_off(self, arrivals: list[tuple[str, int]]) -> list[str]:
        """A neighbour reports these vehicles arrived there at these HLCs: drop ours if older."""
        gone = []
        for vid, ts in arrivals:
            if vid in self.members and self.remove_vehicle(vid, ts):
                gone.append(vid)
        return gone

    def vehicle(self, vid: str) -> dict[str, Any] | None:
        entry = self.buckets[bucket_of(vid)].entries.get(vid)
        return None if entry is None else entry[2]

    def entry_ts(self, vid: str) -> int:
        entry = self.buckets[bucket_of(vid)].entries.get(vid)
        return 0 if entry is None else entry[0]

    def vehicles(self) -> dict[str, dict[str, Any]]:
        return {vid: e[2] for m in self.buckets for vid, e in m.entries.items() if e[2] is not None}

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
        return True

    def active_hazards(self, now_ms: int) -> dict[str, dict[str, Any]]:
        return {k: h for k, h in self.hazards.value.items() if h["expires"] > now_ms}

    # ---- derived ----------------------------------------------------------------------------
    def aggregates(self, stopped_mps: float) -> Aggregates:
        everyone = list(self.vehicles().values())
        nb_v = [s["v"] for s in everyone if s["nb"]]
        sb_v = [s["v"] for s in everyone if not s["nb"]]
        n = len(everyone)
        return Aggregates(
            count=n,
            northbound=len(nb_v),
            southbound=len(sb_v),
            mean_speed_nb=sum(nb_v) / len(nb_v) if nb_v else 0.0,
            mean_speed_sb=sum(sb_v) / len(sb_v) if sb_v else 0.0,
            density_per_km=n / self.length_km if self.length_km else 0.0,
            stopped=sum(1 for s in everyone if s["v"] < stopped_mps),
            braking=sum(1 for s in everyone if s["brake"]),
            mean_energy_pct=sum(s["energy"] for s in everyone) / n if n else 0.0,
        )

    # ---- persistence ------------------------------------------------------------------------
    def bucket_bytes(self, b: int) -> bytes:
        """Table value of vehicle bucket `b`: an LWW-Map whose values are packed vehicle states."""
        packed = {
            vid: (ts, r, None if state is None else pack_vehicle(state))
            for vid, (ts, r, state) in self.buckets[b].entries.items()
        }
        return encode_state(LWWMap(packed))

    def load_bucket(self, b: int, raw: bytes) -> None:
        stored = decode_state(raw)
        assert isinstance(stored, LWWMap)
        self.buckets[b].merge_in(
            LWWMap(
                {vid: (ts, r, None if v is None else unpack_vehicle(v)) for vid, (ts, r, v) in stored.entries.items()}
            )
        )

    def take_dirty(self) -> tuple[list[int], list[int], bool]:
        """Vehicle buckets, member shards and hazards changed since the last flush (and forget it:
        the caller writes them now)."""
        out = (sorted(self.dirty_buckets), sorted(self.dirty_members), self.hazards_dirty)
        self.dirty_buckets, self.dirty_members = set(), set()
        self.hazards_dirty = False
        return out
