"""Tower regions along the route: position → region (with hysteresis at borders), region → partition."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.shared.corridor.errors import RouteError
from pipeline.shared.corridor.route import Route, _check_cover, _num, load_json

__all__ = ["Region", "RegionMap", "load_regions", "parse_regions"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Region:
    id: int
    tower: str
    name: str
    from_km: float
    to_km: float


@dataclass(frozen=True)
class RegionMap:
    regions: tuple[Region, ...]
    hysteresis_km: float
    _starts: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)
    _ends: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", np.array([r.from_km for r in self.regions]))
        object.__setattr__(self, "_ends", np.array([r.to_km for r in self.regions]))

    def __len__(self) -> int:
        return len(self.regions)

    @property
    def towers(self) -> tuple[str, ...]:
        return tuple(r.tower for r in self.regions)

    def lookup(self, km: float) -> int:
        """The region containing `km` (borders belong to the region that starts there)."""
        idx = int(np.searchsorted(self._starts, km, side="right")) - 1
        return min(max(idx, 0), len(self.regions) - 1)

    def lookup_many(self, km: npt.NDArray[np.float64]) -> IntArray:
        idx = np.searchsorted(self._starts, km, side="right") - 1
        return np.clip(idx, 0, len(self.regions) - 1).astype(np.int64)

    def handoff(self, km: npt.NDArray[np.float64], current: IntArray) -> IntArray:
        """Regions after moving to `km`: a vehicle keeps its region until it is more than the
        hysteresis past a border, so one driving along a border does not flap between towers.
        `current` < 0 means no region yet (a vehicle that just entered)."""
        fresh = self.lookup_many(km)
        cur = np.clip(current, 0, len(self.regions) - 1)
        lo = self._starts[cur] - self.hysteresis_km
        hi = self._ends[cur] + self.hysteresis_km
        keep = (current >= 0) & (km >= lo) & (km <= hi)
        return np.where(keep, current, fresh)

    def partition(self, region_id: int) -> int:
        """Kafka partition of a region in every regional topic: the region id itself."""
        if not 0 <= region_id < len(self.regions):
            raise RouteError(f"region {region_id} does not exist (0–{len(self.regions) - 1})")
        return region_id

    def neighbours(self, region_id: int) -> tuple[int, ...]:
        return tuple(r for r in (region_id - 1, region_id + 1) if 0 <= r < len(self.regions))


def parse_regions(data: dict[str, Any], route: Route, source: str = "regions") -> RegionMap:
    raw = data.get("regions")
    if not isinstance(raw, list) or not raw:
        raise RouteError(f"{source}: needs a non-empty list of regions")
    regions = []
    for i, r in enumerate(raw):
        where = f"{source}: region {i}"
        if not isinstance(r, dict):
            raise RouteError(f"{where} is not an object")
        if r.get("id") != i:
            raise RouteError(f"{where}: ids must be 0, 1, 2, … in route order (got {r.get('id')!r})")
        regions.append(
            Region(
                i,
                str(r.get("tower", f"tower-{i:02d}")),
                str(r.get("name", "")),
                _num(r, "from_km", where),
                _num(r, "to_km", where),
            )
        )
    _check_cover(source, "regions", [(r.from_km, r.to_km) for r in regions], route.length_km)
    if len({r.tower for r in regions}) != len(regions):
        raise RouteError(f"{source}: every region needs its own tower id")
    hyst = _num(data, "hysteresis_m", source) / 1000 if "hysteresis_m" in data else 0.2
    if hyst < 0:
        raise RouteError(f"{source}: hysteresis_m must be ≥ 0")
    return RegionMap(tuple(regions), hyst)


def load_regions(path: Path, route: Route) -> RegionMap:
    return parse_regions(load_json(path), route, str(path))
