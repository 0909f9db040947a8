"""The Kubernetes manifests: every overlay builds with kustomize, validates offline against the
Kubernetes schemas (and Strimzi's CRD schemas for its kinds), and agrees with the code on image
names, ports, topics and environment variables."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pipeline.containers.images import IMAGES
from pipeline.deploy.cluster.e2e import radio_check_pod
from pipeline.shared.config import ENV_VARS, Settings
from pipeline.shared.corridor import default_paths, load_corridor
from pipeline.simulation.scenario import builtin_scenarios, load_scenario
from tests.conftest import REPO
from tests.k8s.crds import prometheus_operator_schemas, strimzi_schemas
from towers.config import tower_env_vars

K8S = REPO / "k8s"
OVERLAYS = ["dev", "dev-plain", "dev-secure", "plain-quorum", "corridor"]
SECURE = {"dev-secure": "statefulset", "corridor": "strimzi"}  # overlay -> its Kafka
#: each corridor workload and the principal it runs as in secure mode
PRINCIPALS = {("StatefulSet", "towers"): "tower", ("Job", "producers"): "admin", ("Deployment", "gateways"): "vehicle",
              ("Deployment", "dashboard"): "reader"}  # fmt: skip
#: the etcd user of each workload with one, where it is not its Kafka principal's (the scenario driver only reads)
ETCD_USER = {"producers": "reader"}
#: read from Secrets and mounted files in secure overlays: not checkable on this machine
SECURITY_VARS = {"KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
                 "KAFKA_SSL_CA_FILE", "ETCD_CA_FILE", "ETCD_CERT_FILE", "ETCD_KEY_FILE"}  # fmt: skip
KUBERNETES_VERSION = "1.32"  # the oldest minor version these manifests are checked against
STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
OPERATOR_KINDS = {"PodMonitor", "PrometheusRule"}  # the Prometheus Operator's


def _kustomize() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    message = "neither kustomize nor kubectl (which embeds it) is installed"
    if os.environ.get("CORRIDOR_STRICT_TESTS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    done = subprocess.run([*_kustomize(), str(K8S / "overlays" / request.param)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return request.param, [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="module")
def crd_schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    return {**strimzi_schemas(settings.cache_dir), **prometheus_operator_schemas()}


def _one(docs: list[dict[str, Any]], kind: str, name_prefix: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_prefix)]
    assert len(found) == 1, f"expected one {kind} {name_prefix}*, found {len(found)}"
    return found[0]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]


def _corridor_config(docs: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
    return _one(docs, "ConfigMap", "corridor-env")["data"], _one(docs, "ConfigMap", "corridor-data")["data"]


def _validate(doc: dict[str, Any], schema: dict[str, Any]) -> None:
    """Against a CRD's schema as the API server reads it: the Prometheus Operator's patterns are Go's
    (`(?i)` inside a group), which a check of the schema itself by Python's rules would refuse."""
    jsonschema.Draft7Validator(schema).validate(doc)


def test_every_document_validates_against_its_schema(overlay, crd_schemas) -> None:
    name, docs = overlay
    kinds = {d["kind"] for d in docs}
    assert {"StatefulSet", "Service", "ConfigMap", "Job", "Namespace"} <= kinds
    for doc in docs:
        where = f"{name}: {doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] in STRIMZI_KINDS | OPERATOR_KINDS:
            assert doc["apiVersion"] in ("kafka.strimzi.io/v1beta2", "monitoring.coreos.com/v1"), where
            try:
                _validate(doc, crd_schemas[doc["kind"]])
            except jsonschema.ValidationError as exc:
                pytest.fail(f"{where}: {exc.message} at {list(exc.absolute_path)}")
        else:
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{where}: {exc.message} at {list(exc.path)}")


def test_strimzi_is_checked_for_real(crd_schemas) -> None:
    """The CRD schemas reject what Strimzi would (a schema that accepts anything checks nothing)."""
    bad = {"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic", "metadata": {"name": "t"},
           "spec": {"partitions": "nine"}}  # fmt: skip
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, crd_schemas["KafkaTopic"])


def test_the_prometheus_operators_kinds_are_checked_for_real(crd_schemas) -> None:
    bad = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "m"},
        "spec": {"selector": {}, "podMetricsEndpoints": [{"port": 6066}]},
    }  # a port is a name here
    with pytest.raises(jsonschema.ValidationError):
        _validate(bad, crd_schemas["PodMonitor"])


def test_the_prometheus_rule_holds_the_rules_promtool_tests_and_monitors_what_the_rules_read() -> None:
    component = K8S / "components" / "prometheus-operator"
    (rule,) = yaml.safe_load_all((component / "prometheusrule.yaml").read_text())
    tested = yaml.safe_load((K8S / "prometheus" / "rules.yml").read_text())
    assert rule["spec"]["groups"] == tested["groups"], "k8s/prometheus/rules.yml changed: copy its groups"
    monitors = {m["metadata"]["name"]: m for m in yaml.safe_load_all((component / "podmonitors.yaml").read_text())}
    jobs = {m["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["replacement"] for m in monitors.values()}
    assert jobs == {"corridor-towers", "corridor-gateways"}, "the job names the rules read"


def test_every_container_has_requests_and_limits(overlay) -> None:
    name, docs = overlay
    for doc in docs:
        if doc["kind"] in ("StatefulSet", "Job", "Deployment"):
            for c in _containers(doc):
                res = c.get("resources", {})
                assert {"cpu", "memory"} <= set(res.get("requests", {})), f"{name}: {c['name']} requests"
                assert {"cpu", "memory"} <= set(res.get("limits", {})), f"{name}: {c['name']} limits"
        if doc["kind"] == "KafkaNodePool":
            assert {"requests", "limits"} <= set(doc["spec"]["resources"]), f"{name}: node pool resources"


def test_every_variable_reference_is_to_one_defined_before_it(overlay) -> None:
    """Kubernetes expands `$(VAR)` in an env value only from variables listed earlier in the same
    container; later ones stay literal (the secure Kafka once advertised `$(POD_NAME).kafka`)."""
    name, docs = overlay
    for doc in docs:
        if doc["kind"] in ("StatefulSet", "Job", "Deployment"):
            for c in _containers(doc):
                defined: set[str] = set()
                for env in c.get("env", []):
                    for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", env.get("value", "")):
                        assert ref in defined, f"{name}: {c['name']}'s {env['name']} uses $({ref}) before it is set"
                    defined.add(env["name"])


def test_images_are_the_ones_corridor_builds(overlay) -> None:
    name, docs = overlay
    refs = {img.ref for img in IMAGES.values()}
    used = {c["image"] for d in docs if d["kind"] in ("StatefulSet", "Job", "Deployment") for c in _containers(d)}
    assert used <= refs, f"{name}: {used - refs} are not built by `corridor images build`"
    assert {IMAGES["corridor"].ref, IMAGES["etcd"].ref, IMAGES["mosquitto"].ref, IMAGES["registry"].ref} <= used


def test_topics_match_the_code(overlay) -> None:
    name, docs = overlay
    env, data = _corridor_config(docs)
    regions = len(json.loads(data["towers.json"])["regions"])
    settings = Settings(
        topic_prefix=env["CORRIDOR_TOPIC_PREFIX"], topic_replication=int(env["CORRIDOR_TOPIC_REPLICATION"])
    )
    declared = {
        d["spec"]["topicName"]: (d["spec"]["partitions"], d["spec"]["replicas"], d["spec"].get("config", {}))
        for d in docs
        if d["kind"] == "KafkaTopic"
    }
    if not any(d["kind"] == "Kafka" for d in docs):
        assert not declared, f"{name}: KafkaTopics without a Strimzi Kafka"
        return  # the plain StatefulSet: corridor creates its topics itself
    expected = {s.name: (s.partitions, s.replication, s.config) for s in settings.topics(regions).specs()}
    assert declared == expected, f"{name}: KafkaTopics differ from pipeline/shared/topics.py for {regions} regions"
    pools = [d for d in docs if d["kind"] == "KafkaNodePool"]
    assert settings.topic_replication <= sum(p["spec"]["replicas"] for p in pools), "replicas ≤ brokers"


def test_addresses_ports_and_variables_match_the_code(overlay) -> None:
    name, docs = overlay
    env, _ = _corridor_config(docs)
    known = set(ENV_VARS) | tower_env_vars() | {"MPLCONFIGDIR"}  # matplotlib's cache, on the pod's /tmp
    assert set(env) <= known, f"{name}: corridor-env sets variables no code reads: {set(env) - known}"
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    kafka_host, kafka_port = env["KAFKA_BOOTSTRAP_SERVERS"].split(":")
    etcd_host, etcd_port = env["ETCD_ENDPOINTS"].split(":")
    if any(d["kind"] == "Kafka" for d in docs):
        kafka = _one(docs, "Kafka", "corridor")
        assert kafka_host == f"{kafka['metadata']['name']}-kafka-bootstrap", "Strimzi's bootstrap Service"
        assert int(kafka_port) in [lst["port"] for lst in kafka["spec"]["kafka"]["listeners"]]
    else:
        assert int(kafka_port) in [p["port"] for p in services[kafka_host]["spec"]["ports"]]
    assert int(etcd_port) in [p["port"] for p in services[etcd_host]["spec"]["ports"]]
    towers = _one(docs, "StatefulSet", "towers")
    (tower,) = _containers(towers)
    tower_env = {e["name"]: e.get("value") for e in tower.get("env", [])}
    assert set(tower_env) <= known, f"{name}: the tower container sets unknown variables"
    web = int(tower_env["CORRIDOR_TOWER_WEB_PORT"])
    assert tower_env["CORRIDOR_TOWER_WEB_BIND"] == "0.0.0.0", "probes reach the pod's address"
    assert [p["containerPort"] for p in tower["ports"]] == [web]
    assert tower["readinessProbe"]["httpGet"]["path"] == "/corridor/ready/"
    assert web in [p["port"] for p in services["towers"]["spec"]["ports"]]
    mounts = {m["mountPath"] for m in tower["volumeMounts"]}
    assert Path(env["CORRIDOR_TOWERS_FILE"]).parent.as_posix() in mounts, "the regions file is mounted"
    assert "/var/lib/corridor" in mounts, "the table store is on the pod's volume"


def test_tower_replicas_never_exceed_the_regions(overlay) -> None:
    name, docs = overlay
    _, data = _corridor_config(docs)
    regions = len(json.loads(data["towers.json"])["regions"])
    replicas = _one(docs, "StatefulSet", "towers")["spec"]["replicas"]
    assert 1 <= replicas <= regions, f"{name}: {replicas} tower workers for {regions} regions"
    expected = {"dev": (2, 9), "dev-plain": (2, 9), "dev-secure": (2, 9), "plain-quorum": (2, 9), "corridor": (12, 12)}[
        name
    ]
    assert (replicas, regions) == expected


def test_etcd_initial_cluster_lists_exactly_its_members(overlay) -> None:
    name, docs = overlay
    etcd = _one(docs, "StatefulSet", "etcd")
    members = _one(docs, "ConfigMap", "etcd-env")["data"]["ETCD_INITIAL_CLUSTER"].split(",")
    assert [m.split("=")[0] for m in members] == [f"etcd-{i}" for i in range(etcd["spec"]["replicas"])]
    assert (etcd["spec"]["replicas"], name) in {
        (1, "dev"),
        (1, "dev-plain"),
        (3, "dev-secure"),
        (3, "plain-quorum"),
        (3, "corridor"),
    }


def test_etcd_peers_speak_tls_exactly_in_the_secure_overlays(overlay) -> None:
    name, docs = overlay
    env = _one(docs, "ConfigMap", "etcd-env")["data"]
    advertised = {e["name"]: e.get("value") for e in _containers(_one(docs, "StatefulSet", "etcd"))[0]["env"]}
    peer_urls = [m.split("=", 1)[1] for m in env["ETCD_INITIAL_CLUSTER"].split(",")]
    peer_urls += [env["ETCD_LISTEN_PEER_URLS"], advertised["ETCD_INITIAL_ADVERTISE_PEER_URLS"]]
    scheme = "https" if name in {"dev-secure", "corridor"} else "http"
    assert {url.split("://")[0] for url in peer_urls} == {scheme}
    if scheme == "https":
        assert env["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"
        assert env["ETCD_PEER_TRUSTED_CA_FILE"] == env["ETCD_TRUSTED_CA_FILE"]
        assert (env["ETCD_PEER_CERT_FILE"], env["ETCD_PEER_KEY_FILE"]) == (env["ETCD_CERT_FILE"], env["ETCD_KEY_FILE"])


def test_shipped_config_copies_equal_the_packaged_data() -> None:
    """k8s/corridor/config holds copies of the route and regions the image ships, and a scenario the
    producers' Job can run against external towers (no worker kill or restart events)."""
    route, towers = default_paths()
    config = K8S / "corridor" / "config"
    assert (config / "route.json").read_bytes() == route.read_bytes()
    assert (config / "towers.json").read_bytes() == towers.read_bytes()
    scenario = load_scenario(str(config / "scenario.yaml"))
    assert not [e for e in scenario.events if e.kind in ("kill_worker", "restart_worker")]
    assert (config / "scenario.yaml").read_text() == builtin_scenarios()["bloomington-indianapolis"].read_text()
    twelve = load_corridor(route, K8S / "overlays" / "corridor" / "config" / "towers.json")
    assert len(twelve.regions) == 12


def test_the_gateways_reach_the_mqtt_broker_and_kafka(overlay) -> None:
    name, docs = overlay
    env, _ = _corridor_config(docs)
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    (gateway,) = _containers(_one(docs, "Deployment", "gateways"))
    gw_env = {e["name"]: e.get("value") for e in gateway.get("env", [])}
    assert set(gw_env) <= set(ENV_VARS), f"{name}: the gateway sets variables no code reads"
    checkable = {k: v for k, v in {**env, **gw_env}.items() if k not in SECURITY_VARS and v is not None}
    settings = Settings.from_env(checkable)  # a bad MQTT_URL is a ConfigError here
    host, port = settings.mqtt_address
    assert port in [p["port"] for p in services[host]["spec"]["ports"]], f"{name}: no Service {host}:{port}"
    (broker,) = _containers(_one(docs, "StatefulSet", "mqtt"))
    assert port in [p["containerPort"] for p in broker["ports"]]
    assert gateway["command"][:2] == ["corridor", "gateway"] and "--group" in gateway["command"]
    mounted = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("mqtt-listener")]
    image = K8S / "images" / "mosquitto"
    assert "include_dir /etc/mosquitto/corridor.d" in (image / "mosquitto.conf").read_text()
    text = mounted[0]["data"]["listener.conf"] if mounted else (image / "listener.conf").read_text()
    listener = [w for line in text.splitlines() if not line.startswith("#") for w in line.split()]
    assert listener[listener.index("listener") + 1] == str(port), "the broker listens where the Service points"
    secure = name in {"dev-secure", "corridor"}
    assert bool(mounted) == secure
    if secure:  # TLS, no anonymous client, the plugin; the gateways trust the broker's CA as themselves
        assert {"certfile", "keyfile", "plugin"} <= set(listener)
        assert listener[listener.index("allow_anonymous") + 1] == "false"
        assert {"MQTT_CA_FILE", "MQTT_SECRETS_DIR"} <= set(gw_env)
    else:
        assert listener[listener.index("allow_anonymous") + 1] == "true" and "MQTT_CA_FILE" not in gw_env


def _pod_workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("StatefulSet", "Job", "Deployment")]


def test_every_container_runs_unprivileged_on_a_read_only_root(overlay) -> None:
    name, docs = overlay
    for doc in _pod_workloads(docs):
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, f"{name}: {doc['metadata']['name']}"
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in _containers(doc):
            sc = c["securityContext"]
            where = f"{name}: {c['name']}"
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}, f"{where}: a writable /tmp"


def _peers(policy: dict[str, Any], port: int) -> set[str]:
    """The app names a NetworkPolicy lets reach `port` (None: anyone)."""
    out: set[str] = set()
    for rule in policy["spec"].get("ingress", []):
        if port not in [p["port"] for p in rule.get("ports", [])]:
            continue
        if "from" not in rule:
            out.add("*")
        for peer in rule.get("from", []):
            sel = peer["podSelector"]
            out |= (
                {sel["matchLabels"]["app.kubernetes.io/name"]}
                if "matchLabels" in sel
                else set(sel["matchExpressions"][0]["values"])
            )
    return out


def test_only_the_roles_that_need_kafka_and_etcd_reach_them(overlay) -> None:
    name, docs = overlay
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    clients = {"towers", "producers", "gateways", "dashboard"}
    assert _peers(policies["kafka"], 9092) == clients | {"kafka-declare", "kafka"}, name
    assert _peers(policies["etcd"], 2379) == {"towers", "producers", "dashboard", "etcd-auth", "etcd"}, name
    assert _peers(policies["etcd"], 2380) == {"etcd"} and _peers(policies["mqtt"], 1883) == {"gateways", "producers"}
    for doc in docs:
        if doc["kind"] == "Kafka":  # Strimzi makes the listener's policy from its peers
            peers = doc["spec"]["kafka"]["listeners"][0]["networkPolicyPeers"]
            assert set(peers[0]["podSelector"]["matchExpressions"][0]["values"]) == clients, name


def _secret_refs(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Secret name -> the keys the workloads read from it (an empty set: the whole Secret mounted)."""
    refs: dict[str, set[str]] = {}
    for doc in _pod_workloads(docs):
        for vol in doc["spec"]["template"]["spec"].get("volumes", []):
            if "secret" in vol:
                refs.setdefault(vol["secret"]["secretName"], set())
        for c in _containers(doc):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.setdefault(ref["name"], set()).add(ref["key"])
    return refs


@pytest.mark.parametrize("name", sorted(SECURE))
def test_secure_overlays_give_each_workload_its_own_principal_from_secrets(name: str) -> None:
    from pipeline.deploy.secrets import secret_manifests

    done = subprocess.run([*_kustomize(), str(K8S / "overlays" / name)], capture_output=True, text=True)
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    env, _ = _corridor_config(docs)
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and env["ETCD_CA_FILE"]
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            assert not any("PASSWORD" in k or "BEGIN" in str(v) for k, v in doc["data"].items()), "secrets only"
    for doc in _pod_workloads(docs):  # a pod's environment is shown to whoever may read the pod: files only
        for c in _containers(doc):
            named = [e["name"] for e in c.get("env", []) if "PASSWORD" in e["name"] and not e["name"].endswith("_FILE")]
            assert not named, f"{doc['metadata']['name']}: {named} in its environment"
    for (kind, workload), role in PRINCIPALS.items():
        doc = _one(docs, kind, workload)
        (c,) = _containers(doc)
        env_of = {e["name"]: e for e in c["env"]}
        assert env_of["KAFKA_SASL_USERNAME"]["value"] == role, workload
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert Path(env["KAFKA_SSL_CA_FILE"]).parent.as_posix() in mounts, f"{workload}: the CA is mounted"
        volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}
        # its own password, as a file from its role's Secret
        password = Path(env_of["KAFKA_SASL_PASSWORD_FILE"]["value"])
        source = volumes[mounts[password.parent.as_posix()]]["secret"]
        assert source["secretName"] == role and source["items"] == [{"key": "password", "path": password.name}]
        if role == "vehicle":
            assert env_of["ETCD_CERT_FILE"]["value"] == "" and "etcd-client" not in volumes, "vehicles: no etcd"
        else:
            etcd_user = ETCD_USER.get(workload, role)
            assert volumes["etcd-client"]["secret"]["secretName"] == f"etcd-client-{etcd_user}", workload
            assert Path(env["ETCD_CERT_FILE"]).parent.as_posix() in mounts
    # the scenario driver's fleet presents the vehicles' principal, from the vehicles' Secret
    (c,) = _containers(_one(docs, "Job", "producers"))
    env_of = {e["name"]: e for e in c["env"]}
    assert env_of["KAFKA_VEHICLE_SASL_USERNAME"]["value"] == "vehicle"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in _one(docs, "Job", "producers")["spec"]["template"]["spec"]["volumes"]}
    password = Path(env_of["KAFKA_VEHICLE_SASL_PASSWORD_FILE"]["value"])
    assert volumes[mounts[password.parent.as_posix()]]["secret"]["secretName"] == "vehicle"
    # every Secret read is one `corridor k8s secrets` makes, or (Strimzi) one its operators make
    made = {d["metadata"]["name"]: set(d["stringData"]) for d in secret_manifests("ns", SECURE[name])}
    if SECURE[name] == "strimzi":
        users = {d["metadata"]["name"] for d in docs if d["kind"] == "KafkaUser"}
        made |= {"corridor-cluster-ca-cert": {"ca.crt"}} | {u: {"password"} for u in users}
    for secret, keys in _secret_refs(docs).items():
        assert secret in made and keys <= made[secret], f"{name}: Secret {secret} ({keys}) is made by no one"


def test_kafka_users_hold_exactly_the_grants_of_the_access_policy() -> None:
    from pipeline.shared.access_policy import kafka_grants

    done = subprocess.run([*_kustomize(), str(K8S / "overlays" / "corridor")], capture_output=True, text=True)
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    env, _ = _corridor_config(docs)
    topics = Settings(topic_prefix=env["CORRIDOR_TOPIC_PREFIX"]).topics(12)
    users = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "KafkaUser"}
    assert set(users) == {"admin", "tower", "vehicle", "reader", "analytics"}
    assert _one(docs, "Kafka", "corridor")["spec"]["kafka"]["authorization"]["superUsers"] == ["admin"]
    for name, spec in users.items():
        assert spec["authentication"]["type"] == "scram-sha-512"
        have = {(a["resource"]["type"], {"prefix": "prefixed"}.get(a["resource"]["patternType"], "literal"),
                 a["resource"]["name"], op.upper())
                for a in spec.get("authorization", {}).get("acls", []) for op in a["operations"]}  # fmt: skip
        want = {(g.resource, g.pattern, g.name, op) for g in kafka_grants(topics) if g.role.value == name
                for op in g.operations}  # fmt: skip
        assert have == want, f"KafkaUser {name} differs from pipeline/shared/access_policy.py"


def _tls_name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 as OpenSSL applies it: a wildcard stands for the whole leftmost label, and only
    with at least two labels after it (`*.kafka` matches nothing)."""
    if not pattern.startswith("*."):
        return pattern == host
    rest = pattern[2:]
    return rest.count(".") >= 1 and "." in host and host.split(".", 1)[1] == rest


def test_the_secure_brokers_advertise_names_their_certificate_holds() -> None:
    """Clients reach each broker by its advertised name after the bootstrap: TLS must verify it."""
    from cryptography import x509

    from pipeline.deploy.secrets import secret_manifests

    namespace = "corridor-secure"
    done = subprocess.run([*_kustomize(), str(K8S / "overlays" / "dev-secure")], capture_output=True, text=True)
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    (kafka,) = _containers(_one(docs, "StatefulSet", "kafka"))
    env = {e["name"]: e.get("value", "") for e in kafka["env"]}
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].replace("$(POD_NAMESPACE)", namespace)
    tls = next(d for d in secret_manifests(namespace, "statefulset") if d["metadata"]["name"] == "kafka-tls")
    pem = tls["stringData"]["keystore.pem"]
    cert = x509.load_pem_x509_certificate(pem[pem.index("-----BEGIN CERTIFICATE-----") :].encode())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    for ordinal in range(3):
        host = advertised.replace("$(POD_NAME)", f"kafka-{ordinal}").split("://", 1)[1].rsplit(":", 1)[0]
        assert any(_tls_name_matches(n, host) for n in names), f"{host} is not in the certificate's {names}"
    assert not any(_tls_name_matches(n, "kafka-0.kafka") for n in names if n.startswith("*"))  # why: see above
    bootstrap = _corridor_config(docs)[0]["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[0]
    assert bootstrap in names


def test_a_secure_overlays_radio_is_checked_from_the_vehicles_drivers_own_pod(overlay) -> None:
    name, docs = overlay
    pod = radio_check_pod(docs, "ns")
    assert (pod is not None) == (name in {"dev-secure", "corridor"})
    if pod is not None:
        (container,) = pod["spec"]["containers"]
        env = {e["name"] for e in container["env"]}
        assert {"MQTT_URL", "MQTT_CA_FILE", "MQTT_SECRETS_DIR"} <= env
        assert container["command"][-1] == "pipeline.deploy.cluster.radio_check"
        assert pod["spec"]["restartPolicy"] == "Never"
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "producers", "admitted as the driver is"
        assert "mqtt-driver" in {v.get("secret", {}).get("secretName") for v in pod["spec"]["volumes"]}
