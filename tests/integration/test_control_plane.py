"""etcd as the control plane: leases, watches, CAS merges of the global CvRDT, etcd outages."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import etcd3
import pytest

from pipeline.ports import free_ports
from pipeline.shared.access import EtcdAccess, Role
from pipeline.shared.config import Ports, Settings
from pipeline.shared.crdt import LWWMap
from pipeline.stack.etcd import EtcdServer
from tests.helpers import corridor, eventually
from towers.control_plane import ControlPlane, cas_merge, close_client, namespace, read_namespaces, read_view

pytestmark = pytest.mark.integration


def view_of(prefix: str, n: int, ts: int = 1) -> LWWMap:
    """Hazards as towers write them (a value no tower could write is left out of the next CAS)."""
    hazard = {"dir": "BOTH", "type": "OBSTACLE", "severity": 5, "detected": 1_000, "expires": 2_000, "source": prefix}
    return LWWMap({f"hazard/{prefix}-{i}": (ts, prefix, {**hazard, "km": float(i)}) for i in range(n)})


@pytest.fixture
def etcd(stack) -> etcd3.Etcd3Client:
    host, port = stack.settings.etcd_hosts[0]
    client = etcd3.client(host=host, port=port, timeout=5)
    yield client
    close_client(client)


def test_concurrent_writers_of_the_global_view_lose_nothing(etcd) -> None:
    key = f"/test/{uuid.uuid4().hex[:8]}/global"
    retries: list[int] = []

    def writer(name: str) -> None:
        for i in range(25):  # one new hazard per write, racing the other writer
            retries.append(cas_merge(etcd, key, LWWMap({f"{name}-{i}": (i + 1, name, {"km": float(i)})})))

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("tower-03", "tower-04")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = read_view(etcd, key.rsplit("/", 1)[0])
    assert len(final.entries) == 50, "every write of both towers survives the races"
    assert len(retries) == 50


class Interleaved:
    """An etcd client whose first read is followed, before it returns, by another tower's write: the
    race a CAS must lose once and then retry."""

    def __init__(self, client: etcd3.Etcd3Client, key: str) -> None:
        self.client, self.key, self.raced = client, key, False

    def get(self, key: str) -> tuple[bytes | None, object]:
        seen = self.client.get(key)
        if not self.raced:
            self.raced = True
            cas_merge(self.client, self.key, LWWMap({"theirs": (1, "tower-05", {"km": 50.0})}))
        return seen

    def __getattr__(self, name: str) -> object:
        return getattr(self.client, name)


def test_a_write_that_lost_the_race_is_retried_on_the_newer_value(etcd) -> None:
    key = f"/test/{uuid.uuid4().hex[:8]}/global"
    cas_merge(etcd, key, LWWMap({"first": (1, "tower-03", {"km": 30.0})}))
    racing = Interleaved(etcd, key)  # a real client whose first read another tower's write follows
    retries = cas_merge(racing, key, LWWMap({"mine": (1, "tower-04", {"km": 40.0})}))  # type: ignore[arg-type]
    assert retries == 1, "the first compare-and-swap saw a stale revision"
    assert set(read_view(etcd, key.rsplit("/", 1)[0]).entries) == {"first", "theirs", "mine"}


def test_a_dead_towers_key_expires_and_the_others_see_it_go(stack) -> None:
    access = stack.settings.etcd(Role.TOWER)
    root = f"/test/{uuid.uuid4().hex[:8]}"
    watcher = ControlPlane(access, "watcher", interval_s=0.3, root=root).start()
    doomed = ControlPlane(access, "doomed", interval_s=0.3, lease_ttl_s=2, root=root).start()
    try:
        doomed.publish({4: {"member_count": 3}}, LWWMap(), {})
        eventually(lambda: "doomed" in watcher.towers, "the watcher sees the new tower", 10)
        t0 = time.monotonic()
        doomed.stop(revoke=False)  # a crash: no revoke, no more keep-alives
        eventually(lambda: "doomed" not in watcher.towers, "the dead tower's lease expires", 10)
        assert time.monotonic() - t0 >= 1.0, "gone by expiry, not by an explicit delete"
    finally:
        watcher.stop()


def test_after_an_etcd_outage_the_global_view_converges_to_the_join(tmp_path: Path) -> None:
    etcd_port, peer = free_ports(2)
    settings = Settings(state_dir=tmp_path, ports=Ports(kafka=1, kafka_controller=2, etcd=etcd_port, etcd_peer=peer))
    server = EtcdServer(settings)
    server.start(attached=True)
    a = ControlPlane(EtcdAccess("127.0.0.1", etcd_port), "a", interval_s=0.3).start()
    b = ControlPlane(EtcdAccess("127.0.0.1", etcd_port), "b", interval_s=0.3).start()
    client = etcd3.client(host="127.0.0.1", port=etcd_port, timeout=5)
    try:
        a.publish({0: {}}, view_of("a", 3), {})
        b.publish({1: {}}, view_of("b", 3), {})
        eventually(lambda: len(read_view(client).entries) == 6, "both views in etcd", 10)
        server.stop()
        # While etcd is away the towers learn more; they must not block or crash.
        a.publish({0: {}}, view_of("a", 5, ts=2), {})
        b.publish({1: {}}, view_of("b", 4, ts=2), {})
        eventually(lambda: a.errors > 0 and not a.healthy, "a tower notices etcd is gone", 10)
        server.start(attached=True)
        expected = view_of("a", 5, ts=2).merge(view_of("b", 4, ts=2)).merge(view_of("a", 3)).merge(view_of("b", 3))
        eventually(lambda: read_view(client) == expected, "the global view is the join of all towers", 20)
    finally:
        a.stop()
        b.stop()
        close_client(client)
        server.stop()


def test_status_reads_namespaces_larger_than_one_grpc_message(etcd, cli_env) -> None:
    """Old runs' keys (4.37 MB) passed gRPC's 4 MB limit for one response: `corridor status` said
    "etcd did not answer (_InactiveRpcError)" while etcd answered. Read a page at a time now."""
    app = f"big-{uuid.uuid4().hex[:8]}"
    ns = namespace(app)
    blob = b"x" * 1_000_000
    try:
        for i in range(10):  # 10 MB of keys
            etcd.put(f"{ns}/junk/{i:02d}", blob)
        etcd.put(f"{ns}/towers/worker-1", json.dumps({"worker": "worker-1", "regions": [4], "at_ms": 1}))
        etcd.put(f"{ns}/regions/4", b"{not json")  # anyone can write here: unreadable, not a crash
        spaces = read_namespaces(etcd)
        assert len(spaces[app]["junk"]) == 10 and set(spaces[app]["towers"]) == {"worker-1"}
        result = corridor(cli_env, "status")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "tower workers alive (1)" in result.stdout and "Traceback" not in result.stderr
    finally:
        etcd.delete_prefix(f"{ns}/")
