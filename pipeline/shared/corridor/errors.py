"""Errors of the corridor model."""

from __future__ import annotations

from pipeline.shared.errors import ConfigError

__all__ = ["RouteError"]


class RouteError(ConfigError):
    """A route or tower-region file is invalid; the message names the file and the fault."""
