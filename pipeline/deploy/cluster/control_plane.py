"""The test cluster's first process: run inside new network, mount and PID namespaces, it starts
etcd, the control plane and CoreDNS on the backbone bridge, then each node in namespaces of its own
(see `node`), says when every node is Ready, and on SIGTERM stops them all and releases what they
changed on the machine.

    unshare --pid --fork --kill-child=SIGTERM --mount --net --mount-proc --propagation private \\
        python -m pipeline.deploy.cluster.control_plane RUN_DIR NODES BINARIES_DIR ETCD KUBE_ROUTER

Being PID 1 of its namespace is what makes the clean-up certain: when it exits, the kernel kills
every process left in it — the nodes, containerd's shims and the containers, which no parent would
otherwise take down. Its own parent (`unshare`) dies with the run and passes it SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.deploy.cluster.host_state import HostState
from pipeline.deploy.cluster.layout import ADMIN_TOKEN, ClusterLayout, NodeLayout
from pipeline.deploy.cluster.node import NODE_FAILED_FILE, NODE_READY_FILE, PAUSE_ARCHIVE
from pipeline.deploy.cluster.pause_image import pause_archive
from pipeline.deploy.cluster.pki import make_pki
from pipeline.deploy.cluster.procs import Parts, Stop, bridge, http_ok, node_ready, on_term, private_namespace, sh

__all__ = ["FAILED_FILE", "READY_FILE", "STOP_FILE", "main"]

READY_FILE = "cluster.ready"
FAILED_FILE = "cluster.failed"
#: Written by the driver before it stops the cluster; a SIGTERM without it means the driver was killed
#: (the SIGTERM came from unshare's --kill-child), and the cluster removes the run's folder itself.
STOP_FILE = "driver.stopping"


@dataclass
class ControlPlane:
    layout: ClusterLayout
    binaries: Path
    etcd: Path
    kube_router: Path
    parts: Parts

    def isolate(self) -> None:
        """Its own directories and loopback, and the backbone the nodes hang on (forwarding: node to node)."""
        private_namespace()
        bridge(self.layout.bridge, f"{self.layout.control_ip}/{self.layout.prefix_len}")

    def write_config(self) -> None:
        lay = self.layout
        for folder in (lay.logs, lay.path("kubelet-plugins"), lay.path("etcd")):
            folder.mkdir(parents=True, exist_ok=True)
        make_pki(lay)
        files: dict[Path, str] = {
            lay.path("tokens.csv"): lay.token_file(),
            lay.kubeconfig: lay.kubeconfig_text(),
            lay.path("Corefile"): lay.corefile(),
        }
        for node in lay.all_nodes:
            for sub in ("logs", "containerd", "cni/net.d", "kubelet", "kubelet-plugins"):
                node.path(sub).mkdir(parents=True, exist_ok=True)
            files |= {
                node.path("kubelet.kubeconfig"): node.kubelet_kubeconfig_text(),
                node.path("containerd.toml"): node.containerd_config(),
                node.path("cni", "net.d", "10-corridor.conflist"): node.cni_config(),
                node.path("kubelet.yaml"): node.kubelet_config(),
                node.path("kube-proxy.yaml"): node.kube_proxy_config(),
                node.path("resolv.conf"): node.resolv_conf(),
            }
        for path, text in files.items():
            path.write_text(text)
        lay.path("tokens.csv").chmod(0o600)

    def bin(self, name: str) -> str:
        return str(self.binaries / name)

    def bring_up(self) -> None:
        lay, parts = self.layout, self.parts
        parts.start("etcd", [str(self.etcd), "--name", "k8s", "--data-dir", str(lay.path("etcd", "data")),
                             "--listen-client-urls", f"http://127.0.0.1:{lay.etcd_port}",
                             "--advertise-client-urls", f"http://127.0.0.1:{lay.etcd_port}",
                             "--listen-peer-urls", "http://127.0.0.1:2380", "--log-level", "warn"],
                    lambda: http_ok(f"http://127.0.0.1:{lay.etcd_port}/health"))  # fmt: skip
        api_ready = lambda: http_ok(f"{lay.api_url}/readyz", ca=lay.pki / "ca.pem", token=ADMIN_TOKEN)  # noqa: E731
        parts.start("kube-apiserver", [self.bin("kube-apiserver"), *lay.apiserver_args()], api_ready, 180)
        parts.start("kube-controller-manager", [self.bin("kube-controller-manager"), *lay.controller_manager_args()],
                    lambda: http_ok("https://127.0.0.1:10257/healthz"))  # fmt: skip
        parts.start("kube-scheduler", [self.bin("kube-scheduler"), *lay.scheduler_args()],
                    lambda: http_ok("https://127.0.0.1:10259/healthz"))  # fmt: skip
        parts.start("coredns", [self.bin("coredns"), "-conf", str(lay.path("Corefile"))],
                    lambda: http_ok("http://127.0.0.1:8181/ready"))  # fmt: skip
        pause = pause_archive(self.binaries / "pause.c", lay.run_dir, lay.pause_image)
        assert pause == lay.path(PAUSE_ARCHIVE), "the nodes import the pause image from the run's folder"
        for node in lay.all_nodes:  # started together: each takes ~25 s to be Ready, mostly waiting
            self.start_node(node)
        deadline = time.monotonic() + 240
        for node in lay.all_nodes:
            while not node.path(NODE_READY_FILE).exists():
                failed = node.path(NODE_FAILED_FILE)
                if failed.exists():
                    raise RuntimeError(failed.read_text().strip())
                parts.check()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{node.name} was not Ready within 240 s; see {node.path('logs')}")
                time.sleep(0.25)

    def start_node(self, node: NodeLayout) -> None:
        """A veth pair on the backbone, the node's process in namespaces of its own, its end of the
        pair moved in once the process is there, and its pods' range routed to it."""
        lay = self.layout
        sh("ip", "link", "add", node.veth, "type", "veth", "peer", "name", node.veth_peer)
        sh("ip", "link", "set", node.veth, "master", lay.bridge)
        sh("ip", "link", "set", node.veth, "up")
        argv = ["unshare", "--net", "--mount", "--propagation", "private", sys.executable, "-m",
                "pipeline.deploy.cluster.node", str(lay.run_dir), str(lay.nodes), str(node.index),
                str(self.binaries), str(self.kube_router)]  # fmt: skip
        self.parts.start(node.name, argv, lambda: True)
        pid = self.parts.procs[-1][1].pid
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{pid}/ns/net") == own:  # unshare has not yet made its namespace
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} did not enter a network namespace of its own")
            time.sleep(0.02)
        sh("ip", "link", "set", node.veth_peer, "netns", str(pid))
        sh("ip", "route", "add", node.pod_subnet, "via", node.ip)

    def watch(self) -> None:
        """Until SIGTERM: a part that exits ends the run, named in the failure file. Orphans (a lost
        node's shims and containers) are reaped here, PID 1's duty."""
        while True:
            self.parts.check()
            reap_orphans(self.parts.pids)
            time.sleep(1.0)

    def stop(self) -> None:
        """The nodes first (their kubelets stop restarting containers), then the rest in reverse
        order, then everything left in the namespace: the shims and the containers."""
        self.parts.stop()
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)  # as PID 1: every other process of this namespace
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break


def reap_orphans(own: set[int]) -> None:
    """Collect exited processes that are not ours to wait for (the Popen objects reap their own)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid in own:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, 0)


def main(argv: list[str]) -> int:
    run_dir, nodes, binaries, etcd, kube_router = (
        Path(argv[0]),
        int(argv[1]),
        Path(argv[2]),
        Path(argv[3]),
        Path(argv[4]),
    )
    layout = ClusterLayout(run_dir, nodes)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    plane = ControlPlane(layout, binaries, etcd, kube_router, Parts(layout.logs, layout.run_dir))
    layout.logs.mkdir(parents=True, exist_ok=True)
    host = HostState.record(layout)
    code = 0
    try:
        plane.isolate()
        plane.write_config()
        plane.bring_up()
        if not all(node_ready(layout, n.name) for n in layout.all_nodes):
            raise RuntimeError("a node said it was Ready but the API server does not")
        layout.path(READY_FILE).write_text(json.dumps({"pid_in_namespace": os.getpid()}))
        plane.watch()
    except Stop:
        pass
    except Exception as exc:  # the failure is the run's result: say it, then clean up
        layout.path(FAILED_FILE).write_text(f"{exc}\n")
        code = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        plane.stop()
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
