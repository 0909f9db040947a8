"""Add-wins observed-remove set with causal dots: removals leave no tombstones.

Every add is tagged with a fresh dot (replica, n). The causal context records every dot the state
has seen; a dot that is in the context but no longer tagged to any element was removed. Joining
keeps a dot when both sides hold it, or when one side holds it and the other has not seen it
(Almeida et al., "Delta state replicated data types", §4: the add-wins dot kernel).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Self

from pipeline.shared.crdt.base import Mergeable
from pipeline.shared.crdt.errors import MalformedStateError

__all__ = ["CausalContext", "Dot", "ORSet"]

Dot = tuple[str, int]


class CausalContext:
    """Seen dots as a version vector (contiguous prefix per replica) plus a cloud of the rest."""

    __slots__ = ("cloud", "vv")

    def __init__(self, vv: dict[str, int] | None = None, cloud: Iterable[Dot] = ()) -> None:
        self.vv: dict[str, int] = dict(vv) if vv else {}
        self.cloud: set[Dot] = set(cloud)

    def contains(self, dot: Dot) -> bool:
        return dot[1] <= self.vv.get(dot[0], 0) or dot in self.cloud

    def next_dot(self, replica: str) -> Dot:
        top = self.vv.get(replica, 0)
        for r, n in self.cloud:
            if r == replica and n > top:
                top = n
        return (replica, top + 1)

    def merge_in(self, other: CausalContext) -> None:
        vv = self.vv
        for r, n in other.vv.items():
            if n > vv.get(r, 0):
                vv[r] = n
        self.cloud |= other.cloud
        self.compact()

    def compact(self) -> None:
        """Move dots that extend a replica's contiguous prefix from the cloud into the vector."""
        if not self.cloud:
            return
        vv = self.vv
        if len(self.cloud) == 1:  # the common case: one new dot from an add
            (r, n), *_ = self.cloud
            if n <= vv.get(r, 0) + 1:
                vv[r] = max(n, vv.get(r, 0))
                self.cloud = set()
            return
        for r, n in sorted(self.cloud):
            if n == vv.get(r, 0) + 1:
                vv[r] = n
        self.cloud = {d for d in self.cloud if d[1] > vv.get(d[0], 0)}

    def copy(self) -> CausalContext:
        return CausalContext(self.vv, self.cloud)

    def normal(self) -> tuple[dict[str, int], frozenset[Dot]]:
        c = self.copy()
        c.compact()
        return ({r: n for r, n in c.vv.items() if n}, frozenset(c.cloud))

    def replicas(self) -> set[str]:
        return set(self.vv) | {r for r, _ in self.cloud}


class ORSet(Mergeable):
    """A set of strings (e.g. vehicle ids in a swarm) where a concurrent add beats a remove."""

    SCHEMA_NAME: ClassVar[str] = "corridor.crdt.ORSet"
    __slots__ = ("_owner", "ctx", "entries")

    def __init__(self, entries: dict[str, set[Dot]] | None = None, ctx: CausalContext | None = None) -> None:
        self.entries: dict[str, set[Dot]] = {e: set(d) for e, d in entries.items()} if entries else {}
        self.ctx = ctx.copy() if ctx else CausalContext()
        # dot -> element: lets a small delta find the few elements it can remove without a full scan.
        self._owner: dict[Dot, str] = {d: e for e, dots in self.entries.items() for d in dots}

    @property
    def value(self) -> frozenset[str]:
        return frozenset(self.entries)

    def __contains__(self, element: str) -> bool:
        return element in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, element: str, replica: str) -> ORSet:
        """Delta adding `element` with a fresh dot; it also supersedes the element's older dots."""
        dot = self.ctx.next_dot(replica)
        old = self.entries.get(element, set())
        return ORSet({element: {dot}}, CausalContext(cloud={dot, *old}))

    def remove(self, element: str) -> ORSet:
        """Delta removing the dots of `element` observed here; a concurrent add elsewhere survives."""
        return ORSet({}, CausalContext(cloud=self.entries.get(element, ())))

    def merge_in(self, other: Self) -> None:
        mine, theirs = self.ctx, other.ctx
        entries = self.entries
        m_vv, m_cloud, t_vv, t_cloud = mine.vv, mine.cloud, theirs.vv, theirs.cloud
        # contains() inlined: this loop runs once per element of a full region state.
        for element, dots_b in other.entries.items():
            dots_a = entries.get(element)
            if dots_a is None:
                keep = {d for d in dots_b if not (d[1] <= m_vv.get(d[0], 0) or d in m_cloud)}
            elif dots_a == dots_b:
                continue
            else:
                keep = dots_a & dots_b
                keep.update(d for d in dots_a if not (d[1] <= t_vv.get(d[0], 0) or d in t_cloud))
                keep.update(d for d in dots_b if not (d[1] <= m_vv.get(d[0], 0) or d in m_cloud))
                if keep == dots_a:
                    continue
            self._set(element, dots_a, keep)
        # Elements the other side does not hold lose the dots it has seen (its removals).
        for element in self._touched_by(theirs) - other.entries.keys():
            dots_a = entries[element]
            keep = {d for d in dots_a if not (d[1] <= t_vv.get(d[0], 0) or d in t_cloud)}
            if keep != dots_a:
                self._set(element, dots_a, keep)
        mine.merge_in(theirs)

    def _touched_by(self, ctx: CausalContext) -> set[str]:
        """Elements holding a dot of `ctx`: by index when `ctx` is small (a delta), else all of them."""
        if sum(ctx.vv.values()) + len(ctx.cloud) >= len(self.entries):
            return set(self.entries)
        owner = self._owner
        found = {owner[d] for d in ctx.cloud if d in owner}
        for r, n in ctx.vv.items():
            found.update(owner[(r, k)] for k in range(1, n + 1) if (r, k) in owner)
        return found

    def _set(self, element: str, old: set[Dot] | None, new: set[Dot]) -> None:
        owner = self._owner
        if old:
            for d in old - new:
                owner.pop(d, None)
        for d in new if old is None else new - old:
            owner[d] = element
        if new:
            self.entries[element] = new
        elif old is not None:
            del self.entries[element]

    def copy(self) -> Self:
        return type(self)(self.entries, self.ctx)

    def replicas(self) -> set[str]:
        return self.ctx.replicas() | {r for dots in self.entries.values() for r, _ in dots}

    def to_record(self) -> dict[str, Any]:
        return {
            "entries": [
                {"element": e, "dots": [{"replica": r, "counter": n} for r, n in sorted(dots)]}
                for e, dots in sorted(self.entries.items())
            ],
            "context": {
                "vv": dict(self.ctx.vv),
                "cloud": [{"replica": r, "counter": n} for r, n in sorted(self.ctx.cloud)],
            },
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        try:
            entries = {e["element"]: {(d["replica"], d["counter"]) for d in e["dots"]} for e in record["entries"]}
            ctx = CausalContext(
                record["context"]["vv"], ((d["replica"], d["counter"]) for d in record["context"]["cloud"])
            )
        except (KeyError, TypeError):
            raise MalformedStateError("an OR-Set record needs 'entries' and 'context'") from None
        contains = ctx.contains
        if any(n < 1 or not contains((r, n)) for dots in entries.values() for r, n in dots):
            raise MalformedStateError("an OR-Set's dots must be positive and covered by its context")
        out = cls.__new__(cls)  # the sets were built here: no copies (a region's swarm restores at start)
        out.entries, out.ctx = entries, ctx
        out._owner = {d: e for e, dots in entries.items() for d in dots}
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ORSet) and self.entries == other.entries and self.ctx.normal() == other.ctx.normal()

    def __repr__(self) -> str:
        return f"ORSet({sorted(self.entries)})"
