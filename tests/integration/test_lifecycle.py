"""Whatever a corridor command starts dies with it: Ctrl-C (SIGINT), SIGTERM or SIGKILL of the command."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.admin import list_groups, list_topic_names
from pipeline.shared.access import Role
from pipeline.shared.config import Settings
from pipeline.stack import Stack
from pipeline.stack.process import pid_alive
from tests.helpers import corridor
from towers.control_plane import ROOT, close_client, open_client
from towers.etcd_pages import iter_prefix

pytestmark = pytest.mark.integration

SCENARIO = """
name: lifecycle
description: a small run that is interrupted
vehicles: 30
hz: 1
speedup: 1
duration_s: 300
workers: 2
"""


def names_in_stack(settings: Settings) -> list[str]:
    """Every topic, consumer group and etcd key under /corridor/: what a run or a bench may leave."""
    kafka = settings.kafka(Role.ADMIN)
    names = [*list_topic_names(kafka), *list_groups(kafka)]
    client = open_client(settings.etcd(Role.ADMIN), 5)
    try:
        names += [k.decode() for k, _ in iter_prefix(client, f"{ROOT}/")]
    finally:
        close_client(client)
    return names


def runs_left(settings: Settings, prefix: str) -> list[str]:
    """Topics, consumer groups and etcd namespaces of simulation runs' towers."""
    run = re.compile(rf"{re.escape(prefix)}-towers-\d{{8}}-\d{{6}}")
    return [n for n in names_in_stack(settings) if run.search(n)]


def children_of(pid: int) -> set[int]:
    """Every live descendant of `pid`."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parent[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_simulations_tower_workers_die_with_it(
    sig: signal.Signals, stack: Stack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    scenario = tmp_path / "lifecycle.yaml"
    scenario.write_text(SCENARIO)
    run = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "simulate", str(scenario)],
        env=cli_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline and run.poll() is None:
            workers = {p for p in children_of(run.pid) if "towers.app" in cmdline(p)}
            time.sleep(0.2)
        assert len(workers) == 2, "the run did not start its two tower workers"
        started = children_of(run.pid)
        run.send_signal(sig)
        run.wait(60)
        deadline = time.monotonic() + 30
        while any(pid_alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = {p: cmdline(p)[:80] for p in started if pid_alive(p)}
        assert not left, f"still running after the command got {sig.name}: {left}"
        # and what its towers made (changelogs, group, etcd keys) goes: at once when it could clean
        # up, at the next command that brings the stack up when it was killed
        prefix = cli_env.get("CORRIDOR_TOPIC_PREFIX", "corridor")
        if sig == signal.SIGKILL:
            assert runs_left(stack.settings, prefix), "killed: nothing of its towers' was deleted yet"
        up = corridor(cli_env, "stack", "up")
        assert up.returncode == 0, up.stderr
        assert not runs_left(stack.settings, prefix), f"left by a run that got {sig.name}"
        if sig == signal.SIGKILL:
            assert "left behind (its process had died)" in up.stderr
    finally:
        if run.poll() is None:
            run.kill()


def bench_left(settings: Settings) -> list[str]:
    return [n for n in names_in_stack(settings) if n.startswith(("bench-", f"{ROOT}/bench-"))]


def test_what_a_killed_bench_made_goes_at_the_next_command_that_brings_the_stack_up(
    stack: Stack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Benches and drills killed on the way had left 20 namespaces in etcd and 35 topics."""
    bench = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "bench", "--quick", "--only", "towers", "--output", str(tmp_path / "b")],
        env=cli_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        made: list[str] = []
        while time.monotonic() < deadline and bench.poll() is None:
            made = bench_left(stack.settings)
            if any(n.startswith(ROOT) for n in made):  # its tower worker registered: topics, group, keys
                break
            time.sleep(1.0)
        assert any(n.startswith(ROOT) for n in made), f"the bench made no etcd keys in time: {made}"
        bench.kill()
        bench.wait(30)
        assert bench_left(stack.settings), "killed: nothing of it was deleted yet"
        up = corridor(cli_env, "stack", "up")
        assert up.returncode == 0, up.stderr
        assert not bench_left(stack.settings)
        assert "left behind (its process had died)" in up.stderr
    finally:
        if bench.poll() is None:
            bench.kill()
