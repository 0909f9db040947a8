"""The live page's delay: a hazard report acknowledged by the broker → the hazard in the page's event
stream (`/events`, what the browser draws from), measured with a plain HTTP client beside a running
`corridor dashboard`. The live page's promise: within 2 s."""

from __future__ import annotations

import json
import operator
import tempfile
import threading
import time
import urllib.request
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from pipeline.admin import delete_prefixed, ensure_topics
from pipeline.leftovers import scratch_prefix
from pipeline.ports import free_ports
from pipeline.shared.access import Role, client_conf
from pipeline.shared.config import Settings
from pipeline.shared.corridor import load_corridor
from pipeline.shared.hazards import hazard_record
from pipeline.shared.messages import CODEC, HAZARD
from pipeline.shared.stats import percentile
from pipeline.shared.topics import Topics
from pipeline.shared.waiting import poll
from pipeline.workers import DashboardProcess, worker_env

__all__ = ["run_live_page"]

SHOWN_WITHIN_S = 10.0  # past this, a hazard counts as never shown


class _EventStream:
    """Reads the page's server-sent events in a thread of its own; notes when each hazard id first
    appears in a snapshot."""

    def __init__(self, url: str) -> None:
        self.first_seen: dict[str, float] = {}
        self.snapshots = 0
        self.error: str | None = None
        self._resp = urllib.request.urlopen(url, timeout=30)
        self._thread = threading.Thread(target=self._read, name="live-page events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            kind = ""
            for raw in self._resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "snapshot":
                    now = time.monotonic()
                    self.snapshots += 1
                    for h in json.loads(line[6:]).get("hazards", []):
                        self.first_seen.setdefault(h["id"], now)
        except (OSError, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self._resp.close()


def run_live_page(settings: Settings, quick: bool = False) -> dict[str, Any]:
    corridor = load_corridor()
    topics = Topics(regions=len(corridor.regions), prefix=scratch_prefix("lp"))
    ensure_topics(settings.bootstrap_servers, topics.specs())
    count = 5 if quick else 20
    shown_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        (port,) = free_ports(1)
        page = DashboardProcess(worker_env(settings, topics.prefix), Path(tmp) / "dashboard.log")
        page.start("127.0.0.1", port)
        try:
            url = page.wait_ready()
            events = _EventStream(f"{url}events")
            if poll(lambda: events.snapshots > 0, 15.0) is None:
                raise RuntimeError(f"the live page sent no snapshot in 15 s ({events.error or 'no error'})")
            producer = Producer(client_conf(settings.kafka(Role.ADMIN), {"linger.ms": 0}))
            for i in range(count):
                hid = f"live-{uuid.uuid4().hex[:6]}"
                rec = hazard_record(10.0 + 3 * i % 60, "ANIMAL", "NORTHBOUND", 4, int(time.time() * 1000), 600, hid,
                                    "bench", corridor=corridor)  # fmt: skip
                producer.produce(topics.hazards, CODEC.encode(HAZARD, rec), str(rec["region_id"]).encode(),
                                 rec["region_id"])  # fmt: skip
                if producer.flush(10):
                    raise RuntimeError("the broker did not acknowledge a hazard report in 10 s")
                acknowledged = time.monotonic()
                if poll(partial(operator.contains, events.first_seen, hid), SHOWN_WITHIN_S, interval=0.005) is not None:
                    shown_ms.append((events.first_seen[hid] - acknowledged) * 1000)
            events.close()
        finally:
            page.stop()
            delete_prefixed(settings.bootstrap_servers, topics.prefix)
    shown = sorted(shown_ms)
    return {
        "hazards": count,
        "never_shown": count - len(shown),
        "shown_p50_ms": round(percentile(shown, 50), 1) if shown else None,
        "shown_max_ms": round(shown[-1], 1) if shown else None,
    }
