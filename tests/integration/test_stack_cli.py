"""`corridor stack` as a user runs it: real processes, and one-line errors for the usual mistakes."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.ports import free_ports
from pipeline.stack.etcd_build import ETCD_VERSION
from pipeline.stack.jars import KAFKA_VERSION
from pipeline.stack.process import pid_alive
from tests.helpers import assert_one_line_error, corridor, eventually

pytestmark = pytest.mark.integration


def fresh_env(cli_env: dict[str, str], state: Path) -> dict[str, str]:
    kafka, ctrl, etcd, peer = free_ports(4)
    return dict(
        cli_env,
        CORRIDOR_STATE_DIR=str(state),
        CORRIDOR_KAFKA_PORT=str(kafka),
        CORRIDOR_KAFKA_CONTROLLER_PORT=str(ctrl),
        CORRIDOR_ETCD_PORT=str(etcd),
        CORRIDOR_ETCD_PEER_PORT=str(peer),
    )


def pids_under(state: Path) -> list[int]:
    return [int(p.read_text()) for p in state.rglob("*.pid")]


def test_status_reports_real_broker_and_etcd_versions(stack, cli_env) -> None:
    result = corridor(cli_env, "stack", "status")
    assert result.returncode == 0, result.stderr
    assert KAFKA_VERSION in result.stdout
    assert ETCD_VERSION in result.stdout  # etcd's own /version answer: the pinned build, not a wheel's 3.5.1
    assert result.stdout.count("running") == 2


def test_up_is_idempotent_and_down_leaves_nothing(stack, cli_env, tmp_path: Path) -> None:
    env = fresh_env(cli_env, tmp_path / "state")
    first = corridor(env, "stack", "up")
    assert first.returncode == 0, first.stderr
    pids = pids_under(tmp_path / "state")
    assert len(pids) == 2 and all(pid_alive(p) for p in pids)
    again = corridor(env, "stack", "up")
    assert again.returncode == 0, again.stderr
    assert sorted(pids_under(tmp_path / "state")) == sorted(pids), "a second up must not start new servers"
    down = corridor(env, "stack", "down")
    assert down.returncode == 0 and "kafka" in down.stdout and "etcd" in down.stdout
    assert not any(pid_alive(p) for p in pids)
    assert corridor(env, "stack", "status").returncode == 1


def test_a_topic_deleted_just_before_down_leaves_no_files(stack, cli_env, tmp_path: Path) -> None:
    """A run deletes its changelogs and stops the broker it started at once: their files must go too."""
    env = fresh_env(cli_env, tmp_path / "state")
    assert corridor(env, "stack", "up").returncode == 0
    try:
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{env['CORRIDOR_KAFKA_PORT']}"})
        admin.create_topics([NewTopic("soon-gone", 3, 1)])["soon-gone"].result(30)
        eventually(lambda: "soon-gone" in admin.list_topics(timeout=5).topics, "the topic exists")
        admin.delete_topics(["soon-gone"])["soon-gone"].result(30)
    finally:
        assert corridor(env, "stack", "down").returncode == 0
    assert not list((tmp_path / "state" / "kafka" / "data").glob("soon-gone*"))


def test_port_in_use_is_one_line_and_leaves_nothing_running(stack, cli_env, tmp_path: Path) -> None:
    env = fresh_env(cli_env, tmp_path / "state")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["CORRIDOR_KAFKA_PORT"])))
        squatter.listen()
        result = corridor(env, "stack", "up")
    assert_one_line_error(result, "already in use", "CORRIDOR_KAFKA_PORT")
    assert not any(pid_alive(p) for p in pids_under(tmp_path / "state"))


def test_stale_pid_file_from_a_crashed_run_is_cleared(stack, cli_env, tmp_path: Path) -> None:
    env = fresh_env(cli_env, tmp_path / "state")
    dead = subprocess.Popen(["true"])
    dead.wait()
    pidfile = tmp_path / "state" / "kafka" / "kafka.pid"
    pidfile.parent.mkdir(parents=True)
    pidfile.write_text(f"{dead.pid}\n")
    result = corridor(env, "stack", "status")
    assert result.returncode == 1 and "stopped" in result.stdout
    assert not pidfile.exists()


def test_unreachable_external_bootstrap_is_one_line(cli_env) -> None:
    (port,) = free_ports(1)
    env = dict(cli_env, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}", ETCD_ENDPOINTS=f"127.0.0.1:{port}")
    result = corridor(env, "stack", "up", timeout=60)
    assert_one_line_error(result, f"127.0.0.1:{port}", "did not answer")


def _path_with_only(tmp_path: Path, *tools: str) -> str:
    """A PATH that holds only the named tools, to act out a machine that lacks the others."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        assert found, f"{tool} is needed on this machine for the test"
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_missing_java_is_one_line(stack, cli_env, tmp_path: Path) -> None:
    env = dict(fresh_env(cli_env, tmp_path / "state"), PATH=_path_with_only(tmp_path, "mvn"))
    result = corridor(env, "stack", "up")
    assert_one_line_error(result, "Java is not on PATH")
    assert not any(pid_alive(p) for p in pids_under(tmp_path / "state"))


def test_missing_maven_is_one_line(stack, cli_env, tmp_path: Path) -> None:
    env = dict(
        fresh_env(cli_env, tmp_path / "state"),
        PATH=_path_with_only(tmp_path, "java"),
        CORRIDOR_CACHE_DIR=str(tmp_path / "empty-cache"),
    )
    result = corridor(env, "stack", "up")
    assert_one_line_error(result, "Maven (mvn) is not on PATH")
    assert not any(pid_alive(p) for p in pids_under(tmp_path / "state"))


def test_rotating_certificates_without_a_secure_stack_is_one_line(stack, cli_env) -> None:
    assert_one_line_error(corridor(cli_env, "stack", "rotate-certs"), "corridor stack up --secure")


def test_revoking_without_a_secure_radio_link_or_an_id_no_vehicle_can_hold_is_one_line(
    stack, cli_env, tmp_path: Path
) -> None:
    assert_one_line_error(corridor(cli_env, "stack", "revoke", "veh-0000001"), "corridor stack up --secure --mqtt")
    secure = dict(fresh_env(cli_env, tmp_path / "state"), CORRIDOR_SECURE="1")
    for bad in ("veh 1", "veh-1\nveh-2", "corridor-gateway", "v" * 500):
        assert_one_line_error(corridor(secure, "stack", "revoke", bad))
    assert not list(tmp_path.rglob("mqtt-revoked.txt")), "nothing recorded for a refused id"
