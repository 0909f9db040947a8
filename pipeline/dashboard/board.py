"""What the dashboard knows of the corridor, kept from the topics it reads; no I/O here.

Vehicles are kept as columns (one slot per vehicle id) because at corridor-peak sizes tens of
thousands of updates a second come in, and only a few snapshots a second go out. A snapshot carries
a stable subset of the vehicles (those whose number falls on a stride), so the browser's dots do not
flicker from one snapshot to the next, and values rounded to what a screen can show.

The board reads topics anyone with a vehicle's rights can write, so what it keeps is bounded: rows a
tower would refuse (ids, numbers that are not finite, event times ahead of this clock) are counted
and left out, the vehicles followed for `/api/vehicle` are capped, and the slots of vehicles gone
are reused once the table is full.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.shared.bounds import HAZARD_DIRECTIONS, HAZARD_TYPES, MAX_LANE, bad_ids, id_problem
from towers.frames import Updates

__all__ = ["Board", "BoardConfig"]

F64 = npt.NDArray[np.float64]
MAX_HAZARDS = 10_000  # hazards on the page at once (a corridor has a handful)


@dataclass(frozen=True, slots=True)
class BoardConfig:
    max_vehicles: int = 1_500  # dots per snapshot
    gone_after_ms: int = 5_000  # a vehicle not heard from for this long has left the road
    history: int = 30  # updates kept per vehicle, for the one clicked
    advisories_shown_ms: int = 2_000  # an advisory flashes on its vehicle this long
    timeline: int = 60  # events kept
    recent_ms: int = 5_000  # update batches kept whole, for a vehicle clicked on
    followed: int = 64  # vehicles whose updates are kept for `/api/vehicle`, the latest asked for
    max_slots: int = 200_000  # vehicles known at once; past it, the slots of those gone are reused
    max_ahead_ms: int = 5_000  # how far ahead of this clock an event time may be (the towers' bound)


@dataclass(slots=True)
class _Columns:
    km: F64 = field(default_factory=lambda: np.zeros(0))
    speed: F64 = field(default_factory=lambda: np.zeros(0))
    northbound: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    lane: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    heard_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    num: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    def grow(self, size: int) -> None:
        extra = size - len(self.km)
        if extra > 0:
            self.km = np.concatenate([self.km, np.zeros(extra)])
            self.speed = np.concatenate([self.speed, np.zeros(extra)])
            self.northbound = np.concatenate([self.northbound, np.zeros(extra, bool)])
            self.lane = np.concatenate([self.lane, np.zeros(extra, np.int64)])
            self.heard_ms = np.concatenate([self.heard_ms, np.zeros(extra, np.int64)])
            self.num = np.concatenate([self.num, np.full(extra, -1, np.int64)])


def _row(u: Updates, i: int) -> dict[str, Any]:
    return {k: v for k, v in u.record(i).items() if k not in ("lat", "lon", "hlc")}


def _number(vid: str) -> int:
    """veh-0000042 → 42; any other id a stable number of its own."""
    tail = vid.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() and len(tail) <= 15 else abs(hash(vid)) % 10**9


def _believable(u: Updates) -> npt.NDArray[np.bool_]:
    ok: npt.NDArray[np.bool_] = np.isfinite(u.km) & np.isfinite(u.speed) & (u.lane >= 0) & (u.lane <= MAX_LANE)
    return ok & ~bad_ids(u.ids)


def _rows(u: Updates, keep: npt.NDArray[np.int64]) -> Updates:
    """These rows of a batch (the byte spans of the fast path dropped: the board does not use them)."""
    picked = {f.name: getattr(u, f.name)[keep] for f in fields(u) if f.name not in ("ids", "spans")}
    return replace(u, ids=[u.ids[i] for i in keep.tolist()], spans=None, **picked)


def _finite(*values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


class Board:
    def __init__(self, config: BoardConfig | None = None) -> None:
        self.config = config or BoardConfig()
        self._slot: dict[str, int] = {}
        self._ids: list[str] = []
        self._cols = _Columns()
        self._history: dict[str, deque[dict[str, Any]]] = {}
        self._recent: deque[tuple[int, Updates]] = deque()  # (arrival ms, batch), the last `recent_ms`
        self.hazards: dict[str, dict[str, Any]] = {}
        self.advisories: deque[dict[str, Any]] = deque(maxlen=2_000)
        self._advised: dict[str, deque[dict[str, Any]]] = {}
        self.timeline: deque[dict[str, Any]] = deque(maxlen=self.config.timeline)
        self.sim_ms = 0  # the newest event time seen: the simulation's clock
        self.updates = 0
        self.refused: Counter[str] = Counter()  # input left out, by kind
        self.advisory_count = 0
        self._hazards_advised: set[str] = set()
        self._before: set[str] = set()  # hazards reported before the page started
        self._workers: set[str] | None = None  # the tower workers registered, as last seen
        self._etcd = "ok"
        # the cloud tier's latest corridor-wide figures, when `corridor analytics` runs
        self.corridor: dict[str, Any] = {"travel_time_min": {}, "episodes": [], "window_end_ms": 0}
        self._episode_window = 0

    # ---- input ----------------------------------------------------------------------------------
    def add_updates(self, u: Updates, now_ms: int) -> None:
        ok = _believable(u)
        if not ok.all():
            self.refused["updates"] += int((~ok).sum())
            u = _rows(u, np.flatnonzero(ok))
        if not len(u):
            return
        if len(self._ids) + len(u) > self.config.max_slots:
            self._compact(now_ms)
        slots = np.fromiter((self._slot_of(v) for v in u.ids), np.int64, len(u))
        c = self._cols
        c.km[slots], c.speed[slots], c.northbound[slots] = u.km, u.speed, u.northbound
        c.lane[slots], c.heard_ms[slots] = u.lane, now_ms
        self.sim_ms = max(self.sim_ms, min(int(u.event_time.max()), now_ms + self.config.max_ahead_ms))
        self.updates += len(u)
        self._recent.append((now_ms, u))
        while self._recent and self._recent[0][0] < now_ms - self.config.recent_ms:
            self._recent.popleft()
        if self._history:  # only the vehicles someone is looking at
            for vid in self._history.keys() & set(u.ids):
                self._history[vid].append(_row(u, u.ids.index(vid)))

    def _slot_of(self, vid: str) -> int:
        slot = self._slot.get(vid)
        if slot is None:
            slot = self._slot[vid] = len(self._ids)
            self._ids.append(vid)
            if slot >= len(self._cols.km):
                self._cols.grow(max(1_024, 2 * len(self._cols.km)))
            self._cols.num[slot] = _number(vid)
        return slot

    def _compact(self, now_ms: int) -> None:
        """Forget the vehicles gone from the road, so the table never outgrows `max_slots`."""
        n, c = len(self._ids), self._cols
        keep = np.flatnonzero(c.heard_ms[:n] >= now_ms - self.config.gone_after_ms)
        ids = [self._ids[s] for s in keep.tolist()]
        cols = _Columns()
        cols.grow(max(1_024, len(self._cols.km)))
        for name in ("km", "speed", "northbound", "lane", "heard_ms", "num"):
            getattr(cols, name)[: len(keep)] = getattr(c, name)[keep]
        self._cols, self._ids, self._slot = cols, ids, {v: i for i, v in enumerate(ids)}
        self.refused["slots-reused"] += n - len(keep)

    def add_hazard(self, rec: dict[str, Any], in_timeline: bool = True) -> None:
        hid = rec["hazard_id"]
        times_ok = _finite(rec["detection_time"], rec["expiry_time"], rec["route_km"], rec["severity"])
        if id_problem(hid) is not None or not times_ok or rec["hazard_type"] not in HAZARD_TYPES \
                or rec["direction"] not in HAZARD_DIRECTIONS:  # fmt: skip
            self.refused["hazards"] += 1
            return
        if rec["cancelled"]:
            if self.hazards.pop(hid, None) is not None and in_timeline:
                self._event(rec["detection_time"], f"hazard {hid} cleared")
            return
        new = hid not in self.hazards
        if new and len(self.hazards) >= MAX_HAZARDS:  # forget those past their expiry first
            self.hazards = {k: h for k, h in self.hazards.items() if h["expires_ms"] > self.sim_ms}
            if len(self.hazards) >= MAX_HAZARDS:
                self.refused["hazards"] += 1
                return
        if not in_timeline:
            self._before.add(hid)
        self.hazards[hid] = {"id": hid, "type": rec["hazard_type"], "km": round(rec["route_km"], 3),
                             "direction": rec["direction"], "severity": rec["severity"],
                             "region": rec["region_id"], "expires_ms": rec["expiry_time"]}  # fmt: skip
        if new and in_timeline:
            self._event(rec["detection_time"], f"{rec['hazard_type']} at km {rec['route_km']:.1f} "
                        f"({rec['direction'].lower()}), reported by {rec['reporter']}")  # fmt: skip

    def add_advisory(self, rec: dict[str, Any], now_ms: int) -> None:
        target = rec["target_vehicle"]
        if not _finite(rec["target_speed_mps"], rec["issued_at"]) or (target is not None and id_problem(target)):
            self.refused["advisories"] += 1
            return
        a = {"at_ms": now_ms, "vehicle": rec["target_vehicle"], "action": rec["action"],
             "speed": round(rec["target_speed_mps"], 1), "reason": rec["reason"], "hazard": rec["hazard_id"],
             "region": rec["region_id"], "direction": rec["direction"]}  # fmt: skip
        self.advisories.append(a)
        self.advisory_count += 1
        if a["vehicle"] is not None:
            self._advised.setdefault(a["vehicle"], deque(maxlen=10)).append(a)
        if a["hazard"] and a["hazard"] not in self._hazards_advised:  # the first advice about each hazard
            self._hazards_advised.add(a["hazard"])
            self._event(rec["issued_at"], f"{rec['tower']}: {a['action']} to {a['vehicle'] or 'all'} "
                        f"({rec['reason']})")  # fmt: skip

    def add_stats(self, rec: dict[str, Any]) -> None:
        """The cloud tier's figures (`corridor analytics`): each direction's latest travel time, and the
        congestion episodes of the latest window."""
        direction = rec["direction"]
        if rec["kind"] == "TRAVEL_TIME":
            self.corridor["travel_time_min"][direction] = round(rec["travel_time_s"] / 60, 1)
            self.corridor["window_end_ms"] = max(self.corridor["window_end_ms"], rec["window_end"])
        elif rec["kind"] == "EPISODE":
            if rec["window_start"] > self._episode_window:
                self._episode_window = rec["window_start"]
                self.corridor["episodes"] = []
            if rec["window_start"] == self._episode_window:
                wave = rec["shockwave_kmh"]
                self.corridor["episodes"].append({
                    "id": rec["episode_id"], "direction": direction, "from_km": rec["from_km"], "to_km": rec["to_km"],
                    "shockwave_kmh": None if wave is None else round(wave, 1),
                })  # fmt: skip

    def control_plane(self, workers: set[str], etcd: str) -> None:
        """The tower panels' news for the timeline: workers that joined or left (their etcd lease
        gone: a crash, a stop) and etcd going away or coming back. The first call only sets the scene."""
        if self._workers is not None:
            for name in sorted(workers - self._workers):
                self._event(self.sim_ms, f"tower worker {name} joined")
            for name in sorted(self._workers - workers):
                self._event(self.sim_ms, f"tower worker {name} left (its etcd lease ended)")
            if etcd != self._etcd:
                self._event(self.sim_ms, f"etcd {etcd}")
        self._workers, self._etcd = workers, etcd

    def _event(self, sim_ms: int, text: str) -> None:
        self.timeline.append({"sim_ms": sim_ms, "text": text})

    # ---- output ---------------------------------------------------------------------------------
    def snapshot(self, now_ms: int, known: set[str] | None = None) -> dict[str, Any]:
        """The state the page draws, small enough to send a few times a second. A hazard reported
        before the page started is shown only if the running towers know it (`known`, from etcd):
        one left uncleared by an interrupted run is not on their road."""
        n = len(self._ids)
        c = self._cols
        live = np.flatnonzero(c.heard_ms[:n] >= now_ms - self.config.gone_after_ms)
        stride = max(1, math.ceil(len(live) / self.config.max_vehicles))
        shown = live[c.num[live] % stride == 0]
        flashing = {a["vehicle"]: a["action"] for a in self.advisories
                    if a["at_ms"] >= now_ms - self.config.advisories_shown_ms and a["vehicle"]}  # fmt: skip
        rows = [[int(c.num[s]), round(float(c.km[s]), 3), int(c.northbound[s]), round(float(c.speed[s]), 1),
                 int(c.lane[s]), flashing.get(self._ids[s], "")] for s in shown.tolist()]  # fmt: skip
        live_hazards = [h for h in self.hazards.values() if (not self.sim_ms or h["expires_ms"] > self.sim_ms)
                        and (known is None or h["id"] not in self._before or h["id"] in known)]  # fmt: skip
        recent = [a for a in self.advisories if a["at_ms"] >= now_ms - self.config.advisories_shown_ms]
        return {"at_ms": now_ms, "sim_ms": self.sim_ms, "vehicles": len(live), "stride": stride, "rows": rows,
                "hazards": live_hazards, "advisories": recent[-200:], "advisory_count": self.advisory_count,
                "updates": self.updates, "timeline": list(self.timeline), "corridor": self.corridor}  # fmt: skip

    def vehicle(self, vid: str) -> dict[str, Any] | None:
        """A vehicle's latest updates and advisories; from now on its updates are kept as they come."""
        if vid not in self._slot:
            return None
        history = self._history.get(vid)
        if history is None:  # from now on kept as updates come; until then, the recent batches
            while len(self._history) >= self.config.followed:  # the one asked for longest ago goes
                del self._history[next(iter(self._history))]
            history = self._history[vid] = deque(maxlen=self.config.history)
            for _, u in self._recent:
                if vid in u.ids:
                    history.append(_row(u, u.ids.index(vid)))
        s = self._slot[vid]
        c = self._cols
        return {"vehicle": vid, "km": round(float(c.km[s]), 3), "speed": round(float(c.speed[s]), 1),
                "direction": "NORTHBOUND" if c.northbound[s] else "SOUTHBOUND", "lane": int(c.lane[s]),
                "history": list(history), "advisories": list(self._advised.get(vid, []))}  # fmt: skip

    def vehicle_id(self, num: int) -> str | None:
        """The id of the vehicle a snapshot row numbered `num` (the page knows numbers, not ids)."""
        hits = np.flatnonzero(self._cols.num[: len(self._ids)] == num)
        return self._ids[int(hits[0])] if len(hits) else None
