"""Staleness samples: a change is stamped where it is made, and its age is taken where it is merged."""

from __future__ import annotations

from pipeline.shared.crdt.hlc import HybridClock
from pipeline.shared.messages import CODEC, SYNC
from tests.towers.test_engine import CORRIDOR, T0, frame, hazard, upd
from towers.config import TowerConfig
from towers.engine import TowerEngine


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def two_towers() -> tuple[TowerEngine, TowerEngine, Clock]:
    clock = Clock(T0 + 60_000)
    make = lambda: TowerEngine(  # noqa: E731
        CORRIDOR, TowerConfig(max_trigger_age_s=3600.0), clock=HybridClock(physical=clock), wall_ms=clock
    )
    return make(), make(), clock


def sync_of(out) -> list[dict]:
    return [CODEC.decode(v, SYNC) for _, v in out.sync]


def test_a_membership_change_is_as_old_at_the_neighbour_as_the_time_since_it_was_made() -> None:
    a, b, clock = two_towers()
    r = CORRIDOR.regions.lookup(20.0)
    a.on_telemetry(r, frame(r, [upd("v1", 20.0)]), a.region(r))
    clock.ms += 700
    a.on_telemetry(r, frame(r, [upd("v2", 20.5)]), a.region(r))
    clock.ms += 300  # the sync tick: both changes go out, the first made 1 s ago
    (msg,) = [m for m in sync_of(a.sync_important()) if m["region_id"] == r]
    assert msg["changes_since"] == T0 + 60_000
    clock.ms += 250  # in transit
    b.on_sync(CODEC.encode(SYNC, msg))
    (merge,) = b.view.log.merges
    assert (merge.sync_class, merge.region, merge.age_ms) == ("IMPORTANT", r, 1250)
    # nothing changed since: the next message carries no change, and its merge is no sample
    clock.ms += 750
    (quiet,) = [m for m in sync_of(a.sync_important()) if m["region_id"] == r]
    assert quiet["changes_since"] == 0
    b.on_sync(CODEC.encode(SYNC, quiet))
    assert len(b.view.log.merges) == 1


def test_a_worker_takes_no_sample_of_its_own_regions_messages() -> None:
    a, _, _ = two_towers()
    r = CORRIDOR.regions.lookup(20.0)
    a.on_telemetry(r, frame(r, [upd("v1", 20.0)]), a.region(r))
    for _, value in a.sync_important().sync:
        a.on_sync(value)
    assert not a.view.log.merges


def test_a_hazard_is_timed_from_its_acceptance_to_its_first_sight_elsewhere() -> None:
    a, b, clock = two_towers()
    r = CORRIDOR.regions.lookup(36.0)
    out = a.on_hazard(r, hazard(36.0, "deer"), a.region(r))
    assert a.view.log.hazard_made == {"deer": T0 + 60_000} == a.view.log.hazard_seen
    clock.ms += 40
    for _, value in out.sync:  # sent at once, not at the next tick
        b.on_sync(value)
    assert b.view.log.hazard_seen == {"deer": T0 + 60_040}
    assert not b.view.log.hazard_made
    for _, value in a.sync_important().sync:  # seen again: the first sight stays
        clock.ms += 1000
        b.on_sync(value)
    assert b.view.log.hazard_seen == {"deer": T0 + 60_040}


def test_aggregates_are_as_old_as_the_time_since_the_previous_ones_went_out() -> None:
    a, b, clock = two_towers()
    r = CORRIDOR.regions.lookup(20.0)
    a.on_telemetry(r, frame(r, [upd("v1", 20.0)]), a.region(r))
    first = sync_of(a.sync_unimportant())
    assert [m["changes_since"] for m in first] == [0]  # nothing was published before: no bound to give
    clock.ms += 10_000
    (second,) = sync_of(a.sync_unimportant())
    assert second["changes_since"] == T0 + 60_000
    clock.ms += 100
    b.on_sync(CODEC.encode(SYNC, second))
    assert [(m.sync_class, m.age_ms) for m in b.view.log.merges] == [("UNIMPORTANT", 10_100)]


def test_the_age_of_what_a_worker_shows_is_given_per_class() -> None:
    a, b, clock = two_towers()
    r = CORRIDOR.regions.lookup(20.0)
    assert b.staleness_by_class(clock.ms) == {"hazards": None, "membership": None, "aggregates": None,
                                              "vehicle_state": None}  # fmt: skip
    a.on_telemetry(r, frame(r, [upd("v1", 20.0)]), a.region(r))
    for _, value in a.sync_important().sync + a.sync_unimportant().sync:
        b.on_sync(value)
    clock.ms += 3000
    for _, value in a.sync_important().sync:
        b.on_sync(value)
    clock.ms += 500
    by_class = b.staleness_by_class(clock.ms)
    assert (by_class["membership"], by_class["hazards"], by_class["aggregates"]) == (500, 500, 3500)
    # a worker's own regions are not its staleness, but how far behind their telemetry it is
    own = a.staleness_by_class(clock.ms)
    assert own["membership"] is None and own["vehicle_state"] == clock.ms - T0  # frames say they were sent at T0


def test_an_etcd_snapshot_carries_the_oldest_change_it_is_the_first_to_hold() -> None:
    a, _, clock = two_towers()
    r = CORRIDOR.regions.lookup(20.0)
    a.on_telemetry(r, frame(r, [upd("v1", 20.0)]), a.region(r))
    clock.ms += 400
    a.sync_important()  # sent to the neighbours: that does not put it in etcd
    snaps, _ = a.control_snapshot("c")
    assert snaps[r]["changes_since"] == T0 + 60_000
    snaps, _ = a.control_snapshot("c")
    assert snaps[r]["changes_since"] == 0


def test_a_view_is_known_to_equal_its_owner_once_it_hashes_as_the_owner_said() -> None:
    a, b, clock = two_towers()
    r = CORRIDOR.regions.lookup(20.0)
    a.on_telemetry(r, frame(r, [upd("v1", 20.0), upd("v2", 20.4)]), a.region(r))
    first = a.sync_important().sync  # a whole state
    clock.ms += 1000
    a.on_telemetry(r, frame(r, [upd("v3", 20.8)]), a.region(r))
    a.region(r).remove_vehicles(["v1"], a.clock.now())
    second = a.sync_important().sync  # a delta: one in, one out
    b.on_sync(first[0][1])
    assert b.view.regions[r].matched_sent_at_ms == T0 + 60_000
    b.on_sync(second[0][1])
    assert b.view.regions[r].matched_sent_at_ms == T0 + 61_000
    assert b.view.regions[r].members.value == {"v2", "v3"}
    # a delta lost on the way: the view no longer matches, until the next whole state repairs it
    clock.ms += 1000
    a.on_telemetry(r, frame(r, [upd("v4", 21.0)]), a.region(r))
    a.sync_important()  # lost
    for i in range(7):
        clock.ms += 1000
        a.on_telemetry(r, frame(r, [upd(f"w{i}", 21.2)]), a.region(r))
        b.on_sync(a.sync_important().sync[0][1])
    assert b.view.regions[r].matched_sent_at_ms == T0 + 61_000
    clock.ms += 1000
    b.on_sync(a.sync_important().sync[0][1])  # the tenth: a whole state again
    assert b.view.regions[r].matched_sent_at_ms == clock.ms
    assert "v4" in b.view.regions[r].members.value
