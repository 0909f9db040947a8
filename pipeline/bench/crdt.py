"""CRDT merge costs at the size of a busy tower region (issue targets: ≤ 20 ms, ≤ 5 µs)."""

from __future__ import annotations

import random
from functools import partial
from typing import Any

from pipeline.bench.timing import best_of, per_call_us
from pipeline.shared.crdt import LWWMap, ORSet
from pipeline.shared.crdt.hlc import pack

__all__ = ["run"]

T0 = 1_764_000_000_000


def _nothing(_delta: object) -> None:
    """The call overhead alone, subtracted from the merges' per-call times."""


def _vehicle(rng: random.Random) -> dict[str, Any]:
    return {
        "km": rng.uniform(0, 78),
        "speed_mps": rng.uniform(0, 33),
        "accel_mps2": rng.uniform(-3, 2),
        "brake": rng.random() < 0.05,
        "lane": rng.randrange(3),
        "seq": rng.randrange(1 << 30),
    }


def _region(vehicles: int, replica: str, ms_offset: int, seed: int) -> tuple[LWWMap, ORSet]:
    rng = random.Random(seed)
    states, members = LWWMap(), ORSet()
    for i in range(vehicles):
        vid = f"veh-{i:06d}"
        states.entries[vid] = (pack(T0 + ms_offset + rng.randrange(1000), 0), replica, _vehicle(rng))
        members.merge_in(members.add(vid, replica))
    return states, members


def _advanced(members: ORSet, states: LWWMap, vehicles: int, seed: int) -> tuple[LWWMap, ORSet]:
    """The owning tower's state a few seconds later: a tenth of the swarm left, a tenth arrived,
    every vehicle reported again. This is what a neighbour's copy is merged with in tower-sync."""
    rng = random.Random(seed)
    states, members = states.copy(), members.copy()
    for i in rng.sample(range(vehicles), vehicles // 10):
        members.merge_in(members.remove(f"veh-{i:06d}"))
    for i in range(vehicles, vehicles + vehicles // 10):
        members.merge_in(members.add(f"veh-{i:06d}", "tower-04"))
    for vid in list(members.entries):
        states.entries[vid] = (pack(T0 + 5000 + rng.randrange(1000), 0), "tower-04", _vehicle(rng))
    return states, members


def run(vehicles: int = 10_000, quick: bool = False) -> dict[str, float]:
    runs = 3 if quick else 7
    a_map, a_set = _region(vehicles, "tower-04", 0, 1)
    b_map, b_set = _advanced(a_set, a_map, vehicles, 2)
    map_s = best_of(runs, a_map.copy, lambda s: s.merge_in(b_map))
    set_s = best_of(runs, a_set.copy, lambda s: s.merge_in(b_set))
    # Worst case: every vehicle added concurrently by two towers, so every element keeps two dots.
    _, c_set = _region(vehicles, "tower-05", 500, 2)
    concurrent_s = best_of(runs, a_set.copy, lambda s: s.merge_in(c_set))

    rng = random.Random(3)
    n_calls = 20_000 if quick else 100_000
    deltas = [
        a_map.put(f"veh-{rng.randrange(vehicles):06d}", _vehicle(rng), pack(T0 + 2000 + i, 0), "tower-04")
        for i in range(n_calls)
    ]
    target = a_map.copy()
    map_delta_us = per_call_us([partial(target.merge_in, d) for d in deltas])
    baseline_us = per_call_us([partial(_nothing, d) for d in deltas])

    members = a_set.copy()
    set_deltas = []
    for i in range(n_calls // 10):
        vid = f"veh-{rng.randrange(vehicles):06d}"
        d = members.remove(vid) if i % 2 else members.add(vid, "tower-04")
        members.merge_in(d)
        set_deltas.append(d)
    receiver = a_set.copy()
    set_delta_us = per_call_us([partial(receiver.merge_in, d) for d in set_deltas])
    return {
        "vehicles": vehicles,
        "lww_map_full_merge_ms": map_s * 1000,
        "or_set_full_merge_ms": set_s * 1000,
        "region_full_merge_ms": (map_s + set_s) * 1000,
        "or_set_full_merge_all_concurrent_ms": concurrent_s * 1000,
        "lww_map_single_delta_us": map_delta_us - baseline_us,
        "or_set_single_delta_us": set_delta_us - baseline_us,
    }
