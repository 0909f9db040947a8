"""The semilattice laws and convergence, one suite run against every CRDT type."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.shared.crdt import DeltaLog, decode_state, encode_state
from tests.shared.crdt.world import KINDS, REPLICAS, Kind, history, ops_run

kinds = pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)


def three(kind: Kind) -> st.SearchStrategy:
    return history(kind).flatmap(lambda snaps: st.tuples(*[st.sampled_from(snaps)] * 3))


@kinds
@given(data=st.data())
def test_merge_is_commutative(kind: Kind, data: st.DataObject) -> None:
    a, b, _ = data.draw(three(kind))
    assert a.merge(b) == b.merge(a)


@kinds
@given(data=st.data())
def test_merge_is_associative(kind: Kind, data: st.DataObject) -> None:
    a, b, c = data.draw(three(kind))
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@kinds
@given(data=st.data())
def test_merge_is_idempotent_and_pure(kind: Kind, data: st.DataObject) -> None:
    a, b, _ = data.draw(three(kind))
    a_before, b_before = a.copy(), b.copy()
    assert a.merge(a) == a
    joined = a.merge(b)
    assert (a, b) == (a_before, b_before), "merge must not change its inputs"
    assert joined.merge(a) == joined and joined.merge(b) == joined, "the join is an upper bound"


@kinds
@given(data=st.data())
def test_avro_round_trip_is_lossless(kind: Kind, data: st.DataObject) -> None:
    state, _, _ = data.draw(three(kind))
    assert decode_state(encode_state(state)) == state


@kinds
@given(data=st.data())
def test_applying_deltas_equals_merging_full_states(kind: Kind, data: st.DataObject) -> None:
    """A receiver that got S's deltas up to version v, then `since(v)`, holds what merging S gives."""
    receiver, sender_start, _ = data.draw(three(kind))
    sender = sender_start.copy()
    log: DeltaLog = DeltaLog(kind.bottom)
    for ts in range(1, data.draw(st.integers(1, 12)) + 1):
        delta = kind.ops(data.draw)(sender, "r1", 1000 + ts)
        sender.merge_in(delta)
        log.record(delta)
    cut = data.draw(st.integers(0, log.version))
    by_deltas = receiver.merge(sender_start)
    for v in range(1, cut + 1):  # delivered one by one up to the cut...
        by_deltas.merge_in(log.since(v - 1).merge(log.since(v - 1)))
    rest = log.since(cut)  # ...then one delta-interval for the rest
    if rest is not None:
        by_deltas.merge_in(rest)
    assert by_deltas == receiver.merge(sender)


@kinds
@settings(max_examples=60)
@given(data=st.data())
def test_replicas_converge_under_reorder_duplication_and_resend(kind: Kind, data: st.DataObject) -> None:
    joined, deltas = data.draw(ops_run(kind))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    finals = []
    for _ in range(4):
        stream = deltas + rng.sample(deltas, k=len(deltas) // 2)  # duplicates
        rng.shuffle(stream)
        dropped = [d for d in stream if rng.random() < 0.3]
        state = kind.bottom()
        for d in stream:
            if not any(d is x for x in dropped):
                state.merge_in(d)
        for d in dropped:  # re-sent later
            state.merge_in(d)
        finals.append(state)
    assert all(f == joined for f in finals), f"seed {seed}"


def test_deterministic_lossy_partitioned_link_converges_after_healing() -> None:
    """Four replicas gossip delta-intervals over a link that drops 30 % of messages and is cut in two
    for a while; once healed, anti-entropy (resend since the last acknowledged version) converges."""
    from pipeline.shared.crdt import LWWMap, ORSet

    rng = random.Random(20261125)
    names = [*REPLICAS, "r3"]
    sets = {n: ORSet() for n in names}
    maps = {n: LWWMap() for n in names}
    logs = {n: (DeltaLog(ORSet), DeltaLog(LWWMap)) for n in names}
    acked = {(a, b): (0, 0) for a in names for b in names if a != b}
    partition = ({"r0", "r1"}, {"r2", "r3"})

    def linked(a: str, b: str, step: int) -> bool:
        cut = 20 <= step < 60 and (a in partition[0]) != (b in partition[0])
        return not cut and rng.random() > 0.3

    for step in range(120):
        if step < 80:  # writers stop before the end so there is a final state to agree on
            n = rng.choice(names)
            vehicle = f"v{rng.randrange(12)}"
            if rng.random() < 0.7:
                d_set, d_map = sets[n].add(vehicle, n), maps[n].put(vehicle, {"km": float(step)}, step + 1, n)
            else:
                d_set, d_map = sets[n].remove(vehicle), maps[n].remove(vehicle, step + 1, n)
            for state, delta, log in ((sets[n], d_set, logs[n][0]), (maps[n], d_map, logs[n][1])):
                state.merge_in(delta)
                log.record(delta)
        for a in names:
            for b in names:
                if a == b or not linked(a, b, step):
                    continue
                v_set, v_map = acked[(a, b)]
                d_set, d_map = logs[a][0].since(v_set), logs[a][1].since(v_map)
                if d_set is not None:
                    sets[b].merge_in(d_set)
                if d_map is not None:
                    maps[b].merge_in(d_map)
                if linked(b, a, step):  # the acknowledgement can be lost too
                    acked[(a, b)] = (logs[a][0].version, logs[a][1].version)
    # Deltas only carry each replica's own writes: relayed state needs every pair to have talked.
    assert len({frozenset(s.value) for s in sets.values()}) == 1
    assert all(m == maps["r0"] for m in maps.values())
    assert all(s == sets["r0"] for s in sets.values())
