"""Vehicle producers against the real broker: region partitioning, framing, the closed loop, failures."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Producer

from pipeline.admin import ensure_topics
from pipeline.ports import free_ports
from pipeline.shared.corridor import load_corridor
from pipeline.shared.messages import ADVISORY, CODEC, FRAME, TELEMETRY
from pipeline.shared.topics import Topics
from producers.drive import DriveConfig, WireFormat, drive
from producers.fleet import Fleet, FleetConfig
from producers.listener import AdvisoryListener
from producers.sink import DeliveryError, TelemetrySink
from tests.helpers import assert_one_line_error, corridor, read_messages

pytestmark = pytest.mark.integration


@pytest.fixture
def topics(bootstrap: str) -> Topics:
    t = Topics(regions=9, prefix=f"p{uuid.uuid4().hex[:8]}")
    ensure_topics(bootstrap, t.specs())
    return t


def test_records_land_on_their_regions_partition(bootstrap: str, topics: Topics) -> None:
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=120, seed=11), start_ms=1_764_000_000_000)
    stats = drive(
        fleet, TelemetrySink(bootstrap), topics, DriveConfig(hz=1, duration_s=4, speedup=0, wire=WireFormat.RECORDS)
    )
    msgs = read_messages(bootstrap, topics.telemetry, stats.updates)
    assert len(msgs) == stats.updates == 480
    regions = set()
    for m in msgs:
        rec = CODEC.decode(m.value(), TELEMETRY)
        assert m.partition() == rec["region_id"] and m.key() == str(rec["region_id"]).encode()
        regions.add(rec["region_id"])
    assert len(regions) >= 7, "a fleet spread over 78 km reports to most towers"


def test_frames_carry_every_update_once(bootstrap: str, topics: Topics) -> None:
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=200, seed=12))
    stats = drive(fleet, TelemetrySink(bootstrap), topics, DriveConfig(hz=2, duration_s=3, speedup=0))
    msgs = read_messages(bootstrap, topics.telemetry, 9 * 6)
    updates = []
    for m in msgs:
        frame = CODEC.decode(m.value(), FRAME)
        assert m.partition() == frame["region_id"]
        assert all(u["region_id"] == frame["region_id"] for u in frame["updates"])
        updates += [(u["vehicle_id"], u["seq"]) for u in frame["updates"]]
    assert len(updates) == len(set(updates)) == stats.updates == 1200


def test_vehicles_obey_an_advisory_from_their_regions_topic(bootstrap: str, topics: Topics) -> None:
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=400, seed=13), start_ms=1_764_000_000_000)
    listener = AdvisoryListener(bootstrap, topics.advisories, 9)
    time.sleep(1.0)  # let the assignment settle at the end of the topic
    advisory = {
        "advisory_id": "a1",
        "region_id": 4,
        "tower": "tower-04",
        "target_vehicle": None,
        "direction": None,
        "action": "SLOW_DOWN",
        "target_speed_mps": 12.0,
        "reason": "test",
        "hazard_id": None,
        "issued_at": fleet.start_ms,
        "valid_until": fleet.start_ms + 600_000,
        "trigger_event_time": fleet.start_ms,
        "trigger_hlc": int(time.time() * 1000) << 16,
    }
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topics.advisories, CODEC.encode(ADVISORY, advisory), b"4", 4)
    producer.flush(10)
    deadline = time.monotonic() + 15
    while listener.stats.received == 0 and time.monotonic() < deadline:
        listener.poll(fleet, fleet.start_ms)
        time.sleep(0.05)
    listener.close()
    in_region = fleet.active & (fleet.region == 4)
    assert listener.stats.received == 1 and listener.stats.applied_to == in_region.sum() > 0
    assert (fleet.adv_speed[in_region] == 12.0).all()
    assert (fleet.adv_until[fleet.active & (fleet.region != 4)] == 0).all()
    assert 0 <= listener.stats.latencies_ms[0] < 15_000


def test_advice_is_stamped_when_it_arrives_not_when_a_busy_fleet_next_applies_it(bootstrap: str,
                                                                                  topics: Topics) -> None:  # fmt: skip
    fleet = Fleet(load_corridor(), FleetConfig(vehicles=100, seed=14), start_ms=1_764_000_000_000)
    listener = AdvisoryListener(bootstrap, topics.advisories, 9)
    time.sleep(1.0)  # let the assignment settle at the end of the topic
    sent_ms = int(time.time() * 1000)
    advisory = {
        "advisory_id": "a2", "region_id": 2, "tower": "tower-02", "target_vehicle": None, "direction": None,
        "action": "SLOW_DOWN", "target_speed_mps": 15.0, "reason": "test", "hazard_id": None,
        "issued_at": fleet.start_ms, "valid_until": fleet.start_ms + 600_000,
        "trigger_event_time": fleet.start_ms, "trigger_hlc": sent_ms << 16,
    }  # fmt: skip
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topics.advisories, CODEC.encode(ADVISORY, advisory), b"2", 2)
    producer.flush(10)
    busy_until = time.monotonic() + 1.5
    while time.monotonic() < busy_until:  # the simulation's own work, in Python, holding the interpreter by turns
        sum(range(1000))
    listener.poll(fleet, fleet.start_ms)
    listener.close()
    assert listener.stats.received == 1
    assert listener.stats.latencies_ms[0] < 1_000, "stamped by the radio's thread, not 1.5 s later by the fleet"


def test_an_unreachable_broker_fails_loudly_and_keeps_count() -> None:
    (port,) = free_ports(1)
    sink = TelemetrySink(f"127.0.0.1:{port}", delivery_timeout_s=2)
    sink.send("corridor.telemetry", 0, b"0", [b"x"] * 10)
    with pytest.raises(DeliveryError, match="10 telemetry records failed"):
        sink.flush(timeout_s=10)
    assert sink.stats.acked == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--vehicles", "-5"], "--vehicles"),
        (["--hz", "60"], "at most 50"),
        (["--wire", "json"], "--wire"),
        (["--route", "/nonexistent/route.json"], "no such file"),
    ],
)
def test_bad_produce_arguments_are_one_line_errors(cli_env, args: list[str], needle: str) -> None:
    result = corridor(cli_env, "produce", *args, timeout=60)
    assert_one_line_error(result, needle)


def test_produce_cli_runs_a_short_drive(stack, cli_env) -> None:
    env = dict(cli_env, CORRIDOR_TOPIC_PREFIX=f"c{uuid.uuid4().hex[:8]}")
    result = corridor(env, "produce", "--vehicles", "50", "--duration", "3", "--speedup", "0", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "150 vehicle updates" in result.stdout and "acknowledged" in result.stdout
