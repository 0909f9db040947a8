"""The test cluster's first process: run inside new network, mount and PID namespaces, it starts
etcd, containerd, the control plane, CoreDNS, kube-proxy and the kubelet, says when the node is Ready,
and on SIGTERM stops them and releases what they changed on the machine.

    unshare --pid --fork --kill-child=SIGTERM --mount --net --mount-proc --propagation private \\
        python -m pipeline.deploy.cluster.node RUN_DIR BINARIES_DIR

Being PID 1 of its namespace is what makes the clean-up certain: when it exits, the kernel kills
every process left in it — containerd's shims and the containers, which no parent would otherwise
take down. Its own parent (`unshare`) dies with the run and passes it SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.deploy.cluster.host_state import HostState
from pipeline.deploy.cluster.layout import ADMIN_TOKEN, ClusterLayout
from pipeline.deploy.cluster.pause_image import pause_archive
from pipeline.deploy.cluster.pki import make_pki
from pipeline.shared.access import strict_context

__all__ = ["FAILED_FILE", "READY_FILE", "STOP_FILE", "main"]

READY_FILE = "node.ready"
FAILED_FILE = "node.failed"
#: Written by the driver before it stops the node; a SIGTERM without it means the driver was killed
#: (the node's SIGTERM came from unshare's --kill-child), and the node removes the run's folder itself.
STOP_FILE = "driver.stopping"


class _Stop(Exception):
    """SIGTERM arrived."""


def _sh(*argv: str) -> None:
    proc = subprocess.run(list(argv), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")


def _http_ok(url: str, *, ca: Path | None = None, token: str | None = None) -> bool:
    ctx = strict_context(ca) if ca else ssl._create_unverified_context()
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=2, context=ctx if url.startswith("https") else None) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class Node:
    layout: ClusterLayout
    binaries: Path
    etcd: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    # set-up of the namespaces ---------------------------------------------------------------------
    def isolate(self) -> None:
        """Private /run, /var/lib and /var/log (containerd, CNI and the kubelet write there whatever
        their configuration says), loopback up, and the bridge that is the node's only network."""
        lay = self.layout
        for target in ("/run", "/var/lib", "/var/log"):
            _sh("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", target)
        _sh("ip", "link", "set", "lo", "up")
        _sh("ip", "link", "add", lay.bridge, "type", "bridge")
        _sh("ip", "addr", "add", f"{lay.node_ip}/{lay.prefix_len}", "dev", lay.bridge)
        _sh("ip", "link", "set", lay.bridge, "up")
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")  # per network namespace

    def write_config(self) -> None:
        lay = self.layout
        for folder in (lay.logs, lay.path("containerd"), lay.path("cni", "net.d"), lay.path("kubelet"),
                       lay.path("kubelet-plugins"), lay.path("etcd")):  # fmt: skip
            folder.mkdir(parents=True, exist_ok=True)
        make_pki(lay)
        files = {
            "tokens.csv": lay.token_file(),
            "admin.kubeconfig": lay.kubeconfig_text(),
            "kubelet.kubeconfig": lay.kubelet_kubeconfig_text(),
            "containerd.toml": lay.containerd_config(),
            "cni/net.d/10-corridor.conflist": lay.cni_config(),
            "kubelet.yaml": lay.kubelet_config(),
            "kube-proxy.yaml": lay.kube_proxy_config(),
            "Corefile": lay.corefile(),
            "resolv.conf": lay.resolv_conf(),
        }
        for name, text in files.items():
            lay.path(name).write_text(text)
        lay.path("tokens.csv").chmod(0o600)

    # processes --------------------------------------------------------------------------------------
    def start(self, name: str, argv: list[str], ready: Callable[[], bool], timeout: float = 120.0) -> None:
        log = open(self.layout.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.layout.run_dir)  # fmt: skip
        self.procs.append((name, proc))
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}) during start-up; see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not ready within {timeout:.0f} s; see {log.name}")
            time.sleep(0.25)

    def bin(self, name: str) -> str:
        return str(self.binaries / name)

    def api_ready(self) -> bool:
        return _http_ok(f"{self.layout.api_url}/readyz", ca=self.layout.pki / "ca.pem", token=ADMIN_TOKEN)

    def node_ready(self) -> bool:
        ctx = strict_context(self.layout.pki / "ca.pem")
        request = urllib.request.Request(f"{self.layout.api_url}/api/v1/nodes/{self.layout.node_name}",
                                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=2, context=ctx) as r:
                node = json.load(r)
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))

    def bring_up(self, host: HostState) -> None:
        lay = self.layout
        ctr = ["ctr", "--address", str(lay.containerd_socket), "--namespace", "k8s.io"]
        self.start("etcd", [str(self.etcd), "--name", "k8s", "--data-dir", str(lay.path("etcd", "data")),
                            "--listen-client-urls", f"http://127.0.0.1:{lay.etcd_port}",
                            "--advertise-client-urls", f"http://127.0.0.1:{lay.etcd_port}",
                            "--listen-peer-urls", "http://127.0.0.1:2380", "--log-level", "warn"],
                   lambda: _http_ok(f"http://127.0.0.1:{lay.etcd_port}/health"))  # fmt: skip
        self.start("containerd", ["containerd", "--config", str(lay.path("containerd.toml"))],
                   lambda: subprocess.run([*ctr, "version"], capture_output=True).returncode == 0)  # fmt: skip
        archive = pause_archive(self.binaries / "pause.c", lay.run_dir, lay.pause_image)
        _sh(*ctr, "images", "import", str(archive))
        self.start("kube-apiserver", [self.bin("kube-apiserver"), *lay.apiserver_args()], self.api_ready, 180)
        self.start("kube-controller-manager", [self.bin("kube-controller-manager"), *lay.controller_manager_args()],
                   lambda: _http_ok("https://127.0.0.1:10257/healthz"))  # fmt: skip
        self.start("kube-scheduler", [self.bin("kube-scheduler"), *lay.scheduler_args()],
                   lambda: _http_ok("https://127.0.0.1:10259/healthz"))  # fmt: skip
        self.start("coredns", [self.bin("coredns"), "-conf", str(lay.path("Corefile"))],
                   lambda: _http_ok("http://127.0.0.1:8181/ready"))  # fmt: skip
        host.make_cgroup_root()
        self.start("kubelet", [self.bin("kubelet"), *lay.kubelet_args()], self.node_ready, 180)
        # after the kubelet: kube-proxy reads its node's address from the Node object
        self.start("kube-proxy", [self.bin("kube-proxy"), *lay.kube_proxy_args()],
                   lambda: _http_ok("http://127.0.0.1:10256/healthz"))  # fmt: skip

    def watch(self) -> None:
        """Until SIGTERM: a component that exits ends the run, named in the failure file."""
        while True:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}) while the cluster ran")
            time.sleep(1.0)

    def stop(self) -> None:
        """The kubelet first (no restarts behind our back), then the rest in reverse order, then
        everything left in the namespace: the shims and the containers."""
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)  # as PID 1: every other process of this namespace
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break


def _on_term(_signum: int, _frame: object) -> None:
    raise _Stop


def main(argv: list[str]) -> int:
    run_dir, binaries, etcd = Path(argv[0]), Path(argv[1]), Path(argv[2])
    layout = ClusterLayout(run_dir)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    node = Node(layout, binaries, etcd)
    host = HostState.record(layout)
    code = 0
    try:
        node.isolate()
        node.write_config()
        node.bring_up(host)
        layout.path(READY_FILE).write_text(json.dumps({"pid_in_namespace": os.getpid()}))
        node.watch()
    except _Stop:
        pass
    except Exception as exc:  # the failure is the run's result: say it, then clean up
        layout.path(FAILED_FILE).write_text(f"{exc}\n")
        code = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        node.stop()
        left = host.release()
        if not layout.path(STOP_FILE).exists() and not left:
            unmount_under(layout.run_dir)
            shutil.rmtree(layout.run_dir, ignore_errors=True)
    return code


def unmount_under(folder: Path) -> None:
    """Lazily unmount what the kubelet and containerd mounted in the run's folder (deepest first):
    the folder can then be removed while this mount namespace still exists."""
    prefix = str(folder.resolve())
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
