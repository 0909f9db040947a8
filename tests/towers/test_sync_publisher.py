"""What each region's sync messages carry across a region leaving this worker and coming back."""

from __future__ import annotations

from pipeline.shared.crdt import LWWMap, decode_state
from pipeline.shared.messages import CODEC, SYNC
from tests.towers.test_engine import engine, hazard


def synced_hazards(out) -> set[str]:
    (msg,) = [CODEC.decode(v, SYNC) for _, v in out.sync]
    carried = decode_state(msg["hazards"]) if msg["hazards"] is not None else LWWMap()
    return set(carried.entries)


def test_a_hazard_taken_by_a_region_that_came_back_goes_to_the_neighbours_at_once() -> None:
    """The publisher remembered the versions sent for the region's previous state: the fresh delta log
    was behind them, the delta came out empty and the neighbours waited for the next full state."""
    e = engine()
    assert synced_hazards(e.on_hazard(4, hazard(40.0, "deer", t=5), e.region(4))) == {"deer"}  # full
    assert synced_hazards(e.on_hazard(4, hazard(40.5, "tyre", t=6), e.region(4))) == {"tyre"}  # a delta
    e.drop({4})  # a rebalance takes it away, and gives it back with nothing restored
    assert synced_hazards(e.on_hazard(4, hazard(41.0, "crash", t=7), e.region(4))) == {"crash"}


def test_after_a_rebalance_every_region_sends_whole_states_at_once() -> None:
    """A worker that joins reads tower-sync from its end: until a neighbour's next full state (up to
    ten messages later) it knew none of the hazards reported before, and advised as if there were none."""
    e = engine()
    e.on_hazard(4, hazard(40.0, "deer", t=5), e.region(4))  # message 0: whole states
    e.on_hazard(4, hazard(40.5, "tyre", t=6), e.region(4))  # message 1: a delta
    e.publisher.resend_full()
    (msg,) = [CODEC.decode(v, SYNC) for _, v in e.sync_important().sync]
    assert msg["full"] and set(decode_state(msg["hazards"]).entries) == {"deer", "tyre"}
    (after,) = [CODEC.decode(v, SYNC) for _, v in e.sync_important().sync]
    assert not after["full"], "once"
