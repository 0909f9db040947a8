"""The results page (`docs/results.md`), written from what benches and runs leave behind
(`bench.json`, each run's `summary.json`) so that no figure on it is typed by hand. Pure."""

from __future__ import annotations

from typing import Any

from pipeline.bench.report import TARGETS, flatten

__all__ = ["HEADER", "results_page"]

HEADER = "<!-- written by `corridor results` from the files in docs/results/: change those, not this page -->"

#: a run's figures worth a row, in this order (the report has them all)
RUN_ROWS = ("simulated_s", "wall_s", "vehicles_target", "updates_sent", "updates_per_s", "advisories_received",
            "stale_advisories", "outdated_advice_ignored", "dead_letters", "towers_converged")  # fmt: skip


def results_page(bench: dict[str, Any], runs: dict[str, dict[str, Any]]) -> str:
    """Markdown for the bench's every metric against its target, then each run's headline figures."""
    m = bench.get("machine", {})
    lines = [HEADER, "", "# Results", ""]
    lines += [
        f"`corridor bench`, {m.get('date', '?')}: {m.get('cores', '?')} cores, {m.get('memory_gib', '?')} GiB, "
        f"Python {m.get('python', '?')} ({m.get('platform', '?')}). What each section measures, and how: "
        "[Benchmarks](benchmarks.md).",
    ]
    took = bench.get("durations_s", {})
    for section, metrics in bench.items():
        if section in ("machine", "durations_s") or not isinstance(metrics, dict):
            continue
        lines += ["", f"## {section}" + (f" ({took[section]:.0f} s)" if section in took else ""), ""]
        if set(metrics) <= {"skipped", "error"}:
            lines.append(
                f"{'Skipped' if 'skipped' in metrics else '**Failed**'}: {_cell(next(iter(metrics.values())))}"
            )
            continue
        lines += ["| metric | value | target | |", "|---|---|---|---|"]
        for metric, value in flatten(metrics).items():
            target = TARGETS.get((section, metric))
            verdict = ""
            if target is not None and isinstance(value, int | float) and not isinstance(value, bool):
                verdict = "met" if target.met(value) else "**missed**"
            bound = f"{target.op} {target.bound:g} {target.unit}" if target else ""
            lines.append(f"| {_cell(metric)} | {_cell(value)} | {bound} | {verdict} |")
    for name, s in sorted(runs.items()):
        lines += ["", f"## Run: {name}" + (" (interrupted)" if s.get("partial") else ""), ""]
        lines += ["| | |", "|---|---|"]
        run = s.get("run", {})
        lines += [f"| {key.replace('_', ' ')} | {_cell(run[key])} |" for key in RUN_ROWS if key in run]
        for kind, d in s.get("latency_ms", {}).items():
            if isinstance(d, dict) and d.get("n"):
                lines.append(f"| advisory latency, {kind}: p50 / p99 (n) | {d['p50']:.1f} / {d['p99']:.1f} ms "
                             f"({d['n']:,}) |")  # fmt: skip
        for hid, h in s.get("hazards", {}).items():
            lines.append(f"| {_cell(hid)}: warned vehicles passed, fastest | {h.get('vehicles_passed', 0)}, "
                         f"{h.get('max_passing_speed_mps', 0.0) * 3.6:.0f} km/h |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    """A table cell: floats to two places, and nothing a value holds can break the table."""
    text = f"{value:,.2f}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")
