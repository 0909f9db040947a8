"""The test cluster's certificates: one CA per run, the API server's and each kubelet's serving
certificates, the API server's client certificate for the kubelet, the service-account key pair.

Made fresh for every run in the run's folder, which is removed with it: nothing outlives the cluster.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.deploy.cluster.layout import ClusterLayout
from pipeline.stack.security import issue_cert, new_ca

__all__ = ["make_pki"]

_VALID = dt.timedelta(days=2)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    path.chmod(0o600)


def make_pki(layout: ClusterLayout) -> None:
    pki = layout.pki
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, ca = new_ca("corridor test cluster CA", _VALID)
    (pki / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def issue(stem: str, cn: str, *, org: str | None = None, ips: tuple[str, ...] = (),
              dns: tuple[str, ...] = ()) -> None:  # fmt: skip
        usages = [ExtendedKeyUsageOID.SERVER_AUTH if (ips or dns) else ExtendedKeyUsageOID.CLIENT_AUTH]
        sans = [*(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips), *(x509.DNSName(n) for n in dns)]
        key, cert = issue_cert(ca_key, ca, _name(cn, org), usages, sans, _VALID)
        (pki / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pki / f"{stem}-key.pem", key)

    domain = layout.cluster_domain
    issue(
        "apiserver",
        "kube-apiserver",
        ips=(layout.control_ip, "127.0.0.1", layout.api_service_ip),
        dns=("kubernetes", "kubernetes.default", "kubernetes.default.svc", f"kubernetes.default.svc.{domain}"),
    )
    issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", org="system:masters")
    for node in layout.all_nodes:
        issue(f"kubelet-{node.index}", node.name, ips=(node.ip,), dns=(node.name,))
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki / "sa-key.pem", sa)
    (pki / "sa.pub").write_bytes(
        sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
