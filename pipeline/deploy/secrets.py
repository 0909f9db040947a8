"""The Secrets a secure Kubernetes deployment needs, made by the same code as the local secure stack.

`corridor k8s secrets` prints them for `kubectl apply -f -`; the manifests (k8s/components/secure*)
refer to them by name, so no credential is ever in a ConfigMap or in the repository. With Strimzi,
its operators make the Kafka side (the cluster CA, a password Secret per `KafkaUser`); without it,
these Secrets carry the same names and keys, so corridor's pods are configured alike on both.
"""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

from pipeline.shared.access import Role
from pipeline.shared.radio_access import MQTT_ADMIN, MQTT_GATEWAY, dynsec_config
from pipeline.shared.radio_topics import RadioTopics
from pipeline.stack.security import SecurityMaterial

__all__ = ["ETCD_ROLES", "KAFKA_VARIANTS", "secret_manifests"]

KAFKA_VARIANTS = ("strimzi", "statefulset")
#: roles with an etcd client certificate Secret (`etcd-client-<role>`); vehicles have no etcd access
ETCD_ROLES = (Role.ADMIN, Role.TOWER, Role.READER)


def _names(service: str, headless: str, namespace: str) -> tuple[str, ...]:
    out = []
    for suffix in ("", f".{namespace}", f".{namespace}.svc", f".{namespace}.svc.cluster.local"):
        out += [f"{service}{suffix}", f"*.{headless}{suffix}"]
    return tuple(out)


def _secret(name: str, data: dict[str, str], binary: dict[str, str] | None = None) -> dict[str, Any]:
    """`binary`: base64 already, for bytes that are not text (the fleet's provisioning key)."""
    labels = {"app.kubernetes.io/part-of": "corridor"}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": labels},
            "type": "Opaque", "stringData": data, **({"data": binary} if binary else {})}  # fmt: skip


def _radio_secrets(m: SecurityMaterial, ca: str) -> list[dict[str, Any]]:
    """The secure radio link's: the broker's certificate and its plugin's starting file (hashes only;
    no vehicle: the vehicles' driver enrols its fleet), and an MQTT_SECRETS_DIR each for the gateways
    (their password) and for the vehicles' driver (the enrolment admin's, and the fleet's provisioning
    key, from which each vehicle's password derives)."""
    passwords = {who: m.mqtt_password(who).read_text().strip() for who in (MQTT_ADMIN, MQTT_GATEWAY)}
    cert, key = m.mqtt_server
    fleet_key = base64.b64encode(m.mqtt_vehicle_key.read_bytes()).decode()
    # the grants name every region with a wildcard: the number given here does not change them
    starting = dynsec_config(RadioTopics(regions=1), passwords[MQTT_ADMIN], passwords[MQTT_GATEWAY])
    return [
        _secret("mqtt-tls", {"tls.crt": cert.read_text(), "tls.key": key.read_text(), "ca.crt": ca}),
        _secret("mqtt-dynsec", {"dynamic-security.json": json.dumps(starting)}),
        _secret("mqtt-gateway", {f"{MQTT_GATEWAY}.password": passwords[MQTT_GATEWAY]}),
        _secret("mqtt-driver", {f"{MQTT_ADMIN}.password": passwords[MQTT_ADMIN]}, {"vehicles.key": fleet_key}),
    ]


def secret_manifests(namespace: str, kafka: str) -> list[dict[str, Any]]:
    """Fresh CA, certificates and passwords for one namespace, as Secret documents."""
    with tempfile.TemporaryDirectory() as tmp:
        m = SecurityMaterial(Path(tmp) / "m", kafka_names=_names("corridor-kafka-bootstrap", "kafka", namespace),
                             etcd_names=_names("etcd-client", "etcd", namespace),
                             mqtt_names=_names("mqtt", "mqtt", namespace))  # fmt: skip
        m.make()

        def read(path: Path) -> str:
            return path.read_text()

        ca = read(m.ca)
        cert, key = m.etcd_server
        docs = [_secret("etcd-tls", {"tls.crt": read(cert), "tls.key": read(key), "ca.crt": ca})]
        for role in ETCD_ROLES:
            cert, key = m.etcd_client(role)
            docs.append(_secret(f"etcd-client-{role.value}", {"tls.crt": read(cert), "tls.key": read(key),
                                                               "ca.crt": ca}))  # fmt: skip
        docs += _radio_secrets(m, ca)
        if kafka == "statefulset":
            users = m.credentials()
            docs.append(_secret("kafka-tls", {"keystore.pem": read(m.broker_keystore), "ca.crt": ca}))
            docs.append(_secret("kafka-scram", {
                "users": "".join(f"{user} {password}\n" for user, password in users.values()),
                "admin-password": users[Role.ADMIN][1],
            }))  # fmt: skip
            docs.append(_secret("corridor-cluster-ca-cert", {"ca.crt": ca}))
            docs += [_secret(role.value, {"password": users[role][1]}) for role in Role]
    return docs
