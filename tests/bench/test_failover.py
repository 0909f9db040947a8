"""The failover section's figures from its drills' rows: a kill never served again is counted, not
averaged away, and nothing lost in any kill goes unreported."""

from __future__ import annotations

import math
from typing import Any

import pytest

from pipeline.bench import failover
from pipeline.shared.config import Settings


def _row(served: float, lost: int = 0, advisories_lost: int = 0, crashed: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"served_again_s": served, "lost": lost, "advisories": {"lost": advisories_lost}, "crashed": list(crashed)}


def test_every_kill_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = iter([_row(1.0), _row(2.0, lost=1), _row(math.nan, crashed=("tower worker 0",)), _row(1.0)])
    sessions: list[dict[str, str]] = []

    def drill(fault: str, settings: Settings, seconds: float, session: dict[str, str]) -> dict[str, Any]:
        assert fault == "worker-kill"
        sessions.append(session)
        return next(rows)

    monkeypatch.setattr(failover, "run_drill", drill)
    got = failover._kills(Settings(), {"CORRIDOR_TOWER_SESSION_TIMEOUT_S": "1.5"}, kills=4, seconds=16)
    assert got["never_served_again"] == 1 and got["served_again_worst_s"] == 2.0
    assert got["served_again_p50_s"] == 1.0 and got["updates_lost"] == 1
    assert got["crashed"] == ["tower worker 0"]
    assert sessions == [{"CORRIDOR_TOWER_SESSION_TIMEOUT_S": "1.5"}] * 4


def test_a_users_cluster_gets_only_the_sessions_its_brokers_accept(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(failover, "_kills", lambda s, session, kills, seconds: asked.append(str(session)) or {})
    failover.run_failover(Settings(kafka_bootstrap="kafka.example:9092"), quick=True)
    assert asked == [str(failover.SESSIONS["6 s sessions"])]
