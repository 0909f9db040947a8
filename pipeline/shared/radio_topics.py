"""The radio link's MQTT topics (version 2): what vehicles publish to their tower, and what they hear.

    corridor/v2/region/<r>/telemetry/<id>  VehicleTelemetry (single-object encoded) sent by vehicle <id>, QoS 0
    corridor/v2/region/<r>/hazards/<id>    a HazardReport (DENM-like) sent by vehicle <id>, QoS 1
    corridor/v2/region/<r>/advisories      ControlAdvisory records for every vehicle of region r, QoS 1
    corridor/v2/vehicle/<id>/advisories    ControlAdvisory records addressed to one vehicle, QoS 1

The sender is part of an uplink topic because MQTT hands a subscriber no word of who published: the
broker's ACLs let an authenticated vehicle publish only under its own id, and the gateway refuses a
message whose payload names another vehicle than its topic (version 1 had no sender level, so any
client could speak for any vehicle). A vehicle publishes to, and listens on, the region it is in;
crossing into the next region it moves both (handover). Its own advisory topic does not move. The
towers address almost every advisory to one vehicle: on a region topic each would reach every vehicle
of the region (≈ 111 copies with 1,000 vehicles in 9 regions, measured by the `mqtt` bench), on the
vehicle's topic it reaches one. Gateways share the telemetry and hazard subscriptions through an
MQTT 5 shared subscription (`$share/<group>/...`), so several can split one broker's load.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.shared.errors import ConfigError

__all__ = ["KINDS", "UPLINK", "RadioTopics"]

KINDS = ("telemetry", "hazards", "advisories")
UPLINK = ("telemetry", "hazards")  # what vehicles send: their topics end with the sender's id


def _level(vehicle_id: str) -> str:
    """A vehicle id as a topic level (ValueError for one a level cannot hold)."""
    if not vehicle_id or any(c in vehicle_id for c in "+#/\0$"):
        raise ValueError(f"vehicle id {vehicle_id!r} cannot be an MQTT topic level")
    return vehicle_id


@dataclass(frozen=True, slots=True)
class RadioTopics:
    regions: int
    root: str = "corridor/v2"

    def __post_init__(self) -> None:
        if not self.root or any(c in self.root for c in "+#\0") or self.root.startswith(("/", "$")):
            raise ConfigError(f"MQTT topic root {self.root!r}: no wildcards, no leading '/' or '$'")

    def of(self, kind: str, region: int, sender: str = "+") -> str:
        """A region's topic of `kind`; an uplink kind's for `sender` (every sender: `+`)."""
        base = f"{self.root}/region/{region}/{kind}"
        return f"{base}/{sender if sender == '+' else _level(sender)}" if kind in UPLINK else base

    def telemetry(self, region: int, sender: str = "+") -> str:
        return self.of("telemetry", region, sender)

    def hazards(self, region: int, sender: str = "+") -> str:
        return self.of("hazards", region, sender)

    def advisories(self, region: int) -> str:
        return self.of("advisories", region)

    def vehicle_advisories(self, vehicle_id: str) -> str:
        """The topic of the advisories addressed to one vehicle."""
        return f"{self.root}/vehicle/{_level(vehicle_id)}/advisories"

    def every_vehicle_advisories(self) -> str:
        return f"{self.root}/vehicle/+/advisories"

    def every(self, kind: str, group: str | None = None) -> str:
        """The filter for `kind` in every region (from every sender); with `group`, as a shared subscription."""
        flt = self.of(kind, 0).replace("/region/0/", "/region/+/", 1)
        return f"$share/{group}/{flt}" if group else flt

    def parse(self, topic: str) -> tuple[str, int, str | None]:
        """(kind, region, sender) of one of these topics (sender None for a region's advisories);
        ValueError with the reason for any other."""
        prefix = f"{self.root}/region/"
        if not topic.startswith(prefix):
            raise ValueError(f"not under {prefix}")
        parts = topic[len(prefix) :].split("/")
        if len(parts) < 2 or parts[1] not in KINDS or len(parts) != (3 if parts[1] in UPLINK else 2):
            raise ValueError(f"expected {prefix}<region>/<telemetry|hazards>/<vehicle> or {prefix}<region>/advisories")
        if not parts[0].isdigit() or not 0 <= int(parts[0]) < self.regions:
            raise ValueError(f"no region {parts[0]!r} (0-{self.regions - 1})")
        sender = _level(parts[2]) if len(parts) == 3 else None
        return parts[1], int(parts[0]), sender
