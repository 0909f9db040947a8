"""A region's columnar state: bad clocks, tombstone pruning, table formats, restore."""

from __future__ import annotations

import struct

import pytest

from pipeline.shared.crdt import LWWMap, MalformedStateError, encode_state
from pipeline.shared.crdt.hlc import HybridClock, pack
from tests.towers.test_engine import CORRIDOR, T0, frame, upd
from towers.config import TowerConfig
from towers.engine import TowerEngine
from towers.vehicle_buckets import BUCKETS


class Wall:
    """A wall clock the test moves."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def engine_at(wall: Wall, **cfg: float) -> TowerEngine:
    return TowerEngine(CORRIDOR, TowerConfig(**cfg), clock=HybridClock(physical=wall), wall_ms=wall)


def restored(e: TowerEngine, r: int) -> TowerEngine:
    """A second engine rebuilt from what a flush of `e` wrote (the tables after a restart)."""
    tables: dict[str, dict[str, bytes | None]] = {"members": {}, "vehicles": {}, "hazards": {}}
    st = e.states[r]
    st.dirty_buckets[:] = True
    st.dirty_members.update(range(BUCKETS))
    for name, writes in e.flush(r, 0.0).items():
        tables[name].update(writes)
    other = TowerEngine(CORRIDOR, e.cfg, clock=e.clock, wall_ms=e.wall_ms)
    other.states[r] = other.restore(
        r,
        [tables["members"].get(f"{r}:{b}") for b in range(BUCKETS)],
        [tables["vehicles"].get(f"{r}:{b}") for b in range(BUCKETS)],
        tables["hazards"].get(str(r)),
    )
    return other


def with_hlc(updates: list[dict], hlc: int | bytes) -> bytes:
    """A frame whose last update carries `hlc`: an int, or raw varint bytes past 64 bits (which no
    Avro writer makes, but a wire can carry)."""
    if isinstance(hlc, int):
        return frame(4, [*updates[:-1], {**updates[-1], "hlc": hlc}])
    zero, one = (frame(4, [*updates[:-1], {**updates[-1], "hlc": v}]) for v in (0, 1))
    at = next(i for i, (a, b) in enumerate(zip(zero, one, strict=True)) if a != b)
    return zero[:at] + hlc + zero[at + 1 :]


@pytest.mark.parametrize("hlc", [-1, 0, -(2**63), b"\xff" * 9 + b"\x7f"], ids=["-1", "0", "min", "past-64-bits"])
def test_an_update_with_a_bad_hlc_is_a_dead_letter_and_the_region_still_restores(hlc: int | bytes) -> None:
    wall = Wall(T0 + 60_000)
    e = engine_at(wall)
    st = e.region(4)
    only_bad = e.on_telemetry(4, with_hlc([upd("bad", 37.0, t=1)], hlc), st)
    assert [d.reason.split(":")[0] for d in only_bad.dead] == ["bad-hlc"]
    out = e.on_telemetry(4, with_hlc([upd("good", 36.0, t=1), upd("bad", 37.0, t=1)], hlc), st)
    assert [d.reason.split(":")[0] for d in out.dead] == ["bad-hlc"]
    assert set(st.members.value) == {"good"}
    again = restored(e, 4)
    assert set(again.states[4].members.value) == {"good"} and again.states[4].vehicle("good") is not None


def test_a_lane_a_state_cannot_hold_is_a_dead_letter() -> None:
    e = engine_at(Wall(T0 + 60_000))
    out = e.on_telemetry(4, frame(4, [upd("wide", 37.0, t=1, lane=300)]), e.region(4))
    assert out.dead[0].reason.startswith("lane-out-of-range")


def test_the_tables_restore_the_same_state() -> None:
    wall = Wall(T0 + 60_000)
    e = engine_at(wall)
    st = e.region(4)
    e.on_telemetry(4, frame(4, [upd(f"veh-{i:07d}", 36 + i * 0.05, t=1) for i in range(120)]), st)
    e.on_telemetry(4, frame(4, [upd("veh-0000003", 36.2, t=20)]), st)
    e.flush(4, 0.0)  # expires everyone silent since t=1 (ttl 10 s): tombstones
    again = restored(e, 4).states[4]
    assert again.vehicles == st.vehicles and again.members == st.members
    assert again.watermark_ms == st.watermark_ms


def test_a_bucket_written_in_format_1_is_still_read() -> None:
    packed = struct.pack("<BdfffBBBq", 1, 36.5, 30.0, 0.5, 50.0, 1, 2, 0, T0 + 1000)
    old = encode_state(LWWMap({"veh-1": (pack(T0 + 1000, 0), "tower-04", packed), "veh-2": (pack(T0, 1), "t", None)}))
    e = engine_at(Wall(T0 + 60_000))
    st = e.restore(4, [None] * BUCKETS, [old] + [None] * (BUCKETS - 1), None)
    assert st.vehicle("veh-1") == pytest.approx(
        {"km": 36.5, "v": 30.0, "accel": 0.5, "energy": 50.0, "nb": True, "lane": 2, "brake": False, "et": T0 + 1000}
    )
    assert st.entry_ts("veh-2") == pack(T0, 1) and st.vehicle("veh-2") is None


def test_a_corrupt_bucket_is_refused_with_a_reason() -> None:
    e = engine_at(Wall(T0 + 60_000))
    for raw in (b"\x07junk", b"\x02" + b"\x00" * 3):
        with pytest.raises(MalformedStateError):
            e.restore(4, [None] * BUCKETS, [raw] + [None] * (BUCKETS - 1), None)


def test_state_stays_flat_over_thirty_minutes_of_churn() -> None:
    """Vehicles pass through the region and leave; their tombstones are pruned past the horizon,
    so what the tables hold (and the slots the state keeps) stops growing."""
    wall = Wall(T0)
    e = engine_at(wall, tombstone_horizon_s=120)
    st = e.region(4)
    sizes = []
    for minute in range(30):
        for second in range(0, 60, 5):
            t = minute * 60 + second
            wall.ms = T0 + t * 1000
            # 40 vehicles in the region at a time; a new set every 20 s (each set leaves by going silent)
            batch = [upd(f"veh-{t // 20:04d}{i:03d}", 36 + i * 0.05, t=t) for i in range(40)]
            e.on_telemetry(4, frame(4, batch), st)
            e.flush(4, float(t))
        st.dirty_buckets[:] = True
        sizes.append(sum(len(st.bucket_bytes(b)) for b in range(BUCKETS)))
    assert max(sizes[10:]) <= 1.05 * min(sizes[10:]), f"flushed state grew: {sizes}"
    assert len(st.vehicles) < 40 * (120 // 20 + 2), "tombstones older than the horizon are gone"
    assert st.vehicles.capacity <= 512, "freed slots are reused"


def test_a_flush_that_failed_part_way_is_written_whole_at_the_next() -> None:
    """A table write that failed (a full disk) leaves the region marked: the next flush writes every
    bucket, shard and the hazards again, so nothing changed in between is left out."""
    e = engine_at(Wall(T0 + 60_000))
    e.on_telemetry(4, frame(4, [upd("a", 40.0, t=50), upd("b", 41.0, t=50)]), e.region(4))
    first = e.flush(4, 0.0)
    assert 0 < len(first["vehicles"]) < BUCKETS, "a flush writes only the buckets that changed"
    assert e.flush(4, 1.0)["vehicles"] == [], "and nothing when nothing changed"
    e.states[4].mark_all_dirty()
    again = e.flush(4, 2.0)
    assert len(again["vehicles"]) == BUCKETS and len(again["members"]) == BUCKETS and again["hazards"]
