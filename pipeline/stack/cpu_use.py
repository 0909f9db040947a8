"""CPU seconds used by the processes a run started, read from /proc: where a machine's cores went.

A server or worker corridor starts leads a session of its own (`start_new_session`), so what it
starts in turn (a JVM under a launcher script, a pool's processes) is counted with it. A process
seen during the run and gone by its end keeps what it had used when last read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["CpuByPart", "cpu_seconds", "read_all_cpu"]

_TICK = os.sysconf("SC_CLK_TCK")


def _parse(stat: str) -> tuple[int, float]:
    """(session id, user + system CPU seconds) of one /proc/PID/stat line."""
    fields = stat.rpartition(")")[2].split()
    return int(fields[3]), (int(fields[11]) + int(fields[12])) / _TICK


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds `pid` has used so far (nan if it cannot be read)."""
    if pid is None:
        return float("nan")
    try:
        return _parse(Path(f"/proc/{pid}/stat").read_text())[1]
    except (OSError, ValueError, IndexError):
        return float("nan")


def read_all_cpu() -> dict[int, tuple[int, float]]:
    """Every process's (session id, CPU seconds), by pid."""
    out: dict[int, tuple[int, float]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                out[int(name)] = _parse(Path(f"/proc/{name}/stat").read_text())
            except (OSError, ValueError, IndexError):  # gone meanwhile
                continue
    return out


class CpuByPart:
    """Sampled now and then during a run (`sample`), the CPU seconds each part used since the first
    sample: `parts` gives, at each sample, the root pids of each part (a part may restart)."""

    def __init__(self) -> None:
        self._first: dict[int, float] = {}  # pid -> CPU when first seen (0 for one born after the start)
        self._last: dict[int, float] = {}
        self._part_of: dict[int, str] = {}
        self._samples = 0
        self.first_at = self.last_at = time.monotonic()  # when the first and the latest sample were read

    def sample(self, parts: Mapping[str, Iterable[int | None]]) -> None:
        procs = read_all_cpu()
        for part, roots in parts.items():
            for root in roots:
                if root is None or root not in procs:
                    continue
                leads = procs[root][0] == root
                members = [p for p, (sid, _) in procs.items() if sid == root] if leads else [root]
                for pid in members:
                    cpu = procs[pid][1]
                    if pid not in self._first:
                        self._first[pid] = cpu if self._samples == 0 else 0.0
                        self._part_of[pid] = part
                    self._last[pid] = cpu
        if self._samples == 0:
            self.first_at = time.monotonic()
        self.last_at = time.monotonic()
        self._samples += 1

    @property
    def wall_s(self) -> float:
        return self.last_at - self.first_at

    def seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, part in self._part_of.items():
            out[part] = out.get(part, 0.0) + max(0.0, self._last[pid] - self._first[pid])
        return {part: round(s, 1) for part, s in sorted(out.items(), key=lambda kv: -kv[1])}
