"""How simulated drivers get past a hazard, by its kind and severity: the world's own figures."""

from __future__ import annotations

import pytest

from producers.hazard_driving import ICE_MPS, SHOULDER_MPS, SQUEEZE_MPS, WORK_ZONE_MPS, passing_speed_mps


@pytest.mark.parametrize(
    ("kind", "severity", "mps"),
    [
        ("ACCIDENT", 6, SQUEEZE_MPS),
        ("ANIMAL", 2, SHOULDER_MPS),  # on the shoulder: slowed, not stopped
        ("END_OF_QUEUE", 1, SQUEEZE_MPS),  # traffic itself: no shoulder to pass it on
        ("ICE", 2, ICE_MPS[0]),
        ("ICE", 5, ICE_MPS[1]),
        ("ICE", 7, ICE_MPS[2]),
        ("WORK_ZONE", 4, WORK_ZONE_MPS),
        ("WORK_ZONE", 7, SQUEEZE_MPS),  # closed
        ("METEOR", 1, SQUEEZE_MPS),  # unknown: the careful side
    ],
)
def test_drivers_pass_a_hazard_at_the_speed_the_road_allows(kind: str, severity: int, mps: float) -> None:
    assert passing_speed_mps(kind, severity) == pytest.approx(mps)
