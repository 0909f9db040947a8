"""etcd, the control plane: what must be fully consistent lives here, beside the CRDT edge.

Each set of towers (an app id: the default towers, one simulation run, a benchmark's) keeps its keys
under a namespace of its own, `/corridor/<app id>` (written `<ns>` below), so a run never reads or
leaves behind another's state, and a finished run deletes its namespace:

- `<ns>/towers/<worker>`: each tower worker's registration, bound to a lease it keeps alive;
  a worker that dies stops refreshing, its key expires, and every other worker's watch sees it go;
- `<ns>/regions/<r>`: a consistent swarm snapshot per region (cluster id, member count,
  vehicle ids, active hazard alerts), written in one transaction with the region's owner key;
- `<ns>/global`: the corridor-wide view as a CvRDT (an LWW-Map of hazards and per-region
  counts), maintained by read → merge → compare-and-swap on the key's revision, retried on
  conflict, so it converges to the join of every worker's state whatever the interleaving.

The etcd3 client blocks, so all of it runs on one thread of its own; the Faust event loop only
hands over the latest state (`publish`) and never waits. With etcd down the thread retries each
interval; the towers keep processing and advising from what they know.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import etcd3
import grpc

from pipeline.shared.access import EtcdAccess
from pipeline.shared.bounds import hazard_value_problem, id_problem
from pipeline.shared.crdt import LWWMap, decode_as, encode_state
from pipeline.shared.crdt.errors import CrdtError
from towers.etcd_pages import iter_prefix
from towers.hazard_retention import TOMBSTONE_KEEP_MS, prune_hazards
from towers.staleness import LIMIT, note_first

__all__ = [
    "ControlPlane", "cas_merge", "close_client", "delete_namespace", "namespace", "open_client", "read_namespaces",
    "read_view",
]  # fmt: skip

log = logging.getLogger(__name__)

ROOT = "/corridor"


def namespace(app: str) -> str:
    """The etcd key prefix of one set of towers (their Faust app id)."""
    return f"{ROOT}/{app}"


class _WatchEnded:
    """Stands in for etcd3's watch stub once its client closes: the next stream it opens ends its
    thread (SystemExit ends a thread without a traceback)."""

    def Watch(self, *args: Any, **kwargs: Any) -> None:  # the gRPC stub method it stands in for
        raise SystemExit


class GuardedWatch:
    """etcd3's watch stub, wrapped: its thread reopens a stream whenever one ends, and if its client
    closes the channel between the thread reading the stub and calling it, the call raises
    ValueError ("Channel closed") and the thread dies with a traceback. Here that ends it quietly."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub

    def Watch(self, *args: Any, **kwargs: Any) -> Any:  # the gRPC stub method it wraps
        try:
            return self._stub.Watch(*args, **kwargs)
        except ValueError:
            raise SystemExit from None


def open_client(access: EtcdAccess, timeout: float) -> etcd3.Etcd3Client:
    """An etcd client presenting `access`'s certificate, if any (its common name is the etcd user)."""
    return etcd3.client(**access.client_kwargs(), timeout=timeout)


def watching_client(access: EtcdAccess, timeout: float) -> etcd3.Etcd3Client:
    """A client whose watch thread ends quietly when it is closed, whatever the timing."""
    client = open_client(access, timeout)
    client.watcher._watch_stub = GuardedWatch(client.watcher._watch_stub)
    return client


def close_client(client: etcd3.Etcd3Client) -> None:
    """Close a client, and end its watch thread quietly: etcd3 0.12 cannot stop that thread, which
    reopens its stream on the closed channel and dies with a traceback (ValueError)."""
    watcher = getattr(client, "watcher", None)
    if watcher is not None:
        watcher._watch_stub = _WatchEnded()
    client.close()


def delete_namespace(access: EtcdAccess, app: str) -> int:
    """Remove one set of towers' keys (a finished run's); returns how many were deleted."""
    client = open_client(access, 5)
    try:
        return int(client.delete_prefix(f"{namespace(app)}/").deleted)
    finally:
        close_client(client)


_ETCD_ERRORS = (etcd3.exceptions.Etcd3Exception, grpc.RpcError, OSError, ValueError)


CasRecord = Callable[[dict[str, Any]], None]


def cas_merge(
    client: etcd3.Etcd3Client,
    key: str,
    mine: LWWMap,
    max_tries: int = 50,
    record: CasRecord | None = None,
    event_now_ms: int | None = None,
) -> int:
    """Join `mine` into the CvRDT stored at `key`; returns how many CAS retries it took. With
    `event_now_ms`, hazards long expired and old cancellations leave the joined value
    (`towers.hazard_retention`): the stored view stays bounded.

    With `record`, each attempt is reported as it ends, for a linearizability check
    (`pipeline.consistency.linearizability`): when it began and ended (wall s), the revision it read,
    what it wrote and whether the compare held (None: unknown, an error cut it short)."""
    for attempt in range(max_tries):
        began = time.time()
        op: dict[str, Any] = {"began": began, "read_rev": None, "wrote": None, "ok": None}
        try:
            ok = _cas_once(client, key, mine, op, event_now_ms)
        finally:
            if record is not None:
                record({**op, "ended": time.time()})
        if ok:
            return attempt
    raise TimeoutError(f"{key}: no CAS succeeded in {max_tries} tries")


def _cas_once(
    client: etcd3.Etcd3Client, key: str, mine: LWWMap, op: dict[str, Any], event_now_ms: int | None = None
) -> bool:
    value, meta = client.get(key)
    op["read_rev"] = 0 if value is None else meta.mod_revision
    merged = mine.copy()
    if value is not None:
        try:
            stored = decode_as(value, LWWMap)
        except CrdtError:
            log.warning("replacing an undecodable value at %s", key)
        else:
            dropped = _drop_unbelievable(stored)
            if dropped:
                log.warning("%s: %d entries no tower could have written left out", key, dropped)
            merged.merge_in(stored)
    if event_now_ms is not None:
        prune_hazards(merged, event_now_ms, int(time.time() * 1000) - TOMBSTONE_KEEP_MS, prefix="hazard/")
    if value is None:
        compare = [client.transactions.create(key) == 0]
    else:
        compare = [client.transactions.mod(key) == meta.mod_revision]
    op["wrote"] = encode_state(merged)
    ok, _ = client.transaction(compare=compare, success=[client.transactions.put(key, op["wrote"])], failure=[])
    op["ok"] = bool(ok)
    return bool(ok)


def read_namespaces(client: etcd3.Etcd3Client) -> dict[str, dict[str, dict[str, bytes]]]:
    """Every set of towers in etcd: app id → {"towers" | "regions" | "global": key tail → value}."""
    out: dict[str, dict[str, dict[str, bytes]]] = {}
    for key, value in iter_prefix(client, f"{ROOT}/"):
        parts = key.decode(errors="replace")[len(ROOT) + 1 :].split("/", 2)
        if len(parts) >= 2:
            out.setdefault(parts[0], {}).setdefault(parts[1], {})[parts[2] if len(parts) > 2 else ""] = value
    return out


def read_view(client: etcd3.Etcd3Client, root: str = ROOT) -> LWWMap:
    value, _ = client.get(f"{root}/global")
    return decode_as(value, LWWMap) if value is not None else LWWMap()


@dataclass
class _Published:
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)
    view: LWWMap = field(default_factory=LWWMap)
    status: dict[str, Any] = field(default_factory=dict)
    event_now_ms: int | None = None  # the towers' event time, which hazards expire by


class ControlPlane:
    """One tower worker's side of etcd, on its own thread."""

    def __init__(
        self,
        access: EtcdAccess,
        worker: str,
        interval_s: float = 1.0,
        lease_ttl_s: int = 5,
        on_towers: Callable[[dict[str, dict[str, Any]]], None] | None = None,
        root: str = ROOT,
        keep_cas_history: bool = False,
    ) -> None:
        self.access, self.worker, self.root = access, worker, root
        self.interval_s, self.lease_ttl_s = interval_s, lease_ttl_s
        self.on_towers = on_towers
        self.towers: dict[str, dict[str, Any]] = {}  # alive workers, from the watch
        self.cas_retries: deque[int] = deque(maxlen=LIMIT)  # per merge into the global view, the latest
        self.cas_retried = 0  # retries over the worker's life
        self.errors = 0
        # A round writes every owned region's snapshot, one transaction after another: its length
        # grows with the regions a worker serves, and past `interval_s` snapshots come late.
        self.round_s = 0.0  # the last successful round's length
        self.round_max_s = 0.0
        self.writes = 0  # transactions and puts over the worker's life
        self.last_ok_wall_ms = 0
        self.last_global_ms = 0  # when this worker's part of the global view was last joined into etcd
        # Staleness samples (`towers.staleness`): per region, when the changes not yet in a committed
        # snapshot were made; the age of each at its commit; when each hazard first reached /global.
        self._unsnapshotted: dict[int, list[int]] = {}
        self.snapshot_ages_ms: deque[int] = deque(maxlen=LIMIT)
        self.global_seen: dict[str, int] = {}
        self.offline = False  # an operator's switch for partition drills: act as if etcd were unreachable
        # True while a round may write: once it is False with `offline` set, no write of this worker's
        # is still in flight (a drill reads etcd's history only then)
        self.in_round = False
        self.cas_history: deque[dict[str, Any]] | None = deque(maxlen=LIMIT) if keep_cas_history else None
        self._latest = _Published()
        self._global_written: bytes | None = None  # the view last joined into etcd's global one
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"etcd-{worker}", daemon=True)
        self._client: etcd3.Etcd3Client | None = None
        self._lease: Any = None
        self._watch_id: Any = None

    # ---- called from the event loop: never blocks -------------------------------------------
    def publish(
        self,
        snapshots: dict[int, dict[str, Any]],
        view: LWWMap,
        status: dict[str, Any],
        event_now_ms: int | None = None,
    ) -> None:
        with self._lock:
            self._latest = _Published(snapshots, view, status, event_now_ms)
            for r, snap in snapshots.items():
                if snap.get("changes_since"):
                    self._unsnapshotted.setdefault(r, []).append(snap["changes_since"])

    def start(self) -> ControlPlane:
        self._thread.start()
        return self

    def stop(self, revoke: bool = True) -> None:
        """Stop the thread; `revoke=False` acts out a crash (the lease is left to expire)."""
        self._stop.set()
        self._thread.join(timeout=10)
        if self._client is not None:
            if self._watch_id is not None:
                with contextlib.suppress(*_ETCD_ERRORS):
                    self._client.cancel_watch(self._watch_id)
            if revoke and self._lease is not None:
                with contextlib.suppress(*_ETCD_ERRORS):
                    self._lease.revoke()
            close_client(self._client)

    @property
    def healthy(self) -> bool:
        return self.last_ok_wall_ms > 0 and time.time() * 1000 - self.last_ok_wall_ms < 3 * self.interval_s * 1000

    @property
    def holds_lease(self) -> bool:
        """Its registration's lease granted and its last round with etcd (which keeps it alive) recent:
        without it, its regions' snapshots lose their owner when the lease's TTL runs out."""
        return self._lease is not None and self.healthy

    # ---- the thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            self.in_round = True  # before `offline` is read, so a switch seen off leaves no round to start
            try:
                if self.offline:
                    raise ConnectionError("cut off from etcd by the operator")
                self._round()
                self.last_ok_wall_ms = int(time.time() * 1000)
                self.round_s = time.monotonic() - t0
                self.round_max_s = max(self.round_max_s, self.round_s)
            except _ETCD_ERRORS as exc:
                self.errors += 1
                log.info("etcd unavailable (%s); towers go on, retrying", type(exc).__name__)
                self._reset()
            finally:
                self.in_round = False
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - t0)))

    def _reset(self) -> None:
        if self._client is not None and self._watch_id is not None:
            with contextlib.suppress(*_ETCD_ERRORS):
                self._client.cancel_watch(self._watch_id)
        if self._client is not None:
            with contextlib.suppress(*_ETCD_ERRORS):
                close_client(self._client)
        self._client = self._lease = self._watch_id = None
        self._global_written = None  # etcd may come back without it: join it again

    def _connect(self) -> etcd3.Etcd3Client:
        if self._client is None:
            self._client = watching_client(self.access, timeout=2)
            self._lease = self._client.lease(self.lease_ttl_s)
            self._watch_id = self._client.add_watch_prefix_callback(f"{self.root}/towers/", self._on_watch)
            self._reload_towers()
        return self._client

    def _round(self) -> None:
        client = self._connect()
        with self._lock:
            latest = self._latest
            pending = {r: len(times) for r, times in self._unsnapshotted.items()}
        self._lease.refresh()
        if not self._lease_alive(client):  # expired while etcd was away: a new lease, same name
            self._lease = client.lease(self.lease_ttl_s)
        registration = {"worker": self.worker, "regions": sorted(latest.snapshots), "at_ms": int(time.time() * 1000),
                        **latest.status}  # fmt: skip
        client.put(f"{self.root}/towers/{self.worker}", json.dumps(registration), lease=self._lease)
        self.writes += 1 + len(latest.snapshots)
        for r, snap in latest.snapshots.items():
            key = f"{self.root}/regions/{r}"
            client.transaction(compare=[], success=[
                client.transactions.put(key, json.dumps(snap)),
                client.transactions.put(f"{key}/owner", self.worker, lease=self._lease),
            ], failure=[])  # fmt: skip
            self._committed(r, pending.get(r, 0))
        written = encode_state(latest.view) if latest.view.entries else None
        if written is not None and written != self._global_written:  # unchanged: etcd has it already
            record = self._keep if self.cas_history is not None else None
            retries = cas_merge(client, f"{self.root}/global", latest.view, record=record,
                                event_now_ms=latest.event_now_ms)  # fmt: skip
            self.writes += 1 + retries
            self.cas_retries.append(retries)
            self.cas_retried += retries
            self._global_written = written
        if written is not None:
            now = int(time.time() * 1000)
            self.last_global_ms = now
            with self._lock:
                for k, (_, _, h) in latest.view.entries.items():
                    if k.startswith("hazard/") and h is not None:
                        note_first(self.global_seen, k.removeprefix("hazard/"), now)

    def _keep(self, op: dict[str, Any]) -> None:
        with self._lock:
            assert self.cas_history is not None
            self.cas_history.append({**op, "client": self.worker})

    def _committed(self, region: int, changes: int) -> None:
        """The first `changes` change times noted for `region` are in etcd now: their ages."""
        if not changes:
            return
        now = int(time.time() * 1000)
        with self._lock:
            times = self._unsnapshotted.get(region, [])
            done, self._unsnapshotted[region] = times[:changes], times[changes:]
            self.snapshot_ages_ms.extend(now - t for t in done)

    def staleness(self) -> dict[str, Any]:
        """What this worker measured of etcd's staleness (for `towers.staleness` pages)."""
        with self._lock:
            return {"snapshot_ages_ms": list(self.snapshot_ages_ms), "global_seen": dict(self.global_seen),
                    "last_ok_ms": self.last_ok_wall_ms, "last_global_ms": self.last_global_ms}  # fmt: skip

    def history(self) -> list[dict[str, Any]]:
        """Every CAS attempt on the global view kept (`keep_cas_history`), JSON-ready."""
        with self._lock:
            ops = list(self.cas_history or ())
        return [{**op, "wrote": op["wrote"].hex() if op["wrote"] is not None else None} for op in ops]

    def _lease_alive(self, client: etcd3.Etcd3Client) -> bool:
        info = client.get_lease_info(self._lease.id)
        return bool(info.TTL > 0)

    def _reload_towers(self) -> None:
        assert self._client is not None
        towers = {}
        for value, meta in self._client.get_prefix(f"{self.root}/towers/"):
            registration = _registration(value)
            if registration is not None:  # one malformed registration hides no other worker
                towers[meta.key.decode(errors="replace").rsplit("/", 1)[-1]] = registration
        self.towers = towers
        if self.on_towers:
            self.on_towers(dict(self.towers))

    def _on_watch(self, response: Any) -> None:
        if isinstance(response, Exception):
            return
        for event in response.events:
            name = event.key.decode(errors="replace").rsplit("/", 1)[-1]
            if isinstance(event, etcd3.events.DeleteEvent):
                if self.towers.pop(name, None) is not None:
                    log.warning("tower worker %s left the registry (lease expired or stopped)", name)
            else:
                registration = _registration(event.value)
                if registration is not None:
                    self.towers[name] = registration
        if self.on_towers:
            self.on_towers(dict(self.towers))


def _registration(value: bytes) -> dict[str, Any] | None:
    """A worker's registration as JSON; None for anything that is not a JSON object."""
    try:
        parsed = json.loads(value)
    except (ValueError, TypeError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _drop_unbelievable(view: LWWMap) -> int:
    """Leave out of the global view the hazards no tower could have written (bad ids or values),
    so one bad write to etcd does not travel on with every worker's next compare-and-swap."""
    bad = [
        k for k, (_, replica, v) in view.entries.items()
        if k.startswith("hazard/") and (id_problem(k[7:]) or id_problem(replica) or hazard_value_problem(v))
    ]  # fmt: skip
    for k in bad:
        del view.entries[k]
    return len(bad)
