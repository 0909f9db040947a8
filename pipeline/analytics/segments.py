"""The corridor-wide figures, defined once in NumPy: per 10-second window, per 1-km segment and
direction; travel times from segment speeds; congestion episodes and the speed of their upstream
edge. The Spark job computes the per-segment rows at scale; this module is their reference (tests
hold the job to it) and derives the rest from them.

Definitions (Edie's, on sampled trajectories): each telemetry update stands for 1/hz seconds of its
vehicle in its segment, so a window of T seconds on a segment of L km with N updates has density
k = N / (hz·T·L) vehicles/km; the space-mean speed is approximated by the updates' mean speed v̄,
and flow q = k·v̄ (vehicles/h with v̄ in km/h). The 15th percentile is the nearest-rank one (the
smallest speed with at least 15 % of the updates at or below it), as Spark's `percentile_approx`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "CONGESTED_SHARE", "SEGMENT_KM", "WINDOW_MS", "Episode", "EpisodeTracker", "SegmentGrid", "SegmentRow",
    "segment_rows",
]  # fmt: skip

WINDOW_MS = 10_000
SEGMENT_KM = 1.0
#: a segment is congested when its mean speed is under this share of its posted limit
CONGESTED_SHARE = 0.5
NORTH, SOUTH = "NORTHBOUND", "SOUTHBOUND"
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """One window × segment × direction, as the job emits it."""

    window_start_ms: int
    segment: int  # km index: [segment, segment + 1) km
    direction: str
    vehicles: int
    updates: int
    mean_speed_mps: float
    p15_speed_mps: float
    density_per_km: float
    flow_per_h: float
    advisories: int = 0
    hazards: int = 0


def nearest_rank(values: npt.NDArray[np.float64], q: float) -> float:
    """The smallest value with at least `q` of the values at or below it."""
    return float(np.percentile(values, q * 100, method="inverted_cdf"))


def segment_rows(
    event_ms: npt.NDArray[np.int64],
    km: npt.NDArray[np.float64],
    northbound: npt.NDArray[np.bool_],
    speed: npt.NDArray[np.float64],
    vehicle: Sequence[str],
    hz: float,
) -> list[SegmentRow]:
    """Telemetry updates → one row per window, segment and direction that has any."""
    window = (event_ms // WINDOW_MS) * WINDOW_MS
    seg = np.floor(km / SEGMENT_KM).astype(np.int64)
    vehicles = np.asarray(vehicle)
    keys = np.stack([window, seg, northbound.astype(np.int64)], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    out = []
    t_s = WINDOW_MS / 1000
    for i, (w, s, nb) in enumerate(uniq.tolist()):
        rows = np.flatnonzero(inverse.ravel() == i)
        v = speed[rows].astype(np.float64)
        mean = float(v.mean())
        density = len(rows) / (hz * t_s * SEGMENT_KM)
        out.append(SegmentRow(int(w), int(s), NORTH if nb else SOUTH, len(set(vehicles[rows].tolist())), len(rows),
                              mean, nearest_rank(v, 0.15), density, density * mean * 3.6))  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class SegmentGrid:
    """The route cut into 1-km segments: each one's length (the last may be shorter) and posted limit."""

    lengths_km: tuple[float, ...]
    limits_mps: tuple[float, ...]

    @classmethod
    def of(
        cls, length_km: float, limit_at: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]
    ) -> SegmentGrid:
        n = int(np.ceil(length_km / SEGMENT_KM - 1e-9))
        starts = np.arange(n) * SEGMENT_KM
        lengths = np.minimum(SEGMENT_KM, length_km - starts)
        return cls(tuple(lengths.tolist()), tuple(limit_at(starts + lengths / 2).tolist()))

    def travel_time_s(self, speeds: dict[int, float]) -> float:
        """Time to drive the whole corridor at each segment's mean speed, the same either way; a
        segment nobody drove in the window is crossed at its posted limit (free flow)."""
        total = 0.0
        for s, (length, limit) in enumerate(zip(self.lengths_km, self.limits_mps, strict=True)):
            total += length * 1000 / max(speeds.get(s, limit), 0.5)  # stopped: walking pace, not never
        return total


@dataclass
class Episode:
    """A run of adjacent congested segments in one direction, followed from window to window."""

    episode_id: str
    direction: str
    start_ms: int
    first_km: int  # its extent in its last window: segments [first_km, last_km]
    last_km: int
    ended_ms: int | None = None
    #: (window start, km of the upstream edge) at each window it was seen
    edges: list[tuple[int, float]] = field(default_factory=list)

    @property
    def upstream_km(self) -> float:
        """Northbound traffic comes from lower km, southbound from higher."""
        return float(self.first_km if self.direction == NORTH else self.last_km + 1)

    def shockwave_kmh(self) -> float | None:
        """Speed of the upstream edge, least squares over its windows, in km/h along the direction of
        travel: negative when the queue grows back against the traffic."""
        if len(self.edges) < 2:
            return None
        t = np.array([w for w, _ in self.edges], np.float64) / 3_600_000
        x = np.array([k for _, k in self.edges], np.float64)
        if np.ptp(t) == 0:
            return None
        slope = float(np.polyfit(t, x, 1)[0])
        return slope if self.direction == NORTH else -slope


def _runs(segments: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in sorted(segments):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


class EpisodeTracker:
    """Congestion episodes from successive windows' segment speeds. A run of congested segments that
    overlaps a run of the previous window continues its episode; one that overlaps none starts one."""

    def __init__(self, limits: Sequence[float]) -> None:
        self.limits = list(limits)
        self.open: dict[str, list[Episode]] = {NORTH: [], SOUTH: []}
        self.closed: list[Episode] = []
        self._n = 0

    def congested(self, rows: Iterable[SegmentRow]) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {NORTH: set(), SOUTH: set()}
        for r in rows:
            if 0 <= r.segment < len(self.limits) and r.mean_speed_mps < CONGESTED_SHARE * self.limits[r.segment]:
                out[r.direction].add(r.segment)
        return out

    def add_window(self, window_ms: int, rows: Iterable[SegmentRow]) -> list[Episode]:
        """Feed one window (in event-time order); returns the episodes seen in it."""
        seen = []
        for direction, segs in self.congested(rows).items():
            still: list[Episode] = []
            for a, b in _runs(segs):
                ep = next((e for e in self.open[direction] if e.first_km <= b and a <= e.last_km and e not in still),
                          None)  # fmt: skip
                if ep is None:
                    self._n += 1
                    ep = Episode(f"{direction[0]}{self._n}", direction, window_ms, a, b)
                ep.first_km, ep.last_km = a, b
                ep.edges.append((window_ms, ep.upstream_km))
                still.append(ep)
                seen.append(ep)
            for ep in self.open[direction]:
                if ep not in still:
                    ep.ended_ms = window_ms
                    self.closed.append(ep)
            self.open[direction] = still
        return seen
