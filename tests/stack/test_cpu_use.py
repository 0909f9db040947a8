"""Where a run's CPU went: each part with what its session started, and nothing lost when one exits."""

import os
import subprocess
import sys
import time

from pipeline.simulation.runner import cpu_summary
from pipeline.stack.cpu_use import CpuByPart, cpu_seconds

# a session leader whose child burns about 0.3 s of CPU, then both wait to be killed
BURNER = (
    "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\nprint('burnt', flush=True)\n"
    "time.sleep(60)"
)
LEADER = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {BURNER!r}], stdout=sys.stdout)
time.sleep(60)
"""


def test_a_part_counts_what_its_session_started_and_keeps_it_once_that_exits() -> None:
    cpu = CpuByPart()
    cpu.sample({})  # the run's start: what is born later counts from nothing
    leader = subprocess.Popen([sys.executable, "-c", LEADER], start_new_session=True, stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert leader.stdout is not None and leader.stdout.readline().strip() == "burnt"
        cpu.sample({"burning": [leader.pid], "elsewhere": [os.getpid()]})
        os.killpg(leader.pid, 9)
        leader.wait()
        time.sleep(0.1)
        cpu.sample({"burning": [leader.pid], "elsewhere": [os.getpid()]})  # gone: kept as last read
    finally:
        if leader.poll() is None:
            os.killpg(leader.pid, 9)
    used = cpu.seconds()
    assert 0.25 <= used["burning"] < 2.0, used
    assert "elsewhere" in used, "this process (no session leader) counted alone"


def test_a_process_seen_at_the_start_counts_only_what_it_used_after() -> None:
    cpu = CpuByPart()
    me = os.getpid()
    cpu.sample({"me": [me]})
    t = time.process_time()
    while time.process_time() - t < 0.2:
        pass
    cpu.sample({"me": [me]})
    assert 0.15 <= cpu.seconds()["me"] < cpu_seconds(me), cpu.seconds()


def test_the_summary_says_how_many_cores_the_run_needed() -> None:
    out = cpu_summary({"towers": 30.0, "fleet": 60.0}, wall_s=45.0)
    assert out["cores_used"] == 2.0 and out["seconds_by_part"] == {"towers": 30.0, "fleet": 60.0}
    assert cpu_summary({}, wall_s=0.0)["cores_used"] is None
