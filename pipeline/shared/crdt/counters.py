"""Grow-only and positive-negative counters (one entry per replica, joined by maximum)."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pipeline.shared.crdt.base import Mergeable
from pipeline.shared.crdt.errors import CrdtError, MalformedStateError

__all__ = ["GCounter", "PNCounter"]


class GCounter(Mergeable):
    SCHEMA_NAME: ClassVar[str] = "corridor.crdt.GCounter"
    __slots__ = ("counts",)

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.counts: dict[str, int] = dict(counts) if counts else {}

    @property
    def value(self) -> int:
        return sum(self.counts.values())

    def inc(self, replica: str, amount: int = 1) -> GCounter:
        """Delta that adds `amount` (≥ 0) on behalf of `replica`."""
        if amount < 0:
            raise CrdtError(f"a G-Counter only grows; got {amount}")
        return GCounter({replica: self.counts.get(replica, 0) + amount})

    def merge_in(self, other: Self) -> None:
        counts = self.counts
        for replica, n in other.counts.items():
            if n > counts.get(replica, 0):
                counts[replica] = n

    def copy(self) -> Self:
        return type(self)(self.counts)

    def replicas(self) -> set[str]:
        return set(self.counts)

    def to_record(self) -> dict[str, Any]:
        return {"counts": dict(self.counts)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        counts = record.get("counts")
        if not isinstance(counts, dict) or any(not isinstance(v, int) or v < 0 for v in counts.values()):
            raise MalformedStateError("G-Counter counts must be a map of non-negative integers")
        return cls(counts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GCounter) and {k: v for k, v in self.counts.items() if v} == {
            k: v for k, v in other.counts.items() if v
        }

    def __repr__(self) -> str:
        return f"GCounter({self.counts})"


class PNCounter(Mergeable):
    SCHEMA_NAME: ClassVar[str] = "corridor.crdt.PNCounter"
    __slots__ = ("n", "p")

    def __init__(self, p: GCounter | None = None, n: GCounter | None = None) -> None:
        self.p = p.copy() if p else GCounter()
        self.n = n.copy() if n else GCounter()

    @property
    def value(self) -> int:
        return self.p.value - self.n.value

    def inc(self, replica: str, amount: int = 1) -> PNCounter:
        if amount >= 0:
            return PNCounter(p=self.p.inc(replica, amount))
        return PNCounter(n=self.n.inc(replica, -amount))

    def dec(self, replica: str, amount: int = 1) -> PNCounter:
        return self.inc(replica, -amount)

    def merge_in(self, other: Self) -> None:
        self.p.merge_in(other.p)
        self.n.merge_in(other.n)

    def copy(self) -> Self:
        return type(self)(self.p, self.n)

    def replicas(self) -> set[str]:
        return self.p.replicas() | self.n.replicas()

    def to_record(self) -> dict[str, Any]:
        return {"p": self.p.to_record(), "n": self.n.to_record()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        try:
            return cls(GCounter.from_record(record["p"]), GCounter.from_record(record["n"]))
        except (KeyError, TypeError):
            raise MalformedStateError("a PN-Counter record needs 'p' and 'n'") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PNCounter) and self.p == other.p and self.n == other.n

    def __repr__(self) -> str:
        return f"PNCounter(p={self.p.counts}, n={self.n.counts})"
