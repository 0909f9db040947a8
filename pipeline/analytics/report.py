"""A run's corridor-wide figures, from its `CorridorStats` records: a summary, a travel-time curve
and a segment × time speed heat map per direction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pipeline.analytics.segments import NORTH, SOUTH, WINDOW_MS

__all__ = ["analytics_summary", "draw_heatmap", "draw_travel_times"]


def analytics_summary(stats: list[dict[str, Any]], start_ms: int) -> dict[str, Any]:
    travel = [s for s in stats if s["kind"] == "TRAVEL_TIME"]
    episodes: dict[str, dict[str, Any]] = {}
    for s in sorted((s for s in stats if s["kind"] == "EPISODE"), key=lambda s: s["window_start"]):
        ep = episodes.setdefault(s["episode_id"], {"id": s["episode_id"], "direction": s["direction"],
                                                   "start_s": (s["episode_start"] - start_ms) / 1000,
                                                   "max_extent_km": 0.0})  # fmt: skip
        ep["last_s"] = (s["window_end"] - start_ms) / 1000
        ep["max_extent_km"] = max(ep["max_extent_km"], s["to_km"] - s["from_km"])
        ep["from_km"], ep["to_km"], ep["shockwave_kmh"] = s["from_km"], s["to_km"], s["shockwave_kmh"]
    out: dict[str, Any] = {
        "windows": len({s["window_start"] for s in stats}),
        "records": len(stats),
        "late_dropped": max((s["late_dropped"] for s in stats), default=0),
        "episodes": list(episodes.values()),
    }
    for direction in (NORTH, SOUTH):
        tt = [s["travel_time_s"] / 60 for s in travel if s["direction"] == direction]
        out[f"travel_time_min_{direction.lower()}"] = (
            {"min": round(min(tt), 1), "max": round(max(tt), 1), "last": round(tt[-1], 1)} if tt else None
        )
    return out


def draw_travel_times(stats: list[dict[str, Any]], start_ms: int, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for direction, label in ((NORTH, "Bloomington → I-465"), (SOUTH, "I-465 → Bloomington")):
        rows = sorted((s["window_end"], s["travel_time_s"]) for s in stats
                      if s["kind"] == "TRAVEL_TIME" and s["direction"] == direction)  # fmt: skip
        if rows:
            t = [(w - start_ms) / 1000 for w, _ in rows]
            ax.plot(t, [v / 60 for _, v in rows], label=label)
    ax.set_xlabel("simulated time, s")
    ax.set_ylabel("travel time, min")
    ax.set_title("Corridor travel time from segment speeds (Spark, 10-s windows)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_heatmap(stats: list[dict[str, Any]], start_ms: int, length_km: float, path: Path) -> None:
    segments = [s for s in stats if s["kind"] == "SEGMENT" and s["updates"]]
    windows = sorted({s["window_start"] for s in segments}) or [start_ms]
    col = {w: i for i, w in enumerate(windows)}
    n_seg = int(np.ceil(length_km))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, direction in zip(axes, (NORTH, SOUTH), strict=True):
        grid = np.full((n_seg, len(windows)), np.nan)
        for s in segments:
            if s["direction"] == direction and 0 <= s["segment_km"] < n_seg:
                grid[s["segment_km"], col[s["window_start"]]] = s["mean_speed_mps"] * 3.6
        extent = ((windows[0] - start_ms) / 1000, (windows[-1] - start_ms + WINDOW_MS) / 1000, 0, n_seg)
        im = ax.imshow(grid, aspect="auto", origin="lower", cmap="RdYlGn", vmin=0, vmax=120, extent=extent)
        ax.set_title(direction.lower())
        ax.set_xlabel("simulated time, s")
    axes[0].set_ylabel("route km")
    fig.colorbar(im, ax=axes, label="mean speed, km/h")
    fig.suptitle("Segment × time mean speed (Spark, 1 km × 10 s)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
