"""The radio link's MQTT topics (version 1): what vehicles publish to their tower, and what they hear.

    corridor/v1/region/<r>/telemetry    a vehicle's VehicleTelemetry (single-object encoded), QoS 0
    corridor/v1/region/<r>/hazards      a HazardReport (DENM-like) seen by a vehicle, QoS 1
    corridor/v1/region/<r>/advisories   ControlAdvisory records for every vehicle of region r, QoS 1
    corridor/v1/vehicle/<id>/advisories ControlAdvisory records addressed to one vehicle, QoS 1

A vehicle publishes to, and listens on, the region it is in; crossing into the next region it
moves both (handover). Its own advisory topic does not move. The towers address almost every
advisory to one vehicle: on a region topic each would reach every vehicle of the region (≈ 111
copies with 1,000 vehicles in 9 regions, measured by the `mqtt` bench), on the vehicle's topic it
reaches one. Gateways share the telemetry and hazard subscriptions through
an MQTT 5 shared subscription (`$share/<group>/...`), so several can split one broker's load.
The version is part of the name: a v2 payload would get v2 topics beside these.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.shared.errors import ConfigError

__all__ = ["KINDS", "RadioTopics"]

KINDS = ("telemetry", "hazards", "advisories")


@dataclass(frozen=True, slots=True)
class RadioTopics:
    regions: int
    root: str = "corridor/v1"

    def __post_init__(self) -> None:
        if not self.root or any(c in self.root for c in "+#\0") or self.root.startswith(("/", "$")):
            raise ConfigError(f"MQTT topic root {self.root!r}: no wildcards, no leading '/' or '$'")

    def of(self, kind: str, region: int) -> str:
        return f"{self.root}/region/{region}/{kind}"

    def telemetry(self, region: int) -> str:
        return self.of("telemetry", region)

    def hazards(self, region: int) -> str:
        return self.of("hazards", region)

    def advisories(self, region: int) -> str:
        return self.of("advisories", region)

    def vehicle_advisories(self, vehicle_id: str) -> str:
        """The topic of the advisories addressed to one vehicle (ValueError for an id a topic
        level cannot hold)."""
        if not vehicle_id or any(c in vehicle_id for c in "+#/\0"):
            raise ValueError(f"vehicle id {vehicle_id!r} cannot be an MQTT topic level")
        return f"{self.root}/vehicle/{vehicle_id}/advisories"

    def every_vehicle_advisories(self) -> str:
        return f"{self.root}/vehicle/+/advisories"

    def every(self, kind: str, group: str | None = None) -> str:
        """The filter for `kind` in every region; with `group`, as a shared subscription."""
        flt = f"{self.root}/region/+/{kind}"
        return f"$share/{group}/{flt}" if group else flt

    def parse(self, topic: str) -> tuple[str, int]:
        """(kind, region) of one of these topics; ValueError with the reason for any other."""
        prefix = f"{self.root}/region/"
        if not topic.startswith(prefix):
            raise ValueError(f"not under {prefix}")
        parts = topic[len(prefix) :].split("/")
        if len(parts) != 2 or parts[1] not in KINDS:
            raise ValueError(f"expected {prefix}<region>/<{'|'.join(KINDS)}>")
        if not parts[0].isdigit() or not 0 <= int(parts[0]) < self.regions:
            raise ValueError(f"no region {parts[0]!r} (0-{self.regions - 1})")
        return parts[1], int(parts[0])
