"""When a run's advice came late: the advisories over the latency budget, gathered into the spells of
the run they were triggered in. A p99 over budget is a number; these say which hand-over, burst or
stall it came from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.shared.crdt.hlc import unpack

__all__ = ["BUDGET_MS", "late_spells"]

BUDGET_MS = 100.0  # 3GPP TS 22.185's bound for safety messages
SPELL_GAP_S = 5.0  # late triggers further apart than this are separate spells


def late_spells(history: Iterable[Mapping[str, Any]], start_ms: int, budget_ms: float = BUDGET_MS) -> dict[str, Any]:
    """`history`: the advisories as received (`received_ms`, `trigger_hlc`, `trigger_event_time`,
    `region_id`); `start_ms`: the run's start in event time. Each spell: from and to (run seconds, by
    the trigger's event time), how many late, the worst, and the regions they were for.

    Latency is wall time (the trigger's HLC to receipt); a spell is placed by event time, the run's
    own clock: faster than real time, the two part (the HLC's wall clock moves at 1/speed-up)."""
    timed = ((a["trigger_event_time"], a["received_ms"] - unpack(a["trigger_hlc"])[0], a["region_id"])
             for a in history)  # fmt: skip
    late = sorted(t for t in timed if t[1] > budget_ms)
    spells: list[dict[str, Any]] = []
    for trigger_ms, latency, region in late:
        at_s = (trigger_ms - start_ms) / 1000
        if spells and at_s - spells[-1]["to_s"] <= SPELL_GAP_S:
            s = spells[-1]
            s["to_s"], s["late"], s["worst_ms"] = at_s, s["late"] + 1, max(s["worst_ms"], latency)
            s["regions"] = sorted({*s["regions"], region})
        else:
            spells.append({"from_s": at_s, "to_s": at_s, "late": 1, "worst_ms": latency, "regions": [region]})
    for s in spells:
        s["from_s"], s["to_s"], s["worst_ms"] = round(s["from_s"], 1), round(s["to_s"], 1), round(s["worst_ms"])
    return {"budget_ms": budget_ms, "late": len(late), "spells": spells}
