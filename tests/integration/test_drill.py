"""A fault drill on the real stack: a worker SIGKILLed under load and restarted loses nothing."""

from __future__ import annotations

import pytest

from pipeline.drill.run import run_drill
from tests.helpers import assert_one_line_error, corridor

pytestmark = pytest.mark.integration


def test_a_worker_killed_under_load_loses_no_acknowledged_update(stack) -> None:
    row = run_drill("worker-kill", stack.settings, vehicles=400, seconds=30)
    assert any("SIGKILLed" in e for e in row["events"]) and any("restarted" in e for e in row["events"])
    assert row["vehicles_accounted"] > 300
    assert row["lost"] == 0, row["lost_examples"]
    assert row["kept"] + row["superseded"] == row["vehicles_accounted"]
    assert row["recovery_s"] is not None and row["recovery_s"] < 30, row


def test_an_unknown_fault_is_a_one_line_error(cli_env) -> None:
    assert_one_line_error(corridor(cli_env, "drill", "meteor"), "unknown fault", "worker-kill")
