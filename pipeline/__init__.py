"""Shared plumbing of corridor: settings, topic declarations, the embedded stack, codecs and CRDTs."""

__all__: list[str] = []
