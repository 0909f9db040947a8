"""Which regions' state a worker keeps in memory across a rebalance (`towers.handover`)."""

from __future__ import annotations

from towers.handover import RegionHandover


def test_regions_given_back_in_the_next_generation_are_kept_and_the_moved_ones_forgotten() -> None:
    h = RegionHandover()
    h.on_revoked({1, 5, 6}, generation=4)
    assert h.on_assigned({5, 6, 7}, generation=5) == {1}


def test_a_generation_gone_by_without_this_worker_forgets_every_revoked_region() -> None:
    """Dropped from the group (paused past its session), its regions were served by others meanwhile:
    what it holds in memory is older than their tables."""
    h = RegionHandover()
    h.on_revoked({1, 5}, generation=4)
    assert h.on_assigned({1, 5}, generation=6) == {1, 5}


def test_the_first_assignment_forgets_nothing_and_a_settled_rebalance_leaves_nothing_pending() -> None:
    h = RegionHandover()
    assert h.on_assigned({0, 1}, generation=1) == set()
    h.on_revoked({0, 1}, generation=1)
    assert h.on_assigned({0}, generation=2) == {1}
    assert h.on_assigned({0, 1}, generation=3) == set(), "nothing revoked since"


def test_revocations_before_one_assignment_add_up_and_keep_the_generation_they_were_held_in() -> None:
    """A join that fails is retried: the worker may be told to revoke again before any assignment."""
    h = RegionHandover()
    h.on_revoked({2, 3}, generation=7)
    h.on_revoked(set(), generation=7)
    assert h.on_assigned({3}, generation=8) == {2}
