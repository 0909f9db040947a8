"""Whatever a corridor command starts dies with it: Ctrl-C (SIGINT), SIGTERM or SIGKILL of the command."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.stack import Stack
from pipeline.stack.process import pid_alive

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
    finally:
        if run.poll() is None:
            run.kill()
