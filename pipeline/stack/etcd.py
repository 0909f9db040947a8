"""The embedded etcd server: the real etcd 3.5 server, built at a pinned release (`etcd_build`); one member by
default, three (or five) on request, each with its own data, all on loopback."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.shared.access import EtcdAccess, Role
from pipeline.shared.access_policy import ETCD_GRANTS
from pipeline.shared.config import NODE_STRIDE, Settings
from pipeline.shared.errors import StackError
from pipeline.stack.etcd_build import resolve_etcd
from pipeline.stack.process import ManagedProcess, ensure_port_free
from pipeline.stack.security import ETCD_USERS, SecurityMaterial

__all__ = ["EtcdServer", "enable_auth", "etcd_binary", "etcd_version"]

READY_TIMEOUT_S = 30.0


def etcd_binary(cache_dir: Path) -> Path:
    """The etcd server corridor runs, built into the cache on first use (`pipeline.stack.etcd_build`)."""
    return resolve_etcd(cache_dir) / "etcd"


def etcdctl_binary(cache_dir: Path) -> Path:
    return resolve_etcd(cache_dir) / "etcdctl"


def etcd_version(access: EtcdAccess, timeout: float = 2.0) -> dict[str, str]:
    """etcd's own /version answer, from the first member that gives it; raises StackError when none does."""
    problem: Exception | None = None
    for host, port in ((access.host, access.port), *access.others):
        member = replace(access, host=host, port=port, others=())
        try:
            with urllib.request.urlopen(f"{member.url}/version", timeout=timeout,
                                        context=member.ssl_context()) as resp:  # fmt: skip
                return json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problem = exc
    raise StackError(
        f"etcd at {access} did not answer ({problem}): start it (`corridor stack up`) or fix ETCD_ENDPOINTS"
    ) from None


def _healthy(access: EtcdAccess) -> bool:
    try:
        with urllib.request.urlopen(f"{access.url}/health", timeout=1.0, context=access.ssl_context()) as resp:
            return json.loads(resp.read()).get("health") == "true"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def enable_auth(root: EtcdAccess, cache_dir: Path) -> bool:
    """etcd's users, roles and `auth enable` from `pipeline.shared.access_policy`; `root` presents the
    root user's certificate. Users have no password: a client certificate's common name names the
    user. Idempotent: False when auth was already on (a Kubernetes Job may run it again)."""
    base = [str(etcdctl_binary(cache_dir)), f"--endpoints={root.url}", f"--cacert={root.ca_file}",
            f"--cert={root.cert_file}", f"--key={root.key_file}", "--command-timeout=10s"]  # fmt: skip

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
    """Files and process of one etcd member, all under `<state_dir>/etcd` (member 0, the only one by
    default) or `<state_dir>/etcd-<n>` (member n - 1 of a cluster)."""

    settings: Settings
    index: int = 0

    @property
    def home(self) -> Path:
        return self.settings.state_dir.resolve() / ("etcd" if self.index == 0 else f"etcd-{self.index + 1}")

    @property
    def member(self) -> str:
        """Its member name: `corridor` alone, `corridor-<n>` in a cluster."""
        return "corridor" if len(self.settings.ports.etcd_nodes) == 1 else f"corridor-{self.index + 1}"

    @property
    def name(self) -> str:
        return "etcd" if len(self.settings.ports.etcd_nodes) == 1 else f"etcd member {self.index + 1}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("etcd", self.home / "etcd.pid", self.home / "etcd.log", f"--name {self.member} ")

    def start(self, *, attached: bool) -> bool:
        """Start and wait until the member is healthy; False when it was already running."""
        started = self.spawn(attached=attached)
        self.wait_ready(started)
        if started:
            self.enable_auth_once()
        return started

    def spawn(self, *, attached: bool) -> bool:
        """Start without waiting (a member is healthy only once a quorum of them runs)."""
        if self.process.running_pid() is not None:
            return False
        client_port, peer_port = self.settings.ports.etcd_nodes[self.index]
        stride = f" (member {self.index + 1}: the port plus {NODE_STRIDE * self.index})" if self.index else ""
        ensure_port_free(client_port, "etcd client", "CORRIDOR_ETCD_PORT" + stride)
        ensure_port_free(peer_port, "etcd peer", "CORRIDOR_ETCD_PEER_PORT" + stride)
        self.home.mkdir(parents=True, exist_ok=True)
        self._check_layout()
        material = self._material()
        scheme = "http" if material is None else "https"
        client, peer = f"{scheme}://127.0.0.1:{client_port}", f"{scheme}://127.0.0.1:{peer_port}"
        members = [EtcdServer(self.settings, i) for i in range(len(self.settings.ports.etcd_nodes))]
        cluster = ",".join(f"{m.member}={scheme}://127.0.0.1:{m.settings.ports.etcd_nodes[m.index][1]}"
                           for m in members)  # fmt: skip
        argv = [
            str(etcd_binary(self.settings.cache_dir)),
            "--name",
            self.member,
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
            cluster,
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
        self.process.start(argv, cwd=self.home, attached=attached)
        return True

    def wait_ready(self, started: bool = True) -> None:
        """Until the member is healthy (a leader elected); one started here that never is is stopped."""
        self.process.wait_ready(self.ready, timeout=READY_TIMEOUT_S, what=self.name, started=started)

    def enable_auth_once(self) -> None:
        """In secure mode, etcd's users, roles and auth (once per cluster, through this member)."""
        material = self._material()
        if material is not None:
            self._enable_auth(material)

    def _check_layout(self) -> None:
        """A member's data belongs to the cluster it was made in: a single etcd's cannot join three."""
        marker, members = self.home / "members", len(self.settings.ports.etcd_nodes)
        made = int(marker.read_text()) if marker.exists() else 1
        if (self.home / "data").exists() and made != members:
            raise StackError(f"the etcd data in {self.home / 'data'} was made for {made} member(s), and this start "
                             f"asks for {members}: run `corridor stack down --purge` first")  # fmt: skip
        marker.write_text(f"{members}\n")

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
        own = EtcdAccess("127.0.0.1", self.settings.ports.etcd_nodes[self.index][0], material.ca, cert, key)
        enable_auth(own, self.settings.cache_dir)
        marker.write_text("auth enabled\n")

    def stop(self) -> bool:
        return self.process.stop(timeout=10.0)

    def _own_access(self) -> EtcdAccess:
        """The admin's access to this member alone (not the cluster's address list)."""
        access = self.settings.etcd(Role.ADMIN)
        return replace(access, port=self.settings.ports.etcd_nodes[self.index][0], others=())

    def ready(self) -> bool:
        return _healthy(self._own_access())

    def is_leader(self) -> bool:
        """Whether this member leads the cluster now (etcd's maintenance status, over its HTTP gateway)."""
        access = self._own_access()
        request = urllib.request.Request(f"{access.url}/v3/maintenance/status", data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=2.0, context=access.ssl_context()) as resp:
                status = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return bool(status.get("leader")) and status.get("leader") == status.get("header", {}).get("member_id")
