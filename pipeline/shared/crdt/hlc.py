"""Hybrid logical clock (Kulkarni et al., 2014), packed into one 64-bit integer.

The upper 48 bits hold milliseconds since the Unix epoch (good until year 10889), the lower 16 a
logical counter. Packed values order exactly as (physical, logical) pairs, so LWW comparisons are
integer comparisons — the cheapest thing on the towers' hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.shared.crdt.errors import ClockDriftError, MalformedStateError

__all__ = ["HLC", "HybridClock", "pack", "unpack"]

_LOGICAL_BITS = 16
_LOGICAL_MAX = (1 << _LOGICAL_BITS) - 1
_PHYSICAL_MAX = (1 << 48) - 1


def pack(physical_ms: int, logical: int) -> int:
    if not (0 <= physical_ms <= _PHYSICAL_MAX and 0 <= logical <= _LOGICAL_MAX):
        raise MalformedStateError(f"HLC ({physical_ms}, {logical}) does not fit 48 + 16 bits")
    return (physical_ms << _LOGICAL_BITS) | logical


def unpack(ts: int) -> tuple[int, int]:
    if not 0 <= ts < 1 << 64:
        raise MalformedStateError(f"HLC {ts} is not an unsigned 64-bit value")
    return ts >> _LOGICAL_BITS, ts & _LOGICAL_MAX


@dataclass(frozen=True, slots=True, order=True)
class HLC:
    """A timestamp as a record, for logs and Avro (`{"physical_ms", "logical"}`)."""

    physical_ms: int
    logical: int

    @classmethod
    def from_int(cls, ts: int) -> HLC:
        return cls(*unpack(ts))

    def to_int(self) -> int:
        return pack(self.physical_ms, self.logical)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class HybridClock:
    """One node's clock. `now()` stamps local and send events, `receive()` folds in a remote stamp.

    A remote stamp more than `max_drift_ms` ahead of our physical clock is refused with
    `ClockDriftError` and leaves the clock unchanged, so one bad clock cannot drag a tower's time.
    """

    __slots__ = ("_last", "max_drift_ms", "physical")

    def __init__(self, max_drift_ms: int = 5_000, physical: Callable[[], int] = _wall_ms) -> None:
        if max_drift_ms <= 0:
            raise ValueError("max_drift_ms must be positive")
        self.max_drift_ms = max_drift_ms
        self.physical = physical
        self._last = 0

    @property
    def last(self) -> int:
        return self._last

    def now(self) -> int:
        pt = self.physical()
        l_old, c_old = unpack(self._last)
        if pt > l_old:
            self._last = pack(pt, 0)
        else:
            self._last = self._bump(l_old, c_old)
        return self._last

    def reserve(self, count: int) -> int:
        """Stamp `count` events at once; returns the first, the others follow by +1 each.

        Past 65,535 logical steps a stamp borrows into the millisecond bits, which keeps every
        stamp unique and ordered (and is what `_bump` does one step at a time)."""
        first = self.now()
        self._last = first + max(count - 1, 0)
        return first

    def receive(self, remote: int) -> int:
        pt = self.physical()
        l_m, c_m = unpack(remote)
        if l_m - pt > self.max_drift_ms:
            raise ClockDriftError(
                f"remote clock is {l_m - pt} ms ahead of ours (bound {self.max_drift_ms} ms): message refused"
            )
        l_old, c_old = unpack(self._last)
        l_new = max(l_old, l_m, pt)
        if l_new == l_old == l_m:
            self._last = self._bump(l_new, max(c_old, c_m))
        elif l_new == l_old:
            self._last = self._bump(l_new, c_old)
        elif l_new == l_m:
            self._last = self._bump(l_new, c_m)
        else:
            self._last = pack(l_new, 0)
        return self._last

    def check(self, remote: int) -> None:
        """Refuse a stamp beyond the drift bound without advancing the clock (for validation)."""
        l_m, _ = unpack(remote)
        ahead = l_m - self.physical()
        if ahead > self.max_drift_ms:
            raise ClockDriftError(f"timestamp is {ahead} ms ahead of this node's clock (bound {self.max_drift_ms} ms)")

    @staticmethod
    def _bump(physical: int, logical: int) -> int:
        # A full logical counter borrows one millisecond rather than wrap and break monotonicity.
        if logical >= _LOGICAL_MAX:
            return pack(physical + 1, 0)
        return pack(physical, logical + 1)
