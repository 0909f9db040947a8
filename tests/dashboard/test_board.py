"""The dashboard's board: what a snapshot shows of the vehicles, hazards and advisories it was fed."""

from __future__ import annotations

from typing import Any

from pipeline.dashboard.board import Board, BoardConfig
from pipeline.shared.hazards import hazard_record
from tests.towers.test_engine import T0, upd
from towers.frames import updates_from_records

NOW = 1_000_000


def _feed(board: Board, vehicles: range, km: float, now: int = NOW, **kw: Any) -> None:
    board.add_updates(updates_from_records([upd(f"veh-{i:07d}", km + i / 1000, **kw) for i in vehicles]), now)


def _advisory(target: str | None, hazard: str | None = "deer", action: str = "SLOW_DOWN") -> dict[str, Any]:
    return {"advisory_id": "a", "region_id": 4, "tower": "tower-04", "target_vehicle": target, "direction": None,
            "action": action, "target_speed_mps": 12.0, "reason": "animal 300 m ahead", "hazard_id": hazard,
            "issued_at": T0, "valid_until": T0 + 10_000, "trigger_event_time": T0, "trigger_hlc": 0}  # fmt: skip


def test_a_snapshot_shows_every_vehicle_heard_lately_and_their_latest_position() -> None:
    board = Board()
    _feed(board, range(10), 30.0)
    _feed(board, range(5), 31.0, now=NOW + 1000)
    snap = board.snapshot(NOW + 1000)
    rows = {r[0]: r for r in snap["rows"]}
    assert snap["vehicles"] == 10 and snap["stride"] == 1 and len(rows) == 10
    assert rows[3][1] == 31.003 and rows[7][1] == 30.007, "the newest update of each vehicle"
    assert board.snapshot(NOW + 5_500)["vehicles"] == 5, "those not heard for 5 s have left the road"


def test_beyond_its_limit_a_snapshot_shows_the_same_subset_every_time() -> None:
    board = Board(BoardConfig(max_vehicles=100))
    _feed(board, range(1_000), 20.0)
    first = {r[0] for r in board.snapshot(NOW)["rows"]}
    _feed(board, range(1_000), 21.0, now=NOW + 250)
    second = board.snapshot(NOW + 250)
    assert second["stride"] == 10 and len(first) == 100
    assert {r[0] for r in second["rows"]} == first, "no dots flickering between snapshots"


def test_hazards_appear_once_reported_leave_when_cleared_and_only_new_ones_enter_the_timeline() -> None:
    board = Board()
    old = hazard_record(10.0, "ICE", "SOUTHBOUND", 4, T0, 600, "ice", "t")
    board.add_hazard(old, in_timeline=False)
    board.add_hazard(hazard_record(36.0, "ANIMAL", "NORTHBOUND", 6, T0, 600, "deer", "t"))
    assert sorted(h["id"] for h in board.snapshot(NOW)["hazards"]) == ["deer", "ice"]
    board.add_hazard(hazard_record(36.0, "ANIMAL", "NORTHBOUND", 6, T0 + 5, 600, "deer", "t", cancelled=True))
    snap = board.snapshot(NOW)
    assert [h["id"] for h in snap["hazards"]] == ["ice"]
    assert [e["text"].split()[0] for e in snap["timeline"]] == ["ANIMAL", "hazard"], "reported, then cleared"


def test_an_advisory_flashes_on_its_vehicle_for_two_seconds_and_stays_in_its_history() -> None:
    board = Board()
    _feed(board, range(3), 36.0)
    board.add_advisory(_advisory("veh-0000001"), NOW)
    board.add_advisory(_advisory(None, action="KEEP"), NOW)
    flashing = {r[0]: r[5] for r in board.snapshot(NOW + 1_000)["rows"]}
    assert flashing == {0: "", 1: "SLOW_DOWN", 2: ""}, "an advisory for all is listed, not put on every dot"
    assert all(r[5] == "" for r in board.snapshot(NOW + 2_500)["rows"])
    assert board.vehicle(board.vehicle_id(1) or "")["advisories"][0]["action"] == "SLOW_DOWN"  # type: ignore[index]
    assert [e["text"] for e in board.timeline] == ["tower-04: SLOW_DOWN to veh-0000001 (animal 300 m ahead)"]


def test_a_clicked_vehicle_shows_its_last_seconds_and_keeps_its_updates_from_then_on() -> None:
    board = Board()
    _feed(board, range(2), 35.0, now=NOW - 20_000)  # older than the recent batches kept
    _feed(board, range(2), 36.0)
    assert board.vehicle("veh-0000009") is None
    assert [h["route_km"] for h in board.vehicle("veh-0000001")["history"]] == [36.001]  # type: ignore[index]
    _feed(board, range(2), 36.5, now=NOW + 1_000)
    history = board.vehicle("veh-0000001")["history"]  # type: ignore[index]
    assert [round(h["route_km"], 3) for h in history] == [36.001, 36.501]


def test_a_hazard_from_before_the_page_is_shown_only_if_the_running_towers_hold_it() -> None:
    board = Board()
    board.add_hazard(hazard_record(37.5, "STOPPED_VEHICLE", "NORTHBOUND", 6, T0, 600, "left-over", "t"), False)
    board.add_hazard(hazard_record(20.0, "ICE", "SOUTHBOUND", 5, T0, 600, "still-there", "t"), False)
    board.add_hazard(hazard_record(36.0, "ANIMAL", "NORTHBOUND", 6, T0, 600, "new", "t"))
    ids = lambda known: sorted(h["id"] for h in board.snapshot(NOW, known)["hazards"])  # noqa: E731
    assert ids({"still-there"}) == ["new", "still-there"], "a new report shows before the towers sync it"
    assert ids(None) == ["left-over", "new", "still-there"], "no towers running: all the topic holds"


def test_workers_joining_and_leaving_and_etcd_going_away_enter_the_timeline() -> None:
    board = Board()
    board.control_plane({"vm-1", "vm-2"}, "ok")
    assert list(board.timeline) == [], "what is there when the page starts is not news"
    board.control_plane({"vm-1"}, "ok")
    board.control_plane({"vm-1"}, "unreachable")
    board.control_plane({"vm-1", "vm-3"}, "ok")
    assert [e["text"] for e in board.timeline] == [
        "tower worker vm-2 left (its etcd lease ended)",
        "etcd unreachable",
        "tower worker vm-3 joined",
        "etcd ok",
    ]


def test_the_cloud_tiers_figures_show_each_directions_latest_travel_time_and_the_latest_episodes() -> None:
    board = Board()
    base = {"window_end": 20_000, "late_dropped": 0, "emitted_at": 0}
    board.add_stats({**base, "kind": "TRAVEL_TIME", "window_start": 10_000, "direction": "NORTHBOUND",
                     "travel_time_s": 3_000.0})  # fmt: skip
    board.add_stats({**base, "kind": "EPISODE", "window_start": 10_000, "direction": "SOUTHBOUND", "episode_id": "S1",
                     "from_km": 19.0, "to_km": 21.0, "shockwave_kmh": -12.34})  # fmt: skip
    board.add_stats({**base, "kind": "EPISODE", "window_start": 20_000, "direction": "SOUTHBOUND", "episode_id": "S1",
                     "from_km": 19.0, "to_km": 22.0, "shockwave_kmh": None})  # fmt: skip
    corridor = board.snapshot(0)["corridor"]
    assert corridor["travel_time_min"] == {"NORTHBOUND": 50.0}
    assert corridor["episodes"] == [{"id": "S1", "direction": "SOUTHBOUND", "from_km": 19.0, "to_km": 22.0,
                                     "shockwave_kmh": None}], "the latest window's only"  # fmt: skip
