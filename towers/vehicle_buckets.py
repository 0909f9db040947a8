"""A region's vehicle table buckets: which bucket a vehicle's key falls in, and the bucket's value
in the table (format 2, written: column-wise, tombstones included; format 1, an Avro LWW-Map, still
read). Pure."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import numpy.typing as npt

from pipeline.shared.codec import MAGIC
from pipeline.shared.crdt import LWWColumns, LWWMap, MalformedStateError, decode_state

__all__ = ["BUCKETS", "VEHICLE", "bucket_of", "read_bucket", "write_bucket"]

BUCKETS = 16
I64 = npt.NDArray[np.int64]

#: A vehicle's latest state: the row of the `vehicles` map, packed little-endian (31 bytes).
VEHICLE = np.dtype(
    [("km", "<f8"), ("v", "<f4"), ("accel", "<f4"), ("energy", "<f4"), ("nb", "u1"), ("lane", "u1"),
     ("brake", "u1"), ("et", "<i8")]
)  # fmt: skip
#: The table value of a vehicle bucket starts with its format version. 1 (an Avro LWW-Map whose
#: values are a version byte and a VEHICLE row) is still read; 2 is written (`bucket_bytes`).
_V1_VALUE = struct.Struct("<BdfffBBBq")
_V2 = 2
_V2_HEAD = struct.Struct("<BIH")  # version, entries, replica names

_BUCKET_CACHE: dict[str, int] = {}


def bucket_of(vehicle_id: str) -> int:
    """Stable across processes (unlike `hash`), so a key always lands in the same table bucket."""
    b = _BUCKET_CACHE.get(vehicle_id)
    if b is None:
        if len(_BUCKET_CACHE) > 1_000_000:  # ids are per trip: bound the memo
            _BUCKET_CACHE.clear()
        b = _BUCKET_CACHE[vehicle_id] = zlib.crc32(vehicle_id.encode()) % BUCKETS
    return b


def write_bucket(
    keys: list[bytes],
    replica_names: list[str],
    ts: npt.NDArray[np.int64],
    replica: npt.NDArray[np.int32],
    live: npt.NDArray[np.bool_],
    rows: npt.NDArray[np.void],
) -> bytes:
    """Format 2: version, counts, replica names, then key lengths, keys, HLCs, replicas, liveness, rows."""
    names = [n.encode() for n in replica_names]
    parts = [_V2_HEAD.pack(_V2, len(keys), len(names))]
    parts += [struct.pack("<H", len(n)) + n for n in names]
    parts += [
        np.array([len(k) for k in keys], "<u2").tobytes(),
        b"".join(keys),
        ts.astype("<i8").tobytes(),
        replica.astype("<u2").tobytes(),
        live.astype("u1").tobytes(),
        rows.tobytes(),
    ]
    return b"".join(parts)


def read_bucket(raw: bytes) -> LWWColumns:
    """A vehicle bucket's table value, in either format."""
    if raw[:2] == MAGIC:
        return _bucket_v1(raw)
    if raw[:1] == bytes([_V2]):
        return _bucket_v2(raw)
    raise MalformedStateError(f"unknown vehicle bucket format {raw[:1].hex()}")


def _bucket_v1(raw: bytes) -> LWWColumns:
    stored = decode_state(raw)
    if not isinstance(stored, LWWMap):
        raise MalformedStateError(f"a vehicle bucket holds an LWW-Map, not {type(stored).__name__}")
    rows = {}
    for vid, (ts, r, packed) in stored.entries.items():
        if packed is not None and (len(packed) != _V1_VALUE.size or packed[0] != 1):
            raise MalformedStateError(f"vehicle {vid}: not a version 1 vehicle state")
        rows[vid] = (ts, r, None if packed is None else packed[1:])
    return LWWColumns.from_lwwmap(LWWMap(rows), VEHICLE)


def _bucket_v2(raw: bytes) -> LWWColumns:
    try:
        _, n, n_names = _V2_HEAD.unpack_from(raw)
        p = _V2_HEAD.size
        names = []
        for _ in range(n_names):
            (size,) = struct.unpack_from("<H", raw, p)
            names.append(raw[p + 2 : p + 2 + size].decode())
            p += 2 + size
        lengths = np.frombuffer(raw, "<u2", n, p).astype(np.int64)
        p += 2 * n
        blob = raw[p : p + int(lengths.sum())]
        p += len(blob)
        ts = np.frombuffer(raw, "<i8", n, p).astype(np.int64)
        replica = np.frombuffer(raw, "<u2", n, p + 8 * n).astype(np.int32)
        live = np.frombuffer(raw, "u1", n, p + 10 * n).astype(np.bool_)
        values = np.frombuffer(raw, VEHICLE, n, p + 11 * n)
        if p + 11 * n + n * VEHICLE.itemsize != len(raw) or (replica >= len(names)).any() or (ts <= 0).any():
            raise ValueError("sizes do not add up")
        ends = np.cumsum(lengths).tolist()
        keys = [blob[a:b].decode() for a, b in zip([0, *ends][:n], ends, strict=True)]
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise MalformedStateError(f"corrupt vehicle bucket: {exc}") from None
    out = LWWColumns(VEHICLE, max(16, n))
    for name in names:
        out.code(name)
    out.apply_batch(keys, ts, replica, values, live)
    return out
