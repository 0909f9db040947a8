"""The thesis under faults, on the real stack: tower-sync and etcd partitions heal with nothing lost,
and the global view's compare-and-swap history stays linearizable through an etcd restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.consistency.partition import Plan, run_consistency

pytestmark = pytest.mark.integration


def test_partitions_heal_with_nothing_lost_and_the_cas_history_is_linearizable(stack, tmp_path: Path) -> None:
    picture = tmp_path / "partitions.png"
    result = run_consistency(stack.settings, Plan((4.0,), 8.0, 12.0, 6.0), picture=picture)
    sync = result["partitions"]["tower-sync cut 4 s"]
    assert sync["nothing_lost"] and sync["unmatched"] == [], sync
    assert sync["converged_after_s"] < 5.0, "the backlog is merged within a few sync rounds"
    etcd = result["partitions"]["worker 1 cut off etcd 8 s"]
    assert etcd["nothing_lost"], etcd
    assert etcd["others_saw_it_leave_after_s"] is not None, "its lease lapsed and the others' watch saw it go"
    cas = result["cas_history"]
    assert cas["towers_settled_after_s"] is not None, "no tower write was in flight when the history was read"
    assert cas["etcd_restarted"] and cas["linearizable"], cas["violations"]
    assert cas["final_is_join_of_every_write"]
    assert cas["acknowledged"] > 100 and cas["failed"] > 0, "the writers did race each other"
    assert picture.stat().st_size > 20_000
