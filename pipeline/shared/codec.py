"""Avro records that name their writer schema, in either of two headers, told apart by the first byte.

Single-object encoding (the default, no registry needed): `C3 01` + the writer schema's 8-byte
CRC-64-AVRO fingerprint (little-endian) + the schemaless Avro body (Avro specification,
"Single-object encoding"). The Confluent wire format: `00` + the schema's id in a schema registry
(4 bytes, big-endian) + the same body; a codec reads it once it is told the registry's ids of the
schemas it knows (`use_registry_ids`), and writes it when told to. A decoder knows a set of writer
schemas and resolves the writer to the reader's schema, so a v2 producer and a v1 tower (or the
reverse) still understand each other where the schemas are compatible; a topic can move from one
header to the other while it runs, since every reader takes both.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from pipeline.shared.errors import CorridorError

__all__ = [
    "CONFLUENT_MAGIC", "MAGIC", "WIRE_FORMATS", "AvroCodec", "CodecError", "CorruptRecordError", "Schema",
    "UnknownSchemaError", "WireFormat",
]  # fmt: skip

MAGIC = b"\xc3\x01"
_HEADER = len(MAGIC) + 8
#: the Confluent wire format's first byte; the schema's registry id follows, 4 bytes big-endian
CONFLUENT_MAGIC = b"\x00"
_CONFLUENT_HEADER = 5
WireFormat = Literal["single-object", "confluent"]
WIRE_FORMATS: tuple[WireFormat, ...] = ("single-object", "confluent")


class CodecError(CorridorError):
    """A message could not be encoded or decoded; towers dead-letter the record with this reason."""


class UnknownSchemaError(CodecError):
    """The fingerprint names no schema this reader knows: a newer producer, or foreign bytes."""


class CorruptRecordError(CodecError):
    """The bytes are not a single-object Avro record of the named schema (truncated, or garbage)."""


@dataclass(frozen=True, slots=True, eq=False)
class Schema:
    """A parsed schema with its full name and fingerprint."""

    name: str
    parsed: Any
    fingerprint: bytes

    @classmethod
    def of(cls, schema: dict[str, Any]) -> Schema:
        parsed = parse_schema(schema)
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
        name = parsed["name"] if isinstance(parsed, dict) else str(parsed)
        return cls(name, parsed, fp)


class AvroCodec:
    """Encoder/decoder over a set of known writer schemas (every version still on the wire)."""

    def __init__(self, schemas: Iterable[Schema] = ()) -> None:
        self._by_fp: dict[bytes, Schema] = {}
        self._by_id: dict[int, Schema] = {}  # registry id → schema, once a registry's ids are known
        self._heads: dict[bytes, bytes] = {}  # fingerprint → the header this codec writes
        self.wire: WireFormat = "single-object"
        for s in schemas:
            self.register(s)

    def register(self, schema: Schema) -> Schema:
        self._by_fp[schema.fingerprint] = schema
        return schema

    @property
    def schemas(self) -> tuple[Schema, ...]:
        return tuple(self._by_fp.values())

    def use_registry_ids(self, ids: Mapping[bytes, int], wire: WireFormat) -> None:
        """Read the Confluent format of the schemas in `ids` (fingerprint → registry id) from now on,
        and write `wire`. Every schema this codec knows needs an id before it can write Confluent."""
        if wire == "confluent" and (missing := [s.name for s in self.schemas if s.fingerprint not in ids]):
            raise CodecError(f"no registry id for {', '.join(sorted(set(missing)))}: the Confluent format needs one")
        for fp, sid in ids.items():
            if fp not in self._by_fp or not 0 <= sid < 2**31:
                raise CodecError(f"registry id {sid} for an unknown schema or out of range")
        self._by_id = {sid: self._by_fp[fp] for fp, sid in ids.items()}
        confluent = wire == "confluent"
        self._heads = {fp: CONFLUENT_MAGIC + sid.to_bytes(4, "big") for fp, sid in ids.items()} if confluent else {}
        self.wire = wire

    def headers_of(self, schema: Schema) -> tuple[bytes, ...]:
        """Every header a record of `schema` may carry: single-object, and Confluent once an id is known."""
        sid = next((i for i, s in self._by_id.items() if s is schema), None)
        single = MAGIC + schema.fingerprint
        return (single,) if sid is None else (single, CONFLUENT_MAGIC + sid.to_bytes(4, "big"))

    def header(self, schema: Schema) -> bytes:
        """The header this codec writes before a `schema` body."""
        return self._heads.get(schema.fingerprint) or MAGIC + schema.fingerprint

    def encode(self, schema: Schema, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self.header(schema))
        try:
            schemaless_writer(buf, schema.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise CodecError(f"record does not fit schema {schema.name}: {exc}") from None
        return buf.getvalue()

    def split(self, data: bytes) -> tuple[Schema, int]:
        """The writer schema a record names, and where its body starts, by its first byte."""
        if data[:1] == CONFLUENT_MAGIC and len(data) >= _CONFLUENT_HEADER:
            sid = int.from_bytes(data[1:_CONFLUENT_HEADER], "big")
            schema = self._by_id.get(sid)
            if schema is None:
                known = "no schema registry is configured" if not self._by_id else "not one of corridor's schemas"
                raise UnknownSchemaError(f"Confluent-format record of schema id {sid}: {known}")
            return schema, _CONFLUENT_HEADER
        if len(data) < _HEADER or data[:2] != MAGIC:
            raise CorruptRecordError("not an Avro record: neither a single-object (C3 01) nor a Confluent (00) header")
        schema = self._by_fp.get(data[2:_HEADER])
        if schema is None:
            raise UnknownSchemaError(f"unknown schema fingerprint {data[2:_HEADER].hex()}")
        return schema, _HEADER

    def writer_of(self, data: bytes) -> Schema:
        return self.split(data)[0]

    def decode(self, data: bytes, reader: Schema | None = None) -> dict[str, Any]:
        """Decode with the writer schema named in the header, resolved to `reader` when given."""
        writer, start = self.split(data)
        buf = io.BytesIO(data)
        buf.seek(start)
        try:
            if reader is None or reader.fingerprint == writer.fingerprint:
                record = schemaless_reader(buf, writer.parsed, None)
            else:
                record = schemaless_reader(buf, writer.parsed, reader.parsed)
        except Exception as exc:  # fastavro raises many types on bad bytes (EOFError, ValueError, ...)
            raise CorruptRecordError(f"corrupt {writer.name} record: {type(exc).__name__}: {exc}") from None
        if buf.tell() != len(data):
            raise CorruptRecordError(f"{len(data) - buf.tell()} trailing bytes after a {writer.name} record")
        if not isinstance(record, dict):  # every schema registered here is a record
            raise CorruptRecordError(f"a {writer.name} did not decode to a record")
        return record
