"""`corridor bench` without an optional part: that section is skipped with the reason, the rest run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import bench_cmd
from pipeline.cli.main import app
from pipeline.shared.errors import StackError


def test_without_mosquitto_the_mqtt_section_is_skipped_with_the_reason(monkeypatch, tmp_path: Path) -> None:
    """It failed the whole bench ("the radio link needs an MQTT broker") after the other sections had run."""

    why = "the radio link needs an MQTT broker: apt-get install mosquitto, or set MQTT_URL"

    def missing() -> Path:
        raise StackError(why)

    monkeypatch.setattr(bench_cmd, "mosquitto_binary", missing)
    monkeypatch.delenv("MQTT_URL", raising=False)
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "--quick", "--only", "mqtt", "--only", "crdt", "--output", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    assert results["mqtt"] == {
        "skipped": "the radio link needs an MQTT broker: apt-get install mosquitto, or set MQTT_URL"
    }
    assert results["crdt"] and "skipped" not in results["crdt"], "the others still run"


def test_a_section_that_fails_is_reported_and_fails_the_bench_after_the_others(monkeypatch, tmp_path: Path) -> None:
    def broken(ctx, quick: bool) -> dict:
        raise RuntimeError("worker died")

    monkeypatch.setitem(bench_cmd.SECTIONS, "fleet", broken)
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "--quick", "--only", "fleet", "--only", "crdt", "--output", str(out)])
    assert result.exit_code == 1
    results = json.loads(out.read_text())
    assert results["fleet"] == {"error": "RuntimeError: worker died"} and "error" not in results["crdt"]


@pytest.fixture(autouse=True)
def _plain(monkeypatch) -> None:
    for var in ("CORRIDOR_ROUTE_FILE", "CORRIDOR_TOWERS_FILE"):
        monkeypatch.delenv(var, raising=False)
