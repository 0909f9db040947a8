"""What corridor believes of a field that came from outside, whoever sent it.

Every door (the towers' topics, tower-sync, the gateway's radio link, etcd, the live page) asks
these questions before a value reaches state that serves others: a hazard-warning system cannot
let one crafted id, timestamp or number switch its warnings off. Each answer is None (believable)
or the reason, in words, that goes with the dead letter. Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "HAZARD_DIRECTIONS", "HAZARD_TYPES", "HLC_MAX", "ID_CHARS", "MAX_ACCEL_MPS2", "MAX_EVENT_AGE_MS",
    "MAX_HAZARD_LIFETIME_MS", "MAX_ID_LEN", "MAX_LANE", "MAX_LANES_LISTED", "MAX_RELEVANCE_M", "MAX_TRACES",
    "bad_ids", "event_time_problem", "hazard_value_problem", "hlc_problem", "id_problem", "lanes_problem",
]  # fmt: skip

#: ids (vehicles, hazards, reporters, towers): what every producer, SUMO and the CLI write, and no
#: more: no path separators, NULs, spaces or control characters, and short enough to key a table
MAX_ID_LEN = 64
ID_CHARS = re.compile(r"[A-Za-z0-9._:#-]+")
#: lanes are counted from the right; a vehicle state stores the index in one byte
MAX_LANE = 15
MAX_LANES_LISTED = MAX_LANE + 1
#: an HLC is a signed 64-bit Avro long whose upper 48 bits are ms since the epoch
HLC_MAX = (1 << 63) - 1
_HLC_SHIFT = 16
#: a hazard lasts at most a day from its detection (DENM validity is at most 86,400 s)
MAX_HAZARD_LIFETIME_MS = 86_400_000
#: an event time at most this long before its message was sent (a vehicle that buffered offline)
MAX_EVENT_AGE_MS = 86_400_000
#: the largest acceleration or deceleration a road vehicle reports (a crash pulse aside), m/s²
MAX_ACCEL_MPS2 = 30.0
#: how far upstream a hazard may ask to be warned of (DENM relevance distance tops out at 10 km+)
MAX_RELEVANCE_M = 50_000
#: traces every 0.5 km over the largest relevance distance, both ways
MAX_TRACES = 256
HAZARD_TYPES = frozenset({
    "OBSTACLE", "ANIMAL", "PEDESTRIAN", "STOPPED_VEHICLE", "ICE", "WORK_ZONE", "ACCIDENT", "STATIONARY_TRAFFIC",
    "WRONG_WAY_DRIVER", "END_OF_QUEUE",
})  # fmt: skip
HAZARD_DIRECTIONS = frozenset({"NORTHBOUND", "SOUTHBOUND", "BOTH"})


def id_problem(value: Any, what: str = "id") -> str | None:
    if not isinstance(value, str):
        return f"{what} is a {type(value).__name__}, not a string"
    if not 0 < len(value) <= MAX_ID_LEN:
        return f"{what} of {len(value)} characters (1–{MAX_ID_LEN})"
    if ID_CHARS.fullmatch(value) is None:
        return f"{what} {value[:24]!r} has characters outside A–Z a–z 0–9 . _ : # -"
    return None


def bad_ids(ids: list[str]) -> npt.NDArray[np.bool_]:
    """Which of a batch's ids `id_problem` would refuse: one regex over the joined ids and their
    lengths for the common all-good batch, an id at a time only when something is off."""
    lengths = np.fromiter(map(len, ids), np.int64, len(ids))
    if ((lengths > 0) & (lengths <= MAX_ID_LEN)).all() and ID_CHARS.fullmatch("".join(ids)) is not None:
        return np.zeros(len(ids), np.bool_)
    return np.array([id_problem(v) is not None for v in ids], np.bool_)


def hlc_problem(hlc: Any, now_ms: int, max_ahead_ms: int) -> str | None:
    """A hybrid logical clock stamp: positive, a 63-bit long, and not ahead of `now_ms` past the drift."""
    if not isinstance(hlc, int) or isinstance(hlc, bool) or not 0 < hlc <= HLC_MAX:
        return f"{hlc!r} is not a hybrid logical clock stamp"
    ahead = (hlc >> _HLC_SHIFT) - now_ms
    if ahead > max_ahead_ms:
        return f"{ahead} ms ahead of the tower's clock"
    return None


def event_time_problem(event_ms: Any, sent_ms: int, max_ahead_ms: int) -> str | None:
    """An event time near its send time: no later than the drift allows, no more than a day earlier."""
    if not isinstance(event_ms, int) or isinstance(event_ms, bool):
        return f"event time {event_ms!r} is not a whole number of ms"
    if event_ms - sent_ms > max_ahead_ms:
        return f"event time {event_ms - sent_ms} ms after its send time (bound {max_ahead_ms} ms)"
    if sent_ms - event_ms > MAX_EVENT_AGE_MS:
        return f"event time {sent_ms - event_ms} ms before its send time (bound {MAX_EVENT_AGE_MS} ms)"
    return None


def lanes_problem(lanes: Any) -> str | None:
    if not isinstance(lanes, list) or len(lanes) > MAX_LANES_LISTED:
        return f"lanes must be a list of at most {MAX_LANES_LISTED}"
    if any(not isinstance(x, int) or isinstance(x, bool) or not 0 <= x <= MAX_LANE for x in lanes):
        return f"lanes {lanes[:8]} outside 0–{MAX_LANE}"
    if len(set(lanes)) != len(lanes):
        return f"lanes {lanes} repeat"
    return None


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def hazard_value_problem(v: Any) -> str | None:
    """A hazard as the towers store and sync it (`None` is a cleared one): every field the advice
    rules, the sync view and the pages read, of the type they read it as and within its range."""
    if v is None:
        return None
    if not isinstance(v, dict):
        return f"a hazard is a map, not a {type(v).__name__}"
    if not _number(v.get("km")) or not -1_000 <= v["km"] <= 1_000:
        return f"hazard km {v.get('km')!r}"
    if v.get("dir") not in HAZARD_DIRECTIONS:
        return f"hazard direction {str(v.get('dir'))[:24]!r}"
    if v.get("type") not in HAZARD_TYPES:
        return f"hazard type {str(v.get('type'))[:24]!r}"
    if not _whole(v.get("severity")) or not 1 <= v["severity"] <= 7:
        return f"hazard severity {v.get('severity')!r} (1–7)"
    detected, expires = v.get("detected"), v.get("expires")
    if not isinstance(detected, int) or not isinstance(expires, int) or not _whole(detected) or not _whole(expires) \
            or detected <= 0:  # fmt: skip
        return f"hazard times detected={detected!r} expires={expires!r}"
    if not 0 < expires - detected <= MAX_HAZARD_LIFETIME_MS:
        return f"hazard expires {expires - detected} ms after its detection (0–{MAX_HAZARD_LIFETIME_MS})"
    source = v.get("source")
    if not isinstance(source, str) or len(source) > MAX_ID_LEN:
        return "hazard source must be a short string"
    lanes = v.get("lanes", "")
    if not isinstance(lanes, str) or len(lanes) > 3 * MAX_LANES_LISTED:
        return "hazard lanes must be a short string"
    if lanes:
        parts = lanes.split(",")
        if any(not p.isdigit() for p in parts) or lanes_problem([int(p) for p in parts]) is not None:
            return f"hazard lanes {lanes[:24]!r}"
    relevance = v.get("relevance_km", 0.0)
    if not _number(relevance) or not 0 <= relevance <= MAX_RELEVANCE_M / 1000:
        return f"hazard relevance {relevance!r} km"
    if len(v) > 12:
        return f"a hazard of {len(v)} fields"
    return None
