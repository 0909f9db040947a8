"""The tower panels: who is registered in etcd, and what each worker's own page says, once a second.

etcd gives the consistent part (workers alive under a lease, each region's snapshot, the global
CRDT view); each worker's `/corridor/state/` page gives its counters, lag, sync staleness per
neighbour and memory. A worker whose page does not answer is shown as such, not dropped.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

import etcd3
import grpc

from pipeline.consistency.table import live_ages
from pipeline.shared.access import EtcdAccess
from pipeline.shared.crdt import LWWMap, decode_as
from pipeline.shared.crdt.errors import CrdtError
from towers.control_plane import close_client, open_client, read_namespaces

__all__ = ["TowersView"]

_ERRORS = (etcd3.exceptions.Etcd3Exception, grpc.RpcError, OSError, ValueError)


def _page(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/corridor/state/", timeout=1.0) as r:
            page: dict[str, Any] = json.loads(r.read())
            return page
    except (OSError, ValueError):
        return None


class TowersView:
    def __init__(self, etcd: EtcdAccess, interval_s: float = 1.0) -> None:
        self.etcd, self.interval_s = etcd, interval_s
        self.latest: dict[str, Any] = {"sets": [], "etcd": "connecting"}
        self._last_updates: dict[str, tuple[float, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-towers", daemon=True)

    def start(self) -> TowersView:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def known_hazards(self) -> set[str] | None:
        """The hazards the running towers hold (regions' snapshots and global views); None when no
        towers are registered."""
        sets = self.latest["sets"]
        if not sets:
            return None
        return {h for s in sets for h in s["global_hazards"]} | {
            h for s in sets for r in s["regions"] for h in r["hazards"]
        }

    def _run(self) -> None:
        client = open_client(self.etcd, 2)
        try:
            while not self._stop.is_set():
                try:
                    self.latest = {"sets": self._read(client), "etcd": "ok"}
                except _ERRORS as exc:
                    self.latest = {"sets": self.latest["sets"], "etcd": f"unreachable ({type(exc).__name__})"}
                self._stop.wait(self.interval_s)
        finally:
            close_client(client)

    def _read(self, client: etcd3.Etcd3Client) -> list[dict[str, Any]]:
        out = []
        now = time.time() * 1000
        for app, keys in sorted(read_namespaces(client).items()):
            towers = {name: json.loads(v) for name, v in keys.get("towers", {}).items()}
            if not towers:
                continue  # a set of towers no longer running
            regions = {int(k): json.loads(v) for k, v in keys.get("regions", {}).items() if k.isdigit()}
            try:
                raw = keys.get("global", {}).get("")
                view = decode_as(raw, LWWMap) if raw is not None else LWWMap()
            except CrdtError:
                view = LWWMap()
            out.append({
                "app": app,
                "workers": [self._worker(name, reg, now) for name, reg in sorted(towers.items())],
                "regions": [{"region": r, "tower": s.get("tower", ""), "members": s.get("member_count", 0),
                             "hazards": s.get("hazards", [])} for r, s in sorted(regions.items())],
                "global_hazards": sorted(k.split("/", 1)[1] for k in view.value if k.startswith("hazard/")),
            })  # fmt: skip
        return out

    def _worker(self, name: str, reg: dict[str, Any], now_ms: float) -> dict[str, Any]:
        page = _page(reg["web"]) if reg.get("web") else None
        since = int(max(0, now_ms - reg.get("at_ms", now_ms)))
        w: dict[str, Any] = {"worker": name, "pid": reg.get("pid"), "regions": reg.get("regions", []),
                             "lease": "held", "seen_s_ago": round((now_ms - reg.get("at_ms", now_ms)) / 1000, 1),
                             "staleness_ms": reg.get("staleness_ms", {}), "page": page is not None,
                             "staleness": live_ages(reg.get("staleness_by_class_ms", {}), plus_ms=since)}  # fmt: skip
        if page is not None:
            updates = int(page.get("counts", {}).get("updates", 0))
            t0, u0 = self._last_updates.get(name, (time.monotonic(), updates))
            dt = time.monotonic() - t0
            self._last_updates[name] = (time.monotonic(), updates)
            w.update({"updates": updates, "updates_per_s": round((updates - u0) / dt) if dt > 0 else 0,
                      "behind_ms": max(page.get("behind_ms", {}).values(), default=0),
                      "staleness_ms": page.get("staleness_ms", w["staleness_ms"]), "rss_mib": page.get("rss_mib"),
                      "staleness": live_ages(page.get("staleness_by_class_ms", {})),
                      "advisories": int(page.get("counts", {}).get("advisories", 0)),
                      "etcd_healthy": (page.get("etcd") or {}).get("healthy")})  # fmt: skip
        return w
