"""Typed errors of the CRDT core: bad input is refused before it touches a state."""

from __future__ import annotations

from pipeline.shared.errors import CorridorError

__all__ = ["ClockDriftError", "CrdtError", "MalformedStateError", "UnknownReplicaError"]


class CrdtError(CorridorError):
    """Base of every CRDT failure; a state is never modified when one is raised."""


class ClockDriftError(CrdtError):
    """A remote HLC timestamp is further ahead of our physical clock than the drift bound allows."""


class UnknownReplicaError(CrdtError):
    """A delta names a replica (tower) that is not part of the configured corridor."""


class MalformedStateError(CrdtError):
    """Encoded CRDT bytes or a decoded record do not describe a valid state."""
