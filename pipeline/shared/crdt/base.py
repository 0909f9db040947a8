"""The contract every corridor CRDT keeps, and the delta log that makes them delta-state CRDTs.

A type is a join semilattice: `merge_in` joins another state into this one (in place, the towers'
hot path) and `merge` returns the join as a new value (for code that must not share state, and for
the law suite). Mutators never change the state: they return a *delta*, itself a small state of the
same type, which the caller applies with `merge_in` and may also ship to other replicas (Almeida et
al., "Delta state replicated data types", 2018).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from pipeline.shared.crdt.errors import UnknownReplicaError

__all__ = ["Crdt", "DeltaLog", "check_replicas"]


class Crdt(Protocol):
    #: Avro record name of the type's state (see `schemas/crdt/`).
    SCHEMA_NAME: ClassVar[str]

    def merge_in(self, other: Self) -> None: ...
    def merge(self, other: Self) -> Self: ...
    def copy(self) -> Self: ...
    def replicas(self) -> set[str]: ...
    def to_record(self) -> dict[str, Any]: ...
    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self: ...
    @property
    def value(self) -> Any: ...


C = TypeVar("C", bound=Crdt)


class Mergeable:
    """Mixin: `merge` as a copy joined in place, so each type writes its join once (and only
    `copy` and `merge_in`, which every type defines)."""

    def copy(self) -> Self:
        raise NotImplementedError

    def merge_in(self, other: Self) -> None:
        raise NotImplementedError

    def merge(self, other: Self) -> Self:
        out = self.copy()
        out.merge_in(other)
        return out


def check_replicas(delta: Crdt, known: Iterable[str]) -> None:
    """Refuse a delta that names a replica outside `known`, before it is merged anywhere."""
    unknown = delta.replicas() - set(known)
    if unknown:
        raise UnknownReplicaError(f"delta names unknown replica(s) {sorted(unknown)}")


class DeltaLog(Generic[C]):
    """Deltas produced locally, numbered, so a neighbour can be sent everything since a version.

    The version is the sequence number of the last delta a receiver acknowledged; `since(v)` joins
    the deltas after it into one (a delta-interval). `truncate(v)` drops what every receiver has.
    """

    __slots__ = ("_bottom", "_deltas", "_first_seq")

    def __init__(self, bottom: Callable[[], C]) -> None:
        self._bottom = bottom
        self._deltas: list[C] = []
        self._first_seq = 1

    @property
    def version(self) -> int:
        """Sequence number of the newest delta (0 when none was ever recorded)."""
        return self._first_seq + len(self._deltas) - 1

    def record(self, delta: C) -> int:
        self._deltas.append(delta)
        return self.version

    def since(self, version: int) -> C | None:
        """The join of every delta after `version`, or None when the receiver is up to date.

        Raises `LookupError` when deltas after `version` were already truncated: ship the full state.
        """
        if version >= self.version:
            return None
        if version + 1 < self._first_seq:
            raise LookupError(f"deltas after version {version} were truncated; send the full state")
        start = version + 1 - self._first_seq
        out = self._bottom()
        for delta in self._deltas[start:]:
            out.merge_in(delta)
        return out

    def truncate(self, version: int) -> None:
        drop = min(max(0, version + 1 - self._first_seq), len(self._deltas))
        del self._deltas[:drop]
        self._first_seq += drop

    def __len__(self) -> int:
        return len(self._deltas)
