"""Late advice gathered into the spells of the run it was triggered in."""

from __future__ import annotations

from pipeline.shared.crdt.hlc import pack
from pipeline.simulation.slow_advice import late_spells

T0 = 1_764_000_000_000  # the run's start, event time
WALL0 = T0 + 450_000  # the wall clock at the run's start: a 600 s run at 4x replays the recent past


def adv(trigger_s: float, latency_ms: float, region: int, speedup: float = 1.0) -> dict[str, int | float]:
    sent = (WALL0 if speedup != 1.0 else T0) + int(trigger_s * 1000 / speedup)  # when, by the wall clock
    return {"trigger_hlc": pack(sent, 3), "trigger_event_time": T0 + int(trigger_s * 1000),
            "received_ms": sent + latency_ms, "region_id": region}  # fmt: skip


def test_late_advice_is_gathered_into_spells_and_on_time_advice_left_out() -> None:
    history = [adv(10, 30, 1), adv(61.2, 1_020, 5), adv(60.5, 900, 6), adv(63, 400, 5), adv(90, 99, 2),
               adv(121, 800, 3), adv(122.5, 150, 3)]  # fmt: skip
    got = late_spells(history, T0)
    assert got["late"] == 5 and got["budget_ms"] == 100
    assert got["spells"] == [
        {"from_s": 60.5, "to_s": 63.0, "late": 3, "worst_ms": 1_020, "regions": [5, 6]},
        {"from_s": 121.0, "to_s": 122.5, "late": 2, "worst_ms": 800, "regions": [3]},
    ]


def test_spells_are_placed_on_the_runs_clock_whatever_its_speed_up() -> None:
    history = [adv(100, 30, 1, speedup=4), adv(200, 250, 4, speedup=4), adv(201, 180, 5, speedup=4)]
    got = late_spells(history, T0)
    assert got["spells"] == [{"from_s": 200.0, "to_s": 201.0, "late": 2, "worst_ms": 250, "regions": [4, 5]}]


def test_a_run_with_no_late_advice_has_no_spells() -> None:
    assert late_spells([adv(5, 20, 0)], T0) == {"budget_ms": 100.0, "late": 0, "spells": []}


def test_the_report_says_when_advice_was_late_and_how_each_workers_loop_fared() -> None:
    from pipeline.simulation.report import _late_lines, _worker_lines

    late = late_spells([adv(120.2, 1_266, 5), adv(121, 900, 5)], T0)
    assert _late_lines(late)[-1] == ("2 advisories over the 100 ms budget, by when their trigger happened: "
                                     "120–121 s: 2, worst 1,266 ms, regions 5.")  # fmt: skip
    assert _late_lines(late_spells([], T0)) == []
    towers = [{"worker": 7, "rebalances": 3, "loop_stall_max_s": 0.27, "loop_stalls_long": 0}]
    assert "worker 7: 3 rebalances, longest stall 0.27 s (0 past a third of the session)" in _worker_lines(towers)[-1]
    towers[0]["rebalance_pause_max_s"] = 0.412
    assert "worker 7: 3 rebalances (longest pause 0.41 s), longest stall 0.27 s" in _worker_lines(towers)[-1]
    assert _worker_lines([{"worker": 7}]) == [], "workers that do not measure their loop: nothing said"
