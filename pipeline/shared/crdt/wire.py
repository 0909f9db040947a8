"""CRDT states to and from Avro single-object bytes (the fingerprint doubles as the type tag)."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import schemas
from pipeline.shared.codec import AvroCodec, CodecError, Schema
from pipeline.shared.crdt.base import Crdt
from pipeline.shared.crdt.columns import LWWColumns
from pipeline.shared.crdt.counters import GCounter, PNCounter
from pipeline.shared.crdt.errors import MalformedStateError
from pipeline.shared.crdt.lwwmap import LWWMap
from pipeline.shared.crdt.orset import ORSet
from pipeline.shared.crdt.registers import LWWRegister, MaxRegister

__all__ = ["CRDT_SCHEMAS", "decode_as", "decode_state", "encode_state"]

S = TypeVar("S")

_FILES: dict[type, str] = {
    GCounter: "crdt/g_counter",
    PNCounter: "crdt/pn_counter",
    LWWRegister: "crdt/lww_register",
    MaxRegister: "crdt/max_register",
    ORSet: "crdt/or_set",
    LWWMap: "crdt/lww_map",
}
CRDT_SCHEMAS: dict[type, Schema] = {t: Schema.of(schemas.load(f)) for t, f in _FILES.items()}
_BY_NAME: dict[str, type[Crdt]] = {CRDT_SCHEMAS[t].name: t for t in _FILES}
_CODEC = AvroCodec(CRDT_SCHEMAS.values())


def encode_state(state: Crdt) -> bytes:
    if isinstance(state, LWWColumns):  # the same CRDT as an LWW-Map of row bytes, and so on the wire
        state = state.to_lwwmap()
    record: dict[str, Any] = state.to_record()
    if isinstance(state, MaxRegister) and state.value == -math.inf:
        record = {"value": float("-inf")}
    return _CODEC.encode(CRDT_SCHEMAS[type(state)], record)


def decode_state(data: bytes) -> Crdt:
    """Decode any CRDT state; bad bytes raise `MalformedStateError` and build nothing."""
    try:
        writer = _CODEC.writer_of(data)
        record = _CODEC.decode(data)
    except CodecError as exc:
        raise MalformedStateError(str(exc)) from None
    return _BY_NAME[writer.name].from_record(record)


def decode_as(data: bytes, kind: type[S]) -> S:
    """Decode a state that must be of type `kind`: bytes of another CRDT type are as malformed as
    bad bytes (a hazard map sent where a member set belongs must not be merged into it)."""
    state = decode_state(data)
    if not isinstance(state, kind):
        raise MalformedStateError(f"expected a {kind.__name__} state, got a {type(state).__name__}")
    return state
