"""A worker refuses a Kafka cluster other than the one it started with."""

from __future__ import annotations

from towers.guard import ClusterGuard


def answers(*ids: str | None):
    seq = iter(ids)
    return lambda: next(seq)


def test_the_same_cluster_or_no_answer_is_fine_another_cluster_is_not() -> None:
    guard = ClusterGuard(answers("abc", "abc", None, "xyz"))
    assert guard.check() is None and guard.check() is None, "same cluster; broker away for a while"
    reason = guard.check()
    assert reason is not None and "xyz" in reason and "abc" in reason


def test_a_worker_that_started_without_an_answer_adopts_the_first_cluster_it_sees() -> None:
    guard = ClusterGuard(answers(None, "abc", "abc", "new"))
    assert guard.check() is None and guard.check() is None
    assert guard.check() is not None


def test_the_watch_thread_reports_a_foreign_cluster() -> None:
    guard = ClusterGuard(answers("abc", "abc", "other"), interval_s=0.01)
    seen: list[str] = []
    thread = guard.watch(seen.append)
    thread.join(5)
    assert len(seen) == 1 and "other" in seen[0]
    guard.stop()
