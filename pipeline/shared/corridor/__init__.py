"""The corridor model: the I-69 route and its tower regions. Pure: numbers in, numbers out."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pipeline.shared.corridor.errors import RouteError
from pipeline.shared.corridor.regions import Region, RegionMap, load_regions
from pipeline.shared.corridor.route import Route, Waypoint, load_route

__all__ = ["Corridor", "Region", "RegionMap", "Route", "RouteError", "Waypoint", "default_paths", "load_corridor"]


def default_paths() -> tuple[Path, Path]:
    """The route and tower regions shipped here (I-69 Bloomington–Indianapolis, 9 towers). Other
    files come from `Settings` (CORRIDOR_ROUTE_FILE, CORRIDOR_TOWERS_FILE, read at the edge);
    towers and producers must agree on them, so both take them from the same variables."""
    data = Path(str(resources.files("pipeline.shared.corridor").joinpath("data")))
    return data / "i69_bloomington_indianapolis.json", data / "towers_9.json"


@dataclass(frozen=True)
class Corridor:
    route: Route
    regions: RegionMap


def load_corridor(route_file: Path | None = None, towers_file: Path | None = None) -> Corridor:
    default_route, default_towers = default_paths()
    route = load_route(route_file or default_route)
    return Corridor(route, load_regions(towers_file or default_towers, route))
