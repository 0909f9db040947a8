"""Every entry point, fed records built from its own Avro schema (and from the CRDT schemas inside
tower-sync), leaning on edge values. The invariants: no exception escapes; every input is merged,
recorded, or refused and counted with a named reason; and a genuine hazard reported right after a
hostile burst is still advised."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from pipeline.shared.crdt import LWWMap, ORSet
from pipeline.shared.crdt.wire import _CODEC as CRDT_CODEC
from pipeline.shared.crdt.wire import CRDT_SCHEMAS
from pipeline.shared.messages import ADVISORY, CODEC, FRAME, HAZARD, SYNC, TELEMETRY
from pipeline.shared.radio_topics import RadioTopics
from producers.fleet import Fleet, FleetConfig
from producers.listener import AdvisoryListener
from tests.hostile.avro_strategies import from_schema
from tests.hostile.test_gateway import deliver, gateway
from tests.towers.test_engine import CORRIDOR, T0, advisories, engine, frame, hazard, upd
from towers.gateway.batch import FrameBatcher
from towers.validation import Reason

REASONS = {v for k, v in vars(Reason).items() if not k.startswith("_")}
TOPICS = RadioTopics(regions=9)
HOSTILE = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def _near_now(record: dict[str, Any]) -> dict[str, Any]:
    """Half the time, stamps near the test clock: past the first checks, into the deeper ones."""
    return record | {"event_time": T0 + 59_000, "hlc": (T0 + 59_000) << 16, "region_id": 4}


telemetry = from_schema(schemas.load("vehicle_telemetry"))
telemetry_deep = telemetry.map(_near_now)
frames = from_schema(schemas.load("telemetry_frame"))
hazards = from_schema(schemas.load("hazard_report"))
hazards_deep = hazards.map(lambda h: h | {"hlc": (T0 + 59_000) << 16, "region_id": 4, "detection_time": T0})
lww_records = from_schema(schemas.load("crdt/lww_map"))
# written by a replica the corridor knows, so the values themselves are judged
known_lww = lww_records.map(lambda r: {"entries": [e | {"replica": CORRIDOR.regions.towers[4]} for e in r["entries"]]})
lww_maps = st.one_of(lww_records, known_lww).map(lambda r: CRDT_CODEC.encode(CRDT_SCHEMAS[LWWMap], r))
or_sets = from_schema(schemas.load("crdt/or_set")).map(lambda r: CRDT_CODEC.encode(CRDT_SCHEMAS[ORSet], r))
states = st.one_of(st.none(), st.binary(max_size=40), lww_maps, or_sets)
sync = st.tuples(from_schema(schemas.load("tower_sync")), st.integers(0, 8), states, states, st.booleans()).map(
    lambda t: t[0] | ({"region_id": t[1], "tower": CORRIDOR.regions.towers[t[1]], "members": t[2], "hazards": t[3]}
                      if t[4] else {})
)  # fmt: skip
# a neighbour's message as the corridor's own tower would send it, but for the hazards it carries
deep_sync = st.tuples(from_schema(schemas.load("tower_sync")), st.sampled_from([3, 5]), known_lww).map(
    lambda t: t[0] | {"region_id": t[1], "tower": CORRIDOR.regions.towers[t[1]], "sent_at": T0 + 59_000,
                      "changes_since": 0, "hlc": (T0 + 59_000) << 16, "member_count": 1, "arrivals": [],
                      "aggregates": None, "hazards": CRDT_CODEC.encode(CRDT_SCHEMAS[LWWMap], t[2])}
)  # fmt: skip
advisory_records = from_schema(schemas.load("control_advisory"))


def _named(reason: str) -> bool:
    return reason.split(":")[0] in REASONS or reason.startswith("sync-")


@HOSTILE
@given(st.one_of(telemetry, telemetry_deep))
def test_any_telemetry_record_is_merged_or_dead_lettered_with_a_reason(record: dict[str, Any]) -> None:
    e = engine()
    out = e.on_telemetry(4, CODEC.encode(TELEMETRY, record), e.region(4))
    assert e.counts["updates"] + len(out.dead) == 1
    assert all(_named(d.reason) for d in out.dead), [d.reason for d in out.dead]


@HOSTILE
@given(frames, st.lists(telemetry_deep, max_size=4))
def test_any_frame_has_each_update_merged_or_dead_lettered(record: dict[str, Any], deep: list[dict[str, Any]]) -> None:
    record = record | {"updates": record["updates"] + deep}
    e = engine()
    out = e.on_telemetry(4, CODEC.encode(FRAME, record), e.region(4), backlog=0)
    whole = len(out.dead) == 1 and out.dead[0].value == CODEC.encode(FRAME, record)
    assert whole or e.counts["updates"] + len(out.dead) == len(record["updates"])
    assert all(_named(d.reason) for d in out.dead)


@HOSTILE
@given(st.one_of(hazards, hazards_deep))
def test_any_hazard_report_is_recorded_or_dead_lettered(record: dict[str, Any]) -> None:
    e = engine()
    out = e.on_hazard(4, CODEC.encode(HAZARD, record), e.region(4))
    assert (e.counts["hazards"] == 1) != bool(out.dead)
    assert all(_named(d.reason) for d in out.dead)


@HOSTILE
@given(st.one_of(sync, deep_sync))
def test_any_tower_sync_message_is_merged_or_dead_lettered_and_the_view_still_reads(record: dict[str, Any]) -> None:
    e = engine()
    e.region(4)
    out = e.on_sync(CODEC.encode(SYNC, record), 3)
    assert len(out.dead) <= 1 and all(_named(d.reason) for d in out.dead)
    for r in range(9):
        e.hazards_near(r)
    e.staleness_by_class(T0 + 60_000)


@HOSTILE
@given(st.lists(advisory_records, min_size=1, max_size=5))
def test_any_advisory_a_vehicle_hears_is_obeyed_or_counted(records: list[dict[str, Any]]) -> None:
    listener = AdvisoryListener.__new__(AdvisoryListener)  # the decoding side alone: no consumer
    from producers.listener import ListenerStats

    listener.stats, listener.keep_history, listener.verifier = ListenerStats(), False, None
    listener.hazard_triggers = {r["trigger_hlc"] for r in records[:1]}
    fleet = Fleet(CORRIDOR, FleetConfig(vehicles=50, seed=1), start_ms=T0)
    listener.apply_values([CODEC.encode(ADVISORY, r) for r in records] + [b"junk"], fleet, T0)
    s = listener.stats
    assert s.received + s.refused + s.undecodable == len(records) + 1
    assert s.latency.n == s.received >= s.hazard_latency.n, "every believed advisory timed, in buckets too"


@HOSTILE
@given(st.lists(advisory_records, min_size=1, max_size=5), st.lists(st.booleans(), min_size=5, max_size=5))
def test_a_fleet_with_the_towers_keys_obeys_only_what_a_tower_signed(records: list[dict[str, Any]],
                                                                      signed: list[bool]) -> None:  # fmt: skip
    from pipeline.shared.advisory_signing import Signer, Verifier, new_signing_key, public_pem
    from producers.listener import ListenerStats

    key = new_signing_key()
    listener = AdvisoryListener.__new__(AdvisoryListener)  # the decoding side alone: no consumer
    listener.stats, listener.keep_history, listener.hazard_triggers = ListenerStats(), False, set()
    listener.verifier = Verifier([public_pem(key)])
    values = [CODEC.encode(ADVISORY, r) for r in records]
    signatures = [Signer(key).sign(v) if ok else None for v, ok in zip(values, signed, strict=False)]
    fleet = Fleet(CORRIDOR, FleetConfig(vehicles=50, seed=1), start_ms=T0)
    listener.apply_values(values, fleet, T0, signatures=signatures)
    s = listener.stats
    assert s.forged == signatures.count(None)
    assert s.received + s.refused + s.undecodable == len(values) - s.forged


mqtt_topics = st.one_of(
    st.integers(-2, 12).map(lambda r: f"corridor/v2/region/{r}/telemetry/veh-0000001"),
    st.integers(-2, 12).map(lambda r: f"corridor/v2/region/{r}/hazards/test"),
    st.text(max_size=60),
)
mqtt_payloads = st.one_of(
    telemetry.map(lambda r: CODEC.encode(TELEMETRY, r)),
    hazards.map(lambda r: CODEC.encode(HAZARD, r)),
    st.binary(max_size=200),
    st.integers(4_000, 70_000).map(lambda n: b"\xc3\x01" + b"\x01" * n),
)


@HOSTILE
@given(st.lists(st.tuples(mqtt_topics, mqtt_payloads), min_size=1, max_size=8))
def test_any_mqtt_message_is_forwarded_or_counted_and_the_gateway_keeps_serving(msgs: list[tuple[str, bytes]]) -> None:
    gw, _ = gateway()
    for topic, payload in msgs:
        deliver(gw, topic.encode("utf-8", "surrogatepass"), payload)
    gw._uplink()
    gw._frames(True)
    s = gw.stats
    counted = s.received + s.hazards + sum(s.dead_letters.values()) + sum(s.errors.values())
    assert counted >= len(msgs)
    batcher = FrameBatcher(TOPICS)
    for topic, payload in msgs:
        batcher.add(topic, payload, T0 + 60_000)  # never raises


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.one_of(
            telemetry_deep.map(lambda r: ("telemetry", CODEC.encode(TELEMETRY, r))),
            frames.map(lambda r: ("telemetry", CODEC.encode(FRAME, r | {"region_id": 4}))),
            hazards_deep.map(lambda r: ("hazard", CODEC.encode(HAZARD, r))),
            st.one_of(sync, deep_sync).map(lambda r: ("sync", CODEC.encode(SYNC, r))),
            st.binary(max_size=80).map(lambda b: ("telemetry", b)),
        ),
        min_size=5,
        max_size=30,
    )
)
def test_a_genuine_hazard_right_after_a_hostile_burst_is_advised(burst: list[tuple[str, bytes]]) -> None:
    e = engine()
    st_ = e.region(4)
    for kind, raw in burst:
        if kind == "telemetry":
            e.on_telemetry(4, raw, st_, backlog=0)
        elif kind == "hazard":
            e.on_hazard(4, raw, st_)
        else:
            e.on_sync(raw, 4)
    e.flush(4, 1e9)
    e.on_telemetry(4, frame(4, [upd("genuine-1", 38.0, t=59)]), st_, backlog=0)
    got = advisories(e.on_hazard(4, hazard(40.0, hid="genuine-hazard-7f3a", t=59), st_))
    assert any(a["target_vehicle"] == "genuine-1" and a["action"] in ("SLOW_DOWN", "STOP") for a in got), got
