"""What watching corridor costs: a tower worker's throughput with its /metrics scraped every second
and without, what its latency histograms add per advisory, and hazard → advisory latency with the
hazard path traced and without. The issue's bar: throughput within 3 % of unwatched, or the cost said."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import timeit
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from pipeline.admin import delete_prefixed, ensure_topics
from pipeline.bench.towers import drain_rate, latency_at, tower_worker
from pipeline.leftovers import scratch_prefix
from pipeline.shared.config import Settings
from pipeline.shared.corridor import load_corridor
from pipeline.shared.stats import LatencyHistogram, percentile
from pipeline.shared.topics import Topics
from pipeline.shared.tracing import FileSpanExporter, Tracing, read_spans
from pipeline.workers import TowerProcess
from producers.drive import DriveConfig, drive, event_clock_start
from producers.fleet import Fleet, FleetConfig
from producers.sink import TelemetrySink

__all__ = ["run_observability"]

DEFAULT_ADVISORIES_PER_UPDATE = 16_700 / 2_155_189


class _Scraper:
    """Prometheus's part, ten times over: a GET of a worker's /metrics every 0.1 s, timed (a drain of
    seconds would see only a few scrapes at Prometheus's usual second; this bounds their cost above)."""

    def __init__(self, worker: TowerProcess, every_s: float = 0.1) -> None:
        self.every_s = every_s
        self.took_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(worker,), daemon=True)
        self._thread.start()

    def _run(self, worker: TowerProcess) -> None:
        while not self._stop.wait(self.every_s):
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=5) as resp:
                    resp.read()
            except OSError:
                continue
            self.took_ms.append((time.perf_counter() - t0) * 1000)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _throughput(settings: Settings, quick: bool) -> dict[str, Any]:
    """Drains of one worker over the same records, unscraped and scraped in turn (three each; one
    drain alone is noise), and what each advisory's two histogram observations cost: at the drain's
    own rate of advisories per update, and at the default scenario's (measured on 2026-12-05: 16,700
    advisories for 2,155,189 updates), which has hazards and queues where the drain has few."""
    bootstrap, corridor = settings.bootstrap_servers, load_corridor()
    topics = Topics(regions=len(corridor.regions), prefix=scratch_prefix("bo"))
    ensure_topics(bootstrap, topics.specs())
    vehicles, seconds = (20_000, 30) if quick else (20_000, 240)
    rates: dict[str, list[float]] = {"unscraped": [], "scraped": []}
    scrapes: list[float] = []
    advised, processed = 0, 0
    try:
        driving = DriveConfig(hz=1, duration_s=seconds, speedup=0)
        fleet = Fleet(corridor, FleetConfig(vehicles=vehicles, seed=5), start_ms=event_clock_start(driving))
        total = drive(fleet, TelemetrySink(bootstrap), topics, driving).updates
        with tempfile.TemporaryDirectory() as tmp:
            for k, mode in enumerate(["unscraped", "scraped"] * 3):
                env = {"CORRIDOR_TOWER_APP_SUFFIX": f"-o{k}-{uuid.uuid4().hex[:4]}",
                       "CORRIDOR_TOWER_MAX_TRIGGER_AGE_S": "3600"}  # fmt: skip
                worker = tower_worker(settings, topics.prefix, Path(tmp) / f"run{k}", env, 0).start()
                scraper = _Scraper(worker) if mode == "scraped" else None
                try:
                    rates[mode].append(drain_rate([worker], total, timeout=300))
                    page = worker.page() or {}
                    advised += int(page.get("counts", {}).get("advisories", 0))
                    processed += int(page.get("counts", {}).get("updates", 0))
                finally:
                    if scraper is not None:
                        scraper.stop()
                        scrapes += scraper.took_ms
                    worker.stop()
    finally:
        delete_prefixed(bootstrap, topics.prefix)
    off, on = statistics.median(rates["unscraped"]), statistics.median(rates["scraped"])
    hist = LatencyHistogram()
    per_observe_ns = min(timeit.repeat(lambda: hist.observe(0.042), number=100_000, repeat=5)) / 100_000 * 1e9
    per_update = advised / processed if processed else 0.0
    return {
        "updates_per_s_unscraped": off, "updates_per_s_scraped": on,
        "scraped_cost_pct": 100 * (off - on) / off if off else float("nan"),
        "scrapes": len(scrapes), "scrape_ms_p50": percentile(scrapes, 50), "scrape_ms_p99": percentile(scrapes, 99),
        "advisories_per_update": per_update, "histogram_observe_ns": per_observe_ns,
        # two observations per advisory, against the worker's time per update at its unscraped rate
        "histograms_cost_pct": 100 * 2 * per_observe_ns * per_update * off / 1e9 if off else float("nan"),
        "histograms_cost_at_default_scenario_pct": 100 * 2 * per_observe_ns * DEFAULT_ADVISORIES_PER_UPDATE * off / 1e9,
    }  # fmt: skip


def _tracing(settings: Settings, quick: bool) -> dict[str, Any]:
    """Hazard → advisory latency at 5,000 updates/s, untraced and traced in turn (twice each: one
    30-s run's p99 rests on its few slowest hazards), the medians of each mode's runs."""
    bootstrap, corridor = settings.bootstrap_servers, load_corridor()
    runs: dict[str, list[dict[str, Any]]] = {"untraced": [], "traced": []}
    spans_written = 0
    for traced in (False, True) * (1 if quick else 2):
        topics = Topics(regions=len(corridor.regions), prefix=scratch_prefix("bq"))
        ensure_topics(bootstrap, topics.specs())
        with tempfile.TemporaryDirectory() as tmp:
            spans = Path(tmp) / "spans"
            env = {"CORRIDOR_TRACES": f"file:{spans}"} if traced else {}
            tracing = Tracing("bench", FileSpanExporter(spans)) if traced else Tracing("bench")
            worker = tower_worker(settings, topics.prefix, Path(tmp), env, 0).start()
            try:
                got = latency_at(bootstrap, topics, corridor, worker, 5_000, 10 if quick else 30, tracing)
            finally:
                worker.stop()  # its spans are flushed as it exits
                tracing.close()
                delete_prefixed(bootstrap, topics.prefix)
            runs["traced" if traced else "untraced"].append(got)
            spans_written += len(read_spans(spans)) if traced else 0
    out: dict[str, Any] = {"runs_each": len(runs["traced"]), "spans_written": spans_written}
    for mode, seen in runs.items():
        out[f"{mode}_p50_ms"] = statistics.median(r["p50_ms"] for r in seen)
        out[f"{mode}_p99_ms"] = statistics.median(r["p99_ms"] for r in seen)
        out[f"{mode}_advisories"] = sum(r["advisories_for_hazards"] for r in seen)
    out["traced_p99_added_ms"] = out["traced_p99_ms"] - out["untraced_p99_ms"]
    return out


def run_observability(settings: Settings, quick: bool = False) -> dict[str, Any]:
    return {"towers": _throughput(settings, quick), "tracing": _tracing(settings, quick)}
