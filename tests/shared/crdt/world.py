"""Reachable CRDT states for the law suite: every state comes from one shared history.

States drawn independently could give one dot two meanings (replica r0's dot 1 tagging "a" here and
"b" there), which no real run can produce; so a strategy plays random operations and merges on
three replicas and hands out snapshots of that single history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from pipeline.shared.crdt import GCounter, LWWColumns, LWWMap, LWWRegister, MaxRegister, ORSet, PNCounter

REPLICAS = ("r0", "r1", "r2")
ELEMENTS = ("a", "b", "c", "d")

Op = Callable[[Any, str, int], Any]  # (state, replica, ts) -> delta


@dataclass(frozen=True)
class Kind:
    name: str
    bottom: Callable[[], Any]
    ops: Callable[[st.DrawFn], Op]


def _gc_ops(draw: st.DrawFn) -> Op:
    n = draw(st.integers(0, 5))
    return lambda s, r, ts: s.inc(r, n)


def _pn_ops(draw: st.DrawFn) -> Op:
    n = draw(st.integers(-5, 5))
    return lambda s, r, ts: s.inc(r, n)


def _lww_ops(draw: st.DrawFn) -> Op:
    v = draw(st.sampled_from([None, True, 7, 2.5, "x", {"speed": 30.0, "brake": False}]))
    return lambda s, r, ts: s.assign(v, ts, r)


def _max_ops(draw: st.DrawFn) -> Op:
    v = float(draw(st.integers(-10, 10)))
    return lambda s, r, ts: s.assign(v)


def _orset_ops(draw: st.DrawFn) -> Op:
    e = draw(st.sampled_from(ELEMENTS))
    if draw(st.booleans()):
        return lambda s, r, ts: s.add(e, r)
    return lambda s, r, ts: s.remove(e)


def _map_ops(draw: st.DrawFn) -> Op:
    k = draw(st.sampled_from(ELEMENTS))
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return lambda s, r, ts: s.remove(k, ts, r)
    speed = float(draw(st.integers(0, 40)))
    return lambda s, r, ts: s.put(k, {"speed": speed, "brake": speed < 5}, ts, r)


#: the value record of the columnar LWW-Map in the suite (a vehicle state in miniature)
ROW = np.dtype([("speed", "<f4"), ("brake", "u1")])


def _columns_ops(draw: st.DrawFn) -> Op:
    k = draw(st.sampled_from(ELEMENTS))
    live = draw(st.integers(0, 3)) != 0
    speed = float(draw(st.integers(0, 40)))

    def op(s: LWWColumns, r: str, ts: int) -> LWWColumns:
        delta = LWWColumns(ROW)
        delta.apply_batch([k], np.array([ts]), r, np.array([(speed, speed < 5)], ROW), np.array([live]))
        return delta

    return op


KINDS = [
    Kind("GCounter", GCounter, _gc_ops),
    Kind("PNCounter", PNCounter, _pn_ops),
    Kind("LWWRegister", LWWRegister, _lww_ops),
    Kind("MaxRegister", MaxRegister, _max_ops),
    Kind("ORSet", ORSet, _orset_ops),
    Kind("LWWMap", LWWMap, _map_ops),
    Kind("LWWColumns", lambda: LWWColumns(ROW), _columns_ops),
]


@st.composite
def history(draw: st.DrawFn, kind: Kind, steps: int = 30) -> list[Any]:
    """Snapshots (states and deltas) of one random run of three replicas."""
    replicas = [kind.bottom() for _ in REPLICAS]
    clocks = [0 for _ in REPLICAS]
    snaps: list[Any] = [kind.bottom()]
    for _ in range(draw(st.integers(1, steps))):
        i = draw(st.integers(0, len(REPLICAS) - 1))
        if draw(st.integers(0, 3)) == 0:
            j = draw(st.integers(0, len(REPLICAS) - 1))
            replicas[i].merge_in(replicas[j])
            clocks[i] = max(clocks[i], clocks[j])
        else:
            # a replica's clock may stand still between two writes: same-replica ties, which the
            # value bytes break
            clocks[i] += draw(st.integers(0, 1)) if clocks[i] else 1
            delta = kind.ops(draw)(replicas[i], REPLICAS[i], clocks[i])
            replicas[i].merge_in(delta)
            snaps.append(delta)
        snaps.append(replicas[i].copy())
    return snaps


@st.composite
def ops_run(draw: st.DrawFn, kind: Kind, steps: int = 25) -> tuple[Any, list[Any]]:
    """Three replicas' operations as (final join, every delta produced). Replicas sometimes see each
    other's state first, so later deltas (an OR-Set remove) can depend causally on others' adds."""
    replicas = [kind.bottom() for _ in REPLICAS]
    deltas: list[Any] = []
    for ts in range(1, draw(st.integers(1, steps)) + 1):
        i = draw(st.integers(0, len(REPLICAS) - 1))
        if draw(st.integers(0, 4)) == 0:
            replicas[i].merge_in(replicas[draw(st.integers(0, len(REPLICAS) - 1))])
        stamp = draw(st.integers(max(1, ts - 1), ts))  # equal stamps, from one replica or two
        delta = kind.ops(draw)(replicas[i], REPLICAS[i], stamp)
        replicas[i].merge_in(delta)
        deltas.append(delta)
    joined = kind.bottom()
    for r in replicas:
        joined.merge_in(r)
    return joined, deltas
