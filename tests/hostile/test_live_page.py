"""The live page against what anyone may write to the topics it reads, the registrations in etcd
and the pages those point at: nothing stops its threads, and the browser gets strict JSON."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from pipeline.dashboard import towers_view
from pipeline.dashboard.board import Board, BoardConfig
from pipeline.dashboard.server import _json
from pipeline.dashboard.towers_view import TowersView, state_url
from tests.towers.test_engine import T0, upd
from towers.frames import updates_from_records

NOW = T0 + 60_000


def test_a_vehicle_id_of_25_digits_and_rows_that_are_not_finite_leave_the_board_serving() -> None:
    board = Board()
    rows = [upd("veh-" + "9" * 25, 38.0, t=59), upd("nan", float("nan"), t=59), upd("inf", 38.0, t=59, speed_mps=1e39),
            upd("fine", 38.0, t=59)]  # fmt: skip
    board.add_updates(updates_from_records(rows), NOW)  # OverflowError in the feed thread before
    snap = board.snapshot(NOW)
    assert snap["vehicles"] == 2 and board.refused["updates"] == 2
    json.loads(_json(snap))  # strict JSON: no NaN, no Infinity


def test_strict_json_turns_what_slipped_through_into_null() -> None:
    assert json.loads(_json({"a": [float("nan"), 1.5, {"b": float("-inf")}]})) == {"a": [None, 1.5, {"b": None}]}


def test_the_vehicles_followed_for_the_vehicle_api_are_capped() -> None:
    board = Board(BoardConfig(followed=64))
    board.add_updates(updates_from_records([upd(f"veh-{i:07d}", 38.0, t=59) for i in range(5_000)]), NOW)
    for i in range(5_000):
        assert board.vehicle(f"veh-{i:07d}") is not None
    assert len(board._history) == 64  # every one asked for, forever, before


def test_past_its_size_the_board_reuses_the_slots_of_vehicles_gone() -> None:
    board = Board(BoardConfig(max_slots=1_000))
    for k in range(5):
        ids = [upd(f"trip{k}-{i}", 38.0, t=59) for i in range(900)]
        board.add_updates(updates_from_records(ids), NOW + k * 60_000)
    assert len(board._ids) <= 1_800 and board.snapshot(NOW + 240_000)["vehicles"] == 900


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "http://127.0.0.1:6066/corridor/etcd/off", "http://user:pw@127.0.0.1:1", "gopher://h:70",
     "http://127.0.0.1", "http://127.0.0.1:6066?x=1", "http://a b:1", "javascript:alert(1)", 5, None,
     "http://" + "a" * 400],
)  # fmt: skip
def test_a_registered_url_that_is_not_plain_http_host_and_port_is_never_fetched(url: Any) -> None:
    assert state_url(url) is None


def test_a_plain_registration_is_fetched_at_the_fixed_path() -> None:
    assert state_url("http://127.0.0.1:6066") == "http://127.0.0.1:6066/corridor/state/"
    assert state_url("http://towers-0.towers:6066/") == "http://towers-0.towers:6066/corridor/state/"
    assert state_url("http://[::1]:6066") == "http://[::1]:6066/corridor/state/"


class _Crafted(BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012

    def do_GET(self) -> None:
        _Crafted.hits.append(self.path)
        if self.path == "/corridor/state/":
            self.send_response(302)
            self.send_header("Location", "/corridor/etcd/off/")
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        pass


def test_a_worker_page_that_redirects_is_not_followed() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Crafted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert towers_view._page(f"http://127.0.0.1:{server.server_port}") is None
        assert _Crafted.hits == ["/corridor/state/"], "the redirect to a switch was not followed"
    finally:
        server.shutdown()
        server.server_close()


def test_malformed_registrations_in_etcd_show_as_such_and_the_others_as_usual(monkeypatch) -> None:
    keys = {"app": {
        "towers": {"w1": b"[1, 2]", "w2": b'{"web": 5, "at_ms": "x", "regions": 7}', "w3": b"\xff\xfe",
                   "w4": b'{"at_ms": 1, "regions": [0]}'},
        "regions": {"0": b'{"hazards": 5, "member_count": "many"}', "1": b"null", "99999999": b"{}"},
        "global": {"": b"not a CRDT"},
    }}  # fmt: skip
    monkeypatch.setattr(towers_view, "read_namespaces", lambda _client: keys)
    view = TowersView.__new__(TowersView)  # no etcd client: the keys are given
    view._last_updates = {}
    (shown,) = view._read(None)
    workers = {w["worker"]: w for w in shown["workers"]}
    assert workers["w2"].get("malformed") and workers["w4"]["regions"] == [0]
    assert shown["regions"][0] == {"region": 0, "tower": "", "members": 0, "hazards": []}
