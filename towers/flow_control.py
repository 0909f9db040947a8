"""A Faust app whose stream queues are cleared only when flow starts again after a pause.

faust-streaming (0.15.3; the same code on its main branch, reported as faust-streaming#596) resumes
flow twice in a recovery: once before it reads the changelogs, which clears what was queued before
the rebalance, and again at the end, after it has already let the stream partitions fetch. The
second resume clears the queues once more, and with them every record fetched in between: records
never processed, their offsets never acknowledged, so the partition's commits stop at the first of
them. Measured here: a worker restarted with 600 records waiting lost 1 to 22 of them in 11
restarts of 12 (`tests/integration/test_clients.py`).

A rebalance always suspends flow first, and clears the queues when it does, so a resume while flow
is running has nothing stale to throw away: here it is a no-op, and only suspended → running clears.
"""

from __future__ import annotations

import faust
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

__all__ = ["SteadyFlowApp", "SteadyFlowControl"]


class SteadyFlowControl(FlowControlEvent):
    """Clears its queues on resume only when flow was suspended."""

    def resume(self) -> None:
        if self.is_active():
            return
        super().resume()


class SteadyFlowApp(faust.App):
    """`faust.App` with `SteadyFlowControl` over its streams' queues."""

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return SteadyFlowControl(loop=self.loop)
