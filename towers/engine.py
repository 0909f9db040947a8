"""The tower's logic between Kafka records in and Kafka records out, free of Faust and Kafka.

The Faust app (`towers.app`) feeds it raw records and sends what it returns; tests drive it
directly. Every input either changes state and may yield advisories, or goes to the dead-letter
outbox with a reason: nothing is dropped silently and nothing raises past it.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.shared.bounds import event_time_problem
from pipeline.shared.codec import CodecError, UnknownSchemaError
from pipeline.shared.corridor import Corridor
from pipeline.shared.crdt import (
    ClockDriftError,
    CrdtError,
    LWWMap,
    MalformedStateError,
    ORSet,
    decode_as,
    decode_state,
    encode_state,
)
from pipeline.shared.crdt.hlc import HybridClock
from pipeline.shared.messages import CODEC, FRAME, HAZARD, SYNC, TELEMETRY
from pipeline.shared.stats import LatencyHistogram
from towers.advisories import encode_advisories
from towers.clock_skew import ClockSkew
from towers.config import TowerConfig
from towers.frames import decode_frame, decode_record
from towers.hazard_retention import TOMBSTONE_KEEP_MS, prune_hazards
from towers.region import RegionEngine
from towers.rules import SpeedLimits, Swarm, advise, detect_queues
from towers.sync import NeighbourView, SyncPublisher
from towers.validation import (
    Reason,
    authority_problem,
    check_updates,
    drop_bad_hazards,
    hazard_problem,
    structural_problems,
)  # fmt: skip

__all__ = ["DeadLetter", "Outbox", "TableWrites", "TowerEngine"]

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    value: bytes
    reason: str
    region: int


@dataclass
class Outbox:
    advisories: list[tuple[int, bytes]] = field(default_factory=list)  # (region, encoded advisory)
    dead: list[DeadLetter] = field(default_factory=list)
    sync: list[tuple[int, bytes]] = field(default_factory=list)  # (region, encoded TowerSync)


TableWrites = dict[str, list[tuple[str, bytes | None]]]  # table name -> [(key, value)]


class TowerEngine:
    def __init__(
        self,
        corridor: Corridor,
        cfg: TowerConfig,
        clock: HybridClock | None = None,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        incarnation: str | None = None,
    ) -> None:
        self.corridor, self.cfg = corridor, cfg
        self._host_ms = wall_ms
        self.skew = ClockSkew(hold_ms=int(cfg.clock_skew_hold_s * 1000))
        # One clock for stamping and judging: the HLC reads the corrected wall clock, as the bounds do.
        self.clock = clock or HybridClock(max_drift_ms=cfg.max_clock_drift_ms, physical=self.wall_ms)
        self.states: dict[int, RegionEngine] = {}
        # A neighbour stamps by its host's clock, which may be off by as much as its skew correction
        # allows (a tower corrects its judgement of time, not its HLC): bounded by both.
        self.view = NeighbourView(corridor.regions.towers, cfg.max_clock_drift_ms + ClockSkew.CAP_MS)
        self.publisher = SyncPublisher(wall_ms=self.wall_ms)
        self.counts: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()  # advisories decided, by action
        # how long after its trigger was stamped each advisory was decided (every one; those a hazard
        # report caused at once), by the senders' clock: the towers' share of the latency budget
        self.decided_after = LatencyHistogram()
        self.hazard_decided_after = LatencyHistogram()
        self.dead_reasons: Counter[str] = Counter()
        # advisory ids: <tower>-<incarnation>-<n>, the incarnation drawn per engine so that a restarted
        # or rebalanced worker never repeats an id an earlier one gave
        self.incarnation = incarnation or secrets.token_hex(4)
        self._next_advisory = 0
        route = corridor.route
        self.limit = SpeedLimits([s.from_km for s in route.segments], [s.speed_limit_mps for s in route.segments])
        #: False while tower-sync is cut off (an operator's switch for partition drills): nothing is
        #: published, deltas accumulate in the logs and go out in one piece when it is back.
        self.sync_enabled = True

    # ---- regions ----------------------------------------------------------------------------
    def region(self, r: int, load: Callable[[int], RegionEngine | None] | None = None) -> RegionEngine:
        st = self.states.get(r)
        if st is None:
            st = (load(r) if load else None) or self.empty_state(r)
            self.states[r] = st
        return st

    def empty_state(self, r: int) -> RegionEngine:
        reg = self.corridor.regions.regions[r]
        return RegionEngine(r, reg.tower, reg.to_km - reg.from_km, self.cfg.cooldown_s, self.wall_ms,
                            max_ahead_ms=self.cfg.max_clock_drift_ms)  # fmt: skip

    def restore(
        self, r: int, members: list[bytes | None], buckets: list[bytes | None], hazards: bytes | None
    ) -> RegionEngine:
        """A region's state from its table values (after a restart or a rebalance)."""
        st = self.empty_state(r)
        for b, raw in enumerate(members):
            if raw is not None:
                shard = decode_state(raw)
                if not isinstance(shard, ORSet):
                    raise MalformedStateError(f"member shard {r}:{b} holds {type(shard).__name__}, not an OR-Set")
                st.members.shards[b] = shard  # the state is fresh: the stored shard is all of it
        for raw in buckets:
            if raw is not None:
                st.load_bucket(raw)
        if hazards is not None:
            stored = decode_as(hazards, LWWMap)
            # a value that no longer passes the bounds (written before they held) is left out, counted
            dropped = drop_bad_hazards(stored, self.wall_ms(), self.cfg.max_clock_drift_ms)
            self.counts["stored-hazards-dropped"] += dropped
            st.hazards.merge_in(stored)
        live = st.live_slots()
        if len(live):  # bounded like any event time: a vehicle stamped far ahead cannot carry it off
            st.advance_watermark(int(st.vehicles.values["et"][live].max()))
        return st

    def wall_ms(self) -> int:
        """Now, by the senders' clocks when this host's is found off from all of theirs (`ClockSkew`)."""
        return self._host_ms() - self.skew.correction_ms()

    def drop(self, regions: set[int]) -> None:
        """Partitions moved to another worker: forget their state (the tables have it)."""
        for r in regions:
            self.states.pop(r, None)
            self.publisher.forget(r)

    # ---- telemetry --------------------------------------------------------------------------
    def on_telemetry(self, r: int, raw: bytes, st: RegionEngine, backlog: int | None = None) -> Outbox:
        """`backlog`: records of the partition still to read after this one, when known (the clock
        check learns only from frames read with none)."""
        out = Outbox()
        try:
            writer = CODEC.writer_of(raw)
            if writer is FRAME:
                head, ups = decode_frame(raw)
                if head.region_id != r:
                    return self._dead(out, raw, f"{Reason.WRONG_REGION}: frame of region {head.region_id}", r)
                caught_up = backlog is not None and backlog <= 1
                # Only rows that pass every clock-free check weigh in the skew estimate: junk cannot steer it.
                structural = structural_problems(ups, r, self.corridor.route.length_km, self.cfg)
                believable = len(ups) - int(structural.sum())
                host = self._host_ms()
                self.skew.observe(host - head.sent_at, believable, caught_up, host)
                # Its sender's clock, checked like the updates' HLCs: a frame from a clock far ahead would
                # move the region's event time on and expire the swarm.
                ahead = head.sent_at - self.wall_ms()
                if ahead > self.cfg.max_clock_drift_ms or head.sent_at <= 0:
                    return self._dead(out, raw, f"{Reason.CLOCK_DRIFT}: frame sent {ahead} ms ahead", r)
                problem = event_time_problem(head.event_time, head.sent_at, self.cfg.max_clock_drift_ms)
                if problem is None:
                    # An empty frame still moves the region's event time on (it drives TTL expiry).
                    st.advance_watermark(head.event_time)
                else:  # its rows are judged one by one below; the head alone moves nothing
                    self.counts["frame-heads-refused"] += 1
                st.last_sent_ms = max(st.last_sent_ms, head.sent_at)
                st.processed_at_ms = self.wall_ms()
                st.waited_ms = st.processed_at_ms - head.sent_at
                self.view.log.vehicle_lag_ms.append(st.waited_ms)
                sent_at: int | None = head.sent_at
            elif writer is TELEMETRY:
                ups = decode_record(raw)
                structural, sent_at = None, None
            else:
                return self._dead(out, raw, f"{Reason.WRONG_TYPE}: {writer.name} on the telemetry topic", r)
        except UnknownSchemaError as exc:
            return self._dead(out, raw, f"{Reason.UNKNOWN_SCHEMA}: {exc}", r)
        except CodecError as exc:
            return self._dead(out, raw, f"{Reason.UNDECODABLE}: {exc}", r)
        if not len(ups):
            return out
        bad = check_updates(ups, r, self.corridor.route.length_km, self.wall_ms(), self.cfg, sent_at, structural)
        for i, reason in bad:
            self._dead(out, ups.record_bytes(i) if writer is FRAME else raw, reason, r)
        good = np.arange(len(ups))
        if bad:
            good = np.delete(good, [i for i, _ in bad])
            if not len(good):
                return out
        self.counts["updates"] += len(good)
        self.clock.receive(int(ups.hlc[good].max()))
        accepted, slots, arrivals = st.apply(ups, good)
        if arrivals:
            self.publisher.note_arrivals(r, [(v, st.entry_ts(v)) for v in arrivals])
        if len(accepted):
            self._advise(r, st, slots, ups.hlc[accepted], out)
        return out

    # ---- hazards ----------------------------------------------------------------------------
    def on_hazard(self, r: int, raw: bytes, st: RegionEngine) -> Outbox:
        out = Outbox()
        try:
            h = CODEC.decode(raw, HAZARD)
        except UnknownSchemaError as exc:
            return self._dead(out, raw, f"{Reason.UNKNOWN_SCHEMA}: {exc}", r)
        except CodecError as exc:
            return self._dead(out, raw, f"{Reason.UNDECODABLE}: {exc}", r)
        problem = hazard_problem(h, r, self.corridor.route.length_km, self.wall_ms(), self.cfg) or authority_problem(
            h, st.hazards.get(h["hazard_id"]), self.corridor.regions.towers
        )
        if problem is not None:
            return self._dead(out, raw, problem, r)
        try:
            self.clock.receive(h["hlc"])
        except ClockDriftError as exc:
            return self._dead(out, raw, f"{Reason.CLOCK_DRIFT}: {exc}", r)
        self.counts["hazards"] += 1
        value = (
            None
            if h["cancelled"]
            else {
                "km": h["route_km"],
                "dir": h["direction"],
                "type": h["hazard_type"],
                "severity": h["severity"],
                "expires": h["expiry_time"],
                "detected": h["detection_time"],
                "source": h["reporter"],  # who may change or cancel it, besides a tower
                # the lanes it closes ("": every lane) and how far upstream to warn (0: the default)
                "lanes": ",".join(map(str, h["lanes_blocked"])),
                "relevance_km": h["relevance_distance_m"] / 1000,
            }
        )
        lapsed = value is not None and h["expiry_time"] <= self._event_now(r)
        if st.put_hazard(h["hazard_id"], value, h["hlc"]):
            if lapsed:
                # news, but read after its validity (a broker failover held it longer): it advises
                # no one; counted (a metric, the drills' reports), so such a loss is never silent
                self.counts["hazards_expired_on_arrival"] += 1
            self.view.log.hazard_accepted(h["hazard_id"], self.wall_ms())
            # Tell everyone in the region now, and the neighbours at once rather than at the next tick:
            # those this worker serves here, the others through tower-sync.
            for n in (r, r - 1, r + 1):
                if n in self.states:
                    self._advise_everyone(n, self.states[n], h["hlc"], out, hazard=True)
            if self.sync_enabled:
                out.sync.append((r, CODEC.encode(SYNC, self.publisher.important(st, self.clock))))
        return out

    # ---- tower-sync -------------------------------------------------------------------------
    def on_sync(self, raw: bytes, partition: int = 0) -> Outbox:
        """Merge a neighbour's sync message; hand-offs remove vehicles from our swarms; new hazards
        near a region we own are advised at once. One refused is a dead letter (on `partition`)."""
        out = Outbox()
        try:
            msg = CODEC.decode(raw, SYNC)
            own = msg["region_id"] in self.states  # our own message, read back: nothing new in its state
            before = {} if own else {r: set(self.hazards_near(r)) for r in self.states}
            arrivals = self.view.merge(msg, self.wall_ms(), own=own)
        except (CodecError, CrdtError) as exc:
            return self._dead(out, raw, f"sync-{type(exc).__name__}: {exc}", partition)
        sender = msg["region_id"]
        for r, st in self.states.items():
            if r != sender and arrivals:
                st.handed_off(arrivals)
            if not own and abs(r - sender) == 1 and set(self.hazards_near(r)) - before.get(r, set()):
                self._advise_everyone(r, st, msg["hlc"], out)
        return out

    def hazards_near(self, r: int) -> dict[str, dict[str, Any]]:
        """Active hazards of region `r` and its two neighbours: from our own state for the regions this
        worker serves, from tower-sync for the others."""
        now = self._event_now(r)
        out = self.view.hazards_near(r, now, skip=self.states.keys())
        for n in (r - 1, r, r + 1):
            st = self.states.get(n)
            if st is not None:
                out.update(st.active_hazards(now))
        return out

    def view_hazard_ids(self) -> dict[int, list[str]]:
        """Hazard ids of every region as this worker knows them (own regions from their state)."""
        out = {r: sorted(n.hazards.value) for r, n in self.view.regions.items() if r not in self.states}
        out.update({r: sorted(st.hazards.value) for r, st in self.states.items()})
        return out

    def sync_important(self) -> Outbox:
        out = Outbox()
        now, before = self.event_now(), self.wall_ms() - TOMBSTONE_KEEP_MS
        for neighbour in self.view.regions.values():  # what neighbours sent lives no longer than theirs
            prune_hazards(neighbour.hazards, now, before)
        for r, st in self.states.items() if self.sync_enabled else ():
            out.sync.append((r, CODEC.encode(SYNC, self.publisher.important(st, self.clock))))
        return out

    def sync_unimportant(self) -> Outbox:
        out = Outbox()
        for r, st in self.states.items() if self.sync_enabled else ():
            agg = st.aggregates(self.cfg.stopped_mps)
            out.sync.append((r, CODEC.encode(SYNC, self.publisher.unimportant(st, agg, self.clock))))
        return out

    # ---- control plane ----------------------------------------------------------------------
    def control_snapshot(self, cluster_id: str) -> tuple[dict[int, dict[str, Any]], LWWMap]:
        """Per owned region, the swarm snapshot etcd keeps consistent; and this worker's part of the
        corridor-wide view (hazards and member counts) as an LWW-Map to join into etcd's."""
        snapshots: dict[int, dict[str, Any]] = {}
        view = LWWMap()
        ts = self.clock.now()
        for r, st in self.states.items():
            now = self._event_now(r)
            hazards = st.active_hazards(now)
            snapshots[r] = {
                "cluster_id": cluster_id, "region": r, "tower": st.tower, "member_count": len(st.members),
                "vehicles": sorted(st.members.value), "hazards": sorted(hazards), "hlc": ts,
                # wall time of the oldest change this snapshot is the first to hold (0: none)
                "changes_since": st.take_unsnapshotted_since(),
            }  # fmt: skip
            view.entries[f"count/{r}"] = (ts, st.tower, {"members": len(st.members), "tower": st.tower})
            for hid, (hts, replica, h) in st.hazards.entries.items():
                view.entries[f"hazard/{hid}"] = (hts, replica, h)
        return snapshots, view

    # ---- flush ------------------------------------------------------------------------------
    def flush_due(self, r: int, now_s: float) -> bool:
        st = self.states.get(r)
        return st is not None and now_s - st.last_flush_s >= self.cfg.flush_interval_s

    def flush(self, r: int, now_s: float) -> TableWrites:
        """Housekeeping (expiry, tombstone pruning, queue detection, aggregates) and the table writes
        it leaves."""
        st = self.states[r]
        st.last_flush_s = now_s
        st.expire(int(self.cfg.vehicle_ttl_s * 1000))
        st.prune(self.clock.now() - (int(self.cfg.tombstone_horizon_s * 1000) << 16))
        self._update_queues(st)
        if prune_hazards(st.hazards, self._event_now(r), self.wall_ms() - TOMBSTONE_KEEP_MS):
            st.hazards_dirty = True
        agg = st.aggregates(self.cfg.stopped_mps)
        st.mean_speed = (agg.mean_speed_nb, agg.mean_speed_sb)
        buckets, member_shards = st.take_dirty()
        writes: TableWrites = {"vehicles": [(f"{r}:{b}", st.bucket_bytes(b)) for b in buckets]}
        if member_shards:
            writes["members"] = [(f"{r}:{b}", encode_state(st.members.shards[b])) for b in member_shards]
        return writes | self.hazard_writes(st)

    def hazard_writes(self, st: RegionEngine) -> TableWrites:
        """The region's hazards table value, if it changed since it was last written (the one path
        for hazards: a hazard report's, before its event is acknowledged, and every flush's)."""
        if not st.hazards_dirty:
            return {}
        st.hazards_dirty = False
        return {"hazards": [(str(st.region), encode_state(st.hazards))]}

    def _update_queues(self, st: RegionEngine) -> None:
        rows = st.vehicles.values[st.live_slots()]
        queues = detect_queues(rows["km"], rows["v"].astype(np.float64), rows["nb"].astype(np.bool_), self.cfg)
        now = st.watermark_ms
        for nb, found in queues.items():
            hid = f"queue-{st.tower}-{'nb' if nb else 'sb'}"
            current = st.hazards.get(hid)
            if found is None:
                if current is not None:
                    st.put_hazard(hid, None, self.clock.now())
                continue
            tail_km, n = found
            if current is not None and abs(current["km"] - tail_km) < 0.05:
                continue
            self.view.log.hazard_accepted(hid, self.wall_ms())
            st.put_hazard(
                hid,
                {
                    "km": tail_km,
                    "dir": "NORTHBOUND" if nb else "SOUTHBOUND",
                    "type": "END_OF_QUEUE",
                    "severity": 5,
                    "expires": now + 60_000,
                    "detected": now,
                    "source": f"{n} stopped",
                },
                self.clock.now(),
            )

    def staleness_by_class(self, now_ms: int) -> dict[str, int | None]:
        """How old, at most, what this worker shows is, per class of data held at the edge (etcd's
        classes are the control plane's to say); None: nothing of that class heard yet."""
        ages = self.view.age_by_class_ms(now_ms, skip=self.states.keys())
        behind = self.behind_ms(now_ms)
        return {"hazards": ages["important"], "membership": ages["important"], "aggregates": ages["unimportant"],
                "vehicle_state": max(behind.values()) if behind else None}  # fmt: skip

    def behind_ms(self, now_ms: int) -> dict[int, int]:
        """Per region, the age of the newest frame processed: near one tick when the tower keeps up,
        growing when telemetry arrives faster than it is processed."""
        return {r: now_ms - st.last_sent_ms for r, st in self.states.items() if st.last_sent_ms}

    def lag_ms(self, now_ms: int, quiet_ms: int = 10_000) -> dict[int, int]:
        """Per region, how long its newest frame waited before it was processed: the tower's delay
        while telemetry comes, 0 once none has come for `quiet_ms` (an idle corridor is not late;
        a worker too stuck to process is one too stuck to answer its scrape)."""
        return {r: st.waited_ms if now_ms - st.processed_at_ms <= quiet_ms else 0
                for r, st in self.states.items() if st.processed_at_ms}  # fmt: skip

    # ---- helpers ----------------------------------------------------------------------------
    def _event_now(self, r: int) -> int:
        """The region's event time; for a region not heard from yet, the newest of this worker's
        other regions, and the wall clock only before any. Event time runs at the senders' pace (a
        simulation faster than real time replays the recent past): a cool-down or a validity stamped
        by the wall clock and later compared with event time would hold advice back or out."""
        st = self.states.get(r)
        if st is not None and st.watermark_ms:
            return st.watermark_ms
        return self.event_now()

    def event_now(self) -> int:
        """The newest event time among this worker's regions; the wall clock before any."""
        return max((s.watermark_ms for s in self.states.values()), default=0) or self.wall_ms()

    def _advise_everyone(self, r: int, st: RegionEngine, trigger_hlc: int, out: Outbox, hazard: bool = False) -> None:
        slots = st.live_slots()
        self._advise(r, st, slots, np.full(len(slots), trigger_hlc, np.int64), out, hazard)

    def _advise(
        self, r: int, st: RegionEngine, slots: I64, trigger_hlc: I64, out: Outbox, hazard: bool = False
    ) -> None:
        oldest = (self.wall_ms() - int(self.cfg.max_trigger_age_s * 1000)) << 16
        fresh = trigger_hlc >= oldest
        if not fresh.all():
            self.counts["stale_triggers"] += int((~fresh).sum())
            slots, trigger_hlc = slots[fresh], trigger_hlc[fresh]
        now = self._event_now(r)
        hazards = self.hazards_near(r)
        rows = st.vehicles.values[slots]
        swarm = Swarm(
            slots, st.key, rows["km"], rows["v"].astype(np.float64), rows["nb"].astype(np.bool_), rows["et"],
            trigger_hlc,
        )  # fmt: skip
        positions: dict[bool, npt.NDArray[np.float64]] = {}

        def gap_ahead_km(nb: npt.NDArray[np.bool_], km: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            # Built on first use: most batches advise nobody to speed up.
            if not positions:
                everyone = st.vehicles.values[st.live_slots()]
                north = everyone["nb"].astype(np.bool_)
                positions[True] = np.sort(everyone["km"][north])
                positions[False] = np.sort(-everyone["km"][~north])
            gap = np.full(len(km), np.inf)
            for direction in (True, False):
                pick = nb == direction
                ahead, x = positions[direction], km[pick] if direction else -km[pick]
                i = np.searchsorted(ahead, x + 1e-6, side="right")
                found = i < len(ahead)
                g = np.full(len(x), np.inf)
                g[found] = ahead[i[found]] - x[found]
                gap[pick] = g
            return gap

        advice = advise(swarm, hazards, st.mean_speed, self.limit, st.cooldowns, self.cfg, now, gap_ahead_km)
        if not advice:
            return
        valid_until = now + int(self.cfg.advisory_validity_s * 1000)
        first, self._next_advisory = self._next_advisory, self._next_advisory + len(advice)
        out.advisories += [
            (r, b)
            for b in encode_advisories(advice, f"{st.tower}-{self.incarnation}", first, r, st.tower, now, valid_until)
        ]
        self.counts["advisories"] += len(advice)
        self.actions.update(a.action for a in advice)
        wall = self.wall_ms()
        for a in advice:
            seconds = max(0.0, (wall - (a.trigger_hlc >> 16)) / 1000)  # a sender's clock a little ahead: 0
            self.decided_after.observe(seconds)
            if hazard:
                self.hazard_decided_after.observe(seconds)

    def dead_letter(self, raw: bytes, reason: str, r: int) -> Outbox:
        """An outbox holding only this refusal (for the app's last resort around the handlers)."""
        return self._dead(Outbox(), raw, reason, r)

    def _dead(self, out: Outbox, raw: bytes, reason: str, r: int) -> Outbox:
        out.dead.append(DeadLetter(raw, reason, r))
        self.dead_reasons[reason.split(":", 1)[0]] += 1
        return out
