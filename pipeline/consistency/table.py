"""One table, per class of data: where it lives, its consistency model, how often it is synced, and
how stale it was measured to be across towers in a run.

Input: every tower worker's `/corridor/staleness/` page at the end of a run (`towers.staleness`).
Staleness is the time from a change at its source to its visibility at every worker that should
see it (or in etcd). For a sync message merged by several workers, the slowest merge counts; for a
hazard, the last worker to see it; for etcd, the commit that first held the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.shared.stats import percentile

__all__ = ["CLASSES", "DataClass", "markdown", "staleness_table"]


@dataclass(frozen=True)
class DataClass:
    key: str
    name: str
    lives: str
    model: str
    interval: str
    measured: str  # what a sample is


CLASSES = (
    DataClass("hazards", "Hazards", "owner's `hazards` table; every tower's view; etcd",
              "CRDT (LWW-Map), eventual over tower-sync; also linearizable in etcd",
              "at once when reported, then every important sync (1 s)",
              "report accepted by its owner → known to every other worker"),
    DataClass("membership", "Swarm membership", "owner's `members` table; every tower's view",
              "CRDT (OR-Set), eventual over tower-sync", "deltas every 1 s, whole state every 10 s",
              "change at the owner → merged by every other worker (oldest change of each message)"),
    DataClass("vehicle_state", "Per-vehicle latest state", "owner's `vehicles` table (changelog-backed)",
              "local only (LWW per vehicle); the changelog restores it", "every frame; table write every 1 s",
              "frame sent by the fleet → applied by its region's owner"),
    DataClass("aggregates", "Aggregates (speed, density)", "owner; every tower's view",
              "eventual over tower-sync (one writer per region: newest wins)", "every 10 s",
              "first change after the previous aggregates → merged by every other worker"),
    DataClass("etcd_snapshot", "Swarm snapshot in etcd", "etcd `<ns>/regions/<r>`",
              "linearizable (etcd, Raft); one writer: the region's owner", "every 1 s",
              "change at the owner → in a committed snapshot"),
    DataClass("global_view", "Global view", "etcd `<ns>/global`",
              "CvRDT joined by compare-and-swap: linearizable writes, converges to the join", "every 1 s",
              "hazard accepted by its owner → in a committed global view"),
)  # fmt: skip


def _stats(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {"n": len(samples), "p50_ms": round(percentile(samples, 50)), "p99_ms": round(percentile(samples, 99)),
            "max_ms": round(max(samples))}  # fmt: skip


def _sync_ages(pages: list[dict[str, Any]], sync_class: str) -> list[float]:
    """Per message (region, send time), the age of its oldest change at the slowest worker to merge it."""
    worst: dict[tuple[int, int], int] = {}
    for page in pages:
        for cls, region, sent_at, age in page.get("merges", []):
            if cls == sync_class:
                key = (region, sent_at)
                worst[key] = max(worst.get(key, 0), age)
    return [float(a) for a in worst.values()]


def _hazard_ages(pages: list[dict[str, Any]]) -> tuple[list[float], int]:
    """Per hazard, from its owner's acceptance to the last worker's first sight; and how many
    hazards some worker never saw."""
    made: dict[str, int] = {}
    for page in pages:
        made.update(page.get("hazard_made", {}))
    ages, unseen = [], 0
    for hid, t in made.items():
        seen = [page.get("hazard_seen", {}).get(hid) for page in pages]
        if any(s is None for s in seen):
            unseen += 1
        else:
            ages.append(float(max(s for s in seen if s is not None) - t))
    return ages, unseen


def _global_ages(pages: list[dict[str, Any]]) -> list[float]:
    made: dict[str, int] = {}
    first: dict[str, int] = {}
    for page in pages:
        made.update(page.get("hazard_made", {}))
        for hid, t in ((page.get("etcd") or {}).get("global_seen") or {}).items():
            first[hid] = min(first.get(hid, t), t)
    return [float(first[h] - t) for h, t in made.items() if h in first]


def staleness_table(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per class of data, with its measured staleness (ms) and how many samples it rests on."""
    hazards, unseen = _hazard_ages(pages)
    samples: dict[str, list[float]] = {
        "hazards": hazards,
        "membership": _sync_ages(pages, "IMPORTANT"),
        "vehicle_state": [float(v) for page in pages for v in page.get("vehicle_lag_ms", [])],
        "aggregates": _sync_ages(pages, "UNIMPORTANT"),
        "etcd_snapshot": [float(v) for p in pages for v in (p.get("etcd") or {}).get("snapshot_ages_ms", [])],
        "global_view": _global_ages(pages),
    }
    rows = []
    for c in CLASSES:
        row = {"class": c.key, "name": c.name, "lives": c.lives, "model": c.model, "interval": c.interval,
               "measured": c.measured, **_stats(samples[c.key])}  # fmt: skip
        if c.key == "hazards":
            row["never_seen_by_some_worker"] = unseen
        rows.append(row)
    return rows


def _ms(v: int | None) -> str:
    return "–" if v is None else f"{v:,}"


def markdown(rows: list[dict[str, Any]], workers: int) -> list[str]:
    """The table as Markdown lines (the report's and docs/consistency.md's)."""
    lines = [
        f"Measured across {workers} tower worker(s); staleness in ms (p50 / p99 / max, n samples).",
        "",
        "| data | lives in | consistency | synced | staleness p50 / p99 / max | n | a sample is |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        stale = f"{_ms(r['p50_ms'])} / {_ms(r['p99_ms'])} / {_ms(r['max_ms'])}"
        lines.append(f"| {r['name']} | {r['lives']} | {r['model']} | {r['interval']} | {stale} | {r['n']} "
                     f"| {r['measured']} |")  # fmt: skip
    unseen = next((r.get("never_seen_by_some_worker", 0) for r in rows if r["class"] == "hazards"), 0)
    if unseen:
        lines += ["", f"**{unseen} hazard(s) never reached every worker.**"]
    return lines


#: the classes a worker reports the live age of (its state page, its etcd registration), in order
LIVE = (("hazards", "hazards"), ("membership", "membership"), ("vehicle_state", "vehicle state"),
        ("aggregates", "aggregates"), ("etcd_snapshot", "etcd snapshot"), ("global_view", "global view"))  # fmt: skip


def live_ages(by_class: dict[str, int | None], plus_ms: int = 0) -> list[tuple[str, str]]:
    """(label, "1.2 s") per class, for the status command, the live view and the dashboard; `plus_ms`
    ages a registration read later than it was written. "–": nothing of that class heard yet."""
    out = []
    for key, label in LIVE:
        ms = by_class.get(key)
        out.append((label, "–" if ms is None else f"{(ms + plus_ms) / 1000:.1f} s"))
    return out
