"""Last-writer-wins and max registers."""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar, Self

from pipeline.shared.crdt.base import Mergeable
from pipeline.shared.crdt.errors import MalformedStateError

__all__ = ["LWWRegister", "MaxRegister", "check_stamp", "lww_order", "value_bytes"]


def value_bytes(value: Any) -> bytes:
    """A value's bytes for the tie-break: bytes as they are; anything else as canonical JSON (keys
    sorted, no spaces, UTF-8), which any implementation can reproduce, unlike a language's `repr`."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def lww_order(ts: int, replica: str, value: Any) -> tuple[int, str, bytes]:
    """The one total order of last-writer-wins writes, in every LWW type: HLC, then replica id (by
    code point, as UTF-8 bytes order), then the value's bytes behind a marker byte (a removal's are
    empty, so it loses a tie). Equal stamps on different values, which a correct replica never makes,
    still order deterministically, so merge stays commutative whatever the order of delivery."""
    if value is None:
        return (ts, replica, b"")
    return (ts, replica, b"\x01" + value_bytes(value))


def check_stamp(ts: int) -> None:
    """Every LWW write carries a positive HLC: 0 marks an empty register (and a free columnar slot),
    so a write stamped 0 or less would mean different things to different types."""
    if not isinstance(ts, int) or isinstance(ts, bool) or ts <= 0:
        raise ValueError(f"an LWW write needs a positive HLC stamp, not {ts!r}")


class LWWRegister(Mergeable):
    """A value stamped with (HLC, replica id); the larger stamp wins. `ts == 0` is the empty register."""

    SCHEMA_NAME: ClassVar[str] = "corridor.crdt.LWWRegister"
    __slots__ = ("replica", "ts", "value")

    def __init__(self, value: Any = None, ts: int = 0, replica: str = "") -> None:
        self.value = value
        self.ts = ts
        self.replica = replica

    def assign(self, value: Any, ts: int, replica: str) -> LWWRegister:
        """Delta writing `value` at HLC `ts`; a stamp not above the current one loses on merge."""
        check_stamp(ts)
        return LWWRegister(value, ts, replica)

    def merge_in(self, other: Self) -> None:
        if lww_order(other.ts, other.replica, other.value) > lww_order(self.ts, self.replica, self.value):
            self.value, self.ts, self.replica = other.value, other.ts, other.replica

    def copy(self) -> Self:
        return type(self)(self.value, self.ts, self.replica)

    def replicas(self) -> set[str]:
        return {self.replica} if self.ts else set()

    def to_record(self) -> dict[str, Any]:
        return {"value": self.value, "ts": self.ts, "replica": self.replica}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        try:
            ts, replica = record["ts"], record["replica"]
        except (KeyError, TypeError):
            raise MalformedStateError("an LWW-Register record needs 'ts' and 'replica'") from None
        if not isinstance(ts, int) or ts < 0 or not isinstance(replica, str):
            raise MalformedStateError("LWW-Register 'ts' must be a non-negative HLC and 'replica' a string")
        return cls(record.get("value"), ts, replica)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LWWRegister) and (self.value, self.ts, self.replica) == (
            other.value,
            other.ts,
            other.replica,
        )

    def __repr__(self) -> str:
        return f"LWWRegister({self.value!r}, ts={self.ts}, replica={self.replica!r})"


class MaxRegister(Mergeable):
    """The largest value ever written (e.g. a hazard's severity): merge is `max`."""

    SCHEMA_NAME: ClassVar[str] = "corridor.crdt.MaxRegister"
    __slots__ = ("value",)

    def __init__(self, value: float = -math.inf) -> None:
        if value != value:  # NaN would make max() order-dependent
            raise MalformedStateError("a Max-Register cannot hold NaN")
        self.value = value

    def assign(self, value: float) -> MaxRegister:
        return MaxRegister(value)

    def merge_in(self, other: Self) -> None:
        if other.value > self.value:
            self.value = other.value

    def copy(self) -> Self:
        return type(self)(self.value)

    def replicas(self) -> set[str]:
        return set()

    def to_record(self) -> dict[str, Any]:
        return {"value": self.value}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        value = record.get("value") if isinstance(record, dict) else None
        if not isinstance(value, int | float):
            raise MalformedStateError("a Max-Register record needs a numeric 'value'")
        return cls(float(value))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MaxRegister) and self.value == other.value

    def __repr__(self) -> str:
        return f"MaxRegister({self.value})"
