"""`corridor k8s e2e`: a Kubernetes cluster of one or more nodes, overlays applied to it in turn,
and the producers' Job judged by its own summary; optionally a node lost in the middle of the last
overlay's Job.

The cluster (see `control_plane` and `node`) runs in namespaces of its own; this driver stays
outside, loads corridor's images into each node's containerd, talks to the API server through
`nsenter` into the control plane's network namespace, and ends the cluster whatever happens (SIGTERM
to its first process, then the release of the host state it recorded, then its folder).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.deploy.cluster.binaries import K8S_VERSION, Binaries, build_binaries, build_kube_router
from pipeline.deploy.cluster.control_plane import FAILED_FILE, READY_FILE, STOP_FILE
from pipeline.deploy.cluster.host_state import HostState
from pipeline.deploy.cluster.layout import ClusterLayout, NodeLayout
from pipeline.deploy.cluster.node import LOSE_FILE, LOST_FILE
from pipeline.deploy.cluster.procs import is_ready
from pipeline.deploy.cluster.radio_check import MUST_BE_REFUSED, TOWERS_MUST_REFUSE, radio_problems
from pipeline.shared.config import Settings
from pipeline.shared.errors import ConfigError, StackError
from pipeline.shared.waiting import poll
from pipeline.stack.etcd import etcd_binary
from pipeline.stack.process import die_with_parent, pid_alive

__all__ = [
    "GUARDED_SERVICES",
    "E2EResult",
    "JobSummary",
    "OverlayResult",
    "identity_problems",
    "job_outcome",
    "lose_node_mid_job",
    "node_to_lose",
    "parse_summary",
    "policy_problems",
    "reach_pods",
    "run_e2e",
    "workloads",
]

#: What the cluster needs from the machine, and the Debian package that has it.
REQUIRED_TOOLS = {"unshare": "util-linux", "nsenter": "util-linux", "ip": "iproute2", "mount": "mount",
                  "iptables": "iptables", "containerd": "containerd", "ctr": "containerd", "runc": "runc",
                  "gcc": "gcc", "ipset": "ipset", "conntrack": "conntrack"}  # fmt: skip
CNI_DIR = Path("/usr/lib/cni")
_OWNER = "driver.pid"
Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class JobSummary:
    """The producers' own closing lines, as printed by `corridor simulate`."""

    simulated_s: int
    updates: int
    advisories: int
    dead_letters: int
    #: its delivery line: records Kafka acknowledged of those sent, hazards advised of those
    #: reported, every advisory's p99 and the slowest past the budget (None: none was)
    records_acked: int | None = None
    records_sent: int | None = None
    hazards_advised: int | None = None
    hazards: int | None = None
    advice_p99_ms: int | None = None
    slowest_ms: int | None = None
    hazard_p99_ms: int | None = None


_SUMMARY = re.compile(
    r"simulated (\d+) s in \d+ s: ([\d,]+) vehicle updates, ([\d,]+) advisories, dead letters (\d+), "
    r"towers converged"
)
_DELIVERY = re.compile(
    r"delivery: Kafka acknowledged ([\d,]+) of ([\d,]+) records; hazards advised (\d+) of (\d+); every advisory "
    r"p99 ([\d,]+) ms, (?:the slowest ([\d,]+) ms|none over)"
)
_HAZARD_P99 = re.compile(r"hazard → advisory latency p50 [\d,]+ ms, p99 ([\d,]+) ms")


def _int(text: str | None) -> int | None:
    return None if text is None else int(text.replace(",", ""))


def parse_summary(log: str) -> JobSummary | None:
    """The summary lines of a simulate log; the console may have wrapped them across lines."""
    flat = re.sub(r"\s+", " ", log)
    match = _SUMMARY.search(flat)
    if match is None:
        return None
    sim, updates, advisories, dead = (_int(g) or 0 for g in match.groups())
    delivery = _DELIVERY.search(flat)
    hazard = _HAZARD_P99.search(flat)
    acked, sent, advised, hazards, p99, slowest = (_int(g) for g in delivery.groups()) if delivery else (None,) * 6
    return JobSummary(sim, updates, advisories, dead, acked, sent, advised, hazards, p99, slowest,
                      _int(hazard.group(1)) if hazard else None)  # fmt: skip


@dataclass
class OverlayResult:
    """One overlay applied to the cluster: its timings, the Job's summary, the pods, what failed."""

    overlay: Path
    timings: dict[str, float] = field(default_factory=dict)
    summary: JobSummary | None = None
    pods: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class E2EResult:
    timings: dict[str, float] = field(default_factory=dict)
    overlays: list[OverlayResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems and all(not o.problems for o in self.overlays)


def preflight() -> None:
    """One line naming what is missing, and how to get it."""
    if sys.platform != "linux" or os.geteuid() != 0:
        raise StackError("the test cluster needs Linux and root (it creates namespaces, a bridge and cgroups)")
    missing = {pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None}
    if not (CNI_DIR / "bridge").exists():
        missing.add("containernetworking-plugins")
    if missing:
        raise StackError(f"the test cluster needs: apt-get install -y {' '.join(sorted(missing))}")


def release_stale_runs(runs: Path, say: Say) -> None:
    """A run whose driver is gone (killed outright) left its record: undo it and remove its folder."""
    if not runs.is_dir():
        return
    for run_dir in runs.iterdir():
        try:
            owner = int((run_dir / _OWNER).read_text())
        except (OSError, ValueError):
            owner = -1
        if owner > 0 and pid_alive(owner):
            continue
        state = HostState.load(run_dir)
        if state is not None:
            left = state.release(timeout=5)
            for item in left:
                say(f"could not undo {item} of an earlier run")
        shutil.rmtree(run_dir, ignore_errors=True)


class Cluster:
    """A running test cluster, seen from outside its namespaces."""

    def __init__(self, layout: ClusterLayout, binaries: Binaries, proc: subprocess.Popen[bytes]) -> None:
        self.layout, self.binaries, self.proc = layout, binaries, proc

    @property
    def ns_pid(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        if not children:
            raise StackError("the cluster's first process is gone")
        return int(children[0])

    def failed(self) -> str | None:
        """Why the cluster stopped on its own (a server or a node of it exited), if it did."""
        path = self.layout.path(FAILED_FILE)
        return path.read_text().strip() if path.exists() else None

    def kubectl(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120) -> str:
        proc = self.kubectl_run(*args, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise StackError(f"kubectl {' '.join(args[:3])} failed: {proc.stderr.strip()[-600:]}")
        return proc.stdout

    def kubectl_run(
        self, *args: str, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """kubectl's exit status and both its streams: a command run in a pod says why it failed on stderr."""
        lay = self.layout
        argv = ["nsenter", f"--net=/proc/{self.ns_pid}/ns/net", str(self.binaries.path("kubectl")),
                f"--kubeconfig={lay.kubeconfig}", f"--cache-dir={lay.path('kubectl-cache')}", *args]  # fmt: skip
        return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=die_with_parent())  # fmt: skip

    def load_image(self, engine_cli: str, ref: str) -> None:
        """`save` from the engine that built it, once, then `import` into every node's containerd
        (together: each import is mostly unpacking)."""
        archive = self.layout.path("image.tar")
        save = subprocess.run([engine_cli, "save", "--format", "docker-archive", "-o", str(archive), ref],
                              capture_output=True, text=True, preexec_fn=die_with_parent())  # fmt: skip
        if save.returncode != 0:
            raise StackError(f"saving {ref} failed: {save.stderr.strip()[-400:]}")

        def load(node: NodeLayout) -> str:
            ctr = ["ctr", "--address", str(node.containerd_socket), "--namespace", "k8s.io"]
            imp = subprocess.run([*ctr, "images", "import", str(archive)], capture_output=True, text=True,
                                 preexec_fn=die_with_parent())  # fmt: skip
            return "" if imp.returncode == 0 else f"{node.name}: {imp.stderr.strip()[-300:]}"

        try:
            with ThreadPoolExecutor(max_workers=self.layout.nodes) as pool:
                errors = [e for e in pool.map(load, self.layout.all_nodes) if e]
        finally:
            archive.unlink(missing_ok=True)
        if errors:
            raise StackError(f"loading {ref} into the cluster failed: {'; '.join(errors)}")

    def lose_node(self, node: NodeLayout, timeout: float = 30) -> int:
        """Node `node` loses its power: its kubelet, containerd, shims and containers are SIGKILLed
        at once. Returns how many processes that took."""
        node.path(LOSE_FILE).touch()
        if poll(lambda: node.path(LOST_FILE).exists(), timeout, interval=0.2) is None:
            raise StackError(f"{node.name} was not lost within {timeout:.0f} s")
        return int(node.path(LOST_FILE).read_text().strip() or 0)


@contextmanager
def disposable_cluster(settings: Settings, binaries: Binaries, kube_router: Path, say: Say, *, nodes: int = 1,
                       timeout: float = 360) -> Iterator[Cluster]:  # fmt: skip
    """A cluster of its own for one e2e run, torn down (and its run directory released) after."""
    runs = settings.state_dir.resolve() / "k8s" / "runs"
    release_stale_runs(runs, say)
    run_dir = runs / f"{int(time.time())}-{os.getpid()}"
    run_dir.mkdir(parents=True)
    (run_dir / _OWNER).write_text(str(os.getpid()))
    layout = ClusterLayout(run_dir, nodes)
    host = HostState.record(layout)
    layout.logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with open(layout.logs / "cluster.log", "ab") as log:
        proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child=SIGTERM", "--mount", "--net", "--mount-proc",
             "--propagation", "private", sys.executable, "-m", "pipeline.deploy.cluster.control_plane", str(run_dir),
             str(nodes), str(binaries.directory), str(etcd_binary(settings.cache_dir)), str(kube_router)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            # unshare ignores SIGTERM while it waits for its child: only SIGKILL ends it, and its
            # --kill-child then hands the cluster's first process the SIGTERM that starts the clean-up
            preexec_fn=die_with_parent(signal.SIGKILL),
        )  # fmt: skip
    cluster = Cluster(layout, binaries, proc)
    try:
        deadline = time.monotonic() + timeout
        while not layout.path(READY_FILE).exists():
            if layout.path(FAILED_FILE).exists() or proc.poll() is not None:
                reason = layout.path(FAILED_FILE).read_text().strip() if layout.path(FAILED_FILE).exists() else ""
                raise StackError(f"the test cluster did not start: {reason or 'its first process exited'}; "
                                 f"logs in {layout.logs}")  # fmt: skip
            if time.monotonic() > deadline:
                raise StackError(f"the test cluster was not ready within {timeout:.0f} s; logs in {layout.logs}")
            time.sleep(0.5)
        yield cluster
    finally:
        if proc.poll() is None:
            layout.path(STOP_FILE).touch()  # the driver is alive and removes the folder itself
            try:
                os.kill(cluster.ns_pid, signal.SIGTERM)  # the cluster stops its parts and releases the host
            except (StackError, OSError):
                proc.kill()
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        left = host.release()
        for item in left:
            say(f"could not undo {item}")
        if not left:
            shutil.rmtree(run_dir, ignore_errors=True)


def job_outcome(status: dict[str, Any]) -> str | None:
    """ "Complete" or "Failed" once the Job has ended, else None. A failed pod alone does not end it:
    the Job may retry (its backoffLimit)."""
    for condition in status.get("conditions", []):
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


def _overlay_images(rendered: list[dict[str, Any]]) -> list[str]:
    images: set[str] = set()
    for doc in rendered:
        spec = doc.get("spec", {})
        template = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", {})
        for c in [*template.get("containers", []), *template.get("initContainers", [])]:
            images.add(c["image"])
    return sorted(images)


#: Run in a tower pod: what Kafka and etcd say their members are, as the cluster's DNS leads there.
_PROBE = """
import json
import etcd3
from confluent_kafka.admin import AdminClient
from pipeline.shared.access import Role
from pipeline.shared.config import Settings
settings = Settings.from_env()
md = AdminClient(settings.kafka(Role.TOWER).librdkafka()).list_topics(timeout=20)
client = etcd3.client(**settings.etcd(Role.TOWER).client_kwargs(), timeout=20)  # gRPC: the certificate is the user
members = [{"name": m.name, "peerURLs": list(m.peer_urls)} for m in client.members]
print(json.dumps({"brokers": sorted([b.id, b.host] for b in md.brokers.values()), "members": members}))
"""


#: run in towers-0: the namespace's Prometheus asked what it scraped, as any client in the cluster would
_ASK_PROMETHEUS = """
import json, sys, urllib.parse, urllib.request
out = {}
for name, expr in json.loads(sys.argv[1]).items():
    url = "http://prometheus:9090/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        out[name] = json.loads(resp.read())["data"]["result"]
print(json.dumps(out))
"""
PROMETHEUS_QUESTIONS = {
    "towers_up": 'count(up{job="corridor-towers"} == 1)',
    "gateways_up": 'count(up{job="corridor-gateways"} == 1)',
    "advisories": "sum(corridor_tower_advisories_total)",
    "firing": 'ALERTS{alertstate="firing"}',
}


def prometheus_problems(rendered: list[dict[str, Any]], answers: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The cluster's Prometheus scraped every tower worker and gateway the overlay runs, counted the
    advisories they decided, and has no critical alert firing once the producers' Job is done."""

    def value(name: str) -> float:
        found = answers.get(name) or []
        return float(found[0]["value"][1]) if found else 0.0

    replicas = {(d["kind"], d["metadata"]["name"]): int(d["spec"].get("replicas", 1)) for d in rendered
                if d["kind"] in ("StatefulSet", "Deployment")}  # fmt: skip
    problems = []
    for part, key in (("towers", ("StatefulSet", "towers")), ("gateways", ("Deployment", "gateways"))):
        want = replicas.get(key, 0)
        if value(f"{part}_up") != want:
            problems.append(f"Prometheus scrapes {value(f'{part}_up'):.0f} of the {want} {part}")
    if value("advisories") <= 0:
        problems.append("Prometheus counted no advisory decided by the towers")
    critical = sorted({a["metric"]["alertname"] for a in answers.get("firing", [])
                       if a["metric"].get("severity") == "critical"})  # fmt: skip
    if critical:
        problems.append(f"critical alerts firing after the Job: {critical}")
    return problems


def identity_problems(rendered: list[dict[str, Any]], brokers: list[list[Any]],
                      members: list[dict[str, Any]]) -> list[str]:  # fmt: skip
    """Kafka's node ids are the pods' ordinals and each advertises its own pod's name; etcd's members
    are the StatefulSet's pods, each peering at its headless-Service name, over TLS where the overlay
    gives the peers certificates."""
    replicas = {
        d["metadata"]["name"]: int(d["spec"].get("replicas", 1)) for d in rendered if d["kind"] == "StatefulSet"
    }
    problems = []
    want_brokers = [[i, f"kafka-{i}.kafka"] for i in range(replicas.get("kafka", 0))]
    # plain overlays advertise `kafka-N.kafka`, secure ones `kafka-N.kafka.<namespace>.svc`
    if [[int(i), ".".join(str(h).split(".")[:2])] for i, h in brokers] != want_brokers:
        problems.append(f"Kafka's brokers are {brokers}, not {want_brokers}")
    etcd_env: dict[str, str] = next((d.get("data", {}) for d in rendered
                                     if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("etcd-env")),
                                    {})  # fmt: skip
    scheme = "https" if etcd_env.get("ETCD_PEER_CERT_FILE") else "http"
    want_members = {f"etcd-{i}": [f"{scheme}://etcd-{i}.etcd:2380"] for i in range(replicas.get("etcd", 0))}
    got_members = {m["name"]: sorted(m["peerURLs"]) for m in members}
    if got_members != want_members:
        problems.append(f"etcd's members are {got_members}, not {want_members}")
    return problems


def radio_check_pod(rendered: list[dict[str, Any]], namespace: str) -> dict[str, Any] | None:
    """On an overlay whose radio link is secure, a Pod that runs `radio_check` as the vehicles'
    driver: the producers Job's own pod (its image, identity, Secrets and labels, so the same
    NetworkPolicy admits it), told to try the broker instead of driving the scenario."""
    if not any(d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("mqtt-listener") for d in rendered):
        return None
    job = next(d for d in rendered if d["kind"] == "Job" and d["metadata"]["name"] == "producers")
    template = copy.deepcopy(job["spec"]["template"])
    (container,) = template["spec"]["containers"]
    container["command"] = ["python", "-m", "pipeline.deploy.cluster.radio_check"]
    labels = {**template["metadata"].get("labels", {}), "corridor/check": "radio"}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "radio-check", "namespace": namespace, "labels": labels},
            "spec": {**template["spec"], "restartPolicy": "Never"}}  # fmt: skip


#: run in a probe pod: which of the addresses it is given answer a TCP connection, each tried for
#: the seconds of the first argument (a policy controller admits a new pod once it has seen it)
_REACH_PROBE = """
import json, socket, sys, time
patience, out = float(sys.argv[1]), {}
for target in sys.argv[2:]:
    host, port = target.rsplit(":", 1)
    deadline = time.monotonic() + patience
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
            out[target] = "reached"
            break
        except OSError as exc:
            out[target] = type(exc).__name__
            if time.monotonic() > deadline:
                break
            time.sleep(1)
print(json.dumps(out))
"""
#: how long the admitted probe tries each address: kube-router admits a new pod's address at its next
#: sync, seconds after the pod starts (a first attempt was refused by all four)
ADMITTED_PATIENCE_S = 30
#: Services whose pods a NetworkPolicy guards, each reached at every port it exposes
GUARDED_SERVICES = ("corridor-kafka-bootstrap", "etcd-client", "mqtt", "schema-registry")


def guarded_targets(rendered: list[dict[str, Any]]) -> list[str]:
    """`service:port` for every port of the guarded Services the overlay has."""
    return [f"{d['metadata']['name']}:{port['port']}" for d in rendered
            if d["kind"] == "Service" and d["metadata"]["name"] in GUARDED_SERVICES
            for port in d["spec"].get("ports", [])]  # fmt: skip


def reach_pods(rendered: list[dict[str, Any]], namespace: str, targets: list[str]) -> list[dict[str, Any]]:
    """Two pods made from the producers Job's own, each trying `targets`: one with the producers'
    labels (the policies admit it everywhere it is sent), one with none of them (no policy admits it)."""
    job = next(d for d in rendered if d["kind"] == "Job" and d["metadata"]["name"] == "producers")
    pods = []
    for name, labels, patience in (
        ("reach-admitted", {**job["spec"]["template"]["metadata"].get("labels", {})}, ADMITTED_PATIENCE_S),
        ("reach-intruder", {}, 0),
    ):
        template = copy.deepcopy(job["spec"]["template"])
        (container,) = template["spec"]["containers"]
        container["command"] = ["python", "-c", _REACH_PROBE, str(patience), *targets]
        pods.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": name, "namespace": namespace, "labels": {**labels, "corridor/check": name}},
                     "spec": {**template["spec"], "restartPolicy": "Never"}})  # fmt: skip
    return pods


def policy_problems(admitted: dict[str, str], intruder: dict[str, str]) -> list[str]:
    """The admitted pod reached every guarded address, the intruder none."""
    problems = [
        f"a pod the policies admit could not reach {t} ({how})" for t, how in admitted.items() if how != "reached"
    ]
    problems += [f"a pod no NetworkPolicy admits reached {t}" for t, how in intruder.items() if how == "reached"]
    return problems


def _policy_check(cluster: Cluster, namespace: str, rendered: list[dict[str, Any]], say: Say) -> list[str]:
    targets = guarded_targets(rendered)
    if not targets or not any(d["kind"] == "NetworkPolicy" for d in rendered):
        return []
    pods = reach_pods(rendered, namespace, targets)
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(pods))
    answers: dict[str, dict[str, str]] = {}
    for name in (p["metadata"]["name"] for p in pods):
        try:
            answers[name] = _pod_answer(cluster, namespace, name, f"the NetworkPolicy probe {name}", 120)
        except StackError as exc:
            return [str(exc)]
    admitted, intruder = answers["reach-admitted"], answers["reach-intruder"]
    refused = sum(1 for how in intruder.values() if how != "reached")
    say(f"NetworkPolicies (kube-router): a pod no policy admits refused by {refused} of {len(intruder)} guarded "
        f"addresses ({', '.join(targets)}); the producers' labels reached "
        f"{sum(1 for how in admitted.values() if how == 'reached')} of {len(admitted)}")  # fmt: skip
    return policy_problems(admitted, intruder)


def _pod_answer(cluster: Cluster, namespace: str, name: str, what: str, timeout: float) -> Any:
    """A probe pod (applied) run to its end, deleted, and the JSON of its log's last line; a
    StackError saying which `what` did not finish or gave no answer."""

    def phase() -> str:
        got = cluster.kubectl("-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}", check=False)
        return got.strip()

    if poll(lambda: phase() in ("Succeeded", "Failed"), timeout, interval=2) is None:
        raise StackError(f"{what} did not finish within {timeout:.0f} s (phase {phase() or 'unknown'})")
    log = cluster.kubectl("-n", namespace, "logs", name, check=False)
    cluster.kubectl("-n", namespace, "delete", "pod", name, "--wait=false", check=False)
    try:
        return json.loads(log.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise StackError(f"{what} gave no answer: {log.strip()[-300:]!r}") from None


def _register_schemas(
    cluster: Cluster, namespace: str, say: Say, patience: float = 60, interval: float = 5
) -> list[str]:
    """`corridor schemas register` from towers-0, as an operator runs it after a rollout. Registering
    is idempotent, so a refusal is tried again for `patience` seconds (a registry just made Ready may
    still be slow to its first writes); every failed try is said, with the command's own reason."""
    failures: list[str] = []

    def registered() -> bool:
        proc = cluster.kubectl_run("-n", namespace, "exec", "towers-0", "--", "corridor", "schemas", "register",
                                   timeout=120)  # fmt: skip
        if proc.returncode == 0 and "ids" in proc.stdout:
            lines = len(proc.stdout.strip().splitlines())
            say(f"from towers-0: corridor's schemas registered ({lines} subjects, after {len(failures)} refusals)")
            return True
        why = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[-1][-300:]
        failures.append(why)
        say(f"corridor schemas register from towers-0 failed (try {len(failures)}): {why}")
        return False

    if poll(registered, patience, interval=interval) is None:
        return [f"corridor schemas register from towers-0 failed {len(failures)} times in {patience:.0f} s; "
                f"the last: {failures[-1]}"]  # fmt: skip
    return []


def _radio_check(cluster: Cluster, namespace: str, pod: dict[str, Any], say: Say) -> list[str]:
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(pod))
    try:
        answers = _pod_answer(cluster, namespace, "radio-check", "the radio check", 180)["answers"]
    except StackError as exc:
        return [str(exc)]
    except (KeyError, TypeError):
        return ["the radio check gave no answers"]
    problems = radio_problems(answers)
    refused = sum(1 for what in MUST_BE_REFUSED if answers.get(what) not in (None, "no answer"))
    say(f"radio link, from the vehicles' driver's pod: {refused} of {len(MUST_BE_REFUSED)} attempts refused "
        f"({', '.join(MUST_BE_REFUSED)}); a vehicle's own granted: {not problems}; "
        f"the towers, to a vehicle cancelling another's hazard: {answers.get(TOWERS_MUST_REFUSE[0])!r}")  # fmt: skip
    return problems


def referenced_secrets(rendered: list[dict[str, Any]]) -> set[str]:
    """Secrets the pods mount or read that the overlay itself does not define."""
    names: set[str] = set()
    for doc in rendered:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
        for c in [*spec.get("containers", []), *spec.get("initContainers", [])]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
    return names - {d["metadata"]["name"] for d in rendered if d["kind"] == "Secret"}


def workloads(rendered: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every StatefulSet (etcd, Kafka and the towers first: the rest depends on them) and Deployment."""
    first = {"etcd": 0, "kafka": 1, "towers": 2}
    found = [(d["kind"].lower(), d["metadata"]["name"]) for d in rendered if d["kind"] in ("StatefulSet", "Deployment")]
    return sorted(found, key=lambda kn: (first.get(kn[1], 3), kn))


def _claims(rendered: list[dict[str, Any]]) -> int:
    return sum(len(d["spec"].get("volumeClaimTemplates", [])) * int(d["spec"].get("replicas", 1))
               for d in rendered if d.get("kind") == "StatefulSet")  # fmt: skip


def run_e2e(settings: Settings, overlays: list[Path], *, say: Say, job_timeout: float = 900,
            logs_to: Path | None = None, nodes: int = 1, lose_node: bool = False) -> E2EResult:  # fmt: skip
    """One cluster; each overlay applied in turn, judged, then deleted before the next. With
    `lose_node`, a node is lost in the middle of the last overlay's Job (see `lose_node_mid_job`)."""
    if lose_node and nodes < 3:
        raise ConfigError("--lose-node needs --nodes 3 or more: the quorums of three must keep two members")
    from pipeline.containers.engine import find_engine

    preflight()
    result = E2EResult()
    t0 = time.monotonic()
    binaries = build_binaries(settings.cache_dir, log=say)
    kube_router = build_kube_router(settings.cache_dir, log=say)
    result.timings["binaries"] = time.monotonic() - t0
    t = time.monotonic()
    with disposable_cluster(settings, binaries, kube_router, say, nodes=nodes) as cluster:
        result.timings["cluster_up"] = time.monotonic() - t
        version = json.loads(cluster.kubectl("version", "-o", "json"))["serverVersion"]["gitVersion"]
        names = ", ".join(n.name for n in cluster.layout.all_nodes)
        say(f"Kubernetes {version} up in {result.timings['cluster_up']:.0f} s (nodes {names} Ready)")
        if version != K8S_VERSION:
            result.problems.append(f"the API server says {version}, not {K8S_VERSION}")
        rendered = {o: [d for d in yaml.safe_load_all(cluster.kubectl("kustomize", str(o))) if d] for o in overlays}
        t = time.monotonic()
        engine = find_engine(settings)
        try:
            for ref in sorted({ref for docs in rendered.values() for ref in _overlay_images(docs)}):
                say(f"loading {ref}")
                cluster.load_image(engine.cli, ref)
        finally:
            engine.stop()
        result.timings["images"] = time.monotonic() - t
        failures = settings.state_dir.resolve() / "k8s" / "last-failure"
        for i, overlay in enumerate(overlays):
            one = _run_overlay(cluster, overlay, rendered[overlay], i, say=say, job_timeout=job_timeout,
                               logs_to=logs_to / overlay.name if logs_to else None,
                               failures=failures / overlay.name, last=i == len(overlays) - 1,
                               lose_node=lose_node and i == len(overlays) - 1)  # fmt: skip
            result.overlays.append(one)
            if cluster.failed() is not None:  # a part of the node itself stopped: nothing after it counts
                result.problems.append(f"the cluster failed: {cluster.failed()}")
                break
    result.timings["total"] = time.monotonic() - t0
    return result


def _run_overlay(cluster: Cluster, overlay: Path, rendered: list[dict[str, Any]], index: int, *, say: Say,
                 job_timeout: float, logs_to: Path | None, failures: Path, last: bool,
                 lose_node: bool = False) -> OverlayResult:  # fmt: skip
    result = OverlayResult(overlay)
    namespace = next(d["metadata"]["name"] for d in rendered if d["kind"] == "Namespace")
    volumes = cluster.layout.persistent_volumes(_claims(rendered), prefix=f"local-{index}")
    for pv in volumes:
        host_path = Path(pv["spec"]["hostPath"]["path"])  # type: ignore[index]
        host_path.mkdir(parents=True)
        host_path.chmod(0o777)  # hostPath gets no fsGroup: the pods run as their own non-root users
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(volumes))
    t = time.monotonic()
    wanted = referenced_secrets(rendered)
    if wanted:  # a secure overlay: its Secrets first, as `corridor k8s secrets` makes them
        from pipeline.deploy.secrets import secret_manifests

        made = secret_manifests(namespace, "statefulset")
        missing = wanted - {d["metadata"]["name"] for d in made}
        if missing:
            result.problems.append(f"the overlay needs Secrets no command makes: {sorted(missing)}")
            return result
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([d for d in rendered if d["kind"] == "Namespace"]))
        cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(made))
        say(f"Secrets of corridor k8s secrets --namespace {namespace} applied ({len(made)})")
    say(f"kubectl apply -k {overlay}")
    cluster.kubectl("apply", "-k", str(overlay))
    try:
        for kind, name in workloads(rendered):
            cluster.kubectl("-n", namespace, "rollout", "status", f"{kind}/{name}", "--timeout=600s", timeout=620)
            say(f"{kind}/{name} rolled out, every replica Ready ({time.monotonic() - t:.0f} s)")
        result.timings["rollout"] = time.monotonic() - t
        answer = cluster.kubectl("-n", namespace, "exec", "towers-0", "--", "python", "-c", _PROBE)
        try:
            seen = json.loads(answer)
        except ValueError:
            raise StackError(f"the probe in towers-0 gave no answer: {answer.strip()[-300:]!r}") from None
        result.problems += identity_problems(rendered, seen["brokers"], seen["members"])
        result.problems += _policy_check(cluster, namespace, rendered, say)
        names = [m["name"] for m in seen["members"]]
        say(f"from towers-0: Kafka brokers {seen['brokers']}, etcd members {names}")
        if ("statefulset", "schema-registry") in workloads(rendered):  # through its Service and policy
            result.problems += _register_schemas(cluster, namespace, say)

        if lose_node:
            result.problems += lose_node_mid_job(cluster, namespace, rendered, result.timings, say)

        def job_state() -> str | None:
            status = json.loads(cluster.kubectl("-n", namespace, "get", "job", "producers", "-o", "json"))["status"]
            return job_outcome(status)

        if poll(lambda: job_state() is not None, job_timeout, interval=5) is None:
            tail = cluster.kubectl("-n", namespace, "logs", "job/producers", "--tail=3", check=False)
            raise StackError(f"the producers' Job did not finish within {job_timeout:.0f} s; "
                             f"its last lines: {' | '.join(tail.strip().splitlines())[-400:]}")  # fmt: skip
        result.timings["job"] = time.monotonic() - t
        outcome = job_state()
        log = cluster.kubectl("-n", namespace, "logs", "job/producers", check=False)
        result.summary = parse_summary(log)
        if outcome != "Complete":
            result.problems.append(f"the producers' Job ended {outcome}: {log.strip()[-300:]}")
        if result.summary is None:
            result.problems.append("no summary line in the producers' log")
        else:
            if result.summary.advisories <= 0:
                result.problems.append("no advisory was delivered")
            if result.summary.records_acked != result.summary.records_sent:
                result.problems.append(f"Kafka acknowledged {result.summary.records_acked} of the "
                                       f"{result.summary.records_sent} records the fleet sent")  # fmt: skip
            if result.summary.dead_letters != 0:  # with their reasons, read from a tower pod
                first = cluster.kubectl("-n", namespace, "exec", "towers-0", "--", "corridor", "consume", "dead-letter",
                                        "--from-beginning", "--max-records", "3", check=False, timeout=90)  # fmt: skip
                result.problems.append(f"{result.summary.dead_letters} dead letters; the first: "
                                       f"{' | '.join(first.strip().splitlines())[:900] or '(none read)'}")  # fmt: skip
        # after the Job is judged: what the check's own vehicle may send reaches the gateways, which
        # dead-letter it (it is no telemetry), and the Job counts the topic's dead letters
        pod = radio_check_pod(rendered, namespace)
        if pod is not None:
            result.problems += _radio_check(cluster, namespace, pod, say)
        if ("deployment", "prometheus") in workloads(rendered):
            result.problems += _ask_prometheus(cluster, namespace, rendered, say)
    except (StackError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        result.problems.append(str(exc))
    finally:
        try:
            result.pods = cluster.kubectl("-n", namespace, "get", "pods", "-o", "wide", check=False)
            if logs_to is not None or result.problems:
                _collect(cluster, namespace, logs_to or failures)
        except StackError as exc:  # the cluster is gone: its own logs say why
            result.problems.append(str(exc))
            failures.mkdir(parents=True, exist_ok=True)
            for saved, kept in _cluster_logs(cluster.layout):
                shutil.copyfile(kept, failures / saved)
            return result
    if not last:  # the next overlay gets the node to itself
        cluster.kubectl("delete", "-k", str(overlay), "--wait=true", "--timeout=180s", check=False, timeout=200)
    return result


#: seconds after the fleet starts driving that the node is lost
LOSE_AFTER_S = 40.0


def node_to_lose(pods: list[dict[str, Any]]) -> str | None:
    """The node the drill loses: one that runs a tower worker but not the producers' Job (the Job is
    the judge, not the victim), preferring one that also holds a Kafka broker and an etcd member."""
    held: dict[str, set[str]] = {}
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName")
        if node:
            held.setdefault(node, set()).add(pod["metadata"]["name"])
    job = {n for n, names in held.items() if any(x.startswith("producers-") for x in names)}

    def has(names: set[str], prefix: str) -> bool:
        return any(x.startswith(prefix) for x in names)

    candidates = [n for n, names in held.items() if has(names, "towers-") and n not in job]
    candidates.sort(key=lambda n: (not (has(held[n], "kafka-") and has(held[n], "etcd-")), n))
    return candidates[0] if candidates else None


#: run in a surviving tower pod after a node is lost: what the quorums say
_QUORUM_PROBE = """
import json
import etcd3
from confluent_kafka.admin import AdminClient
from pipeline.shared.access import Role
from pipeline.shared.config import Settings
settings = Settings.from_env()
admin = AdminClient(settings.kafka(Role.TOWER).librdkafka())
cluster = admin.describe_cluster(request_timeout=20).result()
client = etcd3.client(**settings.etcd(Role.TOWER).client_kwargs(), timeout=20)
status = client.status()
client.put("/corridor/e2e/quorum", "written")  # a write needs a quorum of members
leader = status.leader.name if status.leader else None
print(json.dumps({"brokers": sorted(n.id for n in cluster.nodes), "controller": cluster.controller.id,
                  "etcd_leader": leader, "etcd_members": len(list(client.members))}))
"""


def _pods(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return list(json.loads(cluster.kubectl("-n", namespace, "get", "pods", "-o", "json"))["items"])


def lose_node_mid_job(cluster: Cluster, namespace: str, rendered: list[dict[str, Any]], timings: dict[str, float],
                      say: Say) -> list[str]:  # fmt: skip
    """Forty seconds after the producers' fleet starts driving (the crash reported ten seconds
    before, the deer five seconds after, at 4x), a node holding a tower worker (and a Kafka broker
    and an etcd member, where anti-affinity spreads them) loses its power. The operator's step for a
    node that will not return follows once the control plane sees it unreachable: the
    `node.kubernetes.io/out-of-service` taint (Kubernetes' non-graceful node shutdown), which lets
    the StatefulSets' pods start elsewhere. The Job, judged afterwards as always, must still complete
    with no dead letter; here: the tower workers back on the survivors, the quorums still answering."""

    def driving() -> bool:  # `simulate --wait` says so once Kafka, etcd and the towers answer
        return "stack ready after" in cluster.kubectl("-n", namespace, "logs", "job/producers", check=False)

    if poll(driving, 600, interval=2) is None:
        return ["the producers' fleet did not start driving within 600 s: no node was lost"]
    time.sleep(LOSE_AFTER_S)
    pods = _pods(cluster, namespace)
    name = node_to_lose(pods)
    if name is None:
        return ["no node runs a tower worker without the producers' Job: no node was lost"]
    node = next(n for n in cluster.layout.all_nodes if n.name == name)
    held = sorted(p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == name)
    t0 = time.monotonic()
    killed = cluster.lose_node(node)
    say(f"{name} lost mid-Job: its power cut, {killed} processes SIGKILLed; it held {', '.join(held)}")

    def condition() -> str:
        got = cluster.kubectl("get", "node", name, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
                              check=False)  # fmt: skip
        return got.strip()

    if poll(lambda: condition() not in ("True", ""), 120, interval=1) is None:
        return [f"the control plane still sees {name} Ready 120 s after it was lost"]
    timings["node_unreachable"] = time.monotonic() - t0
    cluster.kubectl("taint", "node", name, "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute")
    replicas = {
        d["metadata"]["name"]: int(d["spec"].get("replicas", 1)) for d in rendered if d["kind"] == "StatefulSet"
    }
    towers = replicas.get("towers", 0)

    def towers_back() -> bool:
        mine = [p for p in _pods(cluster, namespace) if p["metadata"]["name"].startswith("towers-")]
        return len(mine) == towers and all(is_ready(p) and p["spec"].get("nodeName") != name for p in mine)

    if poll(towers_back, 300, interval=1) is None:
        return [f"the tower workers were not all Ready on the other nodes 300 s after {name} was lost"]
    timings["towers_back"] = time.monotonic() - t0
    answer = cluster.kubectl_run("-n", namespace, "exec", "towers-0", "--", "python", "-c", _QUORUM_PROBE)
    try:
        quorum = json.loads(answer.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        why = (answer.stderr.strip() or answer.stdout.strip())[-300:]
        return [f"after {name} was lost, the quorum probe in towers-0 failed: {why!r}"]
    say(f"{name} unreachable for the control plane after {timings['node_unreachable']:.0f} s; every tower worker "
        f"Ready on the other nodes after {timings['towers_back']:.0f} s; Kafka brokers {quorum['brokers']} "
        f"(controller {quorum['controller']}), etcd leader {quorum['etcd_leader']} of {quorum['etcd_members']} "
        f"members, a write accepted")  # fmt: skip
    if len(quorum["brokers"]) < replicas.get("kafka", 0) - 1:
        return [f"after {name} was lost, only brokers {quorum['brokers']} of {replicas['kafka']} answer"]
    return []


def _ask_prometheus(cluster: Cluster, namespace: str, rendered: list[dict[str, Any]], say: Say) -> list[str]:
    """Until its answers hold (a scrape every 5 s: a minute at most), or what still does not."""
    answers: dict[str, Any] = {}

    def holds() -> bool:
        out = cluster.kubectl("-n", namespace, "exec", "towers-0", "--", "python", "-c", _ASK_PROMETHEUS,
                              json.dumps(PROMETHEUS_QUESTIONS), check=False)  # fmt: skip
        try:
            answers.update(json.loads(out))
        except ValueError:
            return False
        return not prometheus_problems(rendered, answers)

    poll(holds, 60, interval=5)
    firing = sorted({a["metric"]["alertname"] for a in answers.get("firing", [])})
    say(f"the namespace's Prometheus: {answers.get('towers_up')} towers and {answers.get('gateways_up')} gateways "
        f"up, alerts firing: {firing or 'none'}")  # fmt: skip
    return prometheus_problems(rendered, answers) if answers else ["the namespace's Prometheus gave no answer"]


def _collect(cluster: Cluster, namespace: str, folder: Path) -> None:
    """Every pod's log, the events and the cluster's own logs, for a failure to be read afterwards."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "events.txt").write_text(cluster.kubectl("-n", namespace, "get", "events", "--sort-by=.lastTimestamp",
                                                       check=False))  # fmt: skip
    (folder / "describe.txt").write_text(cluster.kubectl("-n", namespace, "describe", "pods", check=False))
    pods = cluster.kubectl("-n", namespace, "get", "pods", "-o", "name", check=False).split()
    for pod in pods:
        text = cluster.kubectl("-n", namespace, "logs", pod, "--all-containers", check=False)
        (folder / f"{pod.split('/')[-1]}.log").write_text(text)
    for name, log in _cluster_logs(cluster.layout):
        shutil.copyfile(log, folder / name)


def _cluster_logs(layout: ClusterLayout) -> list[tuple[str, Path]]:
    """The control plane's logs and each node's, under the names they are kept by."""
    found = [(f"cluster-{log.name}", log) for log in layout.logs.glob("*.log")]
    for node in layout.all_nodes:
        found += [(f"{node.name}-{log.name}", log) for log in node.path("logs").glob("*.log")]
    return found
