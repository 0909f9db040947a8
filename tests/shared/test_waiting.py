"""`poll`: the time a condition took, or None when it did not come true in time."""

from __future__ import annotations

import itertools

from pipeline.shared.waiting import poll


def test_a_condition_true_at_once_takes_no_time_and_one_never_true_gives_none() -> None:
    assert poll(lambda: True, timeout=0) == 0.0
    assert poll(lambda: False, timeout=0.05, interval=0.01) is None


def test_a_condition_is_checked_until_it_holds() -> None:
    calls = itertools.count()
    took = poll(lambda: next(calls) >= 3, timeout=5, interval=0.01)
    assert took is not None and 0.02 <= took < 5
