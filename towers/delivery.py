"""Which of the messages a worker has produced Kafka has settled (acknowledged, or given up on).

An input event may be acknowledged only once what it caused is safe: its state written, and its
advisories and dead letters acknowledged by the broker. Otherwise a worker killed in between has
its input committed and its advisories gone with its producer's buffer. Produced messages are
numbered in order; an event waits for the number its region had reached when its state was written,
and is released once every message up to it is settled. Pure: the worker feeds it the producer's
delivery reports."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["DeliveryLedger", "Held"]

T = TypeVar("T")


class DeliveryLedger:
    def __init__(self) -> None:
        self._next = 0
        self._pending: deque[int] = deque()  # produced, in order; settled ones leave from the left
        self._settled: set[int] = set()  # settled, but behind an older unsettled one
        self.delivered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    def produced(self) -> int:
        """A number for the next message; the producer's report for it goes to `settle`."""
        seq = self._next
        self._next += 1
        self._pending.append(seq)
        return seq

    def settle(self, seq: int, kind: str, ok: bool) -> None:
        (self.delivered if ok else self.failed)[kind] += 1
        self._settled.add(seq)
        while self._pending and self._pending[0] in self._settled:
            self._settled.discard(self._pending.popleft())

    def mark(self) -> int:
        """Everything produced so far is settled once `settled_below() >= mark()`."""
        return self._next

    def settled_below(self) -> int:
        return self._pending[0] if self._pending else self._next

    @property
    def unsettled(self) -> int:
        return len(self._pending)


class Held(Generic[T]):
    """Items held until the ledger has settled every message produced before each was written."""

    def __init__(self, ledger: DeliveryLedger) -> None:
        self.ledger = ledger
        self._queue: deque[tuple[int, T]] = deque()  # marks never decrease

    def hold(self, item: T) -> None:
        self._queue.append((self.ledger.mark(), item))

    def release(self) -> list[T]:
        low = self.ledger.settled_below()
        out = []
        while self._queue and self._queue[0][0] <= low:
            out.append(self._queue.popleft()[1])
        return out

    def drop(self, keep: Callable[[T], bool]) -> None:
        """Forget the items for which `keep(item)` is false (their partitions were revoked)."""
        self._queue = deque((m, x) for m, x in self._queue if keep(x))

    def __len__(self) -> int:
        return len(self._queue)
