"""How drivers get past a hazard on the road itself, whatever any tower advises.

This is the simulated world's side: road facts and drivers' habits, kept apart from the towers'
rules (`towers.rules`) so that a run does not grade the towers against their own assumptions. The
figures are the same published ones the towers' defaults use (a work zone's posted 45 mph, ice speeds
by severity), but a tower configured otherwise changes its advice, not how the simulated drivers cope.
Pure."""

from __future__ import annotations

__all__ = ["STOP_DECEL_MPS2", "passing_speed_mps"]

SQUEEZE_MPS = 5.0  # past something blocking the carriageway: walking-plus pace, one car at a time
SHOULDER_MPS = 60 / 3.6  # past a minor one (on the shoulder, severity 1–2): drivers slow, they do not stop
WORK_ZONE_MPS = 45 * 0.44704  # Indiana's usual posted work-zone limit
ICE_MPS = (80 / 3.6, 60 / 3.6, 40 / 3.6)  # light (severity 1–3), moderate (4–5), severe (6–7)
#: told to stop, drivers brake firmly, not at the comfortable rate they slow down to a new limit at,
#: and well short of an emergency stop (about 8–9 m/s² on dry asphalt); a warning that leaves less
#: room than this is a late one
STOP_DECEL_MPS2 = 4.0
_BLOCKING = frozenset({"OBSTACLE", "ANIMAL", "PEDESTRIAN", "STOPPED_VEHICLE", "ACCIDENT", "WRONG_WAY_DRIVER"})


def passing_speed_mps(kind: str, severity: int) -> float:
    """The speed drivers get through a hazard across every lane at (a closed lane is a wall instead)."""
    if kind == "ICE":
        return ICE_MPS[0] if severity <= 3 else ICE_MPS[1] if severity <= 5 else ICE_MPS[2]
    if kind == "WORK_ZONE":
        return SQUEEZE_MPS if severity >= 7 else WORK_ZONE_MPS  # severity 7: closed
    if kind in _BLOCKING and severity <= 2:
        return SHOULDER_MPS
    return SQUEEZE_MPS  # blocking, the end of a queue, or a kind drivers do not know: the careful side
