"""The tower worker's web port against a stranger on the network: no state changes by GET, none
without the run's token, and none of Faust's pages that read tables or routing."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.admin import delete_prefixed, ensure_topics
from pipeline.shared.topics import Topics
from pipeline.workers import TowerProcess
from tests.integration.test_towers import tower_env

pytestmark = pytest.mark.integration


def _status(port: int, path: str, method: str = "GET", token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def workers(stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TowerProcess, TowerProcess]]:
    """Two workers of one set of towers: the first as a run starts them, the second with a drill's switches."""
    prefix = f"th{uuid.uuid4().hex[:8]}"
    bootstrap = stack.settings.bootstrap_servers
    ensure_topics(bootstrap, Topics(regions=9, prefix=prefix).specs())
    tmp: Path = tmp_path_factory.mktemp("hostile-http")
    env = tower_env(bootstrap, prefix)
    plain = TowerProcess(env, tmp / "a", tmp / "a.log", name="plain").start()
    drilled = TowerProcess(env, tmp / "b", tmp / "b.log", name="drilled", switches=True).start()
    try:
        plain.wait_ready(1, timeout=120)
        drilled.wait_ready(1, timeout=120)
        yield plain, drilled
    finally:
        plain.stop()
        drilled.stop()
        delete_prefixed(bootstrap, prefix)  # its topics and the towers' changelogs: nothing left behind


def test_a_get_changes_nothing_and_a_worker_without_switches_has_none(workers) -> None:
    plain, drilled = workers
    for w in (plain, drilled):
        assert _status(w.port, "/corridor/sync/off/") == 404, "the old GET switch is gone"
        assert _status(w.port, "/corridor/etcd/off/") == 404
        assert _status(w.port, "/corridor/control/sync/off/") == 405, "GET is not a switch"
        assert w.page()["sync_enabled"] is True
    assert _status(plain.port, "/corridor/control/sync/off/", "POST", "x" * 32) == 404
    assert plain.page()["sync_enabled"] is True


def test_a_switch_needs_this_runs_token(workers) -> None:
    _, drilled = workers
    assert _status(drilled.port, "/corridor/control/sync/off/", "POST") == 403
    assert _status(drilled.port, "/corridor/control/sync/off/", "POST", "a-guess-of-32-characters-0000000") == 403
    assert _status(drilled.port, "/corridor/control/sync/maybe/", "POST", drilled.token) == 400
    assert drilled.page()["sync_enabled"] is True
    assert drilled.switch("sync", "off") == {"sync_enabled": False} and drilled.page()["sync_enabled"] is False
    assert drilled.switch("sync", "on") == {"sync_enabled": True}


def test_fausts_table_and_router_pages_are_off(workers) -> None:
    plain, _ = workers
    for path in ("/table/vehicles/", "/router/", "/router/vehicles/", "/graph/", "/stats/"):
        assert _status(plain.port, path) == 404, path
    assert _status(plain.port, "/corridor/state/") == 200
