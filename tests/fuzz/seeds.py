"""Valid inputs for each fuzz target, from the project's own encoders: where coverage-guided
mutation starts (a fuzzer that starts from nothing spends its budget finding the magic bytes)."""

from __future__ import annotations

import numpy as np

from pipeline.shared.crdt import LWWMap, ORSet, encode_state
from pipeline.shared.crdt.hlc import pack
from pipeline.shared.messages import CODEC, TELEMETRY
from tests.towers.test_engine import T0, engine, frame, hazard, upd
from towers.frames import updates_from_records

__all__ = ["seeds"]


def seeds() -> dict[str, list[bytes]]:
    rows = [upd(f"veh-{i:07d}", 38.0 + i * 0.1, t=59) for i in range(6)]
    e = engine()
    st = e.region(4)
    e.on_telemetry(4, frame(4, rows), st)
    ((_, sync),) = e.on_hazard(4, hazard(40.0, t=59), st).sync
    st.apply(updates_from_records(rows), np.arange(len(rows)))
    buckets = [st.bucket_bytes(b) for b in range(16)]
    lww = encode_state(LWWMap({"hz": (pack(T0, 1), "tower-04", {"km": 40.0, "expires": T0 + 1})}))
    orset = ORSet()
    orset.merge_in(orset.add("veh-0000001", "tower-04#1"))
    radio = [bytes([4]) + CODEC.encode(TELEMETRY, r) for r in rows]
    return {
        "frames": [frame(4, rows), frame(4, [])],
        "records": [hazard(40.0, t=59), sync, CODEC.encode(TELEMETRY, rows[0])],
        "states": [lww, encode_state(orset), *[b for b in buckets if len(b) > 8][:3]],
        "radio": radio[:3],
    }
