"""The live view of a run (rich): time, traffic, advice, and each tower worker's load and lag."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.table import Table

from pipeline.consistency.table import live_ages

__all__ = ["LiveView"]


class LiveView:
    """Renders at most a few times a second; worker pages are polled once a second."""

    def __init__(self, scenario_name: str) -> None:
        self.name = scenario_name
        self._pages: list[dict[str, Any] | None] = []
        self._polled = 0.0

    def render(self, snap: dict[str, Any]) -> Group:
        stats, fleet, sink, listener, workers, run = (snap[k] for k in ("stats", "fleet", "sink", "listener",
                                                                         "workers", "run"))  # fmt: skip
        now = time.monotonic()
        if now - self._polled > 1.0:
            self._pages = [w.page(timeout=0.5) if w.alive else None for w in workers]
            self._polled = now
        top = Table.grid(padding=(0, 3))
        top.add_row(f"[bold]{self.name}[/]", f"simulated {fleet.t / 60:5.1f} min",
                    f"{fleet.vehicle_count():,} vehicles",
                    f"{stats.updates_per_s:,.0f} events/s", f"{listener.stats.received:,} advisories",
                    f"behind schedule {stats.lag_s:.1f} s")  # fmt: skip
        active = [hid for hid, ob in run.obstacles.items() if ob.start_s <= fleet.t < ob.end_s]
        top.add_row("hazards", ", ".join(active) or "none", "", "", "", "")
        towers = Table(title="tower workers", title_justify="left")
        for col in ("worker", "state", "regions", "updates processed", "advisories", "staleness by class"):
            towers.add_column(col)
        processed_total = 0
        for w, page in zip(workers, self._pages, strict=False):
            if page is None:
                towers.add_row(w.name, "[red]down[/]" if not w.alive else "starting", "", "", "", "")
                continue
            processed = page["counts"].get("updates", 0)
            processed_total += processed
            ages = live_ages(page.get("staleness_by_class_ms", {}))
            stale = ", ".join(f"{label} {age}" for label, age in ages if age != "–")
            towers.add_row(w.name, "[green]up[/]", ",".join(map(str, page["regions"])), f"{processed:,}",
                           f"{page['counts'].get('advisories', 0):,}", stale)  # fmt: skip
        lag = max(0, stats.updates - processed_total)
        top.add_row("towers' lag", f"{lag:,} updates", f"{sink.stats.acked:,} records acked", "", "", "")
        return Group(top, towers)
