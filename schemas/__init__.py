"""Avro schemas of every record corridor puts on the wire, as `.avsc` files beside this module."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["load"]


#: Files whose records use a named type defined in another file.
_DEPENDENCIES: dict[str, tuple[str, ...]] = {"telemetry_frame": ("vehicle_telemetry",)}


@cache
def _raw(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(resources.files("schemas").joinpath(f"{name}.avsc").read_text())
    return schema


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Replace the first reference to each named type in `defs` by its definition (Avro allows
    later references by name), so every schema is standalone and has one true fingerprint."""
    if isinstance(node, str) and node in defs:
        return defs.pop(node)
    if isinstance(node, list):
        return [_inline(n, defs) for n in node]
    if isinstance(node, dict):
        return {k: (_inline(v, defs) if k in ("type", "items", "values", "fields") else v) for k, v in node.items()}
    return node


def load(name: str) -> dict[str, Any]:
    """The schema `name` (file stem, e.g. "vehicle_telemetry" or "crdt/or_set"), standalone JSON."""
    defs = {}
    for dep in _DEPENDENCIES.get(name, ()):
        raw = _raw(dep)
        defs[f"{raw['namespace']}.{raw['name']}"] = raw
    return _inline(_raw(name), defs) if defs else _raw(name)
