"""Which schema-registry subject each of corridor's schemas lives under, and how it may change.

A topic that carries one record type has a subject named after it (the Confluent serializers'
TopicNameStrategy, `<topic>-value`); the telemetry topic carries two (frames and single updates),
so each has a subject named after the record (RecordNameStrategy); the CRDT states travel inside
TowerSync records and the towers' table changelogs, never as a topic's value, so they too are
named after the record. A subject's versions are its schema files, oldest first.

Compatibility: FULL_TRANSITIVE wherever the writers and the readers are upgraded apart from one
another — vehicles and towers (telemetry, hazards, advisories: a fleet is never upgraded at once),
and towers among themselves during a rolling upgrade (tower-sync) — so that any version reads any
other. The corridor-wide figures have one writer, the analytics job, and readers that are upgraded
first: BACKWARD_TRANSITIVE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import schemas
from pipeline.shared.codec import Schema
from pipeline.shared.topics import Topics

__all__ = ["Compatibility", "Subject", "subjects"]

Compatibility = Literal["FULL_TRANSITIVE", "BACKWARD_TRANSITIVE"]


@dataclass(frozen=True, slots=True)
class Subject:
    name: str
    files: tuple[str, ...]  # schema files (stems under schemas/), oldest version first
    compatibility: Compatibility
    carried_by: str  # the topic whose values these are, or where the records travel

    def versions(self, root: Path | None = None) -> list[Schema]:
        """The subject's schemas, from corridor's own files or from the folder `root`."""
        return [Schema.of(schemas.load(stem, root)) for stem in self.files]


_CRDT_FILES = ("g_counter", "pn_counter", "lww_register", "max_register", "or_set", "lww_map")


def subjects(topics: Topics) -> list[Subject]:
    """Every subject corridor registers, for its topics under `topics.prefix`."""
    full: Compatibility = "FULL_TRANSITIVE"
    out = [
        Subject("corridor.VehicleTelemetry", ("vehicle_telemetry",), full, topics.telemetry),
        Subject("corridor.TelemetryFrame", ("telemetry_frame",), full, topics.telemetry),
        Subject(f"{topics.hazards}-value", ("hazard_report_v1", "hazard_report"), full, topics.hazards),
        Subject(f"{topics.advisories}-value", ("control_advisory_v1", "control_advisory"), full, topics.advisories),
        Subject(f"{topics.tower_sync}-value", ("tower_sync_v1", "tower_sync"), full, topics.tower_sync),
        Subject(f"{topics.corridor_stats}-value", ("corridor_stats",), "BACKWARD_TRANSITIVE", topics.corridor_stats),
    ]
    for stem in _CRDT_FILES:
        name = schemas.load(f"crdt/{stem}")["name"]
        out.append(Subject(f"corridor.crdt.{name}", (f"crdt/{stem}",), full, "inside TowerSync and table changelogs"))
    return out
