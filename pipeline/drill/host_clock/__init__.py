"""A folder put first on a drilled worker's PYTHONPATH: its `sitecustomize` sets the clock ahead."""

from pathlib import Path

__all__ = ["AHEAD_ENV", "FOLDER"]

AHEAD_ENV = "CORRIDOR_DRILL_CLOCK_AHEAD_S"
FOLDER = Path(__file__).resolve().parent
