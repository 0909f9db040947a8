"""The columnar LWW-Map joins a batch exactly as `LWWMap` joins the same writes one by one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.shared.crdt import LWWColumns, LWWMap, decode_state, encode_state
from pipeline.shared.crdt.registers import value_bytes
from tests.shared.crdt.world import ROW

write = st.tuples(
    st.sampled_from(["a", "b", "c", "veh-0000001"]),  # key
    st.integers(1, 6),  # HLC: few values, so equal stamps are common
    st.sampled_from(["t1", "t2"]),  # replica
    st.integers(0, 3),  # speed
    st.booleans(),  # live (False: a removal)
)


def as_row(speed: int) -> bytes:
    return np.array([(speed, speed < 2)], ROW).tobytes()


def one_by_one(writes: list[tuple[str, int, str, int, bool]]) -> LWWMap:
    m = LWWMap()
    for k, ts, r, speed, live in writes:
        m.merge_in(LWWMap({k: (ts, r, as_row(speed) if live else None)}))
    return m


def columns(batches: list[list[tuple[str, int, str, int, bool]]]) -> LWWColumns:
    c = LWWColumns(ROW, capacity=2)  # small: the batches make it grow
    for batch in batches:
        if not batch:
            continue
        keys, ts, reps, speeds, live = zip(*batch, strict=True)
        codes = np.array([c.code(r) for r in reps])
        values = np.array([(s, s < 2) for s in speeds], ROW)
        c.apply_batch(list(keys), np.array(ts), codes, values, np.array(live))
    return c


@given(st.lists(st.lists(write, max_size=12), max_size=4), st.randoms())
def test_batches_equal_element_by_element_merges_in_any_order(batches: list, rnd) -> None:
    flat = [w for b in batches for w in b]
    expected = one_by_one(flat)
    assert columns(batches).to_lwwmap() == expected
    shuffled = flat + flat[: len(flat) // 2]  # reordered and partly duplicated
    rnd.shuffle(shuffled)
    assert columns([shuffled]).to_lwwmap() == expected


@given(st.lists(write, min_size=1, max_size=12), st.lists(write, max_size=12))
def test_merging_columns_equals_merging_maps(a: list, b: list) -> None:
    left, right = columns([a]), columns([b])
    left.merge_in(right)
    assert left.to_lwwmap() == one_by_one(a).merge(one_by_one(b))


def test_apply_batch_returns_the_rows_that_won() -> None:
    c = columns([[("a", 5, "t1", 1, True)]])
    values = np.array([(0, 1), (3, 0), (2, 0)], ROW)
    won = c.apply_batch(["a", "b", "b"], np.array([4, 7, 9]), "t1", values)
    assert won.tolist() == [2], "older than the state, and the batch's own older duplicate, lose"


def test_prune_frees_old_tombstones_and_their_slots() -> None:
    c = columns([[("a", 5, "t1", 1, True), ("b", 6, "t1", 1, True)]])
    c.remove(["a"], 10, "t1")
    assert c.prune(horizon=9) == [] and len(c) == 2, "a tombstone newer than the horizon stays"
    assert c.prune(horizon=11) == ["a"] and len(c) == 1 and "a" not in c.slot
    slot_count = c.capacity
    c.apply_batch(["z"], np.array([20]), "t1", np.array([(1, 0)], ROW))
    assert c.capacity == slot_count, "the freed slot is reused"


def test_the_avro_form_is_the_lww_maps() -> None:
    c = columns([[("a", 5, "t1", 1, True), ("b", 6, "t2", 1, False)]])
    assert decode_state(encode_state(c)) == c.to_lwwmap() == c


@given(st.lists(write, max_size=12))
def test_the_columns_come_back_from_their_avro_record(writes: list) -> None:
    """`from_record` raised TypeError: the one CRDT of the family that could not be read back alone."""
    c = columns([writes])
    back = LWWColumns.from_record(c.to_record())
    assert back == c and back.to_lwwmap() == c.to_lwwmap()


@pytest.mark.parametrize("ts", [0, -5])
def test_a_write_stamped_zero_or_less_is_refused_alike_by_both_forms(ts: int) -> None:
    """A columnar write stamped 0 took a slot that `used_slots` and `prune` never saw again (0 marks a
    free slot), while the map kept it: the same CRDT, two answers."""
    c, m = LWWColumns(ROW), LWWMap()
    with pytest.raises(ValueError, match="positive HLC"):
        c.apply_batch(["a"], np.array([ts]), "t1", np.array([(1, False)], ROW))
    with pytest.raises(ValueError, match="positive HLC"):
        m.put("a", as_row(1), ts, "t1")
    with pytest.raises(ValueError, match="positive HLC"):
        m.remove("a", ts, "t1")
    assert len(c) == 0 and c.capacity == len(c.free), "no slot taken"


def test_ties_are_broken_by_bytes_any_implementation_can_reproduce() -> None:
    """Non-byte values ordered by Python's repr(), which nothing else produces: canonical JSON now."""
    assert value_bytes({"severity": 5, "km": 22.0, "dir": "BOTH"}) == b'{"dir":"BOTH","km":22.0,"severity":5}'
    assert value_bytes("ü") == '"ü"'.encode()
    a, b = LWWMap().put("h", {"km": 1.0}, 7, "t1"), LWWMap().put("h", {"km": 2.0}, 7, "t1")
    assert a.merge(b) == b.merge(a) and a.merge(b).get("h") == {"km": 2.0}
