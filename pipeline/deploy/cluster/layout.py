"""Where a test cluster's parts live and how they are configured: pure, no I/O.

The control plane runs in network, mount and PID namespaces of its own, on a backbone bridge inside
that network namespace (no uplink, nothing routed outward). Each node is a further network and mount
namespace inside it: its containerd, kubelet and kube-proxy, a veth to the backbone as its only link,
and a bridge of its own for its pods; the control plane routes each node's pod range to that node.
Every process of the cluster (the servers, containerd's shims, the containers) is killed by the
kernel when the control plane's first process dies. So fixed addresses and ports are safe: nothing
on the machine can hold them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["ADMIN_TOKEN", "KUBE_ROUTER_HEALTH_PORT", "ClusterLayout", "NodeLayout"]

#: Bearer tokens of the cluster's clients; the cluster lives only as long as one run, in its own
#: network namespace, so fixed tokens grant nothing outside it.
ADMIN_TOKEN = "corridor-admin-token"
KUBELET_TOKEN = "corridor-kubelet-token"
#: kube-router's health page, on each node's own loopback (its namespace's)
KUBE_ROUTER_HEALTH_PORT = 20244
#: at most this many nodes: each takes the /24 of the cluster range that has its number
MAX_NODES = 9


@dataclass(frozen=True, slots=True)
class ClusterLayout:
    """One run's cluster: its folder, the backbone, the address ranges and how many nodes."""

    run_dir: Path
    nodes: int = 1
    bridge: str = "corridor0"
    control_ip: str = "10.244.0.1"
    prefix_len: int = 24
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/24"
    api_service_ip: str = "10.96.0.1"
    apiserver_port: int = 6443
    etcd_port: int = 2379
    kubelet_port: int = 10250
    cluster_domain: str = "cluster.local"
    pause_image: str = "localhost/pause:3.10"

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= MAX_NODES:
            raise ValueError(f"a test cluster has 1 to {MAX_NODES} nodes, not {self.nodes}")

    def node(self, index: int) -> NodeLayout:
        """Node `index`, counted from 1."""
        if not 1 <= index <= self.nodes:
            raise ValueError(f"node {index} of a {self.nodes}-node cluster")
        return NodeLayout(self, index)

    @property
    def all_nodes(self) -> list[NodeLayout]:
        return [NodeLayout(self, i) for i in range(1, self.nodes + 1)]

    # folders -----------------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)

    @property
    def pki(self) -> Path:
        return self.path("pki")

    @property
    def logs(self) -> Path:
        return self.path("logs")

    @property
    def kubeconfig(self) -> Path:
        return self.path("admin.kubeconfig")

    @property
    def cgroup_root(self) -> str:
        """Above the nodes' cgroup roots, one per run, so its clean-up removes only its own."""
        return f"/corridor-k8s-{self.run_dir.name}"

    @property
    def api_url(self) -> str:
        return f"https://{self.control_ip}:{self.apiserver_port}"

    # config files --------------------------------------------------------------------------------
    def token_file(self) -> str:
        """Static tokens: the admin (every control-plane client) and each node's kubelet."""
        lines = [f'{ADMIN_TOKEN},corridor-admin,1,"system:masters"']
        lines += [f'{n.kubelet_token},system:node:{n.name},{n.index + 1},"system:nodes"' for n in self.all_nodes]
        return "\n".join(lines) + "\n"

    def kubeconfig_text(self, token: str = ADMIN_TOKEN) -> str:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "corridor", "cluster": {"server": self.api_url,
                                                          "certificate-authority": str(self.pki / "ca.pem")}}],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [{"name": "corridor", "context": {"cluster": "corridor", "user": "user"}}],
            "current-context": "corridor",
        }  # fmt: skip
        return yaml.safe_dump(config, sort_keys=False)

    def corefile(self) -> str:
        """Cluster names only: with no `forward` plugin no query leaves the cluster."""
        return f""".:53 {{
    bind {self.control_ip}
    errors
    health 127.0.0.1:8080
    ready 127.0.0.1:8181
    kubernetes {self.cluster_domain} in-addr.arpa ip6.arpa {{
        kubeconfig {self.kubeconfig} corridor
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""

    def apiserver_args(self) -> list[str]:
        pki = self.pki
        return [
            f"--advertise-address={self.control_ip}",
            f"--bind-address={self.control_ip}",
            f"--secure-port={self.apiserver_port}",
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--service-cluster-ip-range={self.service_cidr}",
            f"--token-auth-file={self.path('tokens.csv')}",
            "--authorization-mode=Node,RBAC",
            f"--tls-cert-file={pki / 'apiserver.pem'}",
            f"--tls-private-key-file={pki / 'apiserver-key.pem'}",
            f"--client-ca-file={pki / 'ca.pem'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.pem'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client-key.pem'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa-key.pem'}",
            f"--service-account-issuer=https://kubernetes.default.svc.{self.cluster_domain}",
            "--allow-privileged=true",
            "--profiling=false",
            f"--cert-dir={pki}",
            "--enable-priority-and-fairness=false",
            # the node's name resolves nowhere: logs and exec reach the kubelet by its address
            "--kubelet-preferred-address-types=InternalIP",
            # pods leave an unreachable node after 15 s, not the default 300 s
            "--default-not-ready-toleration-seconds=15",
            "--default-unreachable-toleration-seconds=15",
        ]

    def controller_manager_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=10257",
            "--leader-elect=false",
            f"--service-account-private-key-file={self.pki / 'sa-key.pem'}",
            f"--root-ca-file={self.pki / 'ca.pem'}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={self.service_cidr}",
            f"--flex-volume-plugin-dir={self.path('kubelet-plugins')}",
            "--profiling=false",
            # a node whose lease is 20 s old is unreachable (the kubelets renew every 5 s), not after 50 s
            "--node-monitor-grace-period=20s",
        ]

    def scheduler_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=10259",
            "--leader-elect=false",
            "--profiling=false",
        ]

    def persistent_volumes(self, count: int, size: str = "5Gi", prefix: str = "local") -> list[dict[str, object]]:
        """hostPath volumes for the StatefulSets' claims (no provisioner here); the nodes share the
        machine's disk, so a claim follows its pod to whichever node it lands on."""
        return [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"{prefix}-{i}", "labels": {"app.kubernetes.io/part-of": "corridor-test-cluster"}},
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": str(self.path("volumes", f"{prefix}-{i}")), "type": "Directory"},
                },
            }
            for i in range(count)
        ]


@dataclass(frozen=True, slots=True)
class NodeLayout:
    """Node `index` (from 1): its address on the backbone, its pods' range, its folder and cgroups."""

    cluster: ClusterLayout
    index: int
    bridge: str = "cbr0"
    uplink: str = "eth0"

    @property
    def name(self) -> str:
        return f"node-{self.index}"

    @property
    def ip(self) -> str:
        """The node's address on the backbone: what the API server and the other nodes reach it by."""
        return f"10.244.0.{10 + self.index}"

    @property
    def veth(self) -> str:
        """The control plane's end of the node's link (the node's end is renamed `uplink`)."""
        return f"veth-{self.name}"

    @property
    def veth_peer(self) -> str:
        """The node's end of its link, as made in the control plane's namespace."""
        return f"peer-{self.name}"

    @property
    def pod_subnet(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def pod_gateway(self) -> str:
        return f"10.244.{self.index}.1"

    @property
    def pod_range(self) -> tuple[str, str]:
        return f"10.244.{self.index}.16", f"10.244.{self.index}.250"

    @property
    def kubelet_token(self) -> str:
        return f"{KUBELET_TOKEN}-{self.index}"

    def path(self, *parts: str) -> Path:
        return self.cluster.path("nodes", self.name, *parts)

    @property
    def containerd_socket(self) -> Path:
        return self.path("containerd", "containerd.sock")

    @property
    def cgroup_root(self) -> str:
        return f"{self.cluster.cgroup_root}/{self.name}"

    def kubelet_kubeconfig_text(self) -> str:
        return self.cluster.kubeconfig_text(self.kubelet_token)

    def containerd_config(self) -> str:
        """containerd 1.6's CRI plugin. `restrict_oom_score_adj`: the host grants no CAP_SYS_RESOURCE,
        and runc fails every sandbox trying to lower a score without it."""
        d = self.path("containerd")
        return f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{self.containerd_socket}"

[ttrpc]
  address = "{d / "containerd.sock.ttrpc"}"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.cluster.pause_image}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d / "runc"}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{self.path("cni", "net.d")}"
"""

    def cni_config(self) -> str:
        """A bridge of the node's own as the pods' gateway; the only routes given to pods are the
        cluster's range (the other nodes' pods, the control plane) and the Service range, so a pod
        can reach nothing outside the cluster."""
        config = {
            "cniVersion": "0.4.0",
            "name": "corridor",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    "isDefaultGateway": False,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(self.path("cni", "ipam")),
                        "ranges": [[{"subnet": self.pod_subnet,
                                     "rangeStart": self.pod_range[0], "rangeEnd": self.pod_range[1],
                                     "gateway": self.pod_gateway}]],
                        "routes": [{"dst": self.cluster.cluster_cidr}, {"dst": self.cluster.service_cidr}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }  # fmt: skip
        return json.dumps(config, indent=2)

    def kubelet_config(self) -> str:
        """cgroupfs (no systemd here), the serving address on the backbone, health on loopback, the
        cluster DNS on the control plane, a lease renewed every 5 s (a lost node is seen in 20 s),
        and eviction thresholds a busy build machine does not trip."""
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.ip,
            "port": self.cluster.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup_root,
            "failSwapOn": False,
            "makeIPTablesUtilChains": False,
            "clusterDNS": [self.cluster.control_ip],
            "clusterDomain": self.cluster.cluster_domain,
            "resolvConf": str(self.path("resolv.conf")),
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                               "x509": {"clientCAFile": str(self.cluster.pki / "ca.pem")}},
            "authorization": {"mode": "AlwaysAllow"},
            "tlsCertFile": str(self.cluster.pki / f"kubelet-{self.index}.pem"),
            "tlsPrivateKeyFile": str(self.cluster.pki / f"kubelet-{self.index}-key.pem"),
            "volumePluginDir": str(self.path("kubelet-plugins")),
            "evictionHard": {"memory.available": "200Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                             "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "containerLogMaxSize": "50Mi",
            "enableDebuggingHandlers": True,
            "podPidsLimit": -1,
            "nodeLeaseDurationSeconds": 20,
            "nodeStatusUpdateFrequency": "5s",
        }  # fmt: skip
        return yaml.safe_dump(config, sort_keys=False)

    def kube_proxy_config(self) -> str:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(self.cluster.kubeconfig)},
            "hostnameOverride": self.name,
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "clusterCIDR": self.cluster.cluster_cidr,
            "nodePortAddresses": [f"{self.ip}/32"],
            "conntrack": {"maxPerCore": 0, "min": 0},
        }  # fmt: skip
        return yaml.safe_dump(config, sort_keys=False)

    def resolv_conf(self) -> str:
        """The node's own resolver file, given to the kubelet: no search domain of the machine's leaks in."""
        return f"nameserver {self.cluster.control_ip}\n"

    def kubelet_args(self) -> list[str]:
        return [
            f"--config={self.path('kubelet.yaml')}",
            f"--kubeconfig={self.path('kubelet.kubeconfig')}",
            f"--container-runtime-endpoint=unix://{self.containerd_socket}",
            f"--root-dir={self.path('kubelet')}",
            f"--hostname-override={self.name}",
            f"--node-ip={self.ip}",
            f"--pod-infra-container-image={self.cluster.pause_image}",
        ]

    def kube_proxy_args(self) -> list[str]:
        return [f"--config={self.path('kube-proxy.yaml')}"]

    def kube_router_args(self) -> list[str]:
        """Its NetworkPolicy controller alone: the bridge plugin wires the pods and kube-proxy the
        Services, and nothing is advertised over BGP."""
        return [
            f"--kubeconfig={self.cluster.kubeconfig}",
            f"--hostname-override={self.name}",
            "--run-firewall=true",
            "--run-router=false",
            "--run-service-proxy=false",
            "--enable-cni=false",
            "--enable-ipv6=false",
            f"--health-port={KUBE_ROUTER_HEALTH_PORT}",
            "--metrics-port=0",
        ]
