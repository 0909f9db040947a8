"""The single-node test cluster's pure parts: the build module, the pause image, the node's config,
and the reading of the producers' summary."""

from __future__ import annotations

import io
import ipaddress
import json
import tarfile
from pathlib import Path

import yaml

from pipeline.deploy.cluster.binaries import builder_go_mod, version_ldflags
from pipeline.deploy.cluster.e2e import (
    _claims,
    _overlay_images,
    identity_problems,
    job_outcome,
    parse_summary,
    prometheus_problems,
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
    lay = ClusterLayout(tmp_path)
    bridge = json.loads(lay.cni_config())["plugins"][0]
    assert bridge["isDefaultGateway"] is False and bridge["ipMasq"] is False
    routes = [r["dst"] for r in bridge["ipam"]["routes"]]
    assert routes == [lay.service_cidr]
    subnet = ipaddress.ip_network(bridge["ipam"]["ranges"][0][0]["subnet"])
    assert ipaddress.ip_address(lay.node_ip) in subnet and subnet.is_private


def test_node_serves_on_the_bridge_and_health_on_loopback(tmp_path: Path) -> None:
    lay = ClusterLayout(tmp_path)
    kubelet = yaml.safe_load(lay.kubelet_config())
    assert kubelet["address"] == lay.node_ip and kubelet["healthzBindAddress"] == "127.0.0.1"
    assert kubelet["readOnlyPort"] == 0 and kubelet["authentication"]["anonymous"]["enabled"] is False
    assert kubelet["cgroupRoot"] == lay.cgroup_root and tmp_path.name in lay.cgroup_root
    proxy = yaml.safe_load(lay.kube_proxy_config())
    assert proxy["nodePortAddresses"] == [f"{lay.node_ip}/32"]
    assert all(v.startswith("127.0.0.1") for v in (proxy["bindAddress"], proxy["healthzBindAddress"]))
    args = lay.apiserver_args()
    assert f"--bind-address={lay.node_ip}" in args and f"--advertise-address={lay.node_ip}" in args
    assert "forward" not in lay.corefile()  # no query leaves the cluster


def test_containerd_keeps_everything_in_the_run_folder(tmp_path: Path) -> None:
    text = ClusterLayout(tmp_path).containerd_config()
    assert "restrict_oom_score_adj = true" in text and "SystemdCgroup = false" in text
    paths = [line.split("=", 1)[1].strip().strip('"') for line in text.splitlines()
             if line.strip().startswith(("root", "state", "address", "Root", "conf_dir")) and "/" in line]  # fmt: skip
    assert paths and all(p.startswith(str(tmp_path)) for p in paths)


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
