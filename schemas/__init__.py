"""Avro schemas of every record corridor puts on the wire, as `.avsc` files beside this module."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["load"]


@cache
def load(name: str) -> dict[str, Any]:
    """The schema `name` (file stem, e.g. "vehicle_telemetry" or "crdt/or_set") as parsed JSON."""
    text = resources.files("schemas").joinpath(f"{name}.avsc").read_text()
    return json.loads(text)
