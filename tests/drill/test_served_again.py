"""How long a fault left a region unserved, read from the drill's samples."""

from __future__ import annotations

import math
from typing import Any

from pipeline.drill.drill import Sample
from pipeline.drill.run import _served_again_s


class _Drill:
    """What `_served_again_s` reads of a drill."""

    def __init__(self, samples: list[Sample], start: float | None, takeover_s: float | None = None) -> None:
        self.samples, self.fault_start_wall, self.takeover_s = samples, start, takeover_s
        self.topics: Any = type("T", (), {"regions": 9})()


def test_a_region_is_served_again_once_all_nine_are_owned_and_none_is_behind() -> None:
    samples = [
        Sample(9.0, 9, 100, 0),  # before the fault: not counted
        Sample(10.5, 5, 100, 0),  # a worker killed at 10: four regions unowned
        Sample(11.5, 9, 4_000, 0),  # taken over, but its backlog not yet read
        Sample(12.5, 9, 300, 0),
    ]
    assert _served_again_s(_Drill(samples, 10.0)) == 2.5  # type: ignore[arg-type]


def test_never_served_again_is_not_a_number_and_no_fault_is_none() -> None:
    assert math.isnan(_served_again_s(_Drill([Sample(11.0, 5, 0, 0)], 10.0)))  # type: ignore[arg-type]
    assert _served_again_s(_Drill([], None)) is None  # type: ignore[arg-type]


def test_a_takeover_watched_ten_times_a_second_is_not_rounded_up_to_the_next_sample() -> None:
    samples = [Sample(10.5, 5, 100, 0), Sample(11.5, 5, 100, 0), Sample(12.5, 9, 300, 0)]
    assert _served_again_s(_Drill(samples, 10.0, takeover_s=1.73)) == 1.73  # type: ignore[arg-type]
