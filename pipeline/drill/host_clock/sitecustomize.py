"""Run at interpreter start in a drilled tower worker: its wall clock reads `AHEAD_ENV` seconds ahead.

A host whose clock is ahead moves its wall clock (CLOCK_REALTIME) and nothing else: every wait a
library times by that clock still lasts as long as it asks. libfaketime, which the drill used first,
also stretched the timed waits of librdkafka (the towers' Kafka client): a bare producer's
`poll(0.5)` took 3.5 s with the clock 1 s ahead and 30.5 s with it 10 s ahead, so a worker's
first messages to a partition waited 8 to 10 s, a stall no real host has. The towers judge time by
Python's `time.time` and `time.time_ns` (the triggers' age, the hybrid clock, the
sync messages' stamps), so moving those two moves everything the drill is about.
"""

import os
import time

_raw = os.environ.get("CORRIDOR_DRILL_CLOCK_AHEAD_S", "")
try:
    _AHEAD_NS = int(float(_raw) * 1e9) if _raw else 0
except ValueError:
    _AHEAD_NS = 0
    print(f"CORRIDOR_DRILL_CLOCK_AHEAD_S={_raw!r} is not a number of seconds: the clock is left true", flush=True)

if _AHEAD_NS:
    _true_time, _true_time_ns = time.time, time.time_ns

    def _time() -> float:
        return _true_time() + _AHEAD_NS / 1e9

    def _time_ns() -> int:
        return _true_time_ns() + _AHEAD_NS

    time.time = _time
    time.time_ns = _time_ns
