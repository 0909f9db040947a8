"""Vehicles that raise hazards themselves, as DENM senders do (ETSI EN 302 637-3, simplified).

A vehicle that comes to a stop on the motorway (in traffic stopped ahead of it, or told to stop)
reports a dangerous end of queue (cause 27, sub-cause 1: a sudden end of queue) at its position.
Hard braking alone raises nothing: merging traffic and advised slow-downs make plenty of it, and
each report slows everyone upstream (a run with it had short jams appear behind every on-ramp).
Reports are keyed by a cell of the carriageway (`cell_km`) and by their sender, as a DENM's actionID
names its originating station: a vehicle that finds the same queue end again updates its own event,
another raises its own (the towers let only a hazard's reporter, or a tower, change or cancel it).
Each report is valid for `validity_s`, so an event nobody confirms any more lapses on its own. Per
cell, the vehicle furthest upstream reports (the queue's end), and a cell is reported at most every
`repeat_s`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.shared.crdt.hlc import HybridClock
from pipeline.shared.hazards import hazard_record
from producers.encoding import vehicle_id
from producers.fleet import Fleet

__all__ = ["HazardSpotter"]

SUDDEN_END_OF_QUEUE = 1  # DENM sub-cause of cause 27, dangerous end of queue


@dataclass
class HazardSpotter:
    stopped_mps: float = 1.0
    cell_km: float = 0.5
    repeat_s: float = 20.0
    validity_s: float = 25.0  # a repeat and a little: a sender's report lapses once its queue end has moved on
    relevance_m: int = 2000
    reports: int = 0
    _last: dict[tuple[bool, int], float] = field(default_factory=dict)  # (northbound, cell) → sim time

    def spot(self, fleet: Fleet, clock: HybridClock) -> list[dict[str, Any]]:
        """The hazard reports the fleet's vehicles send now (HazardReport records)."""
        idx = np.flatnonzero(fleet.active & (fleet.v < self.stopped_mps))
        if not len(idx):
            return []
        nb, km = fleet.nb[idx], fleet.km[idx]
        cell = np.floor(km / self.cell_km).astype(np.int64)
        # the queue's end: per (carriageway, cell), the vehicle furthest upstream
        progress = np.where(nb, km, -km)
        order = np.lexsort((progress, cell, nb))
        key = np.stack([nb[order], cell[order]])
        first = np.ones(len(order), bool)
        first[1:] = (key[:, 1:] != key[:, :-1]).any(axis=0)
        out = []
        event_ms = fleet.start_ms + int(fleet.t * 1000)
        for i in order[first].tolist():
            where = (bool(nb[i]), int(cell[i]))
            if fleet.t - self._last.get(where, -np.inf) < self.repeat_s:
                continue
            self._last[where] = fleet.t
            sender = vehicle_id(int(fleet.num[int(idx[i])]))
            direction = "NORTHBOUND" if where[0] else "SOUTHBOUND"
            out.append(hazard_record(
                float(km[i]), "END_OF_QUEUE", direction, 5, event_ms, self.validity_s,
                f"queue-{'nb' if where[0] else 'sb'}-{where[1]}-{sender}", sender, clock=clock,
                corridor=fleet.corridor, sub_cause=SUDDEN_END_OF_QUEUE, relevance_m=self.relevance_m,
            ))  # fmt: skip
        self.reports += len(out)
        return out
