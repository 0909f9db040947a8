"""Is a history of compare-and-swap writes to one etcd key linearizable, and is its last value the
join of every write?

The towers keep the global view at one key by read → merge → compare-and-swap on the key's revision
(`towers.control_plane.cas_merge`). Each attempt is recorded by its client: when it began and ended
(one host's wall clock), the revision it read (0: no key), what it wrote, and whether the compare
held (None: an error cut it short, so it may or may not have taken effect). etcd's own record of the
key — every version in revision order, read back through a watch from the first revision — gives
the order the writes took effect in. With that order known, linearizability is checked directly
rather than searched for:

1. each acknowledged write is exactly one version, the one after the revision it read;
2. each version was written by exactly one attempt that did not fail (acknowledged or unknown);
3. no two writes succeeded on the same revision (a lost update);
4. real time is respected: a write that ended before another began took effect before it;
5. every read saw a version that was current at some moment during its attempt;
6. a failed compare is explained: the key had moved on, by a write begun before it ended;
7. as a lattice, each version is at least the one before, so the last is the join of them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Attempt", "Verdict", "Version", "check"]


@dataclass(frozen=True)
class Attempt:
    client: str
    began: float
    ended: float
    read_rev: int | None  # None: it failed before reading
    wrote: bytes | None  # None: it failed before writing
    ok: bool | None  # None: unknown outcome

    @classmethod
    def of(cls, op: dict[str, Any]) -> Attempt:
        wrote = op.get("wrote")
        return cls(str(op.get("client", "")), float(op["began"]), float(op["ended"]), op.get("read_rev"),
                   bytes.fromhex(wrote) if isinstance(wrote, str) else wrote, op.get("ok"))  # fmt: skip


@dataclass(frozen=True)
class Version:
    rev: int  # the key's mod revision once written
    value: bytes


@dataclass
class Verdict:
    attempts: int = 0
    versions: int = 0
    acknowledged: int = 0
    failed: int = 0
    unknown: int = 0
    unknown_took_effect: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def linearizable(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "versions": self.versions, "acknowledged": self.acknowledged,
                "failed": self.failed, "unknown": self.unknown, "unknown_took_effect": self.unknown_took_effect,
                "linearizable": self.linearizable, "violations": self.violations[:20]}  # fmt: skip


def check(attempts: Sequence[Attempt], versions: Sequence[Version], leq: Callable[[bytes, bytes], bool]) -> Verdict:
    """`versions` in revision order, from the key's creation; `leq(a, b)`: value a ≤ value b in the
    lattice of the stored CRDT."""
    v = Verdict(attempts=len(attempts), versions=len(versions))
    v.acknowledged = sum(a.ok is True for a in attempts)
    v.failed = sum(a.ok is False for a in attempts)
    v.unknown = sum(a.ok is None and a.wrote is not None for a in attempts)
    bad = v.violations.append
    prev_rev = {ver.rev: (versions[i - 1].rev if i else 0) for i, ver in enumerate(versions)}
    index_after = {prev_rev[ver.rev]: i for i, ver in enumerate(versions)}  # read revision → version index
    if len(index_after) != len(versions):
        bad("two versions follow the same revision")
    # 1–3: who wrote each version
    writer: dict[int, Attempt] = {}
    for a in attempts:
        if a.wrote is None or a.ok is False or a.read_rev is None:
            continue
        i = index_after.get(a.read_rev)
        took_effect = i is not None and versions[i].value == a.wrote
        if a.ok is True and not took_effect:
            bad(f"{a.client}: a write acknowledged on revision {a.read_rev} is not in the key's history")
            continue
        if not took_effect or i is None:
            continue
        if i in writer and writer[i].ok is True and a.ok is True:
            bad(f"two writes succeeded on revision {a.read_rev} ({writer[i].client}, {a.client}): a lost update")
            continue
        if i not in writer or a.ok is True:
            writer[i] = a
    v.unknown_took_effect = sum(1 for a in writer.values() if a.ok is None)
    for i, ver in enumerate(versions):
        if i not in writer:
            bad(f"version at revision {ver.rev} was written by no recorded attempt")
    # 4: real time, over the versions in order: none may have begun after a later one ended
    order = [writer[i] for i in range(len(versions)) if i in writer]
    earliest_end_after = float("inf")
    for a in reversed(order):
        if earliest_end_after < a.began:
            bad(f"{a.client}: took effect after a write that had ended before it began")
        earliest_end_after = min(earliest_end_after, a.ended)
    # 5–6: reads, and failed compares
    rev_index = {ver.rev: i for i, ver in enumerate(versions)}
    for a in attempts:
        if a.read_rev is None:
            continue
        read_i = -1 if a.read_rev == 0 else rev_index.get(a.read_rev)
        if read_i is None:
            bad(f"{a.client}: read revision {a.read_rev}, which the key never had")
            continue
        if read_i >= 0 and read_i in writer and writer[read_i].began > a.ended:
            bad(f"{a.client}: read a version written only after the read ended")
        nxt = read_i + 1
        if nxt in writer and writer[nxt] is not a and writer[nxt].ended < a.began:
            bad(f"{a.client}: read revision {a.read_rev} after a newer write had ended (a stale read)")
        if a.ok is False and a.wrote is not None and (nxt not in writer or writer[nxt].began > a.ended):
            bad(f"{a.client}: its compare on revision {a.read_rev} failed, but the key had not moved on")
    # 7: the lattice grows with every version
    for i in range(1, len(versions)):
        if not leq(versions[i - 1].value, versions[i].value):
            bad(f"version at revision {versions[i].rev} lost part of the one before")
    return v
