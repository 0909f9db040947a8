"""Pure CRDT core: HLC, registers, counters, OR-Set, LWW-Map and their Avro forms.

Imports nothing from Faust, Kafka or etcd: the towers and the control plane both build on it.
"""

from pipeline.shared.crdt.base import Crdt, DeltaLog, check_replicas
from pipeline.shared.crdt.columns import LWWColumns
from pipeline.shared.crdt.counters import GCounter, PNCounter
from pipeline.shared.crdt.errors import ClockDriftError, CrdtError, MalformedStateError, UnknownReplicaError
from pipeline.shared.crdt.hlc import HLC, HybridClock
from pipeline.shared.crdt.lwwmap import LWWMap
from pipeline.shared.crdt.orset import CausalContext, ORSet
from pipeline.shared.crdt.registers import LWWRegister, MaxRegister
from pipeline.shared.crdt.wire import decode_as, decode_state, encode_state

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
    "decode_as",
    "decode_state",
    "encode_state",
]
