"""The queue's waves, measured from trajectories: a queue made to move at known speeds is read back."""

from __future__ import annotations

import numpy as np

from pipeline.simulation.shockwave import queue_waves


def _queue_run(forming_kmh: float, recovering_kmh: float, hazard_km: float = 36.0) -> dict[str, np.ndarray]:
    """Northbound vehicles every 10 m: those between the head and the tail of a queue are stopped,
    the rest drive at 30 m/s. The tail grows back at `forming_kmh` from t = 0 to 200 s (the hazard
    is cleared then); afterwards the head follows at `recovering_kmh` until it meets the tail."""
    t, km, v = [], [], []
    for s in np.arange(0.0, 400.0, 2.0):
        tail = forming_kmh / 3600 * min(s, 200.0)
        head = max(0.0, recovering_kmh / 3600 * (s - 200.0))
        for u in np.arange(0.0, 5.0, 0.01):
            t.append(s)
            km.append(hazard_km - u)
            v.append(0.0 if head <= u <= tail else 30.0)
    n = len(t)
    return {"t": np.array(t), "km": np.array(km), "v": np.array(v), "nb": np.ones(n, bool)}


def test_the_waves_of_a_queue_are_measured_at_the_speeds_they_moved() -> None:
    w = queue_waves(_queue_run(12.0, 20.0), 36.0, True, 0.0, 200.0)
    assert w["forming_kmh"] is not None and abs(w["forming_kmh"] - 12.0) < 1.5
    assert w["recovering_kmh"] is not None and abs(w["recovering_kmh"] - 20.0) < 2.0
    assert abs((w["queue_max_km"] or 0) - 12.0 * 200 / 3600) < 0.05


def test_no_queue_no_wave_and_the_other_carriageway_is_not_read() -> None:
    tr = _queue_run(12.0, 20.0)
    assert queue_waves({**tr, "v": np.full(len(tr["v"]), 30.0)}, 36.0, True, 0.0, 200.0)["forming_kmh"] is None
    assert queue_waves(tr, 36.0, False, 0.0, 200.0) == {"forming_kmh": None, "recovering_kmh": None,
                                                        "queue_max_km": 0.0}  # fmt: skip
