"""Hazard maps stay bounded: expired hazards and old cancellations leave them."""

from __future__ import annotations

from pipeline.shared.crdt import LWWMap
from pipeline.shared.crdt.hlc import HybridClock, pack
from tests.towers.test_engine import CORRIDOR, T0, frame, hazard, upd
from towers.config import TowerConfig
from towers.engine import TowerEngine
from towers.hazard_retention import EXPIRED_GRACE_MS, TOMBSTONE_KEEP_MS, prune_hazards
from towers.staleness import VisibilityLog, note_first

DAY = 86_400_000


def a_hazard(expires: int) -> dict:
    return {"km": 1.0, "dir": "BOTH", "type": "OBSTACLE", "severity": 5, "expires": expires, "detected": expires - 1}


def test_expired_hazards_go_after_a_grace_and_tombstones_once_nothing_they_cancelled_can_live() -> None:
    m = LWWMap({
        "live": (pack(T0, 0), "t", a_hazard(T0 + 1)),
        "just-expired": (pack(T0, 0), "t", a_hazard(T0 - EXPIRED_GRACE_MS + 1)),
        "long-expired": (pack(T0, 0), "t", a_hazard(T0 - EXPIRED_GRACE_MS - 1)),
        "cancelled-today": (pack(T0 - DAY, 0), "t", None),
        "cancelled-long-ago": (pack(T0 - TOMBSTONE_KEEP_MS - 1, 0), "t", None),
        "count/4": (pack(T0 - 10 * DAY, 0), "t", None),
    })  # fmt: skip
    assert prune_hazards(m, T0, T0 - TOMBSTONE_KEEP_MS, prefix="") == 3
    assert set(m.entries) == {"live", "just-expired", "cancelled-today"}
    assert TOMBSTONE_KEEP_MS > DAY, "a report lives at most a day after its detection"


def test_only_keys_under_the_prefix_are_touched() -> None:
    m = LWWMap({"hazard/x": (pack(T0, 0), "t", None), "count/4": (pack(T0, 0), "t", None)})
    assert prune_hazards(m, T0, T0 + 1, prefix="hazard/") == 1 and set(m.entries) == {"count/4"}


def test_a_tower_forgets_a_hazard_once_its_region_is_past_its_expiry() -> None:
    """Expired hazards stayed in the region's map, its table and etcd's view forever."""
    later = T0 + 700_000  # the tower's clock, ten minutes on
    e = TowerEngine(CORRIDOR, TowerConfig(max_trigger_age_s=3600), clock=HybridClock(physical=lambda: later),
                    wall_ms=lambda: later)  # fmt: skip
    st = e.region(4)
    e.on_hazard(4, hazard(40.0, "tyre", t=5), st)  # expires 10 minutes after its detection
    assert "tyre" in st.hazards.entries
    e.on_telemetry(4, frame(4, [upd("v", 45.0, t=5 + 600 + 61)]), st)  # event time past expiry + grace
    writes = e.flush(4, 0.0)
    assert "tyre" not in st.hazards.entries and "hazards" in writes, "gone, and the table rewritten"


def test_the_hazards_a_worker_follows_are_bounded() -> None:
    log = VisibilityLog()
    for i in range(12_000):
        log.hazard_accepted(f"h{i}", i)
    assert len(log.hazard_made) == len(log.hazard_seen) == 5_000
    assert "h11999" in log.hazard_made and "h0" not in log.hazard_made, "the oldest forgotten first"
    times: dict[str, int] = {"a": 1}
    note_first(times, "a", 2)
    assert times == {"a": 1}, "the first time stays"
