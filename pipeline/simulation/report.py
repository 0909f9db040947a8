"""The run's report: summary.json, report.md and pictures (space-time diagram, latency, load)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pipeline.consistency.table import markdown as consistency_markdown
from pipeline.shared.stats import percentile
from pipeline.simulation.recorder import Recorder
from pipeline.simulation.shockwave import queue_waves

__all__ = ["discharge_flow", "hazard_summary", "write_report"]


def hazard_summary(rec: Recorder, advisories: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    tr = rec.trajectories()
    for hid, h in rec.hazards.items():
        advised = [a for a in advisories if a["hazard_id"] == hid]
        until = None if h.end_s == float("inf") else h.end_s
        out[hid] = {
            "km": h.km, "direction": "BOTH" if h.northbound is None else "NORTHBOUND" if h.northbound else "SOUTHBOUND",
            "from_s": h.start_s, "until_s": None if h.end_s == float("inf") else h.end_s,
            "vehicles_passed": len(h.passing_mps),
            "max_passing_speed_mps": max(h.passing_mps, default=0.0),
            "passing_speed_p50_mps": percentile(h.passing_mps, 50) if h.passing_mps else 0.0,
            "passed_in_lane": {str(k): n for k, n in sorted(h.passed_in_lane.items())},
            "surprised_vehicles": len(h.surprised),
            "surprised_max_passing_speed_mps": max(h.surprised_passing_mps, default=0.0),
            "unadvised_vehicles_passed": len(h.unadvised_passing_mps),
            "unadvised_max_passing_speed_mps": max(h.unadvised_passing_mps, default=0.0),
            "lapsed_vehicles_passed": len(h.lapsed_passing_mps),
            "lapsed_max_passing_speed_mps": max(h.lapsed_passing_mps, default=0.0),
            "approach_speed_p50_mps": percentile(h.approach_mps, 50),
            "approach_speed_p90_mps": percentile(h.approach_mps, 90),
            "advisories": len(advised),
            "advised_regions": sorted({a["region_id"] for a in advised}),
            "actions": {k: sum(1 for a in advised if a["action"] == k) for k in ("SLOW_DOWN", "STOP", "KEEP")},
            # the queue behind it: how fast its tail moved back, and its head after it was cleared
            "queue": (queue := queue_waves(tr, h.km, h.northbound, h.start_s, until)),
            # and, where one stood behind it, how fast it drained once cleared
            "discharge_veh_h_lane": discharge_flow(h.cleared_crossings_s, h.lanes)
            if (queue["queue_max_km"] or 0.0) >= MIN_QUEUE_KM else None,
            # through its section (5 km before it to 1 km past it), while it stood and for 5 minutes after
            "section_travel_s": {"p50": percentile(h.section_s, 50), "p90": percentile(h.section_s, 90),
                                 "n": len(h.section_s)} if h.section_s else None,
        }  # fmt: skip
    return out


MIN_QUEUE_KM = 0.1  # a queue this long or longer behind a hazard: its discharge is a queue's
DISCHARGE_WINDOW_S = 60.0  # the queue's discharge: vehicles past the cleared place in its first minute


def discharge_flow(crossings_s: list[float], lanes: int) -> float | None:
    """Vehicles an hour per lane passing a cleared hazard's place, over the minute from the first one
    (the queue is still draining then); None if none passed or the run ended within that minute."""
    if not crossings_s or crossings_s[-1] - crossings_s[0] < DISCHARGE_WINDOW_S - 1:
        return None
    first = crossings_s[0]
    n = sum(1 for t in crossings_s if t < first + DISCHARGE_WINDOW_S)
    return round(n * 3600 / DISCHARGE_WINDOW_S / max(lanes, 1))


def _lanes(passed: dict[str, int]) -> str:
    if not passed:
        return ""
    return "; by lane (0 = right): " + ", ".join(f"{n} in lane {ln}" for ln, n in sorted(passed.items()))


def _waves(q: dict[str, Any]) -> str:
    if not q.get("queue_max_km"):
        return "No queue formed behind it."
    said = [f"its queue reached {q['queue_max_km']} km"]
    if q.get("forming_kmh") is not None:
        said.append(f"its tail moved upstream at {q['forming_kmh']} km/h while it blocked the road")
    if q.get("recovering_kmh") is not None:
        said.append(f"its head followed at {q['recovering_kmh']} km/h once cleared")
    return "; ".join(said).capitalize() + " (published: forming 3–19, recovering 9–27 km/h)."


def _discharge(h: dict[str, Any]) -> str:
    flow, section = h.get("discharge_veh_h_lane"), h.get("section_travel_s")
    said = "" if flow is None else f" Once cleared, its queue discharged {flow:,} vehicles/h/lane."
    if section:
        said += (f" Through its section (5 km before it to 1 km past it), vehicles took p50 {section['p50']:.0f} s, "
                 f"p90 {section['p90']:.0f} s ({section['n']} of them).")  # fmt: skip
    return said


def _traffic_line(t: dict[str, Any], who: str) -> str:
    ff = t["free_flow_kmh"]
    moved = "SUMO" if who == "sumo" else "corridor's fleet model"
    speeds = (f"free-flow speed (before any hazard, 1 km or more from an interchange) p10 {ff['p10']:.0f}, "
              f"p50 {ff['p50']:.0f}, p90 {ff['p90']:.0f} km/h" if ff["samples"] else "no free-flow sample")  # fmt: skip
    rate = t.get("lane_changes_per_100_vehicle_km")
    changes = f"; {rate} lane changes per 100 vehicle-km" if rate is not None else ""
    return f"Vehicles moved by {moved}: {speeds}{changes} ({t['vehicle_km']:,.0f} vehicle-km)."


def _spacetime(rec: Recorder, path: Path, hazards: dict[str, Any]) -> None:
    tr = rec.trajectories()
    fig, axes = plt.subplots(1, 2, figsize=(14, 6), sharex=True, sharey=True)  # one time axis for both
    for ax, northbound in zip(axes, (True, False), strict=True):
        sel = tr["nb"] == northbound
        sc = ax.scatter(tr["t"][sel] / 60, tr["km"][sel], c=tr["v"][sel] * 3.6, s=1.5, cmap="RdYlGn", vmin=0,
                        vmax=120, rasterized=True)  # fmt: skip
        for hid, h in hazards.items():
            if h["direction"] in ("BOTH", "NORTHBOUND" if northbound else "SOUTHBOUND"):
                end = h["until_s"] if h["until_s"] is not None else tr["t"].max(initial=h["from_s"])
                ax.plot([h["from_s"] / 60, end / 60], [h["km"], h["km"]], color="black", lw=1, ls="--", alpha=0.7)
                ax.annotate(
                    hid,
                    (h["from_s"] / 60, h["km"]),
                    xytext=(3, 5),
                    textcoords="offset points",
                    fontsize=8,
                    annotation_clip=True,
                    clip_on=True,
                )  # a label never outside its axes
        ax.set_title("northbound (to Indianapolis)" if northbound else "southbound (to Bloomington)")
        ax.set_xlabel("simulated time (min)")
    axes[0].set_ylabel("km along I-69 from Bloomington")
    fig.colorbar(sc, ax=axes, label="speed (km/h)")
    thinned = (
        ""
        if rec.tick_stride == rec.vehicle_stride == 1
        else (f" (the whole run: 1 tick in {rec.tick_stride}, 1 vehicle in {rec.vehicle_stride})")
    )
    fig.suptitle(f"Space-time diagram: each dot is one vehicle message; dashed lines are hazards{thinned}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _latency(latencies: list[float], hazard_latencies: list[float], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    # A log axis from 1 ms to the slowest advisory: a tail of stale advisories (minutes old) shows.
    top = max([100.0, *latencies, *hazard_latencies]) * 1.2
    bins = np.geomspace(1.0, top, 50).tolist()
    ax.set_xscale("log")
    ax.hist(latencies, bins=bins, alpha=0.6, label=f"all advisories (n={len(latencies)})")
    ax.hist(hazard_latencies, bins=bins, alpha=0.8, label=f"triggered by a hazard report (n={len(hazard_latencies)})")
    ax.axvline(100, color="red", ls="--", label="100 ms safety-message budget (3GPP TS 22.185)")
    ax.set_xlabel("trigger sent → advisory received by the vehicle (ms)")
    ax.set_ylabel("advisories")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _load(rec: Recorder, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if rec.load:
        load = np.vstack(rec.load)
        t = np.array(rec.load_t) / 60
        for r in range(load.shape[1]):
            ax.plot(t, load[:, r], lw=1, label=f"tower-{r:02d}")
    ax.set_xlabel("simulated time (min)")
    ax.set_ylabel("vehicles reporting per tick")
    ax.set_title("Load per tower region")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    out_dir: Path, summary: dict[str, Any], rec: Recorder, latencies: list[float], hazard_latencies: list[float]
) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out_dir / "summary.json",
        "report": out_dir / "report.md",
        "spacetime": out_dir / "spacetime.png",
        "latency": out_dir / "latency.png",
        "load": out_dir / "load.png",
    }
    paths["summary"].write_text(json.dumps(summary, indent=2, default=str) + "\n")
    _spacetime(rec, paths["spacetime"], summary["hazards"])
    _latency(latencies, hazard_latencies, paths["latency"])
    _load(rec, paths["load"])
    paths["report"].write_text(_markdown(summary))
    return paths


def _markdown(s: dict[str, Any]) -> str:
    lines = [
        f"# corridor simulation: {s['scenario']['name']}" + (" (PARTIAL: interrupted)" if s["partial"] else ""),
        "",
    ]
    lines.append(s["scenario"]["description"].strip())
    lines += ["", "## Run", "", "| | |", "|---|---|"]
    for key in (
        "simulated_s",
        "wall_s",
        "vehicles_target",
        "updates_sent",
        "kafka_records_acked",
        "updates_per_s",
        "messages_per_vehicle_s",
        "advisories_received",
        "stale_advisories",
        "forged_advisories",
        "vehicle_hazard_reports",
        "lane_changes",
        "outdated_advice_ignored",
        "dead_letters",
        "towers_converged",
        "converged_after_s",
    ):
        lines.append(f"| {key.replace('_', ' ')} | {s['run'].get(key, '–')} |")
    for problem in s["run"].get("problems", []):
        lines += ["", f"**Not protected throughout: {problem}.** The run exits non-zero."]
    if s["run"].get("stale_advisories"):
        lines += [
            "",
            f"**Warning: {s['run']['stale_advisories']} advisories arrived older than their validity** "
            "(their trigger was sent longer ago than the advisory stays valid): out of date on arrival.",
        ]
    if s["run"].get("forged_advisories"):
        lines += [
            "",
            f"**Warning: {s['run']['forged_advisories']} advisories were not signed by a tower** "
            "the fleet trusts (unsigned, an unknown key or a bad signature): the vehicles did not obey them.",
        ]
    behind = s.get("towers_behind_ms")
    if behind:
        verdict = "kept up" if behind["kept_up"] else "**fell behind**"
        lines += [
            "",
            "## Towers' delay (age of the newest telemetry frame processed, sampled each second)",
            "",
            f"p50 {behind['p50']:.0f} ms, p99 {behind['p99']:.0f} ms, max {behind['max']:.0f} ms; mean "
            f"{behind['first_half_mean']:.0f} ms in the first half of the run, {behind['second_half_mean']:.0f} ms "
            f"in the second ({behind['samples']} samples): the towers {verdict}.",
        ]
    lines += _worker_lines(s.get("towers", []))
    lines += _cpu_lines(s.get("cpu"))
    lat = s["latency_ms"]
    lines += [
        "",
        "## Advisory latency (trigger sent → vehicle received)",
        "",
        "| | p50 | p95 | p99 | n |",
        "|---|---|---|---|---|",
    ]
    for key in ("all", "hazard"):
        d = lat[key]
        lines.append(f"| {key} | {d['p50']:.1f} ms | {d['p95']:.1f} ms | {d['p99']:.1f} ms | {d['n']} |")
    lines += _late_lines(s.get("late_advice"))
    if s.get("prometheus"):
        lines += ["", "## As Prometheus saw it", "", *_prometheus_lines(s["prometheus"])]
    if s.get("traces"):
        lines += ["", "## The hazard path, hop by hop (from its traces)", "", *_trace_lines(s["traces"])]
    lines += ["", "## Hazards", ""]
    for hid, h in s["hazards"].items():
        lines.append(
            f"- **{hid}** at km {h['km']} ({h['direction']}), {h['from_s']:.0f} s → {h['until_s']} s: "
            f"{h['advisories']} advisories from regions {h['advised_regions']}; approach speed 200–400 m before it "
            f"p50 {h['approach_speed_p50_mps'] * 3.6:.0f} km/h, p90 {h['approach_speed_p90_mps'] * 3.6:.0f} km/h; "
            f"{h['vehicles_passed']} warned vehicles passed it, at p50 "
            f"{h.get('passing_speed_p50_mps', 0.0) * 3.6:.0f} km/h, the fastest at "
            f"{h['max_passing_speed_mps'] * 3.6:.0f} km/h{_lanes(h.get('passed_in_lane', {}))} "
            f"({h['surprised_vehicles']} were already within 500 m when it appeared"
            f"{_unadvised(h)}{_lapsed(h)}). {_waves(h.get('queue', {}))}{_discharge(h)}"
        )
    if s.get("traffic"):
        lines += ["", "## Traffic", "", _traffic_line(s["traffic"], s["run"].get("traffic", "builtin"))]
    if s.get("consistency"):
        lines += ["", "## What each class of data guarantees, and how stale it was", ""]
        lines += consistency_markdown(s["consistency"]["rows"], s["consistency"]["workers"])
    if s.get("analytics"):
        lines += ["", "## The corridor as a whole (Spark, 10-second windows)", "", *_analytics_lines(s["analytics"])]
    lines += ["", "## Events", ""] + [f"- {e}" for e in s["events_played"]]
    lines += ["", "![space-time](spacetime.png)", "", "![latency](latency.png)", "", "![load](load.png)", ""]
    return "\n".join(lines)


def _cpu_lines(cpu: dict[str, Any] | None) -> list[str]:
    if not cpu or not cpu.get("seconds_by_part"):
        return []
    lines = ["", f"## Where the CPU went ({cpu['wall_s']} s while the fleet drove, {cpu['cores']} cores here)", "",
             "| part | CPU seconds | cores |", "|---|---|---|"]  # fmt: skip
    wall = cpu["wall_s"] or 1.0
    for part, sec in cpu["seconds_by_part"].items():
        lines.append(f"| {part} | {sec} | {sec / wall:.2f} |")
    lines.append(f"| **all** | {sum(cpu['seconds_by_part'].values()):.1f} | **{cpu['cores_used']}** |")
    return lines


def _late_lines(late: dict[str, Any] | None) -> list[str]:
    if not late or not late["late"]:
        return []
    spells = "; ".join(f"{x['from_s']:.0f}–{x['to_s']:.0f} s: {x['late']:,}, worst {x['worst_ms']:,} ms, regions "
                       f"{', '.join(map(str, x['regions']))}" for x in late["spells"][:8])  # fmt: skip
    more = f" (and {len(late['spells']) - 8} more spells)" if len(late["spells"]) > 8 else ""
    return ["", f"{late['late']:,} advisories over the {late['budget_ms']:.0f} ms budget, by when their trigger "
                f"happened: {spells}{more}."]  # fmt: skip


def _worker_lines(towers: list[dict[str, Any]]) -> list[str]:
    """Each worker's rebalances, the longest pause one made in its streams (advice waits as long),
    and its event loop's longest stall: a stall as long as the group session takes a live worker's
    regions away, so this says how much margin the session had."""
    known = [t for t in towers if t.get("loop_stall_max_s") is not None]
    if not known:
        return []

    def pause(t: dict[str, Any]) -> str:
        return "" if t.get("rebalance_pause_max_s") is None else f" (longest pause {t['rebalance_pause_max_s']:.2f} s)"

    each = "; ".join(f"worker {t['worker']}: {t['rebalances']} rebalances{pause(t)}, longest stall "
                     f"{t['loop_stall_max_s']:.2f} s ({t['loop_stalls_long']} past a third of the session)"
                     for t in known)  # fmt: skip
    return ["", f"Workers' event loops (their group heartbeats wait on them): {each}."]


def _prometheus_lines(p: dict[str, Any]) -> list[str]:
    """The run's figures against what its Prometheus answered (PromQL over the fleet's histograms)."""
    if "error" in p:
        return [f"**Prometheus could not be asked:** {p['error']}"]
    fired = ", ".join(p["alerts_fired"]) or "none"
    return [
        "| | Prometheus | agrees with the report |",
        "|---|---|---|",
        f"| advisories received | {p['advisories_received']:.0f} | {p['advisories_agree']} |",
        f"| all-advisory p99 (`histogram_quantile`) | {p['p99_ms']['all']} ms | {p['p99_agree']['all']} (one bucket) |",
        f"| hazard → advisory p99 | {p['p99_ms']['hazard']} ms | {p['p99_agree']['hazard']} (one bucket) |",
        "",
        f"Alerts fired during the run: {fired}.",
    ]


def _trace_lines(t: dict[str, Any]) -> list[str]:
    lines = [f"{t['reports']} hazard reports traced; {t['traces_complete']} traces reached a vehicle whole "
             "(report → tower → vehicle), one row per advisory received:", "",
             "| hop | p50 | p99 | n |", "|---|---|---|---|"]  # fmt: skip
    for hop, d in t["hops_ms"].items():
        lines.append(f"| {hop} | {d['p50']:.1f} ms | {d['p99']:.1f} ms | {d['n']} |")
    return lines


def _unadvised(h: dict[str, Any]) -> str:
    n = h.get("unadvised_vehicles_passed", 0)
    if not n:
        return ""
    fastest = h["unadvised_max_passing_speed_mps"] * 3.6
    return f"; {n} passed it not warned in time to stop, the fastest at {fastest:.0f} km/h"


def _lapsed(h: dict[str, Any]) -> str:
    n = h.get("lapsed_vehicles_passed", 0)
    if not n:
        return ""
    fastest = h["lapsed_max_passing_speed_mps"] * 3.6
    return (f"; {n} warned in time passed it after their advice had lapsed (no word from their tower for "
            f"longer than its validity), the fastest at {fastest:.0f} km/h")  # fmt: skip


def _analytics_lines(a: dict[str, Any]) -> list[str]:
    lines = [f"{a['windows']} windows finished by the watermark, {a['records']:,} stats records; late updates "
             f"counted: {a['late_dropped']}.", ""]  # fmt: skip
    if a.get("error"):
        lines = [f"**The Spark job stopped during the run:** {a['error']}", "", *lines]
    for direction, label in (("northbound", "Bloomington → I-465"), ("southbound", "I-465 → Bloomington")):
        tt = a.get(f"travel_time_min_{direction}")
        if tt:
            lines.append(f"- travel time {label}: {tt['min']}–{tt['max']} min (last window {tt['last']} min)")
    for ep in a["episodes"]:
        wave = "n/a" if ep["shockwave_kmh"] is None else f"{ep['shockwave_kmh']:+.1f} km/h"
        span = f"from {ep['start_s']:.0f} s to {ep['last_s']:.0f} s"
        lines.append(f"- congestion {ep['id']} ({ep['direction'].lower()}): {span}, up to "
                     f"{ep['max_extent_km']:.0f} km long, upstream edge {wave}")  # fmt: skip
    return [*lines, "", "![travel times](travel_times.png)", "", "![speed heat map](speed_heatmap.png)"]
