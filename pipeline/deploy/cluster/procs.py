"""What the control plane's and the nodes' first processes share: running a command, asking a
server whether it is up, and a set of long-running parts started in order and watched."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.deploy.cluster.layout import ADMIN_TOKEN, ClusterLayout
from pipeline.shared.access import strict_context

__all__ = ["Parts", "Stop", "bridge", "http_ok", "is_ready", "node_ready", "on_term", "private_namespace", "sh"]


class Stop(Exception):
    """SIGTERM arrived."""


def on_term(_signum: int, _frame: object) -> None:
    raise Stop


def sh(*argv: str) -> None:
    proc = subprocess.run(list(argv), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")


def private_namespace() -> None:
    """In a new mount and network namespace: private /run, /var/lib and /var/log (containerd, CNI and
    the kubelet write there whatever their configuration says), loopback up, forwarding on (a
    setting of each network namespace)."""
    for target in ("/run", "/var/lib", "/var/log"):
        sh("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", target)
    sh("ip", "link", "set", "lo", "up")
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


def bridge(name: str, address: str) -> None:
    """A bridge with `address` (CIDR notation) on it, up."""
    sh("ip", "link", "add", name, "type", "bridge")
    sh("ip", "addr", "add", address, "dev", name)
    sh("ip", "link", "set", name, "up")


def is_ready(obj: dict[str, Any]) -> bool:
    """A Node's or a Pod's Ready condition is true."""
    conditions = obj.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def http_ok(url: str, *, ca: Path | None = None, token: str | None = None) -> bool:
    ctx = strict_context(ca) if ca else ssl._create_unverified_context()
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=2, context=ctx if url.startswith("https") else None) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def node_ready(layout: ClusterLayout, name: str) -> bool:
    """The API server holds Node `name` with its Ready condition true."""
    ctx = strict_context(layout.pki / "ca.pem")
    request = urllib.request.Request(f"{layout.api_url}/api/v1/nodes/{name}",
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=2, context=ctx) as r:
            node = json.load(r)
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return is_ready(node)


@dataclass
class Parts:
    """Long-running processes started one after another, each once the previous is ready."""

    logs: Path
    cwd: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], ready: Callable[[], bool], timeout: float = 120.0) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd)
        self.procs.append((name, proc))
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}) during start-up; see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not ready within {timeout:.0f} s; see {log.name}")
            time.sleep(0.25)

    @property
    def pids(self) -> set[int]:
        return {proc.pid for _name, proc in self.procs}

    def check(self) -> None:
        """A part that exited ends the run, named in the error."""
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}) while the cluster ran")

    def stop(self, grace: float = 10.0) -> None:
        """In reverse order of their start, each given `grace` seconds, then killed."""
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def kill(self) -> None:
        """At once, with no chance to tidy up: what a machine that loses its power does."""
        for _name, proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        for _name, proc in self.procs:
            proc.wait()
