"""Which regions a worker forgets at a rebalance.

Faust's consumer group rebalances eagerly: every member is asked to give up all its partitions, then
gets its new share, and most of it is what it had. Dropping a region's state at the revocation made
the worker reload it from the tables (written up to a flush interval ago) and read its events again
from the committed offset as news: a worker that joined or came back made the others send advice
again for the last second of every region, late by that second. A region given back in the very
next generation had no other owner in between, so its state in memory is still the newest there
is; only a gap in generations (this worker was dropped from the group and others served its
regions meanwhile) or a region that moved makes the state stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RegionHandover"]


@dataclass
class RegionHandover:
    """Regions revoked and not yet settled, and the group generation they were held in."""

    revoked: set[int] = field(default_factory=set)
    held_in: int | None = None

    def on_revoked(self, regions: set[int], generation: int) -> None:
        """`generation`: the one the worker held `regions` in (the last it was assigned in)."""
        self.revoked |= regions
        if self.held_in is None:
            self.held_in = generation

    def on_assigned(self, regions: set[int], generation: int) -> set[int]:
        """The regions whose state in memory must be forgotten: those revoked and not given back at
        once, and all of them if a generation went by without this worker."""
        kept = regions if self.held_in is not None and generation == self.held_in + 1 else set()
        forget = self.revoked - kept
        self.revoked, self.held_in = set(), None
        return forget
