"""Pure CRDT core: HLC, registers, counters, OR-Set, LWW-Map and their Avro forms.

Imports nothing from Faust, Kafka or etcd: the towers and the control plane both build on it.
"""

from pipeline.crdt.base import Crdt, DeltaLog, check_replicas
from pipeline.crdt.columns import LWWColumns
from pipeline.crdt.counters import GCounter, PNCounter
from pipeline.crdt.errors import ClockDriftError, CrdtError, MalformedStateError, UnknownReplicaError
from pipeline.crdt.hlc import HLC, HybridClock
from pipeline.crdt.lwwmap import LWWMap
from pipeline.crdt.orset import CausalContext, ORSet
from pipeline.crdt.registers import LWWRegister, MaxRegister
from pipeline.crdt.wire import decode_state, encode_state

__all__ = [
    "HLC",
    "CausalContext",
    "ClockDriftError",
    "Crdt",
    "CrdtError",
    "DeltaLog",
    "GCounter",
    "HybridClock",
    "LWWColumns",
    "LWWMap",
    "LWWRegister",
    "MalformedStateError",
    "MaxRegister",
    "ORSet",
    "PNCounter",
    "UnknownReplicaError",
    "check_replicas",
    "decode_state",
    "encode_state",
]
