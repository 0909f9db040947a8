"""The tower-clock drill's worker: its wall clock ahead, and nothing else moved."""

import json
import os
import subprocess
import sys
import time

from pipeline.drill import host_clock

PROBE = (
    "import time, json; t0 = time.monotonic(); time.sleep(0.05); "
    "print(json.dumps([time.time(), time.time_ns(), time.monotonic() - t0]))"
)


def _probe(ahead: str) -> tuple[list[float], str]:
    env = {**os.environ, "PYTHONPATH": str(host_clock.FOLDER), host_clock.AHEAD_ENV: ahead}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True,
                          timeout=30)  # fmt: skip
    *said, last = done.stdout.strip().splitlines()
    return json.loads(last), " ".join(said)


def test_the_drilled_workers_wall_clock_is_ahead_and_its_sleeps_last_what_they_ask() -> None:
    (wall, wall_ns, slept), said = _probe("10")
    now = time.time()
    assert 9.0 < wall - now < 11.0 and 9.0 < wall_ns / 1e9 - now < 11.0
    assert 0.04 < slept < 1.0, "a wait lasts what it asks: only the wall clock moved"
    assert said == ""


def test_a_bad_offset_is_one_line_and_the_clock_stays_true() -> None:
    (wall, _ns, _slept), said = _probe("ten")
    assert abs(wall - time.time()) < 1.0
    assert said.count("\n") == 0 and "is not a number of seconds" in said
