"""`corridor dashboard`: a read-only live page of the corridor, served on loopback with aiohttp.

The page (static files shipped in this package, nothing from a CDN) gets the route once from
`/api/corridor`, then a server-sent event stream: a snapshot of the vehicles, hazards and advisories
four times a second, and the tower panels once a second. One snapshot is built per tick and shared
by every open page, so the server's cost does not grow with the pages watching.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import resource
import signal
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from pipeline.dashboard.board import Board, BoardConfig
from pipeline.dashboard.feed import Feed
from pipeline.dashboard.metrics import live_page_families
from pipeline.dashboard.towers_view import TowersView
from pipeline.shared.access import Role
from pipeline.shared.config import Settings
from pipeline.shared.corridor import Corridor
from pipeline.shared.errors import StackError
from pipeline.shared.metric_catalog import CONTENT_TYPE, exposition
from towers.config import TowerConfig

__all__ = ["Dashboard", "serve"]

SNAPSHOT_S = 0.25
TOWERS_S = 1.0
STATIC = Path(str(resources.files("pipeline.dashboard").joinpath("static")))


def _json(data: Any) -> bytes:
    """What the page gets: strict JSON (a NaN or infinity that slipped through becomes null, which
    the browser's JSON.parse reads, rather than `NaN`, which it refuses)."""
    try:
        return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        return json.dumps(_no_nan(data), separators=(",", ":"), allow_nan=False).encode()


def _no_nan(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_no_nan(v) for v in x]
    return x


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def corridor_json(c: Corridor, advice: TowerConfig) -> dict[str, Any]:
    """The route as the page draws it: waypoints (towns, interchanges), limits and the tower regions."""
    route = c.route
    return {
        "name": route.name, "length_km": route.length_km,
        "waypoints": [{"name": w.name, "km": w.km, "lat": w.lat, "lon": w.lon, "interchange": w.interchange}
                      for w in route.waypoints],
        "segments": [{"from_km": s.from_km, "to_km": s.to_km, "limit_mps": s.speed_limit_mps, "lanes": s.lanes}
                     for s in route.segments],
        "regions": [{"id": r.id, "tower": r.tower, "name": r.name, "from_km": r.from_km, "to_km": r.to_km}
                    for r in c.regions.regions],
        # where the towers advise before a hazard: a stop zone, then slowing over the lookahead
        "advice": {"stop_km": advice.stop_km, "lookahead_km": advice.lookahead_km},
    }  # fmt: skip


class Dashboard:
    def __init__(self, settings: Settings, config: BoardConfig | None = None) -> None:
        self.corridor = settings.corridor()
        self.advice = TowerConfig.from_env()  # the towers' own settings, from the same variables
        self.topics = settings.topics(len(self.corridor.regions))
        self.board = Board(config)
        self.lock = threading.Lock()
        self.feed = Feed(settings.kafka(Role.READER), self.topics, self.board, self.lock)
        self.towers = TowersView(settings.etcd(Role.READER), TOWERS_S)
        self.bytes_sent = 0
        self.clients = 0
        self._snapshot: bytes = b""
        self._towers: bytes = b""
        self._started = (time.monotonic(), _cpu_s())

    # ---- the stream -----------------------------------------------------------------------------
    async def _tick(self) -> None:
        """Build the shared snapshot four times a second, the tower panels once a second."""
        last_towers = 0.0
        while True:
            now = int(time.time() * 1000)
            with self.lock:
                snap = self.board.snapshot(now, self.towers.known_hazards())
            snap["feed"] = {"messages": self.feed.messages, "undecodable": self.feed.undecodable,
                            "refused": dict(self.board.refused)}  # fmt: skip
            self._snapshot = b"event: snapshot\ndata: " + _json(snap) + b"\n\n"
            if time.monotonic() - last_towers >= TOWERS_S:
                last_towers = time.monotonic()
                latest = self.towers.latest
                with self.lock:
                    if latest["etcd"] != "connecting":
                        names = {w["worker"] for s in latest["sets"] for w in s["workers"]}
                        self.board.control_plane(names, "ok" if latest["etcd"] == "ok" else "unreachable")
                self._towers = b"event: towers\ndata: " + _json(latest) + b"\n\n"
            await asyncio.sleep(SNAPSHOT_S)

    async def events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        self.clients += 1
        sent_snapshot, sent_towers = b"", b""
        try:
            while True:
                for chunk, last in ((self._snapshot, sent_snapshot), (self._towers, sent_towers)):
                    if chunk and chunk is not last:
                        await resp.write(chunk)
                        self.bytes_sent += len(chunk)
                sent_snapshot, sent_towers = self._snapshot, self._towers
                await asyncio.sleep(SNAPSHOT_S / 2)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.clients -= 1
        return resp

    # ---- the rest of the pages ------------------------------------------------------------------
    async def corridor_api(self, _: web.Request) -> web.Response:
        return web.json_response(corridor_json(self.corridor, self.advice))

    async def vehicle_api(self, request: web.Request) -> web.Response:
        try:
            num = int(request.query.get("num", ""))
        except ValueError:
            return web.json_response({"error": "give ?num=<vehicle number>"}, status=400)
        with self.lock:
            vid = self.board.vehicle_id(num)
            info = self.board.vehicle(vid) if vid is not None else None
        if info is None:
            return web.json_response({"error": f"no vehicle numbered {num} on the road"}, status=404)
        return web.Response(body=_json(info), content_type="application/json")

    def _stats(self) -> dict[str, Any]:
        t0, cpu0 = self._started
        wall = max(time.monotonic() - t0, 1e-9)
        with self.lock:
            refused = dict(self.board.refused)
        return {"clients": self.clients, "bytes_sent": self.bytes_sent,
                "bytes_per_s": round(self.bytes_sent / wall), "cpu_s": round(_cpu_s() - cpu0, 2),
                "cpu_pct_of_one_core": round(100 * (_cpu_s() - cpu0) / wall, 1),
                "wall_s": round(wall, 1), "feed_messages": self.feed.messages,
                "undecodable": self.feed.undecodable, "refused": refused, "updates": self.board.updates}  # fmt: skip

    async def stats_api(self, _: web.Request) -> web.Response:
        """The server's own cost: CPU share of one core and bytes/s sent, since it started."""
        return web.json_response(self._stats())

    async def metrics(self, _: web.Request) -> web.Response:
        """The same figures for Prometheus (`pipeline.dashboard.metrics`)."""
        return web.Response(body=exposition(live_page_families(self._stats())), headers={"Content-Type": CONTENT_TYPE})

    async def index(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_get("/events", self.events)
        app.router.add_get("/api/corridor", self.corridor_api)
        app.router.add_get("/api/vehicle", self.vehicle_api)
        app.router.add_get("/api/stats", self.stats_api)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_static("/static/", STATIC)

        async def background(_: web.Application) -> Any:
            self.feed.start()
            self.towers.start()
            task = asyncio.create_task(self._tick())
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.feed.stop()
            self.towers.stop()

        app.cleanup_ctx.append(background)
        return app


def serve(settings: Settings, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM; `on_ready` gets the page's URL once it is listening."""
    asyncio.run(_serve(Dashboard(settings), host, port, on_ready))


async def _serve(dashboard: Dashboard, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(dashboard.app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, shutdown_timeout=2.0)
        try:
            await site.start()
        except OSError as exc:
            raise StackError(f"the dashboard cannot listen on {host}:{port} ({exc.strerror}): "
                             "choose another --port") from None  # fmt: skip
        on_ready(f"http://{host}:{port}/")
        await stop.wait()
    finally:
        await runner.cleanup()
