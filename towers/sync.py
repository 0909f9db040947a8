"""Lazy tower-to-tower sync: build a region's sync message, and merge the neighbours' into a view.

Each message carries CRDT deltas since the sender's previous one; every `full_every`-th carries
whole states instead, so a tower that started late, or lost messages, converges anyway. Merging is
a join, so duplicates, reordering and replays are harmless. Pure: the app does the Kafka I/O.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.shared.bounds import MAX_ID_LEN, hlc_problem, id_problem
from pipeline.shared.crdt import (
    LWWMap,
    MalformedStateError,
    ORSet,
    UnknownReplicaError,
    check_replicas,
    decode_as,
    encode_state,
)
from pipeline.shared.crdt.hlc import HybridClock
from towers.region import Aggregates, RegionEngine
from towers.staleness import VisibilityLog
from towers.validation import hazards_problem
from towers.vehicle_buckets import BUCKETS

__all__ = ["NeighbourView", "SyncPublisher", "known_replicas", "message_problem", "state_digest"]


def state_digest(members: Iterable[str], hazards: LWWMap) -> str:
    """What a view must hold to equal its owner's state: the swarm, and each live hazard's version."""
    h = hashlib.blake2b(digest_size=8)
    for m in sorted(members):
        h.update(m.encode() + b"\0")
    h.update(b"\1")
    for k in sorted(hazards.value):
        h.update(f"{k}@{hazards.entries[k][0]}".encode() + b"\0")
    return h.hexdigest()


@dataclass
class SyncPublisher:
    """Remembers, per region, what was already sent, so each message holds only what is new."""

    full_every: int = 10
    # the tower's clock: the host's, or the senders' when the host's is found off (`towers.clock_skew`)
    wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)
    _sent: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # region -> (seq, member v, hazard v)
    _arrivals: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    _aggregates_sent: dict[int, int] = field(default_factory=dict)  # region -> when its last aggregates went
    _full_next: set[int] = field(default_factory=set)  # regions whose next message carries whole states

    def note_arrivals(self, region: int, arrivals: list[tuple[str, int]]) -> None:
        self._arrivals.setdefault(region, []).extend(arrivals)

    def resend_full(self) -> None:
        """The next message of every region carries whole states: after a rebalance, a worker that
        just joined (reading tower-sync from its end) would otherwise know its neighbours' earlier
        hazards only at their next full state, up to `full_every` messages later, and meanwhile advise
        (lift advice, even) as if there were none."""
        self._full_next = set(self._sent)

    def forget(self, region: int) -> None:
        """The region left this worker: what was sent for its old state says nothing of the next one."""
        for memory in (self._sent, self._arrivals, self._aggregates_sent):
            memory.pop(region, None)

    def important(self, state: RegionEngine, clock: HybridClock) -> dict[str, Any]:
        seq, member_v, hazard_v = self._sent.get(state.region, (0, 0, 0))
        # versions ahead of the logs: they belong to a state since replaced; only a full one is safe
        behind = member_v > state.member_log.version or hazard_v > state.hazard_log.version
        full = seq % self.full_every == 0 or behind or state.region in self._full_next
        self._full_next.discard(state.region)
        if full:
            members: ORSet | None = state.members.union()
            hazards: LWWMap | None = state.hazards
        else:
            members = state.member_log.since(member_v)
            hazards = state.hazard_log.since(hazard_v)
        self._sent[state.region] = (seq + 1, state.member_log.version, state.hazard_log.version)
        # Deltas every neighbour has had (by now, or in the next full state) need not be kept.
        state.member_log.truncate(state.member_log.version)
        state.hazard_log.truncate(state.hazard_log.version)
        arrivals = self._arrivals.pop(state.region, [])
        return {
            "tower": state.tower,
            "region_id": state.region,
            "seq": seq,
            "sync_class": "IMPORTANT",
            "full": full,
            "sent_at": self.wall_ms(),
            "hlc": clock.now(),
            "members": encode_state(members) if members is not None else None,
            "hazards": encode_state(hazards) if hazards is not None else None,
            "arrivals": [{"vehicle_id": v, "hlc": ts} for v, ts in arrivals],
            "member_count": len(state.members),
            "aggregates": None,
            "changes_since": state.take_unsent_since(),
            "state_digest": state_digest(state.members.value, state.hazards),
        }

    def unimportant(self, state: RegionEngine, aggregates: Aggregates, clock: HybridClock) -> dict[str, Any]:
        # Aggregates change all the time: the oldest change they carry is the first after the last ones.
        now = self.wall_ms()
        since = self._aggregates_sent.get(state.region, 0)
        self._aggregates_sent[state.region] = now
        return {
            "tower": state.tower,
            "region_id": state.region,
            "seq": -1,
            "sync_class": "UNIMPORTANT",
            "full": False,
            "sent_at": now,
            "hlc": clock.now(),
            "members": None,
            "hazards": None,
            "arrivals": [],
            "member_count": aggregates.count,
            "aggregates": {k: float(v) for k, v in asdict(aggregates).items()},
            "changes_since": since,
            "state_digest": "",
        }


@dataclass
class Neighbour:
    members: ORSet = field(default_factory=ORSet)
    hazards: LWWMap = field(default_factory=LWWMap)
    member_count: int = 0
    aggregates: dict[str, float] = field(default_factory=dict)
    last_merge_wall_ms: int = 0
    last_important_ms: int = 0  # send time of the newest message of each class merged
    last_unimportant_ms: int = 0
    # send time of the newest message after which this view hashed as its sender's state did: the
    # moment, by the sender's clock, as of which this view was known to equal the source
    matched_sent_at_ms: int = 0
    messages: int = 0

    @property
    def last_sent_at_ms(self) -> int:
        """Send time of the newest message merged, of either class."""
        return max(self.last_important_ms, self.last_unimportant_ms)


def known_replicas(towers: tuple[str, ...]) -> frozenset[str]:
    """Every replica id a corridor's towers write with: each tower's, and each of its member shards'."""
    return frozenset(towers) | {f"{t}#{b}" for t in towers for b in range(BUCKETS)}


#: a sync message's lists and maps, at most (a region's swarm is a few thousand vehicles)
_MAX_ITEMS = 50_000


def message_problem(
    msg: dict[str, Any], members: ORSet | None, hazards: LWWMap | None, now_ms: int, max_ahead_ms: int
) -> str | None:
    """Why a decoded sync message may not be merged (None: it may): every field the view, the
    staleness log and the advice rules read, bounded, so one message cannot break a worker that
    reads it (every worker reads every region's)."""
    sent, since = msg["sent_at"], msg.get("changes_since", 0)
    if not 0 < sent <= now_ms + max_ahead_ms or not 0 <= since <= now_ms + max_ahead_ms:
        return f"sent_at {sent} / changes_since {since} outside (0, now + {max_ahead_ms} ms]"
    if not 0 <= msg["member_count"] <= _MAX_ITEMS or len(msg["arrivals"]) > _MAX_ITEMS:
        return f"member_count {msg['member_count']}, {len(msg['arrivals'])} arrivals"
    problem = hlc_problem(msg["hlc"], now_ms, max_ahead_ms)
    if problem is not None:
        return f"hlc: {problem}"
    for a in msg["arrivals"]:
        problem = id_problem(a["vehicle_id"], "arrival") or hlc_problem(a["hlc"], now_ms, max_ahead_ms)
        if problem is not None:
            return f"arrival: {problem}"
    aggregates = msg["aggregates"] or {}
    if len(aggregates) > 32 or any(k != k.strip() or len(k) > MAX_ID_LEN or not -1e9 <= v <= 1e9
                                   for k, v in aggregates.items()):  # fmt: skip
        return "aggregates must be a few finite numbers"
    if len(msg.get("state_digest") or "") > 64:
        return "state digest longer than 64 characters"
    if members is not None:
        if len(members.entries) > _MAX_ITEMS:
            return f"{len(members.entries)} members"
        for vid in members.entries:
            problem = id_problem(vid, "member")
            if problem is not None:
                return problem
    if hazards is not None:
        if len(hazards.entries) > _MAX_ITEMS:
            return f"{len(hazards.entries)} hazards"
        return hazards_problem(hazards, now_ms, max_ahead_ms)
    return None


@dataclass
class NeighbourView:
    """What a worker knows of every region through tower-sync (its own regions included).

    Only the corridor's own towers may write into it: a message from another tower id, for a region
    that is not the sender's, or with deltas naming other replicas, is refused (`UnknownReplicaError`)
    before anything is merged."""

    towers: tuple[str, ...] = ()  # tower id of each region; empty: accept any (tests of the view alone)
    #: how far ahead of this worker's clock a message's stamps may be (the towers' drift bound)
    max_ahead_ms: int = 5_000
    regions: dict[int, Neighbour] = field(default_factory=dict)
    log: VisibilityLog = field(default_factory=VisibilityLog)
    _known: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self._known = known_replicas(self.towers)

    def merge(self, msg: dict[str, Any], now_ms: int, own: bool = False) -> list[tuple[str, int]]:
        """Merge one sync message; returns its arrivals (vehicles the sender took over). A message of
        a region this worker serves itself (`own`) is not decoded further: its state is the source.
        `now_ms` is the engine's clock: the view keeps none of its own."""
        members = decode_as(msg["members"], ORSet) if msg["members"] is not None and not own else None
        hazards = decode_as(msg["hazards"], LWWMap) if msg["hazards"] is not None and not own else None
        if self.towers:
            r = msg["region_id"]
            if not 0 <= r < len(self.towers) or self.towers[r] != msg["tower"]:
                raise UnknownReplicaError(f"tower {msg['tower']!r} does not serve region {r} of this corridor")
            for delta in (members, hazards):
                if delta is not None:
                    check_replicas(delta, self._known)
        now = now_ms
        problem = message_problem(msg, members, hazards, now, self.max_ahead_ms)
        if problem is not None:
            raise MalformedStateError(problem)
        n = self.regions.setdefault(msg["region_id"], Neighbour())
        if members is not None:
            n.members.merge_in(members)
        if hazards is not None:
            known = set(n.hazards.value)
            n.hazards.merge_in(hazards)
            self.log.hazards_seen(set(n.hazards.value) - known, now)
        important = msg["sync_class"] == "IMPORTANT"
        if important:
            n.member_count = msg["member_count"]
            n.last_important_ms = max(n.last_important_ms, msg["sent_at"])
        else:
            n.last_unimportant_ms = max(n.last_unimportant_ms, msg["sent_at"])
        if msg["aggregates"] is not None:
            n.aggregates = dict(msg["aggregates"])
        digest = msg.get("state_digest")
        if not own and digest and state_digest(n.members.value, n.hazards) == digest:
            n.matched_sent_at_ms = max(n.matched_sent_at_ms, msg["sent_at"])
        if not own:
            self.log.merged(msg["sync_class"], msg["region_id"], msg["sent_at"], msg.get("changes_since", 0), now)
        n.last_merge_wall_ms = now
        n.messages += 1
        return [(a["vehicle_id"], a["hlc"]) for a in msg["arrivals"]]

    def hazards_near(self, region: int, now_ms: int, skip: Iterable[int] = ()) -> dict[str, dict[str, Any]]:
        """Active hazards of `region` and its two neighbours, as known through sync (but `skip`)."""
        out: dict[str, dict[str, Any]] = {}
        skipped = set(skip)
        for r in (region - 1, region, region + 1):
            n = None if r in skipped else self.regions.get(r)
            if n is not None:
                out.update({k: h for k, h in n.hazards.value.items() if h["expires"] > now_ms})
        return out

    def staleness_ms(self, now_ms: int) -> dict[int, int]:
        """Age of the newest merged message per region (the issue's per-neighbour staleness)."""
        return {r: now_ms - n.last_sent_at_ms for r, n in self.regions.items()}

    def age_by_class_ms(self, now_ms: int, skip: Iterable[int] = ()) -> dict[str, int | None]:
        """How old, at most, what this worker shows of the other regions is, per class of sync: the
        newest message of that class from the region heard longest ago (None: none heard yet)."""
        skipped = set(skip)
        others = [n for r, n in self.regions.items() if r not in skipped]

        def oldest(stamps: list[int]) -> int | None:
            return now_ms - min(stamps) if stamps and min(stamps) > 0 else None

        return {"important": oldest([n.last_important_ms for n in others]),
                "unimportant": oldest([n.last_unimportant_ms for n in others])}  # fmt: skip
