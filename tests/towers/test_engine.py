"""The tower engine without Kafka: merges, advice, dead letters, expiry, hand-off, idempotence."""

from __future__ import annotations

import math
import zlib

import pytest

from pipeline.shared.corridor import load_corridor
from pipeline.shared.crdt import LWWMap, encode_state
from pipeline.shared.crdt.hlc import HybridClock, pack
from pipeline.shared.hazards import OPERATOR
from pipeline.shared.messages import ADVISORY, CODEC, FRAME, HAZARD, SYNC, TELEMETRY
from towers.config import TowerConfig
from towers.engine import TowerEngine

T0 = 1_764_000_000_000
CORRIDOR = load_corridor()


def engine(**cfg: float) -> TowerEngine:
    """An engine whose wall clock stands at T0 + 60 s; the rules' tests use triggers from T0 on, so the
    trigger age bound is lifted unless a test sets it."""
    clock = HybridClock(physical=lambda: T0 + 60_000)
    cfg = {"max_trigger_age_s": 3600.0, **cfg}
    return TowerEngine(CORRIDOR, TowerConfig(**cfg), clock=clock, wall_ms=lambda: T0 + 60_000)


def upd(vid: str, km: float, v: float = 30.0, nb: bool = True, t: int = 0, region: int | None = None, **kw) -> dict:
    rec = {
        "vehicle_id": vid,
        "seq": t,
        "event_time": T0 + t * 1000,
        "hlc": pack(T0 + t * 1000, 0) + zlib.crc32(vid.encode()) % 97,  # stable across processes
        "lat": 39.4,
        "lon": -86.4,
        "route_km": km,
        "direction": "NORTHBOUND" if nb else "SOUTHBOUND",
        "lane": 0,
        "heading_deg": 10.0,
        "speed_mps": v,
        "accel_mps2": 0.0,
        "brake": False,
        "energy_pct": 50.0,
        "region_id": CORRIDOR.regions.lookup(km) if region is None else region,
    }
    rec.update(kw)
    return rec


def frame(region: int, updates: list[dict], seq: int = 0) -> bytes:
    et = max((u["event_time"] for u in updates), default=T0)
    return CODEC.encode(
        FRAME, {"region_id": region, "frame_seq": seq, "event_time": et, "sent_at": et, "updates": updates}
    )


def hazard(
    km: float,
    hid: str = "hz-1",
    direction: str = "NORTHBOUND",
    t: int = 5,
    cancelled: bool = False,
    reporter: str = "test",
    **more,
) -> bytes:
    return CODEC.encode(
        HAZARD,
        more
        | {
            "hazard_id": hid,
            "hazard_type": "ANIMAL",
            "cause_code": 11,
            "route_km": km,
            "lat": 39.4,
            "lon": -86.4,
            "direction": direction,
            "severity": 6,
            "detection_time": T0 + t * 1000,
            "expiry_time": T0 + 600_000,
            "cancelled": cancelled,
            "hlc": pack(T0 + t * 1000, 500),
            "reporter": reporter,
            "region_id": CORRIDOR.regions.lookup(km),
        },
    )


def advisories(out) -> list[dict]:
    return [CODEC.decode(v, ADVISORY) for _, v in out.advisories]


def test_frames_build_the_swarm_and_duplicates_change_nothing() -> None:
    e = engine()
    st = e.region(4)
    raw = frame(4, [upd(f"veh-{i}", 36 + i * 0.1, t=1) for i in range(20)])
    e.on_telemetry(4, raw, st)
    snapshot = (st.members.copy(), st.vehicles.copy())
    e.on_telemetry(4, raw, st)  # redelivered (at-least-once)
    assert len(st.members) == 20 and (st.members, st.vehicles) == snapshot


def test_replaying_a_partition_twice_yields_the_same_state() -> None:
    records = [frame(4, [upd(f"veh-{i}", 36 + i * 0.2 + t * 0.03, t=t) for i in range(10)], t) for t in range(1, 20)]
    once, twice = engine(), engine()
    for raw in records:
        once.on_telemetry(4, raw, once.region(4))
    for raw in records + records:
        twice.on_telemetry(4, raw, twice.region(4))
    a, b = once.states[4], twice.states[4]
    assert a.members == b.members and a.vehicles == b.vehicles


def test_a_hazard_ahead_slows_vehicles_down_by_distance_and_stops_the_nearest() -> None:
    e = engine()
    st = e.region(4)
    e.on_telemetry(
        4,
        frame(
            4,
            [
                upd("near", 39.85, t=1),
                upd("mid", 38.5, t=1),
                upd("far", 35.0, t=1),
                upd("past", 40.5, t=1),
                upd("oncoming", 39.0, nb=False, t=1),
            ],
        ),
        st,
    )
    out = e.on_hazard(4, hazard(40.0), st)
    got = {a["target_vehicle"]: a for a in advisories(out)}
    assert set(got) == {"near", "mid"}, "only northbound vehicles within 3 km before it"
    assert got["near"]["action"] == "STOP" and got["near"]["target_speed_mps"] == 0
    assert got["mid"]["action"] == "SLOW_DOWN" and 8 <= got["mid"]["target_speed_mps"] < 25
    assert got["mid"]["hazard_id"] == "hz-1" and got["mid"]["trigger_hlc"] == pack(T0 + 5000, 500)
    assert out.sync, "a new hazard is synced to the neighbours at once"
    # decided 55 s after the report was stamped (the engine's clock stands at T0 + 60 s): past the last
    # bound (20 s) of both histograms; the all-advisory one counts every advisory, the hazard one the report's
    assert e.hazard_decided_after.n == 2 and dict(e.hazard_decided_after.cumulative())["20.0"] == 0
    assert e.decided_after.n == e.counts["advisories"] >= 2
    assert e.hazard_decided_after.total_s == pytest.approx(2 * 55.0)


def test_an_obstacle_that_leaves_a_lane_open_slows_traffic_to_pass_it_without_a_stop() -> None:
    e = engine()
    st = e.region(4)
    e.on_telemetry(4, frame(4, [upd("near", 39.85, t=1), upd("mid", 38.5, t=1)]), st)
    got = {a["target_vehicle"]: a for a in advisories(e.on_hazard(4, hazard(40.0, lanes_blocked=[0]), st))}
    assert {a["action"] for a in got.values()} == {"SLOW_DOWN"}, "a lane is open: nobody is stopped"
    assert all(abs(a["target_speed_mps"] - 60 / 3.6) < 0.05 for a in got.values())
    # the other lane closed too: the road is blocked, and the nearest stop
    out = e.on_hazard(4, hazard(40.0, lanes_blocked=[0, 1], t=6), st)
    assert {a["target_vehicle"]: a["action"] for a in advisories(out)}["near"] == "STOP"


def test_a_hazard_warns_as_far_upstream_as_its_relevance_distance() -> None:
    e = engine()
    st = e.region(4)
    e.on_telemetry(4, frame(4, [upd("far", 35.5, t=1), upd("mid", 38.5, t=1)]), st)
    assert {a["target_vehicle"] for a in advisories(e.on_hazard(4, hazard(40.0), st))} == {"mid"}
    wide = advisories(e.on_hazard(4, hazard(40.0, "hz-2", relevance_distance_m=5000), st))
    assert "far" in {a["target_vehicle"] for a in wide}, "4.5 km upstream, within its 5 km"


def test_advice_is_not_repeated_within_the_cooldown_and_clears_with_keep() -> None:
    e = engine(cooldown_s=5)
    st = e.region(4)
    e.on_telemetry(4, frame(4, [upd("a", 38.5, t=1)]), st)
    assert len(advisories(e.on_hazard(4, hazard(40.0), st))) == 1
    assert advisories(e.on_telemetry(4, frame(4, [upd("a", 38.52, t=2)]), st)) == []
    assert len(advisories(e.on_telemetry(4, frame(4, [upd("a", 38.6, t=7)]), st))) == 1
    (keep,) = advisories(e.on_hazard(4, hazard(40.0, cancelled=True, t=8), st))
    assert keep["action"] == "KEEP" and keep["target_speed_mps"] > 25, "released as soon as the hazard clears"
    assert advisories(e.on_telemetry(4, frame(4, [upd("a", 38.7, t=9)]), st)) == []


@pytest.mark.parametrize(
    ("change", "action"),
    [
        ({"cancelled": True}, "cancel"),
        ({"severity": 1}, "change"),  # a blocking hazard turned minor: slowed, no longer stopped for
        ({"expiry_time": T0 + 6_001}, "change"),  # a lifetime of 1 ms
    ],
)
def test_a_stranger_cannot_cancel_or_weaken_a_live_hazard(change: dict, action: str) -> None:
    e = engine()
    st = e.region(4)
    e.on_telemetry(4, frame(4, [upd("near", 39.85, t=1)]), st)
    e.on_hazard(4, hazard(40.0, reporter="veh-000017"), st)
    out = e.on_hazard(4, hazard(40.0, t=6, reporter="stranger", **change), st)
    (reason,) = [d.reason for d in out.dead]
    assert reason.startswith(f"not-its-reporter: 'stranger' may not {action} hazard 'hz-1'"), reason
    assert st.active_hazards(T0 + 10_000)["hz-1"]["severity"] == 6, "the reported hazard stands"
    (stop,) = advisories(e.on_telemetry(4, frame(4, [upd("near", 39.9, t=7)]), st))
    assert stop["action"] == "STOP" and stop["hazard_id"] == "hz-1", "and is still advised"


def test_a_hazard_is_cancelled_by_its_reporter_a_tower_or_the_operator() -> None:
    e = engine()
    st = e.region(4)
    cancellers = ["veh-000017", CORRIDOR.regions.towers[4], OPERATOR]
    for i, who in enumerate(cancellers):
        e.on_hazard(4, hazard(40.0, f"hz-{i}", reporter="veh-000017"), st)
        assert not e.on_hazard(4, hazard(40.0, f"hz-{i}", t=6, cancelled=True, reporter=who), st).dead, who
    assert st.active_hazards(T0 + 10_000) == {}


def test_a_slow_vehicle_on_a_clear_road_is_told_to_speed_up() -> None:
    e = engine()
    st = e.region(2)
    e.on_telemetry(2, frame(2, [upd(f"v{i}", 18 + i * 0.5, v=31.0, t=1) for i in range(10)]), st)
    e.flush(2, 0.0)  # aggregates (the swarm's mean speed) are refreshed at flush
    (adv,) = advisories(e.on_telemetry(2, frame(2, [upd("slow", 23.0, v=12.0, t=2)]), st))
    assert adv["action"] == "SPEED_UP" and adv["target_speed_mps"] == pytest.approx(31.0)


def test_a_queue_of_stopped_vehicles_becomes_a_hazard_for_those_behind() -> None:
    e = engine()
    st = e.region(4)
    e.on_telemetry(4, frame(4, [upd(f"q{i}", 40.0 + i * 0.01, v=0.0, t=1) for i in range(5)]), st)
    e.flush(4, 0.0)
    assert "queue-tower-04-nb" in st.hazards.value
    (adv,) = advisories(e.on_telemetry(4, frame(4, [upd("late", 38.9, t=2)]), st))
    assert adv["action"] == "SLOW_DOWN" and "end of queue" in adv["reason"]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"speed_mps": math.nan}, "not-a-number"),
        ({"speed_mps": -1.0}, "speed-out-of-range"),
        ({"speed_mps": 120.0}, "speed-out-of-range"),
        ({"route_km": 95.0}, "off-corridor"),
        ({"region_id": 5}, "wrong-region"),
        ({"hlc": pack(T0 + 600_000, 0)}, "clock-drift"),
    ],
)
def test_out_of_range_updates_are_dead_lettered_and_the_rest_merged(bad: dict, reason: str) -> None:
    e = engine()
    st = e.region(4)
    out = e.on_telemetry(
        4, frame(4, [upd("good1", 36.0, t=1), upd("bad", 37.0, t=1, **bad), upd("good2", 38.0, t=1)]), st
    )
    assert set(st.members.value) == {"good1", "good2"}
    (dead,) = out.dead
    assert dead.reason.startswith(reason)
    assert CODEC.decode(dead.value, TELEMETRY)["vehicle_id"] == "bad", "the dead letter holds the record itself"
    assert e.dead_reasons[reason] == 1


def test_a_frame_from_a_clock_far_ahead_cannot_expire_the_swarm() -> None:
    """A frame's event time drives TTL expiry (its simulated time may run faster than the wall's), so
    the sender's own clock (`sent_at`) is checked: a frame sent from minutes ahead is a dead letter,
    and the others' vehicles stay."""
    e = engine(vehicle_ttl_s=10)
    st = e.region(4)
    e.on_telemetry(4, frame(4, [upd("steady", 40.0, t=55)]), st)
    ahead = T0 + 60_000 + 600_000
    skewed = CODEC.encode(FRAME, {"region_id": 4, "frame_seq": 1, "event_time": ahead, "sent_at": ahead,
                                  "updates": []})  # fmt: skip
    (dead,) = e.on_telemetry(4, skewed, st).dead
    assert dead.value == skewed and dead.reason.startswith("clock-drift: frame sent")
    faster = CODEC.encode(FRAME, {"region_id": 4, "frame_seq": 2, "event_time": T0 + 62_000, "sent_at": T0 + 60_000,
                                  "updates": []})  # fmt: skip
    assert not e.on_telemetry(4, faster, st).dead
    e.flush(4, 0.0)
    assert set(st.members.value) == {"steady"}


def test_undecodable_and_foreign_records_are_dead_lettered_whole() -> None:
    e = engine()
    st = e.region(0)
    for raw, reason in (
        (b"\x01garbage", "undecodable"),
        (b"\xc3\x01" + b"\x11" * 8 + b"x", "unknown-schema"),
        (b"\x00\x00\x00\x00\x07x", "unknown-schema"),  # the Confluent header, and no registry's ids
        (hazard(3.0), "wrong-message-type"),
    ):
        (dead,) = e.on_telemetry(0, raw, st).dead
        assert dead.value == raw and dead.reason.startswith(reason)


def test_silent_vehicles_expire_after_the_ttl() -> None:
    e = engine(vehicle_ttl_s=10)
    st = e.region(4)
    e.on_telemetry(4, frame(4, [upd("quiet", 36.0, t=1), upd("chatty", 37.0, t=1)]), st)
    e.on_telemetry(4, frame(4, [upd("chatty", 37.5, t=15)]), st)
    e.flush(4, 0.0)
    assert set(st.members.value) == {"chatty"} and st.vehicle("quiet") is None


def test_a_vehicle_handed_off_to_the_next_region_leaves_this_swarm() -> None:
    e = engine()
    e.on_telemetry(4, frame(4, [upd("mover", 43.3, t=1), upd("stayer", 40.0, t=1)]), e.region(4))
    nxt = e.region(5)
    e.on_telemetry(5, frame(5, [upd("mover", 43.7, t=2)]), nxt)
    (sync_msg,) = e.sync_important().sync[1:2] or [None]  # region 5's message
    assert sync_msg is not None
    e.on_sync(sync_msg[1])
    assert set(e.states[4].members.value) == {"stayer"} and "mover" in e.states[5].members


def test_flush_writes_only_the_region_being_processed() -> None:
    """Co-partitioning: the keys written while handling region r all belong to region r."""
    e = engine()
    for r, km in ((3, 30.0), (4, 40.0)):
        e.on_telemetry(r, frame(r, [upd(f"v{r}-{i}", km + i * 0.1, t=1) for i in range(30)]), e.region(r))
    writes = e.flush(4, 0.0)
    keys = [k for table in writes.values() for k, _ in table]
    assert keys and all(k.split(":")[0] == "4" for k in keys)


def test_sync_naming_towers_outside_the_corridor_is_refused_and_dead_lettered() -> None:
    e = engine()
    e.on_telemetry(4, frame(4, [upd("a", 40.0, t=1)]), e.region(4))
    ((_, genuine),) = e.on_hazard(4, hazard(40.0), e.states[4]).sync
    msg = CODEC.decode(genuine, SYNC)
    intruder = LWWMap({"fake": (pack(T0, 1), "intruder", {"km": 41.0})})
    forged = [
        {**msg, "tower": "intruder"},  # not the tower of region 4
        {**msg, "region_id": 5},  # region 5 is another tower's
        {**msg, "hazards": encode_state(intruder)},  # a delta written by an unknown replica
    ]
    listener = engine()
    dead = [d for m in forged for d in listener.on_sync(CODEC.encode(SYNC, m), 4).dead]
    assert listener.dead_reasons["sync-UnknownReplicaError"] == 3 and listener.view.regions == {}
    assert len(dead) == 3 and all(d.reason.startswith("sync-UnknownReplicaError: ") for d in dead)
    listener.on_sync(genuine)
    assert "hz-1" in listener.view.regions[4].hazards.value


def test_no_advice_on_a_trigger_older_than_its_bound() -> None:
    """A tower catching up on a backlog (after a takeover) does not advise from out-of-date positions."""
    e = engine(max_trigger_age_s=10)
    st = e.region(4)
    e.on_hazard(4, hazard(40.0, t=55), st)
    out = e.on_telemetry(4, frame(4, [upd("old", 38.5, t=45), upd("new", 38.0, t=55)]), st)
    assert [a["target_vehicle"] for a in advisories(out)] == ["new"], "sent 15 s ago: no advice"
    assert e.counts["stale_triggers"] == 1 and set(st.members.value) == {"old", "new"}, "still merged"


def test_by_default_no_advice_that_would_lapse_on_its_way() -> None:
    """Advice is valid 10 s; decided on a trigger 9.5 s old, it reached its vehicle after it lapsed
    (the faults scenario counted such advisories as stale). The default bound keeps a second for
    the delivery."""
    defaults = TowerConfig()
    e = engine(max_trigger_age_s=defaults.max_trigger_age_s)
    st = e.region(4)
    e.on_hazard(4, hazard(40.0, t=55), st)
    # the engine's clock stands at 60 s: sent 9.5 s and 8.5 s ago
    stamped = [upd("late", 38.5, t=50), upd("timely", 38.0, t=51)]
    stamped[0]["hlc"] += 500 << 16
    stamped[1]["hlc"] += 500 << 16
    out = e.on_telemetry(4, frame(4, stamped), st)
    assert [a["target_vehicle"] for a in advisories(out)] == ["timely"]
    assert e.counts["stale_triggers"] == 1
    assert defaults.max_trigger_age_s + 1 <= defaults.advisory_validity_s


def test_a_restarted_worker_never_repeats_an_advisory_id() -> None:
    """Ids were `<tower>-<n>` from 0 in every process: a restart or a rebalance gave the same ids again."""
    ids = []
    for _ in range(2):  # the worker, then its replacement after a restart
        e = engine()
        e.on_hazard(4, hazard(40.0, t=5), e.region(4))
        out = e.on_telemetry(4, frame(4, [upd("v", 38.5, t=6)]), e.region(4))
        ids += [a["advisory_id"] for a in advisories(out)]
    assert len(ids) == 2 and len(set(ids)) == 2, ids


def test_a_vehicle_that_comes_back_after_expiring_is_there_again_whatever_the_towers_clock() -> None:
    """Expiry tombstones were stamped with the tower's HLC, a minute ahead of this vehicle's stamps
    here: its updates lost to its own tombstone and it stayed hidden."""
    e = engine()
    st = e.region(4)
    e.on_telemetry(4, frame(4, [upd("lagging", 40.0, t=1)]), st)
    e.on_telemetry(4, frame(4, [upd("other", 41.0, t=15)]), st)
    e.flush(4, 0.0)
    assert "lagging" not in st.members, "silent past the TTL: expired"
    e.on_telemetry(4, frame(4, [upd("lagging", 40.5, t=16)]), st)
    assert "lagging" in st.members and st.vehicle("lagging") is not None


def test_a_frames_wait_is_the_towers_lag_until_the_region_falls_quiet() -> None:
    """Sent at T0 + 55 s, processed at T0 + 60 s (the engine's clock): it waited 5 s. With no frame for
    longer than the quiet bound the region is idle, not late; its newest telemetry only grows older."""
    e = engine()
    st = e.region(4)
    e.on_telemetry(4, frame(4, [upd("v", 38.0, t=55)]), st)
    assert e.lag_ms(T0 + 60_000) == {4: 5_000} and e.behind_ms(T0 + 60_000) == {4: 5_000}
    assert e.lag_ms(T0 + 60_000 + 10_001) == {4: 0}, "idle: nothing waits"
    assert e.behind_ms(T0 + 60_000 + 10_001) == {4: 15_001}


def test_a_hazard_read_only_after_its_expiry_advises_no_one_and_is_counted_once() -> None:
    e = engine()
    st = e.region(4)
    e.on_telemetry(4, frame(4, [upd("near", 39.85, t=30)]), st)  # the region's event time: T0 + 30 s
    late = CODEC.decode(hazard(40.0), HAZARD) | {"expiry_time": T0 + 13_000}  # reported at 5 s, valid 8 s
    out = e.on_hazard(4, CODEC.encode(HAZARD, late), st)
    assert advisories(out) == [] and e.counts["hazards_expired_on_arrival"] == 1
    e.on_hazard(4, CODEC.encode(HAZARD, late), st)  # read again (a replay): no news, not counted again
    assert e.counts["hazards_expired_on_arrival"] == 1
    e.on_hazard(4, hazard(40.0, hid="hz-2", t=29), st)  # one still valid is advised, not counted
    assert e.counts["hazards_expired_on_arrival"] == 1 and e.counts["advisories"] >= 1
