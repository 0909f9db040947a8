"""The corridor model: the I-69 route and its tower regions. Pure: numbers in, numbers out."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pipeline.corridor.errors import RouteError
from pipeline.corridor.regions import Region, RegionMap, load_regions
from pipeline.corridor.route import Route, Waypoint, load_route

__all__ = ["Corridor", "Region", "RegionMap", "Route", "RouteError", "Waypoint", "default_paths", "load_corridor"]


def default_paths() -> tuple[Path, Path]:
    """The route and tower regions every part uses unless told otherwise: CORRIDOR_ROUTE_FILE and
    CORRIDOR_TOWERS_FILE (on Kubernetes, files of a ConfigMap), else the I-69 data shipped here.
    Towers and producers must agree on them, so both read the same variables."""
    data = Path(str(resources.files("pipeline.corridor").joinpath("data")))
    route = os.environ.get("CORRIDOR_ROUTE_FILE") or data / "i69_bloomington_indianapolis.json"
    towers = os.environ.get("CORRIDOR_TOWERS_FILE") or data / "towers_9.json"
    return Path(route), Path(towers)


@dataclass(frozen=True)
class Corridor:
    route: Route
    regions: RegionMap


def load_corridor(route_file: Path | None = None, towers_file: Path | None = None) -> Corridor:
    default_route, default_towers = default_paths()
    route = load_route(route_file or default_route)
    return Corridor(route, load_regions(towers_file or default_towers, route))
