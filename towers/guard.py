"""A worker serves the Kafka cluster it started with, and no other.

A worker left running by an earlier run (its parent gone) would otherwise reconnect to whatever
broker later listens on the same address — a new embedded stack — join it with a consumer group of
its own, replay that cluster's telemetry from the beginning and publish advice with triggers hours
old. The guard notes the cluster id at start and, checked periodically, ends the worker when the id
at its address changes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

__all__ = ["ClusterGuard"]

log = logging.getLogger(__name__)


class ClusterGuard:
    def __init__(self, cluster_id: Callable[[], str | None], interval_s: float = 5.0) -> None:
        """`cluster_id` asks the broker for its cluster id (None when it does not answer)."""
        self.cluster_id = cluster_id
        self.interval_s = interval_s
        self.expected = cluster_id()
        self._stop = threading.Event()

    def check(self) -> str | None:
        """Why this worker must stop, or None (also while the broker does not answer)."""
        found = self.cluster_id()
        if self.expected is None:
            self.expected = found
            return None
        if found is not None and found != self.expected:
            return f"the Kafka cluster at this worker's address is now {found}, not {self.expected} it started with"
        return None

    def watch(self, on_foreign: Callable[[str], None] | None = None) -> threading.Thread:
        """Check on a thread of its own; a foreign cluster ends the process (nothing is written to it)."""

        def run() -> None:
            while not self._stop.wait(self.interval_s):
                reason = self.check()
                if reason is not None:
                    (on_foreign or _exit)(reason)
                    return

        thread = threading.Thread(target=run, name="cluster-guard", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def _exit(reason: str) -> None:
    log.error("tower worker stops: %s", reason)
    os._exit(3)
