"""The test cluster's pure parts: the build module, the pause image, the control plane's and the
nodes' config, the choice of the node a drill loses, and the reading of the producers' summary."""

from __future__ import annotations

import io
import ipaddress
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from pipeline.cli.simulate_cmd import delivery_line
from pipeline.deploy.cluster.binaries import builder_go_mod, version_ldflags
from pipeline.deploy.cluster.e2e import (
    _claims,
    _overlay_images,
    guarded_targets,
    identity_problems,
    job_outcome,
    node_to_lose,
    parse_summary,
    policy_problems,
    prometheus_problems,
    reach_pods,
    referenced_secrets,
    workloads,
)
from pipeline.deploy.cluster.layout import ClusterLayout
from pipeline.deploy.cluster.pause_image import docker_archive
from pipeline.deploy.cluster.radio_check import MUST_BE_GRANTED, MUST_BE_REFUSED, TOWERS_MUST_REFUSE, radio_problems

UPSTREAM = """// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.23.0

require (
\tgithub.com/spf13/cobra v1.8.1
\tk8s.io/api v0.0.0
\tk8s.io/endpointslice v0.0.0
\tk8s.io/sample-apiserver v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/endpointslice => ./staging/src/k8s.io/endpointslice
\tk8s.io/sample-apiserver => ./staging/src/k8s.io/sample-apiserver
)
"""


def test_builder_module_replaces_staging_with_published_modules() -> None:
    text = builder_go_mod(UPSTREAM, "v1.32.13")
    assert "module corridor.local/kube-build" in text and "module k8s.io/kubernetes" not in text
    assert "k8s.io/api => k8s.io/api v0.32.13" in text
    assert "k8s.io/endpointslice => k8s.io/endpointslice v0.32.12" in text  # the proxy refuses v0.32.13
    assert "sample-apiserver" not in text and "./staging" not in text
    assert "require k8s.io/kubernetes v1.32.13" in text
    assert "github.com/spf13/cobra v1.8.1" in text


def test_version_is_stamped_for_servers_and_clients() -> None:
    flags = version_ldflags("v1.32.13")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.32.13" in flags
        assert f"-X {package}.gitMinor=32" in flags


def test_pause_archive_is_a_docker_archive_naming_the_image() -> None:
    with tarfile.open(fileobj=io.BytesIO(docker_archive(b"\x7fELF fake", "localhost/pause:3.10"))) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == ["localhost/pause:3.10"]
        config = json.load(archive.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        assert config["config"]["Entrypoint"] == ["/pause"]
        with tarfile.open(fileobj=archive.extractfile("layer.tar")) as layer:
            member = layer.getmember("pause")
            assert member.mode == 0o755
            assert layer.extractfile(member).read() == b"\x7fELF fake"  # type: ignore[union-attr]


def test_pods_get_no_route_outward(tmp_path: Path) -> None:
    lay = ClusterLayout(tmp_path, nodes=3)
    for node in lay.all_nodes:
        bridge = json.loads(node.cni_config())["plugins"][0]
        assert bridge["isDefaultGateway"] is False and bridge["ipMasq"] is False
        assert [r["dst"] for r in bridge["ipam"]["routes"]] == [lay.cluster_cidr, lay.service_cidr]
        subnet = ipaddress.ip_network(bridge["ipam"]["ranges"][0][0]["subnet"])
        assert ipaddress.ip_address(node.pod_gateway) in subnet and subnet.is_private
        assert subnet.subnet_of(ipaddress.ip_network(lay.cluster_cidr))  # type: ignore[arg-type]


def test_each_node_has_its_own_addresses_folders_and_cgroups(tmp_path: Path) -> None:
    lay = ClusterLayout(tmp_path, nodes=3)
    nodes = lay.all_nodes
    subnets = [ipaddress.ip_network(n.pod_subnet) for n in nodes]
    backbone = ipaddress.ip_network(f"{lay.control_ip}/{lay.prefix_len}", strict=False)
    assert all(ipaddress.ip_address(n.ip) in backbone for n in nodes)
    assert not any(backbone.overlaps(s) for s in subnets)
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])
    assert len({n.ip for n in nodes} | {lay.control_ip}) == 4
    assert len({n.name for n in nodes}) == 3 and all(len(n.veth) <= 15 and len(n.veth_peer) <= 15 for n in nodes)
    assert len({n.path() for n in nodes}) == 3 and all(n.path().is_relative_to(tmp_path) for n in nodes)
    assert all(n.cgroup_root.startswith(lay.cgroup_root + "/") for n in nodes)
    assert len({n.cgroup_root for n in nodes}) == 3
    tokens = lay.token_file()
    assert all(f"system:node:{n.name}" in tokens and n.kubelet_token in tokens for n in nodes)
    with pytest.raises(ValueError):
        lay.node(4)
    with pytest.raises(ValueError):
        ClusterLayout(tmp_path, nodes=0)


def test_nodes_serve_on_the_backbone_and_health_on_loopback(tmp_path: Path) -> None:
    lay = ClusterLayout(tmp_path, nodes=2)
    node = lay.node(2)
    kubelet = yaml.safe_load(node.kubelet_config())
    assert kubelet["address"] == node.ip and kubelet["healthzBindAddress"] == "127.0.0.1"
    assert kubelet["readOnlyPort"] == 0 and kubelet["authentication"]["anonymous"]["enabled"] is False
    assert kubelet["cgroupRoot"] == node.cgroup_root and tmp_path.name in node.cgroup_root
    assert kubelet["clusterDNS"] == [lay.control_ip] and kubelet["tlsCertFile"].endswith("kubelet-2.pem")
    proxy = yaml.safe_load(node.kube_proxy_config())
    assert proxy["nodePortAddresses"] == [f"{node.ip}/32"] and proxy["hostnameOverride"] == node.name
    assert all(v.startswith("127.0.0.1") for v in (proxy["bindAddress"], proxy["healthzBindAddress"]))
    assert f"--node-ip={node.ip}" in node.kubelet_args()
    args = lay.apiserver_args()
    assert f"--bind-address={lay.control_ip}" in args and f"--advertise-address={lay.control_ip}" in args
    assert "forward" not in lay.corefile() and f"bind {lay.control_ip}" in lay.corefile()  # no query leaves


def test_a_lost_node_is_seen_within_half_a_minute(tmp_path: Path) -> None:
    """The kubelets renew their lease every 5 s and the controller waits 20 s, not the default 50 s;
    pods leave an unreachable node after 15 s, not 300 s."""
    lay = ClusterLayout(tmp_path, nodes=3)
    kubelet = yaml.safe_load(lay.node(1).kubelet_config())
    renew_s = kubelet["nodeLeaseDurationSeconds"] / 4  # the kubelet renews at a quarter of the lease
    grace = next(a for a in lay.controller_manager_args() if a.startswith("--node-monitor-grace-period="))
    grace_s = float(grace.split("=")[1].rstrip("s"))
    assert renew_s * 3 < grace_s <= 20
    assert "--default-unreachable-toleration-seconds=15" in lay.apiserver_args()


def test_containerd_keeps_everything_in_the_nodes_folder(tmp_path: Path) -> None:
    node = ClusterLayout(tmp_path, nodes=2).node(2)
    text = node.containerd_config()
    assert "restrict_oom_score_adj = true" in text and "SystemdCgroup = false" in text
    paths = [line.split("=", 1)[1].strip().strip('"') for line in text.splitlines()
             if line.strip().startswith(("root", "state", "address", "Root", "conf_dir")) and "/" in line]  # fmt: skip
    assert paths and all(p.startswith(str(node.path())) for p in paths)


def _pod(name: str, node: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "spec": {"nodeName": node}}


def test_the_drill_loses_a_towers_node_never_the_jobs() -> None:
    pods = [_pod("producers-x1", "node-1"), _pod("towers-0", "node-1"), _pod("towers-1", "node-2"),
            _pod("towers-2", "node-3"), _pod("kafka-0", "node-3"), _pod("etcd-0", "node-3"),
            _pod("kafka-1", "node-2")]  # fmt: skip
    assert node_to_lose(pods) == "node-3"  # holds a tower, a broker and an etcd member
    assert node_to_lose(pods[:4]) == "node-2"  # none holds the quorums' members: the first by name
    assert node_to_lose([_pod("producers-x1", "node-1"), _pod("towers-0", "node-1")]) is None
    assert node_to_lose([{"metadata": {"name": "towers-0"}, "spec": {}}]) is None  # not scheduled yet


def test_persistent_volumes_live_in_the_run_folder(tmp_path: Path) -> None:
    volumes = ClusterLayout(tmp_path).persistent_volumes(3)
    assert [v["metadata"]["name"] for v in volumes] == ["local-0", "local-1", "local-2"]  # type: ignore[index]
    assert all(str(v["spec"]["hostPath"]["path"]).startswith(str(tmp_path)) for v in volumes)  # type: ignore[index]


def test_claims_and_images_of_an_overlay() -> None:
    template = {"spec": {"containers": [{"image": "localhost/a:1"}], "initContainers": [{"image": "localhost/b:2"}]}}
    rendered = [
        {"kind": "StatefulSet", "spec": {"replicas": 2, "template": template,
                                         "volumeClaimTemplates": [{"metadata": {"name": "x"}}]}},
        {"kind": "StatefulSet", "spec": {"template": template, "volumeClaimTemplates": [{}, {}]}},
        {"kind": "Job", "spec": {"template": {"spec": {"containers": [{"image": "localhost/c:3"}]}}}},
        {"kind": "ConfigMap", "data": {}},
    ]  # fmt: skip
    assert _claims(rendered) == 4
    assert _overlay_images(rendered) == ["localhost/a:1", "localhost/b:2", "localhost/c:3"]


def test_summary_is_read_even_when_the_console_wrapped_it() -> None:
    log = ("starting …\nsimulated 600 s in 171 s: 2,160,000 vehicle updates, 12,345 advisories, dead\n"
           "letters 0, towers converged: True\nhazard → advisory latency p50 20 ms")  # fmt: skip
    s = parse_summary(log)
    assert s is not None
    assert (s.simulated_s, s.updates, s.advisories, s.dead_letters) == (600, 2160000, 12345, 0)
    assert parse_summary("Traceback (most recent call last):\n  boom") is None
    assert s.records_acked is None and s.slowest_ms is None  # an older image printed no delivery line


def test_the_jobs_delivery_line_is_read_as_simulate_prints_it() -> None:
    summary = {"run": {"kafka_records_acked": 54_321, "kafka_records_sent": 54_321},
               "hazards": {"h1": {"advisories": 12}, "h2": {"advisories": 0}},
               "latency_ms": {"all": {"p99": 87.4}},
               "late_advice": {"budget_ms": 100.0, "spells": [{"worst_ms": 4210}, {"worst_ms": 130}]}}  # fmt: skip
    log = ("simulated 600 s in 152 s: 2,154,835 vehicle updates, 12,278 advisories, dead letters 0, towers "
           f"converged: None\n{delivery_line(summary)}\n"
           "hazard → advisory latency p50 135 ms, p99 1,172 ms (n=250)")  # fmt: skip
    s = parse_summary(log)
    assert s is not None
    assert (s.records_acked, s.records_sent, s.hazards_advised, s.hazards) == (54_321, 54_321, 1, 2)
    assert (s.advice_p99_ms, s.slowest_ms, s.hazard_p99_ms) == (87, 4210, 1172)
    on_time = parse_summary(log.replace(delivery_line(summary), delivery_line(summary | {"late_advice": {
        "budget_ms": 100.0, "spells": []}})))  # fmt: skip
    assert on_time is not None and on_time.slowest_ms is None and on_time.records_acked == 54_321


def test_a_job_ends_on_its_condition_not_on_a_failed_pod() -> None:
    assert job_outcome({"failed": 1, "active": 1}) is None  # one pod failed, the retry runs
    assert job_outcome({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}) == "Complete"
    assert job_outcome({"failed": 2, "conditions": [{"type": "Failed", "status": "True"}]}) == "Failed"
    assert job_outcome({"conditions": [{"type": "Suspended", "status": "True"}]}) is None


def test_the_servers_roll_out_first_then_every_other_workload() -> None:
    def doc(kind: str, name: str) -> dict[str, object]:
        return {"kind": kind, "metadata": {"name": name}}

    rendered = [doc("Deployment", "dashboard"), doc("StatefulSet", "towers"), doc("Job", "producers"),
                doc("StatefulSet", "mqtt"), doc("StatefulSet", "kafka"), doc("StatefulSet", "etcd")]  # fmt: skip
    assert workloads(rendered) == [("statefulset", "etcd"), ("statefulset", "kafka"), ("statefulset", "towers"),
                                   ("deployment", "dashboard"), ("statefulset", "mqtt")]  # fmt: skip


def test_node_ids_and_peers_must_follow_the_pods_names() -> None:
    rendered = [{"kind": "StatefulSet", "metadata": {"name": "kafka"}, "spec": {"replicas": 2}},
                {"kind": "StatefulSet", "metadata": {"name": "etcd"}, "spec": {"replicas": 1}}]  # fmt: skip
    members = [{"name": "etcd-0", "peerURLs": ["http://etcd-0.etcd:2380"]}]
    assert identity_problems(rendered, [[0, "kafka-0.kafka"], [1, "kafka-1.kafka"]], members) == []
    swapped = identity_problems(rendered, [[0, "kafka-1.kafka"], [1, "kafka-0.kafka"]], members)
    assert len(swapped) == 1 and "Kafka" in swapped[0]
    assert identity_problems(rendered, [[0, "kafka-0.kafka"]], members)  # a node missing
    loopback = [{"name": "etcd-0", "peerURLs": ["http://localhost:2380"]}]
    assert "etcd" in identity_problems(rendered, [[0, "kafka-0.kafka"], [1, "kafka-1.kafka"]], loopback)[0]
    # with peer certificates in etcd's configuration, a member peering in clear text is a problem
    secure = [*rendered, {"kind": "ConfigMap", "metadata": {"name": "etcd-env-5c2f"},
                          "data": {"ETCD_PEER_CERT_FILE": "/etc/etcd/tls/tls.crt"}}]  # fmt: skip
    brokers = [[0, "kafka-0.kafka"], [1, "kafka-1.kafka"]]
    assert "etcd" in identity_problems(secure, brokers, members)[0]
    assert identity_problems(secure, brokers, [{"name": "etcd-0", "peerURLs": ["https://etcd-0.etcd:2380"]}]) == []


def test_secrets_an_overlay_expects_from_outside() -> None:
    pod = {
        "volumes": [{"name": "a", "secret": {"secretName": "etcd-tls"}}, {"name": "b", "emptyDir": {}}],
        "containers": [
            {
                "env": [
                    {"name": "P", "valueFrom": {"secretKeyRef": {"name": "admin", "key": "password"}}},
                    {"name": "Q", "value": "x"},
                ]
            }
        ],
        "initContainers": [{"env": [{"name": "R", "valueFrom": {"secretKeyRef": {"name": "own", "key": "k"}}}]}],
    }
    rendered = [{"kind": "StatefulSet", "metadata": {"name": "x"}, "spec": {"template": {"spec": pod}}},
                {"kind": "Secret", "metadata": {"name": "own"}}]  # fmt: skip
    assert referenced_secrets(rendered) == {"etcd-tls", "admin"}
    assert referenced_secrets([{"kind": "ConfigMap", "metadata": {"name": "c"}}]) == set()


def _one(v: float) -> list[dict]:
    """An instant query's answer as Prometheus gives it (no sample for an empty count)."""
    return [{"metric": {}, "value": [0, str(v)]}] if v else []


def _answers(towers: int, gateways: int, advisories: float, firing: list[tuple[str, str]]) -> dict:
    alerts = [{"metric": {"alertname": a, "severity": sev}, "value": [0, "1"]} for a, sev in firing]
    return {"towers_up": _one(towers), "gateways_up": _one(gateways), "advisories": _one(advisories), "firing": alerts}


def test_the_clusters_prometheus_must_scrape_every_worker_and_gateway_and_fire_nothing_critical() -> None:
    rendered = [{"kind": "StatefulSet", "metadata": {"name": "towers"}, "spec": {"replicas": 2}},
                {"kind": "Deployment", "metadata": {"name": "gateways"}, "spec": {}}]  # fmt: skip
    assert prometheus_problems(rendered, _answers(2, 1, 120, [("CorridorSyncStale", "warning")])) == []
    got = prometheus_problems(rendered, _answers(1, 0, 0, [("CorridorTowerDown", "critical")]))
    assert got == ["Prometheus scrapes 1 of the 2 towers", "Prometheus scrapes 0 of the 1 gateways",
                   "Prometheus counted no advisory decided by the towers",
                   "critical alerts firing after the Job: ['CorridorTowerDown']"]  # fmt: skip


def test_the_radio_check_is_judged_by_every_refusal_and_every_grant() -> None:
    good = {**dict.fromkeys(MUST_BE_REFUSED, "Not authorized"), **dict.fromkeys(MUST_BE_GRANTED),
            "cancelling another's hazard": "not-its-reporter: 'veh-2' may not cancel hazard 'hz-check-1'"}  # fmt: skip
    assert radio_problems(good) == []
    unheld = {**good, "cancelling another's hazard": None, "reported": "not in the towers' global view within 60 s"}
    assert radio_problems(unheld) == [
        "the towers did not refuse cancelling another's hazard (not in the towers' global view within 60 s)"
    ]
    # refused, but not as its reporter's: some other defect
    assert radio_problems({**good, "cancelling another's hazard": "bad-id: x"}) != []
    assert radio_problems({k: v for k, v in good.items() if k != "cancelling another's hazard"}, towers=False) == []
    assert radio_problems({**good, "a forged advisory": None}) == [
        "the radio link's broker did not refuse a forged advisory"
    ]
    silent = {**good, "the fleet writing Kafka's advisories": "no answer"}  # silence is not a refusal
    assert radio_problems(silent) == ["the radio link's broker did not refuse the fleet writing Kafka's advisories"]
    dead = {**good, "its own telemetry": "no answer"}  # a link refusing everything proves nothing
    assert radio_problems(dead) == ["the radio link's broker refused a vehicle its own telemetry: no answer"]
    assert len(radio_problems({})) == len(MUST_BE_REFUSED) + len(TOWERS_MUST_REFUSE) + len(MUST_BE_GRANTED)


def test_a_nodes_policy_controller_runs_alone_on_its_own_node() -> None:
    node = ClusterLayout(Path("/run-dir"), nodes=2).node(2)
    args = node.kube_router_args()
    assert f"--hostname-override={node.name}" in args
    # only the NetworkPolicy controller: no BGP, no service proxy beside kube-proxy, no CNI of its own
    assert {"--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false"} <= set(args)


def test_network_policies_are_judged_by_an_admitted_pod_and_an_intruder() -> None:
    job = {
        "kind": "Job",
        "metadata": {"name": "producers"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "producers"}},
                "spec": {"containers": [{"name": "p", "image": "x", "command": ["corridor"]}]},
            }
        },
    }
    services = [{"kind": "Service", "metadata": {"name": name}, "spec": {"ports": [{"port": port}]}}
                for name, port in (("mqtt", 1883), ("dashboard", 8765))]  # fmt: skip
    rendered = [job, *services]
    assert guarded_targets(rendered) == ["mqtt:1883"]  # the dashboard is open to all by design
    admitted, intruder = reach_pods(rendered, "ns", ["mqtt:1883"])
    assert admitted["metadata"]["labels"]["app.kubernetes.io/name"] == "producers"
    assert "app.kubernetes.io/name" not in intruder["metadata"]["labels"]
    assert intruder["spec"]["containers"][0]["command"][-1] == "mqtt:1883"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["corridor"]  # the Job is left as it was
    assert policy_problems({"mqtt:1883": "reached"}, {"mqtt:1883": "TimeoutError"}) == []
    assert policy_problems({"mqtt:1883": "reached"}, {"mqtt:1883": "reached"}) == [
        "a pod no NetworkPolicy admits reached mqtt:1883"
    ]
    assert policy_problems({"mqtt:1883": "ConnectionRefusedError"}, {"mqtt:1883": "ConnectionRefusedError"}) == [
        "a pod the policies admit could not reach mqtt:1883 (ConnectionRefusedError)"
    ]
