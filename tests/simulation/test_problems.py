"""A green run means the corridor was protected throughout: what the runner counts against that."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pipeline.simulation.runner import _problems


def _part(alive: bool, stats: dict[str, Any] | None = None) -> SimpleNamespace:
    return SimpleNamespace(alive=alive, stats=lambda: stats or {})


def test_a_worker_that_died_is_a_problem_unless_the_scenario_killed_it_and_left_it_down() -> None:
    parts = SimpleNamespace(workers=[_part(True), _part(False), _part(False)], gateway=None)
    assert _problems(parts, SimpleNamespace(killed={2}), {}) == ["tower worker 1 died during the run"]  # type: ignore[arg-type]
    assert _problems(parts, SimpleNamespace(killed={1, 2}), {}) == []  # type: ignore[arg-type]


def test_a_gateway_dead_deaf_or_giving_up_on_advice_is_a_problem() -> None:
    run, workers = SimpleNamespace(killed=set()), [_part(True)]
    dead = SimpleNamespace(workers=workers, gateway=_part(False))
    deaf = SimpleNamespace(workers=workers, gateway=_part(True, {"mqtt_subscribed": False}))
    fine = SimpleNamespace(workers=workers, gateway=_part(True, {"mqtt_subscribed": True}))
    assert _problems(dead, run, {}) == ["the radio gateway died during the run"]  # type: ignore[arg-type]
    assert "deaf" in _problems(deaf, run, {})[0]  # type: ignore[arg-type]
    assert _problems(fine, run, {"radio": {"advisories_dropped_by_gateway": 0}}) == []  # type: ignore[arg-type]
    (gave_up,) = _problems(fine, run, {"radio": {"advisories_dropped_by_gateway": 3}})  # type: ignore[arg-type]
    assert "3 advisories" in gave_up
