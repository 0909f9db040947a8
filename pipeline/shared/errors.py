"""The root of every error corridor raises on purpose.

Each subclass carries a message written for the operator: what failed, why, and what to do.
The CLI prints it on one line and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["ConfigError", "CorridorError", "StackError"]


class CorridorError(Exception):
    """Base class: an expected failure with a message fit for one line on a terminal."""


class ConfigError(CorridorError):
    """A setting, flag or configuration file is invalid; fix the value named in the message."""


class StackError(CorridorError):
    """Kafka or etcd could not be started, reached or stopped; the message names cause and fix."""
