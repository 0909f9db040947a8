"""Avro single-object encoding: every message names its writer schema, no registry needed.

Frame: `C3 01` + the writer schema's 8-byte CRC-64-AVRO fingerprint (little-endian) + the
schemaless Avro body (Avro specification, "Single-object encoding"). A decoder knows a set of
writer schemas by fingerprint and resolves the writer to the reader's schema, so a v2 producer and
a v1 tower (or the reverse) still understand each other where the schemas are compatible.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from pipeline.shared.errors import CorridorError

__all__ = ["MAGIC", "AvroCodec", "CodecError", "CorruptRecordError", "Schema", "UnknownSchemaError"]

MAGIC = b"\xc3\x01"
_HEADER = len(MAGIC) + 8


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
        for s in schemas:
            self.register(s)

    def register(self, schema: Schema) -> Schema:
        self._by_fp[schema.fingerprint] = schema
        return schema

    def encode(self, schema: Schema, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(schema.fingerprint)
        try:
            schemaless_writer(buf, schema.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise CodecError(f"record does not fit schema {schema.name}: {exc}") from None
        return buf.getvalue()

    def writer_of(self, data: bytes) -> Schema:
        if len(data) < _HEADER or data[:2] != MAGIC:
            raise CorruptRecordError("not an Avro single-object record (missing C3 01 header)")
        schema = self._by_fp.get(data[2:_HEADER])
        if schema is None:
            raise UnknownSchemaError(f"unknown schema fingerprint {data[2:_HEADER].hex()}")
        return schema

    def decode(self, data: bytes, reader: Schema | None = None) -> dict[str, Any]:
        """Decode with the writer schema named in the frame, resolved to `reader` when given."""
        writer = self.writer_of(data)
        buf = io.BytesIO(data)
        buf.seek(_HEADER)
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
