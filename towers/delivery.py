"""Which of the messages a worker has produced Kafka has acknowledged.

An input event may be acknowledged only once what it caused is safe: its state written, and its
advisories, dead letters and sync messages acknowledged by the broker. Otherwise a worker killed in
between has its input committed and its advisories gone with its producer's buffer.

Produced messages are numbered per line, a line being one partition of one output topic: a
partition without a leader holds back only the events that wrote to it, not every region's. An
event waits for the numbers its lines had reached when its state was written. A message the
producer gave up on (the broker away past the delivery timeout) is not settled: it is sent again,
so no input is committed over a lost alert. Only a message the broker can never take (too large,
not authorised) is settled as failed, counted, and left: reading its input again would not help.
Pure: the worker feeds it the producer's delivery reports."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["DeliveryLedger", "Held", "Line"]

T = TypeVar("T")
Line = tuple[str, int]  # (kind of message, partition it went to)


class _Numbers:
    __slots__ = ("next", "pending", "settled")

    def __init__(self) -> None:
        self.next = 0
        self.pending: deque[int] = deque()  # produced, in order; settled ones leave from the left
        self.settled: set[int] = set()  # settled, but behind an older unsettled one

    def low(self) -> int:
        return self.pending[0] if self.pending else self.next


class DeliveryLedger:
    def __init__(self) -> None:
        self._lines: dict[Line, _Numbers] = {}
        self.delivered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()  # given up on for good (refused by the broker)
        self.resent: Counter[str] = Counter()  # timed out, sent again

    def produced(self, line: Line) -> int:
        """A number for the next message on `line`; the producer's report for it goes to `settle`."""
        n = self._lines.setdefault(line, _Numbers())
        seq, n.next = n.next, n.next + 1
        n.pending.append(seq)
        return seq

    def settle(self, line: Line, seq: int, ok: bool, permanent: bool = False) -> bool:
        """Record a delivery report; False when the message is not settled and must be sent again."""
        kind = line[0]
        if not ok and not permanent:
            self.resent[kind] += 1
            return False
        (self.delivered if ok else self.failed)[kind] += 1
        n = self._lines[line]
        n.settled.add(seq)
        while n.pending and n.pending[0] in n.settled:
            n.settled.discard(n.pending.popleft())
        return True

    def marks(self, lines: Iterable[Line]) -> dict[Line, int]:
        """Where `lines` stand now: everything on them so far is settled once `reached(marks)`."""
        return {line: n.next for line in lines if (n := self._lines.get(line)) is not None and n.next}

    def reached(self, marks: dict[Line, int]) -> bool:
        return all(self._lines[line].low() >= mark for line, mark in marks.items())

    @property
    def unsettled(self) -> int:
        return sum(len(n.pending) for n in self._lines.values())


class Held(Generic[T]):
    """Items held until the ledger has settled every message on their lines produced before each
    was held; released in order per source (an input partition), independently across sources."""

    def __init__(self, ledger: DeliveryLedger) -> None:
        self.ledger = ledger
        self._queues: dict[object, deque[tuple[dict[Line, int], T]]] = {}

    def hold(self, item: T, source: object, lines: Iterable[Line]) -> None:
        self._queues.setdefault(source, deque()).append((self.ledger.marks(lines), item))

    def release(self) -> list[T]:
        out = []
        for queue in self._queues.values():
            while queue and self.ledger.reached(queue[0][0]):
                out.append(queue.popleft()[1])
        return out

    def drop(self, keep: Callable[[T], bool]) -> None:
        """Forget the items for which `keep(item)` is false (their partitions were revoked)."""
        for source, queue in list(self._queues.items()):
            kept = deque((m, x) for m, x in queue if keep(x))
            if kept:
                self._queues[source] = kept
            else:
                del self._queues[source]

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())
