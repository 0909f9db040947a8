"""Avro schemas of every record corridor puts on the wire, as `.avsc` files beside this module."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["load"]


#: Files whose records use a named type defined in another file.
_DEPENDENCIES: dict[str, tuple[str, ...]] = {"telemetry_frame": ("vehicle_telemetry",)}


@cache
def _raw(name: str, root: Path | None = None) -> dict[str, Any]:
    where = resources.files("schemas") if root is None else root
    schema: dict[str, Any] = json.loads(where.joinpath(f"{name}.avsc").read_text())
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


def load(name: str, root: Path | None = None) -> dict[str, Any]:
    """The schema `name` (file stem, e.g. "vehicle_telemetry" or "crdt/or_set"), standalone JSON,
    from the schemas shipped with corridor or from the folder `root` (a proposed edit of them)."""
    defs = {}
    for dep in _DEPENDENCIES.get(name, ()):
        raw = _raw(dep, root)
        defs[f"{raw['namespace']}.{raw['name']}"] = raw
    return _inline(_raw(name, root), defs) if defs else _raw(name, root)
