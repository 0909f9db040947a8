"""`corridor results`: the results page, written from a bench's and the runs' own output files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pipeline.bench.results_page import results_page
from pipeline.shared.errors import ConfigError

__all__ = ["SOURCES", "merge_benches", "read_sources", "results"]

out = Console(highlight=False, soft_wrap=True)
SOURCES = "results"  # beside the page: the files it was written from, so that it can be checked against them


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a JSON object was expected")
    return data


def read_sources(folder: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The bench's results and each run's summary, as kept beside a results page."""
    runs = {p.stem: _json_object(p) for p in sorted(folder.glob("*.json")) if p.name != "bench.json"}
    return _json_object(folder / "bench.json"), runs


def results(
    bench: Annotated[
        list[Path] | None,
        typer.Option(help="a bench's JSON results (reports/bench.json); repeatable: a later file's sections win"),
    ] = None,
    run: Annotated[
        list[str] | None, typer.Option(help="a run's report folder (reports/<scenario>); repeatable")
    ] = None,
    page: Annotated[Path, typer.Option(help="the page to write")] = Path("docs/results.md"),
) -> None:
    """Write the results page from `corridor bench`'s and `corridor simulate`'s output, copying those
    files beside it (docs/results/), so that its figures are the measured ones, not retyped."""
    sources = page.parent / SOURCES
    runs = {Path(r).name: Path(r) / "summary.json" for r in run or []}
    if len(runs) != len(run or []) or "bench" in runs:
        raise ConfigError("each run's folder needs a name of its own, and none named bench")
    # every file read and checked before anything is written
    benches = bench or [Path("reports/bench.json")]
    merged = merge_benches([_json_object(path) for path in benches])
    read = {name: _json_object(path) for name, path in runs.items()}
    if sources.exists():
        shutil.rmtree(sources)
    sources.mkdir(parents=True)
    (sources / "bench.json").write_text(json.dumps(merged, indent=2) + "\n")
    for name, path in runs.items():
        shutil.copyfile(path, sources / f"{name}.json")
    page.write_text(results_page(merged, read))
    out.print(f"{page} written from {len(benches) + len(runs)} file(s), kept in {sources}")


def merge_benches(benches: list[dict[str, Any]]) -> dict[str, Any]:
    """Benches run section by section, as one: a later file's sections replace an earlier's, each
    section's machine and date noted when it differs from the first file's."""
    out: dict[str, Any] = {"machine": benches[0].get("machine", {}), "durations_s": {}}
    for b in benches:
        for section, value in b.items():
            if section == "durations_s" and isinstance(value, dict):
                out["durations_s"].update(value)
            elif section != "machine":
                out[section] = value
                if b is not benches[0] and isinstance(value, dict) and b.get("machine") != out["machine"]:
                    out[section] = {**value, "measured": str(b.get("machine", {}).get("date", "?"))}
    return out
