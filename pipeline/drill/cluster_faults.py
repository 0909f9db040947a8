"""Faults of a cluster of three Kafka nodes and three etcd members: one of them killed or cut off,
chosen for the harm it can do (the broker leading the telemetry, the active controller, etcd's
leader), while the other two keep their quorum.

Each step finds its target when the fault starts, from the cluster itself: partition leaders from
the brokers' metadata, the active controller from the KRaft quorum state each node keeps on disk,
etcd's leader from its members' maintenance status."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from typing import Any

from confluent_kafka.admin import AdminClient

from pipeline.drill.drill import Drill, Step
from pipeline.shared.access import Role, client_conf
from pipeline.shared.errors import ConfigError, StackError
from pipeline.shared.stats import percentile
from pipeline.stack.etcd import EtcdServer
from pipeline.stack.kafka import KafkaBroker
from pipeline.stack.process import is_our_child

__all__ = ["active_controller", "etcd_follower", "etcd_leader", "hazards_report", "kill_node", "pause_node",
           "restart_node", "resume_node", "telemetry_leader"]  # fmt: skip

Node = KafkaBroker | EtcdServer


def telemetry_leader(d: Drill) -> KafkaBroker:
    """The broker leading the most of the telemetry topic's partitions: the one whose loss the
    fleet's producers and the towers' consumers feel most."""
    admin = AdminClient(client_conf(d.settings.kafka(Role.ADMIN), {"log_level": 0}))
    topic = admin.list_topics(d.topics.telemetry, timeout=10).topics[d.topics.telemetry]
    leaders = Counter(p.leader for p in topic.partitions.values() if p.leader >= 0)
    if not leaders:
        raise StackError(f"drill: no partition of {d.topics.telemetry} has a leader")
    node_id = leaders.most_common(1)[0][0]
    return next(b for b in d.stack.brokers if b.node_id == node_id)


def active_controller(d: Drill) -> KafkaBroker:
    """The KRaft quorum's leader, as the nodes' own quorum-state files say (the newest epoch wins):
    the client API names a random broker as the controller."""
    best: tuple[int, int] | None = None
    for b in d.stack.brokers:
        try:
            state = json.loads((b.home / "data" / "__cluster_metadata-0" / "quorum-state").read_text())
            seen = (int(state["leaderEpoch"]), int(state["leaderId"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if seen[1] > 0 and (best is None or seen > best):
            best = seen
    if best is None:
        raise StackError("drill: no Kafka node knows the quorum's leader")
    return next(b for b in d.stack.brokers if b.node_id == best[1])


def etcd_leader(d: Drill) -> EtcdServer:
    leaders = [e for e in d.stack.etcds if e.is_leader()]
    if not leaders:
        raise StackError("drill: no etcd member says it leads")
    return leaders[0]


def etcd_follower(d: Drill) -> EtcdServer:
    return next(e for e in d.stack.etcds if not e.is_leader())


def _pid(d: Drill, node: Node) -> int:
    pid = node.process.running_pid()
    if pid is None:
        raise ConfigError(f"this drill stops {node.name}, and it is not running here (an external cluster?)")
    if not is_our_child(pid):
        d.detached.add(node.name)
    return pid


def _stopping(sig: signal.Signals, done: str) -> Any:
    def make(choose: Any, why: str) -> Step:
        def step(d: Drill, t: float) -> None:
            node = choose(d)
            os.kill(_pid(d, node), sig)
            d.target = node
            d.note(t, f"{node.name} ({why}) {done}")

        return step

    return make


#: SIGKILL the node `choose(d)` names
kill_node = _stopping(signal.SIGKILL, "SIGKILLed")
#: SIGSTOP it: it holds its sockets open and answers nothing, as a node cut off would
pause_node = _stopping(signal.SIGSTOP, "cut off: paused (SIGSTOP)")


def restart_node(d: Drill, t: float) -> None:
    """Start the node again, and wait for it beside the traffic: the fleet drives on meanwhile, as
    it would while an operator's node comes back (waiting in its loop would stop the traffic)."""
    node = d.target
    assert isinstance(node, KafkaBroker | EtcdServer)
    node.spawn(attached=node.name not in d.detached)  # as it was: `stack up`'s outlive the drill
    d.note(t, f"{node.name} restarted")
    began = time.monotonic()

    def wait() -> None:
        try:
            node.wait_ready()
        except StackError as exc:
            d.note(t, f"{node.name} did not come back: {exc}")
        else:
            d.note(t, f"{node.name} answering again after {time.monotonic() - began:.1f} s")

    d.waiting.append(threading.Thread(target=wait, name=f"restart {node.name}", daemon=True))
    d.waiting[-1].start()


def resume_node(d: Drill, t: float) -> None:
    node = d.target
    assert isinstance(node, KafkaBroker | EtcdServer)
    pid = node.process.running_pid()
    if pid is not None:
        os.kill(pid, signal.SIGCONT)
    d.note(t, f"{node.name} back (SIGCONT)")


def hazards_report(d: Drill) -> dict[str, Any]:
    """Genuine hazards reported all along: how soon the towers reacted to each report (the first
    advisory it triggered, read from the topic), over the whole run and for those reported while the
    fault lasted (and the second after); and any never named in an advisory at all."""
    h = d.hazards
    if h is None:
        return {}
    start, end = d.fault_start_ms or 0, (d.fault_end_ms or d.fault_start_ms or 0) + 1_000
    during = sorted(ms for hid, ms in h.reaction_ms.items() if start <= h.hazards_sent[hid] <= end)
    return {
        "hazards_reported": len(h.hazards_sent),
        "hazards_advised": len(h.first_ms),
        **h.unadvised_report(d.tallies.values()),
        "hazard_p99_ms": _p99(sorted(h.reaction_ms.values())),
        "hazards_during_fault": sum(1 for sent in h.hazards_sent.values() if start <= sent <= end),
        "hazard_during_fault_p99_ms": _p99(during),
        "hazard_during_fault_worst_ms": round(during[-1], 1) if during else None,
        "sender_errors": h.errors,
    }


def _p99(values: list[float]) -> float | None:
    return round(percentile(values, 99), 1) if values else None
