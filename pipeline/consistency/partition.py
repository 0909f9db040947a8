"""Partitions, measured: tower-sync cut between two real workers for 10 s, 60 s and 5 min, one worker
cut off etcd, and etcd's compare-and-swap history checked under an etcd restart.

Live traffic runs throughout (1,000 vehicles at 1 Hz); during each cut a hazard is reported on each
side. "Converged" is exact, not a count: every worker's view of every other region hashes as its
owner's state did in a sync message sent after the cut ended (`towers.sync.state_digest`), so the
view holds every membership change and every hazard the owner had, and nothing was lost. For etcd:
the isolated worker is registered again, each of its regions has a snapshot committed after the cut
that names the hazard, and the global view holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import etcd3
from confluent_kafka import Producer

from pipeline.admin import declare
from pipeline.consistency.linearizability import Attempt, Version, check
from pipeline.leftovers import owned, scratch_prefix
from pipeline.shared.access import Role, client_conf
from pipeline.shared.config import Settings
from pipeline.shared.corridor import Corridor
from pipeline.shared.crdt import LWWMap, decode_as
from pipeline.shared.hazards import hazard_record
from pipeline.shared.messages import CODEC, HAZARD
from pipeline.shared.topics import Topics
from pipeline.shared.waiting import poll
from pipeline.stack import Stack
from pipeline.stack.process import is_our_child
from pipeline.workers import TowerProcess, wait_for_assignment, worker_env
from producers.drive import DriveConfig, drive
from producers.fleet import Fleet, FleetConfig
from producers.sink import TelemetrySink
from towers.config import app_id
from towers.control_plane import cas_merge, close_client, namespace, open_client

__all__ = ["run_consistency"]

CONVERGE_TIMEOUT_S = 60.0
SETTLE_BOUND_S = 15.0  # a round's etcd calls time out in 2 s each; a CAS retries a few times


@dataclass
class _Run:
    settings: Settings
    corridor: Corridor
    topics: Topics
    workers: list[TowerProcess]
    etcd: etcd3.Etcd3Client
    ns: str
    t0: float = field(default_factory=time.monotonic)
    samples: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def switch(self, w: TowerProcess, what: str, state: str) -> None:
        w.switch(what, state)

    def hazard(self, km: float, tag: str) -> str:
        hid = f"{tag}-{uuid.uuid4().hex[:6]}"
        rec = hazard_record(km, "OBSTACLE", "BOTH", 5, int(time.time() * 1000), 900, hid, "bench")
        producer = Producer(client_conf(self.settings.kafka(Role.ADMIN), {"log_level": 3}))
        producer.produce(self.topics.hazards, CODEC.encode(HAZARD, rec), str(rec["region_id"]).encode(),
                         rec["region_id"])  # fmt: skip
        producer.flush(10)
        return hid

    def mid_km(self, region: int) -> float:
        reg = self.corridor.regions.regions[region]
        return (reg.from_km + reg.to_km) / 2

    def sampler(self) -> None:
        """Every half second, how old each worker's knowledge is, per class."""
        while not self.stop.wait(0.5):
            for i, w in enumerate(self.workers):
                page = w.page(timeout=1)
                if page is not None:
                    ages = page.get("staleness_by_class_ms", {})
                    self.samples.append({"t": time.monotonic() - self.t0, "worker": i, **ages})

    def wait_until(self, done: Callable[[], bool], timeout: float = CONVERGE_TIMEOUT_S) -> float | None:
        took = poll(done, timeout)
        return None if took is None else round(took, 2)


def _views_equal(run: _Run, since_ms: int, hazards: list[str]) -> Callable[[], bool]:
    def done() -> bool:
        for w in run.workers:
            page = w.page(timeout=1)
            if page is None:
                return False
            others = [r for r in range(run.topics.regions) if r not in page["regions"]]
            if any(page["view_matched_ms"].get(str(r), 0) < since_ms for r in others):
                return False
            known = {h for ids in page["view_hazards"].values() for h in ids}
            if not set(hazards) <= known:
                return False
        return True

    return done


def _unmatched(run: _Run, since_ms: int) -> list[str]:
    out = []
    for w in run.workers:
        page = w.page(timeout=1) or {"regions": [], "view_matched_ms": {}}
        out += [f"{w.name}: region {r}" for r in range(run.topics.regions)
                if r not in page["regions"] and page["view_matched_ms"].get(str(r), 0) < since_ms]  # fmt: skip
    return out


def _cut_sync(run: _Run, seconds: float) -> dict[str, Any]:
    """Worker 1 neither sends nor reads tower-sync for `seconds`; a hazard on each side meanwhile."""
    cut = run.workers[1]
    regions = [w.page()["regions"] for w in run.workers]  # type: ignore[index]
    start = time.monotonic() - run.t0
    run.switch(cut, "sync", "off")
    time.sleep(seconds / 2)
    hazards = [run.hazard(run.mid_km(regions[0][0]), "cut-a"), run.hazard(run.mid_km(regions[1][0]), "cut-b")]
    time.sleep(seconds / 2)
    restored_ms = int(time.time() * 1000)
    end = time.monotonic() - run.t0
    run.switch(cut, "sync", "on")
    took = run.wait_until(_views_equal(run, restored_ms, hazards))
    unmatched = [] if took is not None else _unmatched(run, restored_ms)
    return {"cut_s": seconds, "from_s": round(start, 1), "to_s": round(end, 1), "converged_after_s": took,
            "nothing_lost": took is not None, "unmatched": unmatched}  # fmt: skip


def _registry(run: _Run) -> dict[int, str]:
    """pid → registered worker name."""
    out = {}
    for value, meta in run.etcd.get_prefix(f"{run.ns}/towers/"):
        with contextlib.suppress(ValueError, KeyError):
            out[int(json.loads(value)["pid"])] = meta.key.decode().rsplit("/", 1)[-1]
    return out


def _cut_etcd(run: _Run, seconds: float) -> dict[str, Any]:
    """Worker 1 cut off etcd for `seconds`: its lease lapses, the others see it go; then it must
    come back whole: registered, its snapshots rewritten, its hazard in the global view."""
    cut = run.workers[1]
    assert cut.proc is not None
    pid = cut.proc.pid
    mine = cut.page()["regions"]  # type: ignore[index]
    start = time.monotonic() - run.t0
    name = _registry(run).get(pid, "")
    t_cut = time.monotonic()
    run.switch(cut, "etcd", "off")
    hid, left_after = "", None
    while (elapsed := time.monotonic() - t_cut) < seconds:
        if not hid and elapsed >= seconds / 2:
            hid = run.hazard(run.mid_km(mine[0]), "isolated")
        if left_after is None and name not in ((run.workers[0].page(timeout=1) or {}).get("etcd") or {}).get(
            "towers_alive", [name]
        ):
            left_after = round(elapsed, 1)  # its lease lapsed, and worker 0's watch saw its key go
        time.sleep(0.1)
    restored_ms = int(time.time() * 1000)
    end = time.monotonic() - run.t0
    run.switch(cut, "etcd", "on")

    def whole() -> bool:
        if pid not in _registry(run):
            return False
        for r in mine:
            value, _ = run.etcd.get(f"{run.ns}/regions/{r}")
            snap = json.loads(value) if value is not None else {}
            if snap.get("hlc", 0) >> 16 < restored_ms:
                return False
            if r == mine[0] and hid not in snap.get("hazards", []):
                return False
        value, _ = run.etcd.get(f"{run.ns}/global")
        return value is not None and f"hazard/{hid}" in decode_as(value, LWWMap).value

    took = run.wait_until(whole)
    return {"cut_s": seconds, "from_s": round(start, 1), "to_s": round(end, 1),
            "others_saw_it_leave_after_s": left_after, "converged_after_s": took,
            "nothing_lost": took is not None}  # fmt: skip


def _lww_leq(a: bytes, b: bytes) -> bool:
    x, y = decode_as(a, LWWMap), decode_as(b, LWWMap)
    joined = y.copy()
    joined.merge_in(x)
    return joined.entries == y.entries


def _key_history(client: etcd3.Etcd3Client, key: str) -> list[Version]:
    """Every version of `key` in revision order, from its creation, through a watch replaying them."""
    value, meta = client.get(key)
    if value is None:
        return []
    last, versions = meta.mod_revision, []
    events, cancel = client.watch(key, start_revision=meta.create_revision)
    try:
        for ev in events:
            if isinstance(ev, etcd3.events.PutEvent):
                versions.append(Version(ev.mod_revision, ev.value))
            if ev.mod_revision >= last:
                break
    finally:
        cancel()
    return versions


def _cas_under_restart(run: _Run, stack: Stack, seconds: float, writers: int = 3) -> dict[str, Any]:
    """Writers in this process join their own entries into the global view with the towers' own CAS,
    as fast as they can, beside the two workers; etcd is SIGKILLed a third of the way in and started
    again. Then every attempt, theirs and the workers', is checked against the key's history."""
    key = f"{run.ns}/global"
    etcd_access = run.settings.etcd(Role.ADMIN)
    ops: list[dict[str, Any]] = []
    lock = threading.Lock()
    done = threading.Event()

    def writer(c: int) -> None:
        client: etcd3.Etcd3Client | None = None
        n = 0
        while not done.is_set():
            n += 1
            mine = LWWMap()
            mine.entries[f"bench/writer-{c}"] = (n, f"writer-{c}", {"n": n})

            def keep(op: dict[str, Any]) -> None:
                with lock:
                    ops.append({**op, "client": f"writer-{c}"})

            try:
                client = client or open_client(etcd_access, 2)
                cas_merge(client, key, mine, record=keep)
            except Exception:  # etcd away: whatever the client raises; the attempt is recorded as unknown
                if client is not None:
                    with contextlib.suppress(Exception):
                        close_client(client)
                client = None
                time.sleep(0.2)
        if client is not None:
            close_client(client)

    threads = [threading.Thread(target=writer, args=(c,), daemon=True) for c in range(writers)]
    for t in threads:
        t.start()
    time.sleep(seconds / 3)
    etcd_pid = stack.etcd.process.running_pid()
    restarted = etcd_pid is not None
    outage = None
    if etcd_pid is not None:
        killed = time.monotonic() - run.t0
        attached = is_our_child(etcd_pid)  # restarted as it was: a `stack up` etcd outlives the bench
        os.kill(etcd_pid, signal.SIGKILL)
        time.sleep(3.0)
        stack.etcd.start(attached=attached)
        outage = {"from_s": round(killed, 1), "to_s": round(time.monotonic() - run.t0, 1)}
    time.sleep(seconds * 2 / 3)
    done.set()
    for t in threads:
        t.join(timeout=10)
    # The towers write the key every second: cut them off etcd first, and wait until no round of
    # theirs is in flight, so the history read below holds no write made after their records were taken.
    for w in run.workers:
        run.switch(w, "etcd", "off")
    pages: list[dict[str, Any]] = []

    def settled() -> bool:
        pages[:] = [w.page("cas-history", timeout=10) or {} for w in run.workers]
        return all(p.get("settled") for p in pages)

    # None: a round was still in flight at the bound, and its write may be missing from the history
    towers_settled_after_s = poll(settled, SETTLE_BOUND_S, interval=0.2)
    for w, page in zip(run.workers, pages, strict=True):
        ops += [{**op, "client": f"{w.name}/{op.get('client', '')}"} for op in page.get("ops", [])]
    client = open_client(etcd_access, 10)
    try:
        versions = _key_history(client, key)
    finally:
        close_client(client)
    verdict = check([Attempt.of(op) for op in ops], versions, _lww_leq)
    final = decode_as(versions[-1].value, LWWMap) if versions else LWWMap()
    join = LWWMap()
    for v in versions:
        join.merge_in(decode_as(v.value, LWWMap))
    return {**verdict.as_dict(), "etcd_restarted": restarted, "writers": writers + len(run.workers), "outage": outage,
            "towers_settled_after_s": towers_settled_after_s,
            "final_is_join_of_every_write": final.entries == join.entries}  # fmt: skip


def _picture(samples: list[dict[str, Any]], phases: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(phases), 1, figsize=(9, 2.6 * len(phases)), squeeze=False)
    starts = [ph["from_s"] for ph in phases[1:]] + [float("inf")]
    for ax, ph, following in zip(axes[:, 0], phases, starts, strict=True):
        lo = ph["from_s"] - 8
        hi = min(following - 1, ph["to_s"] + 15 + (ph.get("converged_after_s") or 0))
        key = "membership" if ph["kind"] == "sync" else "etcd_snapshot"
        cut = ph["kind"] != "etcd-restart"  # that one cuts everyone off
        for i in sorted({s["worker"] for s in samples}):
            pts = [(s["t"] - ph["from_s"], s[key] / 1000) for s in samples
                   if s["worker"] == i and lo <= s["t"] <= hi and s.get(key) is not None]  # fmt: skip
            if pts:
                ax.plot(*zip(*pts, strict=True), label=f"worker {i}" + (" (cut)" if i == 1 and cut else ""))
        ax.axvspan(0, ph["to_s"] - ph["from_s"], color="tab:red", alpha=0.12, label="cut")
        what = "the other regions (tower-sync)" if ph["kind"] == "sync" else "its etcd snapshot"
        conv = ph.get("converged_after_s", "n/a")
        if ph["kind"] == "etcd-restart":
            title = f"{ph['label']}: every tower's snapshot committed again"
        elif conv is None:
            title = f"{ph['label']}: not converged within {CONVERGE_TIMEOUT_S:.0f} s"
        else:
            title = f"{ph['label']}: views equal again {conv} s after"
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(f"age of {what} (s)", fontsize=7)
        ax.set_xlabel("seconds since the cut began", fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclass(frozen=True)
class Plan:
    sync_cuts_s: tuple[float, ...] = (10.0, 60.0, 300.0)
    etcd_cut_s: float = 30.0
    cas_s: float = 45.0  # the CAS writers' run, etcd SIGKILLed and restarted a third of the way in
    settle_s: float = 10.0  # before the first cut and between phases

    @classmethod
    def quick(cls) -> Plan:
        return cls((4.0,), 8.0, 12.0, 6.0)  # the integration test's: shortest that was shown to settle


def run_consistency(settings: Settings, plan: Plan | None = None, picture: Path | None = None) -> dict[str, Any]:
    plan = plan or Plan()
    corridor = settings.corridor()
    topics = Topics(regions=len(corridor.regions), prefix=scratch_prefix("bk"))
    declare(settings, topics)
    env = worker_env(settings, topics.prefix, {"CORRIDOR_TOWER_OFFSET_RESET": "earliest",
                                               "CORRIDOR_TOWER_CAS_HISTORY": "1"})  # fmt: skip
    etcd_access = settings.etcd(Role.ADMIN)
    stack = Stack(settings, attached=True)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as cleanup:
        # Undone last-registered first: the workers stop, then their topics, group and etcd keys go.
        cleanup.enter_context(owned(settings, "consistency", topics.prefix))
        etcd = open_client(etcd_access, 5)
        ns = namespace(app_id(topics.prefix))
        cleanup.callback(close_client, etcd)
        workers = [TowerProcess(env, Path(tmp) / f"d{i}", Path(tmp) / f"w{i}.log", name=f"worker {i}", switches=True)
                   for i in range(2)]  # fmt: skip
        for w in workers:
            cleanup.callback(w.stop)
            w.start()
        run = _Run(settings, corridor, topics, workers, etcd, ns)
        wait_for_assignment(workers, topics.regions)
        fleet = Fleet(corridor, FleetConfig(vehicles=1000, seed=5), start_ms=int(time.time() * 1000))
        traffic = threading.Thread(
            target=drive,
            args=(fleet, TelemetrySink(settings.kafka(Role.VEHICLE)), topics, DriveConfig(hz=1, duration_s=24 * 3600)),
            kwargs={"should_stop": run.stop.is_set},
            daemon=True,
        )
        sampler = threading.Thread(target=run.sampler, daemon=True)
        traffic.start()
        sampler.start()
        try:
            time.sleep(plan.settle_s)  # every worker has heard every region
            phases: list[dict[str, Any]] = []
            for seconds in plan.sync_cuts_s:
                phases.append({"kind": "sync", "label": f"tower-sync cut {seconds:.0f} s", **_cut_sync(run, seconds)})
                time.sleep(plan.settle_s)
            phases.append({"kind": "etcd", "label": f"worker 1 cut off etcd {plan.etcd_cut_s:.0f} s",
                           **_cut_etcd(run, plan.etcd_cut_s)})  # fmt: skip
            time.sleep(plan.settle_s)
            cas = _cas_under_restart(run, stack, plan.cas_s)
            if cas.get("outage") is not None:
                phases.append({"kind": "etcd-restart", "label": "etcd SIGKILLed and restarted", **cas.pop("outage")})
        finally:
            run.stop.set()
            traffic.join(timeout=30)
            sampler.join(timeout=5)
    if picture is not None:
        picture.parent.mkdir(parents=True, exist_ok=True)
        _picture(run.samples, phases, picture)
    return {
        "partitions": {p["label"]: {k: v for k, v in p.items() if k not in ("kind", "label")} for p in phases},
        "cas_history": cas,
        "picture": str(picture) if picture is not None else None,
    }
