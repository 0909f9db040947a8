"""The group session a tower worker is started with: short on corridor's own brokers (a dead worker's
regions move within 2 s), the workers' own default on a user's (whose brokers refuse short ones), and
always what the user chose."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.shared.config import Settings
from pipeline.workers import FAST_FAILOVER, worker_env

SESSION = "CORRIDOR_TOWER_SESSION_TIMEOUT_S"


@pytest.fixture(autouse=True)
def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in FAST_FAILOVER:
        monkeypatch.delenv(k, raising=False)


def test_workers_on_corridors_own_brokers_fail_over_in_seconds() -> None:
    env = worker_env(Settings())
    assert env[SESSION] == "1" and env["CORRIDOR_TOWER_HEARTBEAT_S"] == "0.2"


def test_workers_on_a_users_brokers_keep_a_session_those_accept() -> None:
    env = worker_env(Settings(kafka_bootstrap="broker.example:9092"))
    assert SESSION not in env


def test_a_session_the_user_chose_is_kept_and_a_drills_own_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SESSION, "8")
    env = worker_env(Settings())
    assert env[SESSION] == "8" and "CORRIDOR_TOWER_HEARTBEAT_S" not in env
    assert worker_env(Settings(), extra={SESSION: "6"})[SESSION] == "6"


def test_workers_are_given_the_route_and_regions_their_starter_uses(tmp_path: Path) -> None:
    """A bench or run that drives its own corridor (a file of 90 regions) starts workers on the same."""
    towers = tmp_path / "towers.json"
    env = worker_env(Settings(towers_file=towers))
    assert env["CORRIDOR_TOWERS_FILE"] == str(towers.resolve())
