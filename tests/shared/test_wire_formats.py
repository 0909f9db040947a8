"""Both headers on every path: a codec given a registry's ids writes the Confluent wire format
(00 + a 4-byte schema id) and every reader still takes single-object records, so a topic can move
from one header to the other while it runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.shared.codec import CONFLUENT_MAGIC, MAGIC, AvroCodec, CodecError, UnknownSchemaError
from pipeline.shared.messages import ADVISORY, CODEC, FRAME, HAZARD, TELEMETRY
from producers.radio import vehicle_id_of, vehicle_num_of
from tests.shared.test_codec import HAZARD_RECORD, TELEMETRY_RECORD
from tests.towers.test_frames import producer_frames, reference, same
from towers.advisories import encode_advisories
from towers.frames import decode_frame
from towers.gateway.batch import assemble_frame
from towers.rules import Advice

#: ids as a registry might hand them out: anything but the order corridor knows its schemas in
IDS = {s.fingerprint: 1000 + 7 * i for i, s in enumerate(reversed(CODEC.schemas))}


@pytest.fixture
def confluent() -> Iterator[None]:
    CODEC.use_registry_ids(IDS, "confluent")
    try:
        yield
    finally:
        CODEC.use_registry_ids({}, "single-object")


def test_a_record_is_written_with_its_registry_id_and_either_header_reads_back(confluent: None) -> None:
    raw = CODEC.encode(TELEMETRY, TELEMETRY_RECORD)
    assert raw[:1] == CONFLUENT_MAGIC and int.from_bytes(raw[1:5], "big") == IDS[TELEMETRY.fingerprint]
    assert CODEC.decode(raw, TELEMETRY) == TELEMETRY_RECORD
    single = MAGIC + TELEMETRY.fingerprint + raw[5:]
    assert CODEC.decode(single, TELEMETRY) == TELEMETRY_RECORD
    assert vehicle_id_of(raw) == vehicle_id_of(single) == "veh-0000042"
    assert vehicle_num_of(raw) == vehicle_num_of(single) == 42


def test_an_id_no_one_gave_and_a_confluent_record_without_a_registry_are_refused() -> None:
    body = CODEC.encode(HAZARD, HAZARD_RECORD)[10:]
    expected = CODEC.decode(CODEC.encode(HAZARD, HAZARD_RECORD), HAZARD)
    with pytest.raises(UnknownSchemaError, match="no schema registry is configured"):
        CODEC.decode(CONFLUENT_MAGIC + (1000).to_bytes(4, "big") + body)
    codec = AvroCodec(CODEC.schemas)
    codec.use_registry_ids(IDS, "single-object")  # reads the Confluent format, writes single-object
    assert codec.decode(CONFLUENT_MAGIC + IDS[HAZARD.fingerprint].to_bytes(4, "big") + body, HAZARD) == expected
    assert codec.encode(HAZARD, HAZARD_RECORD)[:2] == MAGIC
    with pytest.raises(UnknownSchemaError, match="not one of corridor's schemas"):
        codec.decode(CONFLUENT_MAGIC + (999).to_bytes(4, "big") + body)


def test_the_confluent_format_needs_an_id_for_every_schema_it_may_write() -> None:
    codec = AvroCodec(CODEC.schemas)
    with pytest.raises(CodecError, match="no registry id for"):
        codec.use_registry_ids({TELEMETRY.fingerprint: 1}, "confluent")
    with pytest.raises(CodecError, match="out of range"):
        codec.use_registry_ids({**IDS, TELEMETRY.fingerprint: 2**31}, "confluent")


def test_the_producers_confluent_frames_take_the_fast_path_and_match_fastavro(confluent: None) -> None:
    for raw in producer_frames(300, 2):
        assert raw[:5] == CONFLUENT_MAGIC + IDS[FRAME.fingerprint].to_bytes(4, "big")
        _, got = decode_frame(raw)
        assert got.spans is not None, "a Confluent frame is read column-wise too"
        same(got, reference(raw))
        assert got.record_bytes(0)[:1] == CONFLUENT_MAGIC
        assert CODEC.decode(got.record_bytes(0), TELEMETRY) == CODEC.decode(raw, FRAME)["updates"][0]


def test_the_gateways_frames_and_the_towers_advisories_follow_the_wire(confluent: None) -> None:
    body = CODEC.encode(TELEMETRY, TELEMETRY_RECORD)[5:]
    frame = assemble_frame(1, 9, 5, 6, [body, body])
    assert CODEC.decode(frame, FRAME)["updates"] == [TELEMETRY_RECORD, TELEMETRY_RECORD]
    advice = Advice("veh-0000042", True, "SLOW_DOWN", 20.0, "hazard ahead", "hz-1", 1, 2, 40.0)
    (raw,) = encode_advisories([advice], "t1-ab", 0, 1, "t1", 10, 20)
    assert raw[:5] == CONFLUENT_MAGIC + IDS[ADVISORY.fingerprint].to_bytes(4, "big")
    assert CODEC.decode(raw, ADVISORY)["target_vehicle"] == "veh-0000042"
