"""A node of the test cluster: run by the control plane's first process in network and mount
namespaces of its own, it starts containerd, the kubelet, kube-proxy and kube-router's
NetworkPolicy controller, says when the node is Ready, and on SIGTERM stops them.

    unshare --net --mount --propagation private \\
        python -m pipeline.deploy.cluster.node RUN_DIR NODES INDEX BINARIES_DIR KUBE_ROUTER

Its only link is a veth the control plane moves into its network namespace; the node renames it,
puts its backbone address on it, and makes a bridge of its own for its pods. Private tmpfs on /run,
/var/lib and /var/log keep what containerd, CNI and the kubelet write there (whatever their
configuration says) apart from the other nodes'.

A node can be *lost* on request (the driver writes `LOSE_FILE` in its folder): its kubelet,
kube-proxy, containerd, shims and containers are SIGKILLed at once, as when a machine loses power,
while this process stays, idle, until the cluster ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.deploy.cluster.host_state import HostState
from pipeline.deploy.cluster.layout import KUBE_ROUTER_HEALTH_PORT, ClusterLayout, NodeLayout
from pipeline.deploy.cluster.procs import Parts, Stop, bridge, http_ok, node_ready, on_term, private_namespace, sh

__all__ = ["LOSE_FILE", "LOST_FILE", "NODE_FAILED_FILE", "NODE_READY_FILE", "PAUSE_ARCHIVE", "main"]

NODE_READY_FILE = "ready"
NODE_FAILED_FILE = "failed"
LOSE_FILE = "lose"
LOST_FILE = "lost"
#: made once by the control plane, in the run's folder, and imported by every node
PAUSE_ARCHIVE = "pause.tar"


def isolate(node: NodeLayout, wait_s: float = 30.0) -> None:
    private_namespace()
    deadline = time.monotonic() + wait_s
    while subprocess.run(["ip", "link", "show", "dev", node.veth_peer], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{node.name}'s link {node.veth_peer} did not arrive within {wait_s:.0f} s")
        time.sleep(0.1)
    sh("ip", "link", "set", node.veth_peer, "name", node.uplink)
    sh("ip", "addr", "add", f"{node.ip}/{node.cluster.prefix_len}", "dev", node.uplink)
    sh("ip", "link", "set", node.uplink, "up")
    bridge(node.bridge, f"{node.pod_gateway}/24")
    # the other nodes' pods and the control plane: through the backbone; nothing else is routed
    sh("ip", "route", "add", node.cluster.cluster_cidr, "via", node.cluster.control_ip)


def bring_up(node: NodeLayout, parts: Parts, binaries: Path, kube_router: Path, host: HostState) -> None:
    lay = node.cluster
    ctr = ["ctr", "--address", str(node.containerd_socket), "--namespace", "k8s.io"]
    parts.start("containerd", ["containerd", "--config", str(node.path("containerd.toml"))],
                lambda: subprocess.run([*ctr, "version"], capture_output=True).returncode == 0)  # fmt: skip
    sh(*ctr, "images", "import", str(lay.path(PAUSE_ARCHIVE)))
    host.make_cgroup_root(node.cgroup_root)
    parts.start("kubelet", [str(binaries / "kubelet"), *node.kubelet_args()], lambda: node_ready(lay, node.name), 180)
    # after the kubelet: kube-proxy reads its node's address from the Node object
    parts.start("kube-proxy", [str(binaries / "kube-proxy"), *node.kube_proxy_args()],
                lambda: http_ok("http://127.0.0.1:10256/healthz"))  # fmt: skip
    # the pods' ingress filtered by the NetworkPolicies (iptables and ipsets in this namespace)
    parts.start("kube-router", [str(kube_router), *node.kube_router_args()],
                lambda: http_ok(f"http://127.0.0.1:{KUBE_ROUTER_HEALTH_PORT}/healthz"))  # fmt: skip


def lose(node: NodeLayout, parts: Parts, host: HostState) -> int:
    """SIGKILL the node's servers, then every other process of its network namespace (containerd's
    shims), then every process of its cgroups (the containers); returns how many were killed."""
    parts.kill()
    own_ns = os.readlink("/proc/self/ns/net")
    victims: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / "net") == own_ns:
                    victims.add(int(entry.name))
    deadline = time.monotonic() + 10
    while True:  # a container may fork while its siblings die
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        left = host.processes_in(node.cgroup_root)
        if not left:
            return len(victims)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(left)} processes of {node.name}'s containers outlived its loss")
        victims |= left


def main(argv: list[str]) -> int:
    run_dir, nodes, index, binaries, kube_router = (
        Path(argv[0]),
        int(argv[1]),
        int(argv[2]),
        Path(argv[3]),
        Path(argv[4]),
    )
    node = ClusterLayout(run_dir, nodes).node(index)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    parts = Parts(node.path("logs"), node.path())
    host = HostState.load(run_dir)
    code = 0
    try:
        if host is None:
            raise RuntimeError("the run's host-state record is missing")
        isolate(node)
        bring_up(node, parts, binaries, kube_router, host)
        node.path(NODE_READY_FILE).write_text(f"{os.getpid()}\n")
        while True:
            if node.path(LOSE_FILE).exists():
                killed = lose(node, parts, host)
                node.path(LOST_FILE).write_text(f"{killed}\n")
                while True:
                    time.sleep(3600)
            parts.check()
            time.sleep(0.5)
    except Stop:
        pass
    except Exception as exc:  # the failure is the node's result: say it; the control plane sees it
        node.path(NODE_FAILED_FILE).write_text(f"{node.name}: {exc}\n")
        code = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        parts.stop()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
