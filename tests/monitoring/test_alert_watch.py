"""A drill's record of its alerts, from Prometheus's answers as they came."""

from __future__ import annotations

from pipeline.monitoring.alerts import AlertWatch
from pipeline.shared.errors import StackError


def _watch(answers: list[set[str] | None]) -> AlertWatch:
    clock = iter(float(t) for t in range(len(answers)))
    script = iter(answers)

    def firing() -> set[str]:
        got = next(script)
        if got is None:
            raise StackError("Prometheus did not answer")
        return got

    watch = AlertWatch(firing, clock=lambda: next(clock))
    for _ in answers:
        watch.sample()
    return watch


def test_an_alert_fired_after_the_fault_and_resolved_after_its_end() -> None:
    watch = _watch([set(), set(), {"CorridorTowerDown"}, {"CorridorTowerDown"}, None, set(), set()])
    got = watch.report(fault_start=1.0, fault_end=3.0)
    assert got["fired"] == {"CorridorTowerDown": {"fired_after_s": 1.0, "resolved_after_s": 2.0}}
    assert got["unanswered_rounds"] == 1


def test_one_firing_again_is_not_resolved_and_one_never_ending_says_so() -> None:
    watch = _watch([{"A"}, set(), {"A", "B"}, {"A", "B"}])
    got = watch.report(fault_start=0.0, fault_end=1.0)["fired"]
    assert got["A"]["resolved_after_s"] is None and got["B"] == {"fired_after_s": 2.0, "resolved_after_s": None}


def test_it_asks_at_most_once_a_second() -> None:
    asked = []
    times = iter([0.0, 0.4, 0.9, 1.0])
    watch = AlertWatch(lambda: asked.append(1) or set(), clock=lambda: next(times))
    for _ in range(4):
        watch.sample()
    assert len(asked) == 2
