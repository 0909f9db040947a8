"""Tower workers as child processes (`faust -A towers.app worker`), for the simulation, benchmarks
and tests: each with its own web port and data directory, stopped cleanly (or killed on purpose)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from pipeline.admin import committed_offsets, end_offsets
from pipeline.ports import free_ports, is_free
from pipeline.shared.access import Kafka, client_conf
from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from pipeline.shared.waiting import poll
from pipeline.stack.process import die_with_parent

__all__ = [
    "ChildProcess",
    "DashboardProcess",
    "GatewayProcess",
    "TowerProcess",
    "fetch_page",
    "peak_rss_mib",
    "wait_for_assignment",
    "wait_until_written",
]


#: on corridor's own brokers (which allow sessions from 1 s), a dead worker's regions move to a
#: survivor within 2 s; a user's brokers refuse sessions under 6 s unless told otherwise
#: (`group.min.session.timeout.ms`), so there the workers keep their own default
FAST_FAILOVER = {"CORRIDOR_TOWER_SESSION_TIMEOUT_S": "1", "CORRIDOR_TOWER_HEARTBEAT_S": "0.2"}


def worker_env(settings: Settings, prefix: str | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a tower worker or gateway starts with: this process's, pointed at the stack
    of `settings` (its security material included), topics under `prefix` (the settings' own by default)."""
    chosen = any(k in os.environ for k in FAST_FAILOVER)
    return {
        **({} if settings.kafka_external or chosen else FAST_FAILOVER),
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "ETCD_ENDPOINTS": settings.etcd_servers,
        "CORRIDOR_TOPIC_PREFIX": prefix or settings.topic_prefix,
        "CORRIDOR_TOPIC_REPLICATION": str(settings.topic_replication),
        **settings.corridor_env(),
        **settings.security_env(),
        **settings.signing_env(),
        **settings.registry_env(),
        **(extra or {}),
    }


def fetch_page(port: int, name: str = "state", timeout: float = 5.0) -> dict[str, Any] | None:
    """A tower worker's JSON page /corridor/<name>/ on 127.0.0.1:<port>; None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/corridor/{name}/", timeout=timeout) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory since its exec (the kernel's high-water mark), in MiB.

    Not getrusage's ru_maxrss of a child: that also counts the pages the child shared with its
    parent between fork and exec."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class ChildProcess:
    """A command corridor runs as a child: in a process group of its own, its output in `log`, and
    tied to this process, so that should this one die without stopping it (SIGKILL, or a signal it
    does not handle) the kernel SIGKILLs the child, which, its broker possibly gone too, may not
    answer a SIGTERM."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True,
                                         preexec_fn=die_with_parent(signal.SIGKILL))  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        self._signal(signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean shutdown."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def _signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, sig)

    def _wait_ready(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        """Until `ready()`; a child that exits first, or is not ready in time, is a StackError with its log."""

        def up() -> bool:
            if not self.alive:
                raise StackError(f"{what} exited during start-up; its log {self.log}:\n{self.tail()}")
            return ready()

        if poll(up, timeout) is None:
            raise StackError(f"{what} was not ready within {timeout:.0f} s; its log {self.log}:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


class TowerProcess(ChildProcess):
    """One worker of the towers app; `start()` again after `kill()` restarts it on the same data."""

    def __init__(
        self,
        env: dict[str, str],
        datadir: Path,
        log: Path,
        name: str = "tower-worker",
        loop: str = "uvloop",
        loglevel: str = "warn",
        switches: bool = False,
    ) -> None:
        self.name = name
        self.port = free_ports(1)[0]
        # a drill's switches (tower-sync, etcd) answer only a POST with this run's own token
        self.token = secrets.token_urlsafe(24) if switches else ""
        super().__init__({**env, "CORRIDOR_TOWER_WEB_PORT": str(self.port),
                          "CORRIDOR_TOWER_CONTROL_TOKEN": self.token}, log)  # fmt: skip
        self.datadir, self.loop, self.loglevel = datadir, loop, loglevel

    def start(self) -> TowerProcess:
        """A restart keeps the web port unless something else holds it by now."""
        if not is_free(self.port):
            self.port = free_ports(1)[0]
            self.env["CORRIDOR_TOWER_WEB_PORT"] = str(self.port)
        faust = Path(sys.executable).with_name("faust")
        self._spawn([str(faust), "--loop", self.loop, "--datadir", str(self.datadir), "-A", "towers.app", "worker",
                     "-l", self.loglevel])  # fmt: skip
        return self

    def page(self, name: str = "state", timeout: float = 5.0) -> dict[str, Any] | None:
        return fetch_page(self.port, name, timeout)

    def switch(self, what: str, state: str, timeout: float = 5.0) -> dict[str, Any]:
        """Turn the worker's tower-sync or etcd `on` or `off` (started with `switches=True`)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/corridor/control/{what}/{state}/",
                                         method="POST", headers={"Authorization": f"Bearer {self.token}"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
                return answer
        except (OSError, ValueError) as exc:
            raise StackError(f"{self.name} did not turn {what} {state}: {exc}") from None

    def wait_ready(self, regions: int = 1, timeout: float = 90.0) -> dict[str, Any]:
        """Until its tables are recovered and it serves at least `regions` regions."""
        seen: list[dict[str, Any]] = []

        def ready() -> bool:
            if not self.alive:
                raise StackError(f"{self.name} exited during start-up; last lines of {self.log}:\n{self.tail()}")
            st = self.page()
            seen[:] = [st] if st is not None else []
            return st is not None and st["recovered"] and len(st["regions"]) >= regions

        if poll(ready, timeout, interval=0.3) is None:
            raise StackError(f"{self.name} was not ready within {timeout:.0f} s; its log {self.log}:\n{self.tail()}")
        return seen[0]

    def peak_rss_mib(self) -> float:
        if not self.alive:
            return float("nan")
        assert self.proc is not None
        return peak_rss_mib(self.proc.pid)


def wait_for_assignment(workers: list[TowerProcess], regions: int, timeout: float = 120) -> None:
    """Until the workers' tables are recovered and together they own every region exactly once."""

    def shared() -> bool:
        pages = []
        for w in workers:
            if not w.alive:
                raise StackError(f"{w.name} exited during start-up; last lines of {w.log}:\n{w.tail()}")
            pages.append(w.page())
        recovered = [p for p in pages if p is not None and p["recovered"]]
        owned = sorted(r for p in recovered for r in p["regions"])
        return len(recovered) == len(pages) and owned == list(range(regions))

    if poll(shared, timeout, interval=0.3) is None:
        raise StackError(f"tower workers did not share the {regions} regions within {timeout:.0f} s")


def wait_until_written(
    bootstrap: Kafka,
    group: str,
    telemetry: str,
    regions: int,
    event_time_ms: int,
    timeout: float = 120.0,
    each_round: Callable[[], bool] = lambda: True,
) -> None:
    """Until the towers (consumer group `group`) have written every telemetry record into their tables.

    A tower acknowledges a record — its group commits the offset — once the record's effects are
    written, which it does at most once a second, on a record of the region. So: every 1.2 s one more
    (empty) frame per region, stamped `event_time_ms`, until every record before the latest of them
    is committed and `each_round` agrees. (A worker busy with a backlog may not answer its pages:
    its count of updates cannot tell.)"""
    from producers.encoding import empty_frame

    producer = Producer(client_conf(bootstrap, {"log_level": 3}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.2)
        for r in range(regions):
            frame = empty_frame(r, 10**6, event_time_ms, int(time.time() * 1000))
            producer.produce(telemetry, frame, str(r).encode(), r)
        producer.flush(30)
        ends = end_offsets(bootstrap, telemetry, regions)
        done = committed_offsets(bootstrap, group, telemetry, regions)
        if all(c >= e - 1 for c, e in zip(done, ends, strict=True)) and each_round():
            return
    raise StackError(f"the towers did not write all of {telemetry} within {timeout:.0f} s")


class GatewayProcess(ChildProcess):
    """A tower gateway (`corridor gateway`) as a child process, writing its counters to `stats` once
    a second."""

    def __init__(self, env: dict[str, str], stats: Path, log: Path, regions: str = "all",
                 metrics_port: int | None = None) -> None:  # fmt: skip
        super().__init__(env, log)
        self.stats_file, self.regions, self.metrics_port = stats, regions, metrics_port

    def start(self) -> GatewayProcess:
        self.stats_file.unlink(missing_ok=True)
        corridor = Path(sys.executable).with_name("corridor")
        metrics = ["--metrics-port", str(self.metrics_port)] if self.metrics_port is not None else []
        self._spawn([str(corridor), "gateway", "--regions", self.regions, "--stats", str(self.stats_file), *metrics])
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until its counters say the broker granted its subscriptions: before that, what vehicles
        send finds no one."""
        self._wait_ready(lambda: self.stats().get("mqtt_subscribed") is True, "the gateway's subscriptions", timeout)

    def stats(self) -> dict[str, Any]:
        try:
            return json.loads(self.stats_file.read_text())
        except (OSError, ValueError):
            return {}


class DashboardProcess(ChildProcess):
    """The live page (`corridor dashboard`) beside a run, as a child process."""

    def start(self, host: str, port: int) -> DashboardProcess:
        self.url = f"http://{host}:{port}/"
        corridor = Path(sys.executable).with_name("corridor")
        self._spawn([str(corridor), "dashboard", "--host", host, "--port", str(port)])
        return self

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Until its page answers; its URL."""
        self._wait_ready(self._answers, "the dashboard", timeout)
        return self.url

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}api/stats", timeout=1.0):
                return True
        except OSError:
            return False


class AnalyticsProcess(ChildProcess):
    """The Spark job (`corridor analytics`) beside a run, as a child process; its JVM is a child of
    that one and exits when the Python side goes (pyspark's gateway reads its stdin until EOF)."""

    def __init__(self, env: dict[str, str], out_dir: Path, checkpoint: Path, log: Path,
                 metrics_port: int | None = None) -> None:  # fmt: skip
        super().__init__(env, log)
        self.out_dir, self.checkpoint, self.metrics_port = out_dir, checkpoint, metrics_port
        self.ready_file = checkpoint.parent / "analytics-started"

    def start(self, starting_ms: int, hz: float, watermark_s: int) -> AnalyticsProcess:
        self.ready_file.unlink(missing_ok=True)
        corridor = Path(sys.executable).with_name("corridor")
        metrics = ["--metrics-port", str(self.metrics_port)] if self.metrics_port is not None else []
        self._spawn([str(corridor), "analytics", "--output", str(self.out_dir), "--checkpoint", str(self.checkpoint),
                     "--starting", str(starting_ms),
                     "--hz", str(hz), "--watermark", str(watermark_s), "--trigger", "1", "--driver-memory", "768m",
                     "--ready-file", str(self.ready_file), *metrics])  # fmt: skip
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until its streaming query has started (a Spark session takes 10–60 s to start here)."""
        self._wait_ready(self.ready_file.exists, "the analytics job", timeout)

    def failure(self) -> str:
        """Why it stopped before it was asked to: the last line corridor printed (its one-line error)."""
        lines = [line for line in self.tail(200).splitlines() if line.startswith("corridor: error")]
        return lines[-1] if lines else f"exited early; see {self.log}"
