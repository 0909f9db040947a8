"""The towers' flow control clears their stream queues only when flow starts after a pause."""

from __future__ import annotations

from mode.utils.queues import FlowControlEvent, FlowControlQueue

from towers.flow_control import SteadyFlowControl


def _flowing(flow: FlowControlEvent) -> FlowControlQueue[int]:
    queue: FlowControlQueue[int] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    flow.resume()
    queue.put_nowait(7)  # fetched once the stream partitions were resumed
    return queue


def test_a_resume_while_flowing_keeps_what_was_fetched() -> None:
    flow = SteadyFlowControl()
    queue = _flowing(flow)
    flow.resume()  # the end of a recovery: flow was already running
    assert queue.qsize() == 1 and flow.is_active()


def test_a_resume_after_a_pause_still_clears_what_came_before_it() -> None:
    flow = SteadyFlowControl()
    queue = _flowing(flow)
    flow.suspend()  # a rebalance
    assert not flow.is_active()
    flow.resume()
    assert queue.qsize() == 0 and flow.is_active()


def test_fausts_own_drops_them() -> None:
    """What the towers' class exists for: if Faust's ever keeps them, this fails and it can go."""
    flow = FlowControlEvent()
    queue = _flowing(flow)
    flow.resume()
    assert queue.qsize() == 0
