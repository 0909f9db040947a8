"""The CAS-history check: it passes what etcd promises and names each way a history can break it."""

from __future__ import annotations

from pipeline.consistency.linearizability import Attempt, Version, check


def subset(a: bytes, b: bytes) -> bool:  # a toy lattice: sets of letters
    return set(a.decode()) <= set(b.decode())


def op(client: str, began: float, ended: float, read: int | None, wrote: str | None, ok: bool | None) -> Attempt:
    return Attempt(client, began, ended, read, None if wrote is None else wrote.encode(), ok)


HISTORY = [Version(10, b"a"), Version(12, b"ab"), Version(15, b"abc")]
GOOD = [
    op("t1", 0.0, 1.0, 0, "a", True),
    op("t2", 0.5, 2.0, 0, "b", False),  # lost the race to create the key
    op("t2", 2.1, 3.0, 10, "ab", True),
    op("t3", 2.5, 3.5, 10, "ac", False),  # read before t2's write took effect
    op("t3", 3.6, 4.0, 12, "abc", True),
    op("t1", 4.5, 5.0, None, None, None),  # etcd away: failed before reading
]


def test_a_history_etcd_could_have_produced_passes() -> None:
    verdict = check(GOOD, HISTORY, subset)
    assert verdict.linearizable, verdict.violations
    assert (verdict.acknowledged, verdict.failed, verdict.unknown) == (3, 2, 0)


def test_a_write_of_unknown_outcome_may_have_taken_effect_or_not() -> None:
    unknown = [*GOOD[:4], op("t3", 3.6, 4.0, 12, "abc", None)]
    verdict = check(unknown, HISTORY, subset)
    assert verdict.linearizable and verdict.unknown_took_effect == 1
    assert check(unknown[:4], HISTORY[:2], subset).linearizable


def test_an_acknowledged_write_missing_from_the_key_is_a_lost_update() -> None:
    verdict = check(GOOD, HISTORY[:2], subset)
    assert any("not in the key's history" in m for m in verdict.violations)


def test_two_writes_succeeding_on_the_same_revision_are_caught() -> None:
    both = [*GOOD, op("t4", 2.2, 2.9, 10, "ab", True)]
    verdict = check(both, HISTORY, subset)
    assert any("lost update" in m for m in verdict.violations)


def test_a_version_no_one_wrote_is_caught() -> None:
    verdict = check(GOOD[:4], HISTORY, subset)
    assert any("written by no recorded attempt" in m for m in verdict.violations)


def test_a_write_ordered_before_one_that_ended_earlier_breaks_real_time() -> None:
    late = [op("t1", 0.0, 1.0, 0, "a", True), op("t2", 5.0, 6.0, 10, "ab", True), op("t3", 1.0, 2.0, 12, "abc", True)]
    verdict = check(late, HISTORY, subset)
    assert any("real time" in m or "had ended before it began" in m for m in verdict.violations)


def test_a_stale_read_and_an_unexplained_failed_compare_are_caught() -> None:
    stale = [*GOOD, op("t5", 3.2, 3.3, 10, "a", False)]  # read 10 after t2's write to 12 had ended
    assert any("stale read" in m for m in check(stale, HISTORY, subset).violations)
    unexplained = [*GOOD, op("t6", 6.0, 6.5, 15, "abcd", False)]  # nothing was written after 15
    assert any("had not moved on" in m for m in check(unexplained, HISTORY, subset).violations)


def test_a_version_that_shrinks_the_lattice_is_caught() -> None:
    shrunk = [Version(10, b"a"), Version(12, b"ab"), Version(15, b"bc")]
    ops = [*GOOD[:4], op("t3", 3.6, 4.0, 12, "bc", True)]
    assert any("lost part of the one before" in m for m in check(ops, shrunk, subset).violations)
