"""Every topic corridor uses, declared in one place.

Partition counts follow the tower regions: partition i of a regional topic carries region i, so a
tower worker that owns partition i of telemetry also owns it in every co-partitioned topic and in
the changelogs of its tables (Faust writes a changelog to the partition of the source event).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.shared.errors import ConfigError

__all__ = ["TopicSpec", "Topics"]

_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    replication: int = 1


@dataclass(frozen=True, slots=True)
class Topics:
    """Names and shapes of corridor's topics for a corridor of `regions` tower regions."""

    regions: int
    prefix: str = "corridor"
    replication: int = 1

    def __post_init__(self) -> None:
        if self.regions < 1:
            raise ConfigError(f"a corridor needs at least one tower region, got {self.regions}")

    @property
    def telemetry(self) -> str:
        """Vehicle telemetry, keyed by region id: partition = region."""
        return f"{self.prefix}.telemetry"

    @property
    def hazards(self) -> str:
        """Hazard reports (DENM-like), keyed by the region they lie in."""
        return f"{self.prefix}.hazards"

    @property
    def advisories(self) -> str:
        """Control advisories, one partition per region: vehicles read only their region's."""
        return f"{self.prefix}.advisories"

    @property
    def tower_sync(self) -> str:
        """CRDT deltas that towers publish for their neighbours; partition = publishing region."""
        return f"{self.prefix}.tower-sync"

    @property
    def dead_letter(self) -> str:
        """Records a tower could not accept, with the original bytes and a reason header."""
        return f"{self.prefix}.dead-letter"

    @property
    def corridor_stats(self) -> str:
        """The cloud tier's corridor-wide figures (`corridor analytics`), one partition: in window order."""
        return f"{self.prefix}.corridor-stats"

    def regional_specs(self) -> list[TopicSpec]:
        """The topics partitioned by tower region: the ones the towers and vehicles use."""
        regional = {"retention.ms": str(_DAY_MS), "cleanup.policy": "delete"}
        n, r = self.regions, self.replication
        return [
            TopicSpec(self.telemetry, n, dict(regional), r),
            TopicSpec(self.hazards, n, dict(regional), r),
            TopicSpec(self.advisories, n, dict(regional), r),
            TopicSpec(self.tower_sync, n, {"retention.ms": str(_DAY_MS)}, r),
            TopicSpec(self.dead_letter, n, {"retention.ms": str(7 * _DAY_MS)}, r),
        ]

    def specs(self) -> list[TopicSpec]:
        """Every topic of a deployment, as its admin declares them."""
        return [*self.regional_specs(), TopicSpec(self.corridor_stats, 1, {"retention.ms": str(7 * _DAY_MS)},
                                                  self.replication)]  # fmt: skip
