"""Hypothesis strategies that build any record an Avro schema allows, leaning on the values that break
code written for the happy path: edges of every integer width, NaN, infinities and 1e300, empty and
long strings with NUL, '/' and non-ASCII characters, empty and long arrays."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["from_schema"]

_INT_EDGES = [0, 1, -1, 2**31 - 1, -(2**31), 7, 99]
_LONG_EDGES = [0, 1, -1, 2**62, 2**63 - 1, -(2**63), 1 << 48, 1_764_000_000_000]
_DOUBLE_EDGES = [0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e300, -1e300, 5e-324]

ints = st.one_of(st.sampled_from(_INT_EDGES), st.integers(-(2**31), 2**31 - 1))
longs = st.one_of(st.sampled_from(_LONG_EDGES), st.integers(-(2**63), 2**63 - 1))
doubles = st.one_of(st.sampled_from(_DOUBLE_EDGES), st.floats())
floats = st.one_of(st.sampled_from(_DOUBLE_EDGES[:5]), st.floats(width=32))
strings = st.one_of(
    st.sampled_from(["", "veh-0000001", "veh-" + "9" * 25, "a/b", "x\x00y", "../../etc", "ä" * 3, "$share/g"]),
    st.text(max_size=40),
    st.integers(100, 3_000).map(lambda n: "v" * n),
)
raw_bytes = st.one_of(st.binary(max_size=64), st.just(b""), st.just(b"\xc3\x01" + b"\x00" * 8))


def from_schema(schema: Any, names: dict[str, Any] | None = None, depth: int = 0) -> st.SearchStrategy[Any]:
    """Any value of `schema` (an Avro schema as parsed JSON). Named types are remembered as they are
    defined, so a later reference by name builds the same shape."""
    names = {} if names is None else names
    if isinstance(schema, str):
        primitive = {
            "null": st.none(), "boolean": st.booleans(), "int": ints, "long": longs, "float": floats,
            "double": doubles, "bytes": raw_bytes, "string": strings,
        }.get(schema)  # fmt: skip
        if primitive is not None:
            return primitive
        return st.deferred(lambda: names[schema] if schema in names else names[schema.rsplit(".", 1)[-1]])
    if isinstance(schema, list):  # a union
        return st.one_of([from_schema(branch, names, depth) for branch in schema])
    kind = schema["type"]
    if kind == "record":
        fields = {f["name"]: from_schema(f["type"], names, depth + 1) for f in schema["fields"]}
        out = st.fixed_dictionaries(fields)
        _remember(schema, out, names)
        return out
    if kind == "enum":
        out = st.sampled_from(schema["symbols"])
        _remember(schema, out, names)
        return out
    if kind == "array":
        return st.lists(from_schema(schema["items"], names, depth + 1), max_size=0 if depth > 3 else 6)
    if kind == "map":
        return st.dictionaries(strings, from_schema(schema["values"], names, depth + 1), max_size=0 if depth > 3 else 5)
    if kind == "fixed":
        out = st.binary(min_size=schema["size"], max_size=schema["size"])
        _remember(schema, out, names)
        return out
    return from_schema(kind, names, depth)


def _remember(schema: dict[str, Any], strategy: st.SearchStrategy[Any], names: dict[str, Any]) -> None:
    name = schema["name"]
    names[name] = strategy
    if "namespace" in schema:
        names[f"{schema['namespace']}.{name}"] = strategy
