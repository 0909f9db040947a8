"""Every schema file has one subject, named after the topic that carries it, its versions in order."""

from __future__ import annotations

from pathlib import Path

import schemas
from pipeline.shared.messages import CODEC
from pipeline.shared.subjects import subjects
from pipeline.shared.topics import Topics

ROOT = Path(schemas.__file__).parent


def test_every_schema_file_is_a_version_of_exactly_one_subject() -> None:
    files = sorted(str(p.relative_to(ROOT).with_suffix("")) for p in ROOT.rglob("*.avsc"))
    named = sorted(f for s in subjects(Topics(9)) for f in s.files)
    assert named == files


def test_one_type_topics_follow_topic_names_and_telemetrys_two_types_their_record_names() -> None:
    by_name = {s.name: s for s in subjects(Topics(9, prefix="x"))}
    assert by_name["x.hazards-value"].files == ("hazard_report_v1", "hazard_report"), "oldest version first"
    assert by_name["x.advisories-value"].carried_by == "x.advisories"
    assert {by_name["corridor.VehicleTelemetry"].carried_by, by_name["corridor.TelemetryFrame"].carried_by} == {
        "x.telemetry"
    }
    assert by_name["x.corridor-stats-value"].compatibility == "BACKWARD_TRANSITIVE"


def test_every_schema_the_codec_writes_has_a_subject_so_a_registry_can_give_it_an_id() -> None:
    fingerprints = {v.fingerprint for s in subjects(Topics(9)) for v in s.versions()}
    assert {s.fingerprint for s in CODEC.schemas} <= fingerprints
