"""The tower panels: who is registered in etcd, and what each worker's own page says, once a second.

etcd gives the consistent part (workers alive under a lease, each region's snapshot, the global
CRDT view); each worker's `/corridor/state/` page gives its counters, lag, sync staleness per
neighbour and memory. A worker whose page does not answer is shown as such, not dropped.

A registration in etcd is input like any other: the page is fetched only from an `http` URL built
from a host and port that pass validation, at a fixed path, without following redirects, and only a
JSON object of bounded size is read from it. A registration that is not a JSON object is shown as
malformed; nothing in one can stop the thread that serves the panels.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import etcd3
import grpc

from pipeline.consistency.table import live_ages
from pipeline.shared.access import EtcdAccess
from pipeline.shared.crdt import LWWMap, decode_as
from pipeline.shared.crdt.errors import CrdtError
from towers.control_plane import close_client, open_client, read_namespaces
from towers.etcd_pages import etcd_error, json_object

__all__ = ["TowersView"]

_ERRORS = (etcd3.exceptions.Etcd3Exception, grpc.RpcError, OSError, ValueError)
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*")
MAX_PAGE = 1 << 20


def state_url(registered: Any) -> str | None:
    """The worker's state page from the URL it registered, or None when that URL is not plain
    `http://host:port` (a file:// URL, a path, a query or credentials are refused)."""
    if not isinstance(registered, str) or len(registered) > 300:
        return None
    try:
        u = urllib.parse.urlsplit(registered)
        port = u.port
    except ValueError:
        return None
    host = u.hostname or ""
    if u.scheme != "http" or port is None or u.path not in ("", "/") or u.query or u.fragment or u.username:
        return None
    try:
        ip = ipaddress.ip_address(host)
        host = f"[{ip}]" if ip.version == 6 else str(ip)
    except ValueError:
        if _HOSTNAME.fullmatch(host) is None:
            return None
    return f"http://{host}:{port}/corridor/state/"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None  # a redirect is an answer that is not the page: refused


_OPENER = urllib.request.build_opener(_NoRedirect)


def _page(registered: Any) -> dict[str, Any] | None:
    url = state_url(registered)
    if url is None:
        return None
    try:
        with _OPENER.open(url, timeout=1.0) as r:
            if r.headers.get_content_type() != "application/json":
                return None
            page = json.loads(r.read(MAX_PAGE + 1)[: MAX_PAGE + 1])
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return page if isinstance(page, dict) else None


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
                    self.latest = {"sets": self.latest["sets"], "etcd": f"unreachable ({etcd_error(exc)[:300]})"}
                except Exception as exc:  # what etcd held could not be shown: say so, keep serving
                    self.latest = {"sets": self.latest["sets"], "etcd": f"unreadable ({type(exc).__name__})"}
                self._stop.wait(self.interval_s)
        finally:
            close_client(client)

    def _read(self, client: etcd3.Etcd3Client) -> list[dict[str, Any]]:
        out = []
        now = time.time() * 1000
        for app, keys in sorted(read_namespaces(client).items()):
            towers = {name: json_object(v) for name, v in keys.get("towers", {}).items()}
            if not towers:
                continue  # a set of towers no longer running
            regions = {int(k): json_object(v) for k, v in keys.get("regions", {}).items() if k.isdigit() and len(k) < 6}
            try:
                raw = keys.get("global", {}).get("")
                view = decode_as(raw, LWWMap) if raw is not None else LWWMap()
            except CrdtError:
                view = LWWMap()
            out.append({
                "app": app,
                "workers": [self._shown(name, reg, now) for name, reg in sorted(towers.items())],
                "regions": [_region_row(r, s) for r, s in sorted(regions.items())],
                "global_hazards": sorted(k.split("/", 1)[1] for k in view.value if k.startswith("hazard/")),
            })  # fmt: skip
        return out

    def _shown(self, name: str, reg: dict[str, Any], now_ms: float) -> dict[str, Any]:
        """A worker's panel; one whose registration or page does not hold what a panel reads is
        shown as malformed, with the others as usual."""
        try:
            return self._worker(name, reg, now_ms)
        except (TypeError, ValueError, AttributeError, KeyError, ArithmeticError):
            return {"worker": name[:64], "malformed": True, "regions": [], "lease": "held", "page": False}

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


def _region_row(r: int, s: dict[str, Any]) -> dict[str, Any]:
    """A region's snapshot as the panels show it: only strings and counts of the expected types."""
    hazards, tower, members = s.get("hazards"), s.get("tower"), s.get("member_count")
    return {
        "region": r,
        "tower": tower[:64] if isinstance(tower, str) else "",
        "members": members if isinstance(members, int) else 0,
        "hazards": [h[:64] for h in hazards[:1000] if isinstance(h, str)] if isinstance(hazards, list) else [],
    }
