"""The container engine: a running Docker, or Podman with its Docker-compatible API service started
here (testcontainers speaks that API). Podman gets a containers.conf that fits a locked-down host:
the runc runtime (crun cannot manage hybrid cgroups) and default ulimits no higher than our own."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from pipeline.stack.process import ManagedProcess, wait_until

__all__ = ["ContainerEngine", "containers_conf", "find_engine"]

ULIMIT_CAP = 16_384


def containers_conf(runc: bool) -> str:
    """Podman's settings: per-container limits above the host's hard limits fail every start."""
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], ULIMIT_CAP)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], ULIMIT_CAP)
    text = f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
    if runc:
        text += '[engine]\nruntime = "runc"\n'
    return text


def _ping(sock: Path) -> bool:
    """The Docker API's /_ping over its unix socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: engine\r\n\r\n")
            return b"OK" in s.recv(4096)
    except OSError:
        return False


@dataclass
class ContainerEngine:
    """What builds images (`cli`) and what testcontainers talks to (`env`)."""

    kind: str  # "podman" or "docker"
    cli: str
    env: dict[str, str] = field(default_factory=dict)
    service: ManagedProcess | None = None

    def run(self, *args: str, check: bool = True, capture: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.cli, *args], env={**os.environ, **self.env}, capture_output=capture, text=True, **kw
        )
        if check and done.returncode != 0:
            err = (done.stderr or "").strip().splitlines()
            raise StackError(f"`{self.kind} {' '.join(args[:3])}` failed: {err[-1] if err else done.returncode}")
        return done

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, check=False).returncode == 0

    def remove_labelled(self, label: str) -> int:
        """Remove every container carrying `label` (what a crashed test run may leave)."""
        ids = self.run("ps", "-aq", "--filter", f"label={label}").stdout.split()
        if ids:
            self.run("rm", "-f", *ids)
        return len(ids)

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop(timeout=10)


def _docker_running() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    ok = subprocess.run([docker, "info"], capture_output=True, timeout=20).returncode == 0
    return docker if ok else None


def find_engine(settings: Settings) -> ContainerEngine:
    """A Docker engine that answers, else Podman with its API service (started here, stopped by
    `ContainerEngine.stop`, and tied to this process's life)."""
    if os.environ.get("CORRIDOR_CONTAINER_ENGINE", "auto") in ("auto", "docker"):
        docker = _docker_running()
        if docker is not None:
            return ContainerEngine("docker", docker)
    podman = shutil.which("podman")
    if podman is None:
        raise StackError(
            "no container engine: start Docker, or install Podman (Debian: apt-get install -y podman runc)"
        )
    home = settings.state_dir.resolve() / "podman"
    home.mkdir(parents=True, exist_ok=True)
    env = {}
    if "CONTAINERS_CONF" not in os.environ:
        conf = home / "containers.conf"
        conf.write_text(containers_conf(runc=shutil.which("runc") is not None))
        env["CONTAINERS_CONF"] = str(conf)
    sock = home / "podman.sock"
    env.update(
        DOCKER_HOST=f"unix://{sock}",
        # The reaper image would be pulled from a registry; containers are removed by their fixtures.
        TESTCONTAINERS_RYUK_DISABLED="true",
        # Inside a container testcontainers would otherwise look for a gateway Podman does not report.
        TESTCONTAINERS_CONNECTION_MODE="docker_host",
    )
    service = ManagedProcess("podman", home / "service.pid", home / "service.log", "system service")
    if service.running_pid() is not None and _ping(sock):
        return ContainerEngine("podman", podman, env)  # another command's service: theirs to stop
    service.stop(timeout=5)
    sock.unlink(missing_ok=True)
    argv = [podman, "system", "service", "--time=0", f"unix://{sock}"]
    service.start(argv, cwd=home, attached=True, env={**os.environ, **env})
    wait_until(lambda: _ping(sock), timeout=30, process=service, what="Podman's API service")
    return ContainerEngine("podman", podman, env, service)
