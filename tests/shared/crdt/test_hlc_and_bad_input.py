"""The hybrid logical clock, and typed errors for bad input that never touch a state."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.shared.crdt import (
    HLC,
    ClockDriftError,
    GCounter,
    HybridClock,
    LWWMap,
    MalformedStateError,
    ORSet,
    UnknownReplicaError,
    check_replicas,
    decode_as,
    decode_state,
    encode_state,
)
from pipeline.shared.crdt.hlc import pack, unpack

GOLDEN = Path(__file__).with_name("golden")


class FakeTime:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@given(st.integers(0, 2**48 - 2), st.integers(0, 2**16 - 1))
def test_packing_round_trips_and_keeps_order(physical: int, logical: int) -> None:
    ts = pack(physical, logical)
    assert unpack(ts) == (physical, logical) and HLC.from_int(ts).to_int() == ts
    # the next stamp: one more logical tick, or, past the last one, the next millisecond
    after = pack(physical, logical + 1) if logical < 2**16 - 1 else pack(physical + 1, 0)
    assert ts < after


def test_clock_is_monotonic_when_wall_time_stands_still_or_goes_back() -> None:
    wall = FakeTime(1_000)
    clock = HybridClock(physical=wall)
    stamps = [clock.now() for _ in range(5)]
    wall.ms = 900  # NTP stepped the clock back
    stamps += [clock.now() for _ in range(3)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert unpack(stamps[-1])[0] == 1_000


def test_receive_moves_past_a_remote_stamp_within_the_bound() -> None:
    clock = HybridClock(max_drift_ms=500, physical=FakeTime(10_000))
    remote = pack(10_400, 7)
    assert clock.receive(remote) > remote
    assert clock.now() > remote


def test_a_stamp_beyond_the_drift_bound_is_refused_and_leaves_the_clock_alone() -> None:
    clock = HybridClock(max_drift_ms=500, physical=FakeTime(10_000))
    before = clock.now()
    with pytest.raises(ClockDriftError, match="ahead"):
        clock.receive(pack(10_501, 0))
    with pytest.raises(ClockDriftError):
        clock.check(pack(20_000, 0))
    assert clock.last == before


def test_delta_from_an_unknown_replica_is_refused() -> None:
    s = ORSet()
    delta = s.add("v1", "tower-99")
    with pytest.raises(UnknownReplicaError, match="tower-99"):
        check_replicas(delta, {"tower-01", "tower-02"})
    check_replicas(s.add("v1", "tower-01"), {"tower-01", "tower-02"})


def _sample() -> dict[str, bytes]:
    orset = ORSet()
    for v, r in (("veh-1", "tower-01"), ("veh-2", "tower-02"), ("veh-3", "tower-01")):
        orset.merge_in(orset.add(v, r))
    orset.merge_in(orset.remove("veh-2"))
    lmap = LWWMap()
    lmap.merge_in(lmap.put("veh-1", {"km": 12.5, "speed_mps": 29.0, "brake": False}, pack(1_764_000_000_000, 0), "t1"))
    lmap.merge_in(lmap.remove("veh-2", pack(1_764_000_000_500, 3), "t2"))
    counter = GCounter()
    counter.merge_in(counter.inc("tower-01", 42))
    return {"or_set": encode_state(orset), "lww_map": encode_state(lmap), "g_counter": encode_state(counter)}


@pytest.mark.parametrize("name", ["or_set", "lww_map", "g_counter"])
def test_wire_format_is_pinned_by_golden_encodings(name: str) -> None:
    golden = (GOLDEN / f"{name}.hex").read_text().strip()
    assert _sample()[name].hex() == golden, "the wire format changed: bump the schema, keep the old readable"
    assert encode_state(decode_state(bytes.fromhex(golden))) == bytes.fromhex(golden)


@pytest.mark.parametrize("cut", [0, 1, 5, 10, 11, 20])
def test_truncated_bytes_raise_a_typed_error(cut: int) -> None:
    data = _sample()["or_set"]
    with pytest.raises(MalformedStateError):
        decode_state(data[: len(data) - 1 - cut] if cut < len(data) - 1 else data[:1])


def test_unknown_fingerprint_and_garbage_raise_typed_errors() -> None:
    data = bytearray(_sample()["lww_map"])
    data[5] ^= 0xFF
    with pytest.raises(MalformedStateError, match="unknown schema fingerprint"):
        decode_state(bytes(data))
    with pytest.raises(MalformedStateError, match="header"):
        decode_state(b"not avro at all")
    with pytest.raises(MalformedStateError, match="trailing"):
        decode_state(_sample()["g_counter"] + b"\x00")


@given(st.binary(max_size=64))
def test_random_bytes_never_escape_as_anything_but_a_typed_error(junk: bytes) -> None:
    data = _sample()["or_set"][:10] + junk
    with contextlib.suppress(MalformedStateError):  # anything else fails the test
        decode_state(data)


def test_an_or_set_whose_dots_escape_its_context_is_malformed() -> None:
    record = ORSet().to_record()
    record["entries"] = [{"element": "v", "dots": [{"replica": "t1", "counter": 3}]}]
    with pytest.raises(MalformedStateError, match="covered"):
        ORSet.from_record(record)


def test_a_state_of_another_crdt_type_is_malformed_where_one_type_belongs() -> None:
    hazards = LWWMap({"deer": (1, "tower-04", {"km": 40.0})})
    assert decode_as(encode_state(hazards), LWWMap).value == hazards.value
    with pytest.raises(MalformedStateError, match="expected a ORSet state, got a LWWMap"):
        decode_as(encode_state(hazards), ORSet)
